"""ExportRunner: keeps up to N exports pending at Avicenna, polls them all with one
list poll per tick (one or more page requests), re-creates failed ones, and hands
each finished file over.

The runner is a generator driven by the stream: while the stream parses and emits
one file, the other exports keep processing at Avicenna (their slots were refilled
before the file was handed over), so no thread is needed and every Singer message
is written from the main thread.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

from tap_avicenna.client import DownloadGone, DownloadRefused, ServerBusy
from tap_avicenna.errors import ExportFailed
from tap_avicenna.exports.download import download_export, empty_export
from tap_avicenna.exports.job import ExportJob, ExportRequest, ListedExport, Match
from tap_avicenna.exports.repository import Enough, ExportRepository
from tap_avicenna.exports.status import ExportStatus
from tap_avicenna.parsing import Limits

LOGGER = logging.getLogger("tap-avicenna.exports")

MAX_ATTEMPTS = 3
TICK_BACKOFF = 1.5
TICK_MAX_FACTOR = 3.0
EMPTY_GRACE_POLLS = 3
EMPTY_GRACE_INTERVALS = 6
"""`Success` without a file on EMPTY_GRACE_POLLS polls spanning EMPTY_GRACE_INTERVALS x
poll_interval_seconds (a minute with the default) is an export without data."""
MAX_REFUSALS = 2
"""Downloads refused by a download host (an expired link) retried with a fresh link
from the list before the export is created again."""
BUSY_BACKOFF_MAX = 300.0

_ADVICE = "try a smaller export_window_days or participants_per_export"


class NotOurExport(Exception):
    """The file handed over does not belong to its request (another user's or another
    shard's export): the stream emits nothing of it and rejects it."""


@dataclass
class ReadyExport:
    """A finished export whose file is on disk until the stream asks for the next one."""

    job: ExportJob
    path: Path
    rejected: str | None = None

    def reject(self, reason: str) -> None:
        """The file is not the request's: nothing of it was emitted, no window closes."""
        self.rejected = reason


@dataclass
class RunnerStats:
    created: int = 0
    resumed: int = 0
    polls: int = 0  # status poll ticks
    pages: int = 0  # list page requests of those ticks
    max_pending: int = 0
    retried: int = 0
    rejected: int = 0
    busy: int = 0


def _noop(job: ExportJob) -> None:
    del job


def _newest_first(ids: list[int]) -> bool:
    return len(ids) > 1 and ids[0] > ids[-1] and all(a >= b for a, b in itertools.pairwise(ids))


class ExportRunner:
    """Runs export requests to completion with bounded concurrency.

    One runner serves a whole tap run: what it learns holds for every stream (the
    exports already listed, a lower concurrency a busy server asked for).
    """

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
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        self.repo = repo
        self.max_concurrent = max_concurrent
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.limits = limits
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._clock = clock
        self._durations: list[float] = []  # age last seen pending, of this run's ready exports
        self._known: set[int] = set()  # every export id listed so far
        self._rejected: set[int] = set()  # exports whose file was not their request's
        self._lost_creates = 0  # creates without id given up before their export was found
        self._warned: set[str] = set()
        self._busy_until = 0.0
        self._busy_since: float | None = None
        self._busy_count = 0
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
        adopted while the list still shows them, they have not failed and what the list
        shows of them fits the request. `on_created` is called once a job's export id is
        known (for state). A consumer that rejects a file (`ReadyExport.reject`) gets
        the request's export again later.
        """
        queue: collections.deque[tuple[ExportRequest, int]] = collections.deque(
            (request, 1) for request in requests
        )
        if not queue:
            return
        resume = dict(resume or {})
        pending: list[ExportJob] = []
        listing = self._poll(pending, resume.values())
        fresh = True
        tick = self.poll_interval

        def fill() -> bool:
            started = False
            while queue and len(pending) < self.max_concurrent:
                if any(job.export_id is None or job.guessed for job in pending):
                    break  # never two unidentified exports at once; a guess is checked first
                if self._clock() < self._busy_until:
                    break
                request, attempt = queue.popleft()
                try:
                    job = self._start(request, attempt, resume, listing, pending)
                except ServerBusy as exc:
                    queue.appendleft((request, attempt))
                    self._busy(exc, len(pending))
                    break
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
                listing = self._poll(pending)
            fresh = False
            ready, changed = self._update(pending, listing, on_created)
            changed = changed or started
            ready_jobs = {id(job) for job, _ in ready}
            for job in list(pending):
                if id(job) in ready_jobs:
                    continue  # ready wins over a timeout in the same tick
                if job.failed or self._age(job) > self.timeout:
                    pending.remove(job)
                    if job.export_id is None:
                        self._lost_creates += 1
                    self._retry(job, queue)
                    changed = True
            for job, listed in ready:
                self._durations.append(job.pending_age)
                try:
                    path = self._fetch(job, listed)
                except DownloadGone as exc:
                    pending.remove(job)
                    LOGGER.warning("%s: %s; creating the export again", job.name, exc)
                    self._retry(job, queue, reason="file expired")
                    continue
                except DownloadRefused as exc:
                    job.refusals += 1
                    if job.refusals <= MAX_REFUSALS:
                        LOGGER.warning(
                            "%s; listing again for a fresh link (%d of %d)",
                            exc,
                            job.refusals,
                            MAX_REFUSALS,
                        )
                        continue
                    pending.remove(job)
                    self._retry(
                        job,
                        queue,
                        reason=f"could not be downloaded: {exc.detail}",
                        advice="the download host keeps refusing its links; run again later",
                    )
                    continue
                pending.remove(job)
                if not job.guessed:
                    fill()  # keep Avicenna busy while the stream parses this file
                handed = ReadyExport(job, path)
                try:
                    yield handed
                finally:
                    with contextlib.suppress(OSError):
                        path.unlink()
                if handed.rejected is not None:
                    self._reject(job, handed.rejected, pending, queue)
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
        With nothing pending (a busy server asked to wait), the wait is the busy wait.
        """
        if not pending:
            return max(self._busy_until - self._clock(), 0.0)
        if not self._durations:
            return tick
        soonest = min(self._durations) - max(self._age(job) for job in pending)
        if soonest <= 0:
            return self.poll_interval
        return max(self.poll_interval / 4, min(tick, soonest))

    def _enough(self, pending: list[ExportJob], also: t.Iterable[int]) -> Enough | None:
        """When a poll may stop reading pages: on a newest-first list, once every export
        it looks for is found and an export already listed before is reached (all that
        follows is older, and was listed before). None (read every page) while an
        export's id is still to be found, on the first poll, or on any other order."""
        if not self._known or any(job.export_id is None for job in pending):
            return None
        wanted = {job.export_id for job in pending} | set(also)
        known = frozenset(self._known)

        def enough(exports: list[ListedExport]) -> bool:
            ids = [e.export_id for e in exports]
            return wanted.issubset(ids) and not known.isdisjoint(ids) and _newest_first(ids)

        return enough

    def _poll(self, pending: list[ExportJob], also: t.Iterable[int] = ()) -> list[ListedExport]:
        self.stats.polls += 1
        listing = self.repo.list(self._enough(pending, also))
        self.stats.pages += listing.pages
        self._known.update(e.export_id for e in listing.exports)
        LOGGER.info(
            "Status poll #%d: %d list request%s for %d pending export(s)",
            self.stats.polls,
            listing.pages,
            "" if listing.pages == 1 else "s",
            len(pending),
        )
        return listing.exports

    def _start(
        self,
        request: ExportRequest,
        attempt: int,
        resume: dict[str, int],
        listing: list[ListedExport],
        pending: list[ExportJob],
    ) -> ExportJob:
        export_id = resume.pop(request.key, None)
        if export_id is not None:
            listed = next((e for e in listing if e.export_id == export_id), None)
            if listed is None:
                why = "not listed"
            elif listed.status is ExportStatus.FAILED:
                why = listed.label
            elif export_id in self._rejected or request.match(listed) is Match.NO:
                why = "the list shows another request"
            else:
                self.stats.resumed += 1
                job = ExportJob(
                    request,
                    attempt,
                    export_id,
                    created_at=self._clock(),
                    label=listed.label,
                    resumed=True,
                )
                LOGGER.info("Resuming %s from state (status %s)", job.name, listed.label)
                return job
            LOGGER.info(
                "Export #%s from state is no longer usable (%s); creating a new one",
                export_id,
                why,
            )
        known = frozenset(self._known | {j.export_id for j in pending if j.export_id is not None})
        created = self.repo.create(request)
        self.stats.created += 1
        self._busy_since, self._busy_count = None, 0
        job = ExportJob(
            request,
            attempt,
            created.export_id,
            created_at=self._clock(),
            known_before=known,
            ref=created.ref,
        )
        LOGGER.info(
            "Created %s (attempt %d/%d); %d pending",
            job.name,
            attempt,
            self.max_attempts,
            len(pending) + 1,
        )
        return job

    def _identify(
        self, job: ExportJob, listing: list[ListedExport], pending: list[ExportJob]
    ) -> ListedExport | None:
        """The listed export of a create whose answer did not give its list key.

        With the `id` it answered: the entry showing it as `id`, else as its key. With
        nothing: a new entry (not listed before the create, not taken, not rejected)
        whose shown fields positively match the request; where the list shows none of
        them, the only new entry, if no other create of this run is unidentified.
        """
        claimed = {j.export_id for j in pending if j.export_id is not None}
        if job.ref is not None:
            for field in ("pk", "export_id"):
                fits = [
                    e
                    for e in listing
                    if getattr(e, field) == job.ref
                    and e.export_id not in claimed
                    and job.request.match(e) is not Match.NO
                ]
                if fits:
                    return fits[0]
            return None
        new = [
            e
            for e in listing
            if e.export_id not in job.known_before
            and e.export_id not in claimed
            and e.export_id not in self._rejected
        ]
        positive = [e for e in new if job.request.match(e) is Match.YES]
        if positive:
            return min(positive, key=lambda e: e.export_id)
        alone = sum(1 for j in pending if j.export_id is None) == 1 and not self._lost_creates
        if alone and len(new) == 1 and job.request.match(new[0]) is Match.UNKNOWN:
            job.guessed = True
            return new[0]
        return None

    def _update(
        self,
        pending: list[ExportJob],
        listing: list[ListedExport],
        on_created: t.Callable[[ExportJob], None],
    ) -> tuple[list[tuple[ExportJob, ListedExport]], bool]:
        """Match jobs to list entries; mark failures; return the ready ones."""
        by_id = {e.export_id: e for e in listing}
        ready: list[tuple[ExportJob, ListedExport]] = []
        changed = False
        for job in pending:
            if job.export_id is None:
                found = self._identify(job, listing, pending)
                if found is None:
                    continue
                job.export_id = found.export_id
                how = "the create answer had no id" if job.ref is None else f"id {job.ref}"
                LOGGER.info("Found %s in the export list (%s)", job.name, how)
                on_created(job)
                changed = True
            listed = by_id.get(job.export_id)
            if listed is None:
                continue  # briefly missing from the list: the timeout decides
            if listed.label != job.label:
                changed = True
                LOGGER.info("%s: status %s after %.1fs", job.name, listed.label, self._age(job))
                job.label = listed.label
            if self._ready(job, listed):
                ready.append((job, listed))
                continue
            job.pending_age = self._age(job)
            if listed.status is ExportStatus.FAILED:
                job.failed = True
        return ready, changed

    def _ready(self, job: ExportJob, listed: ListedExport) -> bool:
        """Success with a file; an unknown label with a file (WARNING once per label);
        Success without a file past the grace (an export without data)."""
        if listed.status is ExportStatus.SUCCESS and not listed.content:
            now = self._clock()
            if job.empty_since is None:
                job.empty_since = now
            job.empty_polls += 1
            grace = EMPTY_GRACE_INTERVALS * self.poll_interval
            return job.empty_polls >= EMPTY_GRACE_POLLS and now - job.empty_since >= grace
        job.empty_since, job.empty_polls = None, 0
        if listed.content and listed.status is ExportStatus.UNKNOWN:
            self._warn_once(
                f"label:{listed.label}",
                f"Export status {listed.label!r} is not a known label, but the list shows "
                "the export's file: such exports are taken as ready",
            )
            return True
        return listed.status is ExportStatus.SUCCESS

    def _fetch(self, job: ExportJob, listed: ListedExport) -> Path:
        if listed.content:
            return download_export(self.repo, job, listed, limits=self.limits)
        assert job.empty_since is not None
        message = (
            f"{job.name} is {listed.label} without a file for "
            f"{self._clock() - job.empty_since:.1f}s: taken as an export without data "
            "(no rows in its window)"
        )
        if "empty" in self._warned:
            LOGGER.info("%s", message)
        else:
            self._warn_once("empty", message)
        return empty_export(job)

    def _reject(
        self,
        job: ExportJob,
        reason: str,
        pending: list[ExportJob],
        queue: collections.deque[tuple[ExportRequest, int]],
    ) -> None:
        """The stream found the file is not the request's: look for the export again
        (when it was adopted from the list by a guess) or create it again."""
        assert job.export_id is not None
        self._rejected.add(job.export_id)
        self.stats.rejected += 1
        if not job.guessed:
            self._retry(
                job,
                queue,
                reason=f"is not the export requested ({reason})",
                advice="is another process creating exports in this study? see README, "
                "Troubleshooting",
            )
            return
        LOGGER.warning(
            "%s is not the export requested (%s); looking for it again", job.name, reason
        )
        job.export_id, job.guessed, job.label = None, False, "created"
        job.empty_since, job.empty_polls, job.refusals = None, 0, 0
        pending.append(job)

    def _busy(self, exc: ServerBusy, pending: int) -> None:
        """A create refused for too many running exports: wait (backing off), and keep
        no more pending than now for the rest of the run. Only when nothing of ours is
        pending and the refusals last past export_timeout_seconds does the run stop."""
        now = self._clock()
        self.stats.busy += 1
        self._busy_count += 1
        if self._busy_since is None:
            self._busy_since = now
        if pending and pending < self.max_concurrent:
            self.max_concurrent = pending
            LOGGER.warning(
                "Avicenna refused a new export (%s): keeping at most %d export(s) pending "
                "for the rest of this run",
                exc,
                pending,
            )
        elif not pending and now - self._busy_since > self.timeout:
            raise ExportFailed(
                f"Avicenna refused every new export for {now - self._busy_since:.0f}s "
                f"({exc}); giving up: other exports of the study keep it busy, run again later"
            )
        backoff = min(BUSY_BACKOFF_MAX, self.poll_interval * 2 ** (self._busy_count - 1))
        delay = max(exc.retry_after or 0.0, backoff)
        self._busy_until = now + delay
        LOGGER.info("Avicenna is busy (%s); next create in %.1fs", exc, delay)

    def _age(self, job: ExportJob) -> float:
        return self._clock() - job.created_at

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            LOGGER.warning("%s", message)

    def _retry(
        self,
        job: ExportJob,
        queue: collections.deque[tuple[ExportRequest, int]],
        reason: str | None = None,
        advice: str = _ADVICE,
    ) -> None:
        if reason is None:
            reason = (
                f"timed out after {self._age(job):.0f}s" if not job.failed else "failed at Avicenna"
            )
        if job.attempt >= self.max_attempts:
            raise ExportFailed(
                f"{job.name} {reason} on attempt {job.attempt} of {self.max_attempts}; "
                f"giving up ({advice})"
            )
        self.stats.retried += 1
        LOGGER.warning("%s %s; creating it again", job.name, reason)
        queue.appendleft((job.request, job.attempt + 1))
