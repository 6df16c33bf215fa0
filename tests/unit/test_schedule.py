"""ExportSchedule: streams' exports planned, run by one runner thread, handed over in
turn (streams and repository in memory, the runner thread real)."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tap_avicenna.errors import ApiError, ExportFailed
from tap_avicenna.exports.job import ExportRequest
from tap_avicenna.exports.runner import Event, ExportRunner
from tap_avicenna.exports.schedule import ExportSchedule, files_folder
from tap_avicenna.parsing import Limits
from tests.unit.test_runner import FakeExport, FakeRepository, lane
from tests.unit.test_worker import ThreadedRepository


@dataclass
class FakeStream:
    """A stream as the schedule sees it; `created` records each export id it is told
    of, with the thread that told it."""

    name: str
    requests: list[ExportRequest]
    plannable: bool = True
    created: list[tuple[str, int, str]] = field(default_factory=list)
    plans: int = 0
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("tap-avicenna.t"))

    def can_plan(self) -> bool:
        return self.plannable

    def plan(self) -> tuple[list[ExportRequest], dict[str, int]]:
        self.plans += 1
        return list(self.requests), {}

    def export_created(self, key: str, export_id: int) -> None:
        self.created.append((key, export_id, threading.current_thread().name))


def stream(number: int, exports: int, **options: t.Any) -> FakeStream:
    return FakeStream(f"stream{number}", list(lane(number, exports).requests), **options)


def schedule_for(
    repo: FakeRepository, names: list[str], per_stream: bool = False
) -> tuple[ExportSchedule, list[str]]:
    """A schedule whose runner polls every 10 ms; the folders of its files."""
    folders: list[str] = []

    def make(emit: t.Callable[[Event], None], directory: str) -> ExportRunner:
        folders.append(directory)
        return ExportRunner(
            repo,
            emit=emit,
            max_concurrent=4,
            poll_interval=0.01,
            timeout=60.0,
            limits=Limits(),
            directory=directory,
        )

    priorities = {name: number for number, name in enumerate(names)}
    schedule = ExportSchedule(
        make, priorities=priorities, per_stream=per_stream, logger=logging.getLogger("t")
    )
    return schedule, folders


def read_all(
    schedule: ExportSchedule, source: FakeStream, positions: list[str] | None = None
) -> list[str]:
    """The keys of the stream's files, as a stream reads them (and the run's position
    logged after each)."""
    keys = []
    with contextlib.closing(schedule.results(source)) as files:
        for ready in files:
            assert ready.path.exists()
            keys.append(ready.job.request.key)
            if positions is not None:
                positions.append(schedule.position())
    return keys


def test_given_streams_when_started_then_all_planned_at_once_and_read_in_turn() -> None:
    repo = ThreadedRepository(script=lambda n: ["Pending", "Success"])
    first, later = stream(1, 2), stream(2, 2, plannable=False)  # waits for something
    schedule, folders = schedule_for(repo, [first.name, later.name])
    try:
        schedule.start([first, later])
        assert (first.plans, later.plans) == (1, 0)
        positions: list[str] = []
        assert sorted(read_all(schedule, first, positions)) == ["1-0", "1-1"]
        later.plannable = True
        schedule.plan_ready()  # what the participants stream does once its list is read
        assert later.plans == 1
        assert sorted(read_all(schedule, later, positions)) == ["2-0", "2-1"]
        assert positions == [
            "export 1 done of 2 planned so far",
            "export 2 done of 2 planned so far",
            "export 3 of 4 done",
            "export 4 of 4 done",
        ]
    finally:
        schedule.close()
    assert later.plans == 1
    # every export id reached its stream's state in the main thread, never the runner's
    assert {name for _, _, name in first.created + later.created} == {"MainThread"}
    assert sorted(key for key, _, _ in first.created + later.created) == [
        "1-0", "1-1", "2-0", "2-1",
    ]  # fmt: skip
    assert repo.threads == {"tap-avicenna-exports"}
    assert folders and not Path(folders[0]).exists()  # every file deleted


def test_given_per_stream_order_when_started_then_each_stream_planned_at_its_turn() -> None:
    repo = ThreadedRepository(script=lambda n: ["Pending", "Success"])
    first, later = stream(1, 2), stream(2, 1)
    schedule, _ = schedule_for(repo, [first.name, later.name], per_stream=True)
    try:
        schedule.start([first, later])
        assert (first.plans, later.plans) == (0, 0)
        read_all(schedule, first)
        assert [e.request.key for e in repo.exports] == ["1-0", "1-1"]  # nothing of stream2
        assert read_all(schedule, later) == ["2-0"]
    finally:
        schedule.close()


def test_given_one_streams_export_always_failing_when_read_then_only_it_raises() -> None:
    def failing(repo: FakeRepository, export: FakeExport) -> None:
        if export.request.data_source_id == 12:
            export.labels = ["Failed"]

    repo = ThreadedRepository(script=lambda n: ["Pending", "Success"], on_create=failing)
    first, later = stream(1, 3), stream(2, 1)
    schedule, _ = schedule_for(repo, [first.name, later.name])
    try:
        schedule.start([first, later])
        assert sorted(read_all(schedule, first)) == ["1-0", "1-1", "1-2"]
        with pytest.raises(ExportFailed, match="attempt 3 of 3"):
            read_all(schedule, later)
    finally:
        schedule.close()


def test_given_the_runner_stopping_on_an_error_when_waiting_then_the_stream_raises_it() -> None:
    repo = ThreadedRepository(broken=ApiError("Avicenna GET /api/v1/filter/export/ failed"))
    first = stream(1, 1)
    schedule, _ = schedule_for(repo, [first.name])
    try:
        schedule.start([first])
        with pytest.raises(ApiError, match="failed"):
            read_all(schedule, first)
    finally:
        schedule.close()


def test_given_folders_of_ended_and_live_runs_when_a_run_starts_then_only_the_ended_ones_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed with SIGKILL leaves its waiting files: the next run deletes the
    folders whose process is gone, never a live run's (nor a folder it cannot tell)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / f"tap-avicenna-files-{int(ended.stdout)}-abc"
    live = tmp_path / f"tap-avicenna-files-{os.getpid()}-def"
    other = tmp_path / "tap-avicenna-files-xyz"
    for folder in (dead, live, other):
        folder.mkdir()
        (folder / "tap-avicenna-1-export.zip").write_bytes(b"PK")
    made = Path(files_folder())
    assert not dead.exists()
    assert live.exists() and other.exists()
    assert made.parent == tmp_path and made.name.startswith(f"tap-avicenna-files-{os.getpid()}-")
