"""ExportRunner: keeps up to N exports pending at Avicenna, polls them all with one
list request per tick, re-creates failed ones, and hands each finished file over.

The runner is a generator driven by the stream: while the stream parses and emits
one file, the other exports keep processing at Avicenna (their slots were refilled
before the file was handed over), so no thread is needed and every Singer message
is written from the main thread.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

from tap_avicenna.client import DownloadGone
from tap_avicenna.errors import ExportFailed
from tap_avicenna.exports.download import download_export
from tap_avicenna.exports.job import ExportJob, ExportRequest, ListedExport
from tap_avicenna.exports.repository import ExportRepository
from tap_avicenna.exports.status import ExportStatus
from tap_avicenna.parsing import Limits

LOGGER = logging.getLogger("tap-avicenna.exports")

MAX_ATTEMPTS = 3
TICK_BACKOFF = 1.5
TICK_MAX_FACTOR = 3.0


@dataclass
class ReadyExport:
    """A finished export whose file is on disk until the stream asks for the next one."""

    job: ExportJob
    path: Path


@dataclass
class RunnerStats:
    created: int = 0
    resumed: int = 0
    polls: int = 0
    max_pending: int = 0
    retried: int = 0


def _noop(job: ExportJob) -> None:
    del job


class ExportRunner:
    """Runs export requests to completion with bounded concurrency."""

    def __init__(
        self,
        repo: ExportRepository,
        *,
        max_concurrent: int,
        poll_interval: float,
        timeout: float,
        limits: Limits,
        max_attempts: int = MAX_ATTEMPTS,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        self.repo = repo
        self.max_concurrent = max_concurrent
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.limits = limits
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._durations: list[float] = []  # age last seen pending, of this run's ready exports
        self.stats = RunnerStats()

    def run(
        self,
        requests: t.Iterable[ExportRequest],
        *,
        resume: t.Mapping[str, int] | None = None,
        on_created: t.Callable[[ExportJob], None] = _noop,
    ) -> t.Iterator[ReadyExport]:
        """Yield each request's finished export (in completion order).

        `resume` maps request keys to export ids created by an earlier run: those are
        adopted while the list still shows them and they have not failed or expired.
        `on_created` is called once a job's export id is known (for state).
        """
        queue: collections.deque[tuple[ExportRequest, int]] = collections.deque(
            (request, 1) for request in requests
        )
        if not queue:
            return
        resume = dict(resume or {})
        pending: list[ExportJob] = []
        listing = self._poll(len(pending))
        known_ids = {e.export_id for e in listing}
        fresh = True
        tick = self.poll_interval

        def fill() -> bool:
            started = False
            while queue and len(pending) < self.max_concurrent:
                if any(job.export_id is None for job in pending):
                    break  # an id to find first: never two unidentified exports at once
                request, attempt = queue.popleft()
                job = self._start(request, attempt, resume, listing, known_ids, pending)
                pending.append(job)
                if job.export_id is not None:
                    on_created(job)
                self.stats.max_pending = max(self.stats.max_pending, len(pending))
                started = True
            return started

        while queue or pending:
            started = fill()
            if not fresh:
                self._sleep(self._next_sleep(tick, pending))
                listing = self._poll(len(pending))
                known_ids.update(e.export_id for e in listing)
            fresh = False
            ready, changed = self._update(pending, listing, on_created)
            changed = changed or started
            for job in list(pending):
                if job.failed or job.elapsed() > self.timeout:
                    pending.remove(job)
                    self._retry(job, queue)
                    changed = True
            for job, listed in ready:
                self._durations.append(job.pending_age)
                try:
                    path = download_export(self.repo, job, listed, limits=self.limits)
                except DownloadGone as exc:
                    pending.remove(job)
                    LOGGER.warning("%s: %s; creating the export again", job.name, exc)
                    self._retry(job, queue, reason="file expired")
                    continue
                pending.remove(job)
                fill()  # keep Avicenna busy while the stream parses this file
                try:
                    yield ReadyExport(job, path)
                finally:
                    with contextlib.suppress(OSError):
                        path.unlink()
            tick = (
                self.poll_interval
                if changed
                else min(tick * TICK_BACKOFF, self.poll_interval * TICK_MAX_FACTOR)
            )

    # --- steps -----------------------------------------------------------------------

    def _next_sleep(self, tick: float, pending: list[ExportJob]) -> float:
        """How long to wait before the next poll.

        The tick backs off while nothing changes, but not once a pending export is as old
        as the quickest export of this run was when it was last seen still pending (a
        lower bound of how long exports take): from then on the tick is the configured
        poll_interval_seconds, and before then the wait ends when one reaches that age.
        """
        if not self._durations or not pending:
            return tick
        soonest = min(self._durations) - max(job.elapsed() for job in pending)
        if soonest <= 0:
            return self.poll_interval
        return max(self.poll_interval / 4, min(tick, soonest))

    def _poll(self, pending: int) -> list[ListedExport]:
        self.stats.polls += 1
        listing = self.repo.list()
        LOGGER.info(
            "Status poll #%d: 1 list request for %d pending export(s)", self.stats.polls, pending
        )
        return listing

    def _start(
        self,
        request: ExportRequest,
        attempt: int,
        resume: dict[str, int],
        listing: list[ListedExport],
        known_ids: set[int],
        pending: list[ExportJob],
    ) -> ExportJob:
        export_id = resume.pop(request.key, None)
        if export_id is not None:
            listed = next((e for e in listing if e.export_id == export_id), None)
            if listed is not None and listed.status is not ExportStatus.FAILED:
                self.stats.resumed += 1
                job = ExportJob(request, attempt, export_id, label=listed.label, resumed=True)
                LOGGER.info("Resuming %s from state (status %s)", job.name, listed.label)
                return job
            LOGGER.info(
                "Export #%s from state is no longer usable (%s); creating a new one",
                export_id,
                "not listed" if listed is None else listed.label,
            )
        known = frozenset(known_ids | {j.export_id for j in pending if j.export_id is not None})
        new_id = self.repo.create(request)
        self.stats.created += 1
        job = ExportJob(request, attempt, new_id, known_before=known)
        LOGGER.info(
            "Created %s (attempt %d/%d); %d pending",
            job.name,
            attempt,
            self.max_attempts,
            len(pending) + 1,
        )
        return job

    def _update(
        self,
        pending: list[ExportJob],
        listing: list[ListedExport],
        on_created: t.Callable[[ExportJob], None],
    ) -> tuple[list[tuple[ExportJob, ListedExport]], bool]:
        """Match jobs to list entries; mark failures; return the ready ones."""
        by_id = {e.export_id: e for e in listing}
        claimed = {j.export_id for j in pending if j.export_id is not None}
        ready: list[tuple[ExportJob, ListedExport]] = []
        changed = False
        for job in pending:
            if job.export_id is None:
                candidates = [
                    e
                    for e in listing
                    if e.export_id not in job.known_before
                    and e.export_id not in claimed
                    and job.request.matches(e)
                ]
                if not candidates:
                    continue
                job.export_id = max(e.export_id for e in candidates)
                claimed.add(job.export_id)
                LOGGER.info("Found %s in the export list (the create answer had no id)", job.name)
                on_created(job)
                changed = True
            listed = by_id.get(job.export_id)
            if listed is None:
                continue  # briefly missing from the list: the timeout decides
            if listed.label != job.label:
                changed = True
                LOGGER.info("%s: status %s after %.1fs", job.name, listed.label, job.elapsed())
                job.label = listed.label
            if listed.status is ExportStatus.SUCCESS:
                ready.append((job, listed))
                continue
            job.pending_age = job.elapsed()
            if listed.status is ExportStatus.FAILED:
                job.failed = True
        return ready, changed

    def _retry(
        self,
        job: ExportJob,
        queue: collections.deque[tuple[ExportRequest, int]],
        reason: str | None = None,
    ) -> None:
        if reason is None:
            reason = (
                f"timed out after {job.elapsed():.0f}s" if not job.failed else "failed at Avicenna"
            )
        if job.attempt >= self.max_attempts:
            raise ExportFailed(
                f"{job.name} {reason} on attempt {job.attempt} of {self.max_attempts}; "
                "giving up (try a smaller export_window_days or participants_per_export)"
            )
        self.stats.retried += 1
        LOGGER.warning("%s %s; creating it again", job.name, reason)
        queue.appendleft((job.request, job.attempt + 1))
