"""ExportFiles: when a listed export is ready, and an export without data's file."""

from __future__ import annotations

import logging
import typing as t
from pathlib import Path

import pytest

from tap_avicenna.exports.files import ExportFiles
from tap_avicenna.exports.job import ExportJob, ExportRequest, ListedExport
from tap_avicenna.exports.policy import RetryPolicy
from tap_avicenna.exports.repository import Enough, Listing
from tap_avicenna.exports.status import classify
from tap_avicenna.parsing import Limits


class NoRepository:
    def create(self, request: ExportRequest) -> t.NoReturn:
        raise AssertionError("not used")

    def list(self, enough: Enough | None = None) -> Listing:
        raise AssertionError("not used")

    def download(self, listed: ListedExport, dest: t.BinaryIO, *, label: str) -> int:
        raise AssertionError("not used")


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def files(clock: Clock, directory: Path) -> ExportFiles:
    policy = RetryPolicy(poll_interval=10.0, timeout=600.0)  # grace: 3 polls over 60 s
    return ExportFiles(
        NoRepository(), policy, limits=Limits(), directory=str(directory), clock=clock
    )


def listed(label: str, content: str | None) -> ListedExport:
    return ListedExport(5, label, classify(label), content)


def test_given_success_without_a_file_when_polled_then_ready_after_the_grace_as_empty(
    tmp_path: Path,
) -> None:
    clock, job = Clock(), ExportJob(ExportRequest("k", "k"), export_id=5)
    exports = files(clock, tmp_path)
    seen = []
    for _ in range(4):
        seen.append(exports.ready(job, listed("Success", None)))
        clock.now += 30.0
    assert seen == [False, False, True, True]  # the third poll, 60 s after the first
    path = exports.fetch(job, listed("Success", None))
    assert path.parent == tmp_path and path.stat().st_size == 0


def test_given_an_unknown_label_when_polled_then_ready_once_the_file_shows_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exports, job = files(Clock(), tmp_path), ExportJob(ExportRequest("k", "k"), export_id=5)
    with caplog.at_level(logging.WARNING, logger="tap-avicenna.exports"):
        assert not exports.ready(job, listed("Exported", None))
        assert exports.ready(job, listed("Exported", "https://files.example/5"))
        assert exports.ready(job, listed("Exported", "https://files.example/5"))
    assert [r.getMessage().split(" is ")[0] for r in caplog.records] == ["Export status 'Exported'"]
