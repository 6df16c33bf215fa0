"""ExportFiles: when a listed export's file is ready, and that file fetched to disk."""

from __future__ import annotations

import logging
import typing as t
from pathlib import Path

from tap_avicenna.exports.download import download_export, empty_export
from tap_avicenna.exports.job import ExportJob, ListedExport
from tap_avicenna.exports.policy import RetryPolicy
from tap_avicenna.exports.repository import ExportRepository
from tap_avicenna.exports.status import ExportStatus
from tap_avicenna.parsing import Limits

LOGGER = logging.getLogger("tap-avicenna.exports")


class ExportFiles:
    """Ready exports' files: downloaded, or an empty file for an export without data."""

    def __init__(
        self,
        repo: ExportRepository,
        policy: RetryPolicy,
        *,
        limits: Limits,
        directory: str | None,
        clock: t.Callable[[], float],
    ) -> None:
        self.repo = repo
        self.policy = policy
        self.limits = limits
        self.directory = directory
        self.clock = clock
        self._warned: set[str] = set()

    def ready(self, job: ExportJob, listed: ListedExport) -> bool:
        """Success with a file; an unknown label with a file (WARNING once per label);
        Success without a file past the grace (an export without data)."""
        if listed.status is ExportStatus.SUCCESS and not listed.content:
            now = self.clock()
            if job.empty_since is None:
                job.empty_since = now
            job.empty_polls += 1
            return self.policy.without_file(job.empty_polls, now - job.empty_since)
        job.empty_since, job.empty_polls = None, 0
        if listed.content and listed.status is ExportStatus.UNKNOWN:
            self._warn_once(
                f"label:{listed.label}",
                f"Export status {listed.label!r} is not a known label, but the list shows "
                "the export's file: such exports are taken as ready",
            )
            return True
        return listed.status is ExportStatus.SUCCESS

    def fetch(self, job: ExportJob, listed: ListedExport) -> Path:
        """The ready export's file on disk (the caller deletes it)."""
        if listed.content:
            return download_export(
                self.repo, job, listed, limits=self.limits, directory=self.directory
            )
        assert job.empty_since is not None
        message = (
            f"{job.name} is {listed.label} without a file for "
            f"{self.clock() - job.empty_since:.1f}s: taken as an export without data "
            "(no rows in its window)"
        )
        if "empty" in self._warned:
            LOGGER.info("%s", message)
        else:
            self._warn_once("empty", message)
        return empty_export(job, directory=self.directory)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            LOGGER.warning("%s", message)
