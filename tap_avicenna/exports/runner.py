"""ExportRunner: the export engine of a tap run.

The exports of each stream form a *lane*. The runner keeps up to N exports pending at
Avicenna across all lanes, polls them all with one list poll per tick (one or more page
requests), re-creates failed ones, downloads each finished file to disk and hands it
over as an event. Lanes are served in the order the streams consume them: the lane
whose turn it is first, then the others by priority. Files of lanes whose turn has not
come wait on disk under a budget: once the files handed over and not yet consumed reach
it, nothing more is created or downloaded for those lanes until a file is consumed
(the lane whose turn it is may always have its next file, so the run never deadlocks).

The runner neither sleeps nor starts threads: `step()` does what is due and says how
long until something else is due; `RunnerThread` (worker.py) drives it in the
background while the main thread emits records.
"""

from __future__ import annotations

import logging
import math
import time
import typing as t
from pathlib import Path

from tap_avicenna.client import DownloadGone, DownloadRefused, ServerBusy
from tap_avicenna.errors import AvicennaError, ExportFailed
from tap_avicenna.exports.busy import BusyGate
from tap_avicenna.exports.creation import Creator
from tap_avicenna.exports.files import ExportFiles
from tap_avicenna.exports.handover import (
    Event,
    ExportCreated,
    ExportReady,
    Lane,
    LaneFailed,
    ReadyExport,
)
from tap_avicenna.exports.job import ExportJob, ListedExport
from tap_avicenna.exports.lanes import Lanes
from tap_avicenna.exports.listing import ExportList
from tap_avicenna.exports.policy import MAX_ATTEMPTS, RetryPolicy
from tap_avicenna.exports.repository import ExportRepository
from tap_avicenna.exports.stats import RunnerStats, log_tick
from tap_avicenna.exports.status import ExportStatus
from tap_avicenna.exports.timing import PollTiming
from tap_avicenna.parsing import Limits

LOGGER = logging.getLogger("tap-avicenna.exports")

__all__ = [  # the hand-over types are re-exported: the engine's interface
    "Event",
    "ExportCreated",
    "ExportReady",
    "ExportRunner",
    "Lane",
    "LaneFailed",
    "ReadyExport",
    "RunnerStats",
]


_ADVICE = "try a smaller export_window_days or participants_per_export"


class ExportRunner:
    """Runs the lanes' export requests to completion with bounded concurrency.

    One runner serves a whole tap run: what it learns holds for every stream (the
    exports already listed, a lower concurrency a busy server asked for). `emit`
    receives the events (`ExportCreated`, `ExportReady`, `LaneFailed`); an exception
    out of `step()` ends the run (a failed list poll, a server busy for too long).
    """

    def __init__(
        self,
        repo: ExportRepository,
        *,
        emit: t.Callable[[Event], None],
        max_concurrent: int,
        poll_interval: float,
        timeout: float,
        limits: Limits,
        max_waiting_bytes: float = math.inf,
        directory: str | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        self._list = ExportList(repo)
        self.policy = RetryPolicy(poll_interval, timeout, attempts=max_attempts)
        self.stats = RunnerStats()
        self._busy = BusyGate(self.policy, max_concurrent)
        self._creator = Creator(repo, self._list, self.policy, self.stats, clock)
        self._files = ExportFiles(
            repo, self.policy, limits=limits, directory=directory, clock=clock
        )
        self._emit = emit
        self._clock = clock
        self._lanes = Lanes(max_waiting_bytes)
        self._pending: list[ExportJob] = []  # created, not downloaded
        self._relist = False  # a poll is due now (the first one, or ids from state to check)
        self._timing = PollTiming(poll_interval)
        self._started = False  # exports started since the last poll
        self._stopped = False

    # --- commands (from the thread that drives the runner) --------------------------

    def add_lane(self, lane: Lane) -> None:
        """Run the lane's requests; ids from state are adopted while the list still
        shows them, they have not failed and nothing the list shows disagrees."""
        self._lanes.add(lane)
        if self._list.snapshot is None or lane.resume:
            self._relist = True

    def turn(self, lane: int) -> None:
        """The consumer now takes this lane's files: it comes first, budget or not."""
        self._lanes.turn = lane

    def consumed(self, ready: ReadyExport) -> None:
        """The consumer is done with a file handed over (and has deleted it). A rejected
        file's export is created again."""
        job = ready.job
        self._lanes.budget.consumed(job.lane, ready.size)
        if ready.rejected is not None and job.lane in self._lanes:
            self._guard(job, self._reject, job, ready.rejected)

    def drop(self, lane: int) -> None:
        """Forget the lane's work (its consumer stopped taking files); its exports are
        left at Avicenna as they are."""
        self._lanes.drop(lane)
        for job in self._pending:
            if job.lane == lane:
                self._creator.orphan(job)
        self._pending = [job for job in self._pending if job.lane != lane]

    def stop(self) -> None:
        """Do nothing more: the run is over (may be called from another thread)."""
        self._stopped = True

    def step(self) -> float | None:
        """Poll when due, download what is ready (by priority, under the budget), create
        into free slots; seconds until something is due, None when only a command
        (a new lane, a file consumed) can make work."""
        if self._relist or (self._pending and self._clock() >= self._timing.next_poll):
            self._poll_tick()
        self._release_held()
        self._fill()
        return self._wait()

    # --- steps -----------------------------------------------------------------------

    def _wait(self) -> float | None:
        if self._stopped:
            return None
        if self._relist:
            return 0.0
        now = self._clock()
        waits = []
        if self._pending:
            waits.append(self._timing.next_poll - now)
        if self._busy.until > now and self._lanes.queued():
            waits.append(self._busy.until - now)
        return max(0.0, min(waits)) if waits else None

    def _fill(self) -> None:
        """Create exports into the free slots, in priority order."""
        while len(self._pending) < self._busy.max_concurrent and not self._stopped:
            if self._list.snapshot is None or self._relist:
                return  # ids from state, and exports listed before a create, come first
            if self._clock() < self._busy.until:
                return
            work = self._lanes.next_to_create(self._creator.creatable(self._pending))
            if work is None:
                return
            request, attempt = work.queue.popleft()
            try:
                job = self._creator.start(
                    request,
                    attempt,
                    lane=work.lane.key,
                    resume_id=work.resume.pop(request.key, None),
                    pending=self._pending,
                )
            except ServerBusy as exc:
                work.queue.appendleft((request, attempt))
                self.stats.busy += 1
                self._busy.refused(exc, len(self._pending), self._clock())
                return
            except AvicennaError as exc:
                self._fail(work.lane.key, exc)
                continue
            if not job.resumed:
                self._busy.created()
            self._pending.append(job)
            self._started = True
            if len(self._pending) == 1:
                self._timing.schedule(self._clock(), self._oldest())
            if job.export_id is not None:
                self._emit(ExportCreated(job.lane, request.key, job.export_id))
            self.stats.max_pending = max(self.stats.max_pending, len(self._pending))

    def _poll_tick(self) -> None:
        """One status poll for every pending export, then the ready ones downloaded."""
        polled_for = len(self._pending)
        self.stats.polls += 1
        wanted = {job.export_id for job in self._pending if job.export_id is not None}
        listing = self._list.poll(wanted | self._lanes.resume_ids())
        self.stats.pages += listing.pages
        self._relist = False
        ready, changed = self._update(listing.exports)
        changed = changed or self._started or not polled_for  # a poll for nothing: no backoff
        self._started = False
        ready_jobs = {id(job) for job, _ in ready}
        for job in list(self._pending):
            if id(job) in ready_jobs or job not in self._pending:
                continue  # ready wins over a timeout in the same tick; a lane failed
            if job.failed or self.policy.timed_out(self._age(job)):
                self._pending.remove(job)
                self._creator.orphan(job)
                self._guard(job, self._retry, job)
                changed = True
        still = [job for job in self._pending if id(job) not in ready_jobs]
        log_tick(
            self.stats,
            pages=listing.pages,
            polled_for=polled_for,
            ready=len(ready_jobs),
            still=len(still),
            oldest=max((self._age(job) for job in still), default=0.0),
            timeout=self.policy.timeout,
            budget=self._lanes.budget,
            held=len(self._lanes.held),
        )
        for job, listed in sorted(ready, key=lambda pair: self._lanes.order(pair[0].lane)):
            if self._stopped:
                return
            self._timing.durations.append(job.pending_age)
            if job not in self._pending:
                continue  # its lane failed meanwhile
            self._pending.remove(job)
            if self._lanes.may_download(job):
                self._deliver(job, listed)
                self._fill()  # keep Avicenna busy while the consumer reads the file
            else:
                self._lanes.hold(job)
                self.stats.held += 1
        self._timing.settle(changed)
        self._timing.schedule(self._clock(), self._oldest())

    def _update(
        self, listing: list[ListedExport]
    ) -> tuple[list[tuple[ExportJob, ListedExport]], bool]:
        """Match jobs to list entries; mark failures; return the ready ones."""
        by_id = {e.export_id: e for e in listing}
        ready: list[tuple[ExportJob, ListedExport]] = []
        changed = False
        taken = self._creator.settle(listing, self._pending)
        for job in self._pending:
            export_id = job.export_id
            if export_id is None:
                export_id = self._creator.find(job, listing, taken)
                if export_id is None:
                    continue
                if not job.guessed:
                    self._emit(ExportCreated(job.lane, job.request.key, export_id))
                changed = True
            listed = by_id.get(export_id)
            if listed is None:
                continue  # briefly missing from the list: the timeout decides
            if listed.label != job.label:
                changed = True
                LOGGER.info("%s: status %s after %.1fs", job.name, listed.label, self._age(job))
                job.label = listed.label
            if self._files.ready(job, listed):
                ready.append((job, listed))
                continue
            job.pending_age = self._age(job)
            if listed.status is ExportStatus.FAILED:
                job.failed = True
        return ready, changed

    def _release_held(self) -> None:
        """The held files the budget (or a new turn) now allows are listed again at once
        and downloaded with the fresh link of that list (the one they were held with may
        have expired meanwhile)."""
        for job in self._lanes.release():
            self._pending.append(job)
            self._relist = True

    def _deliver(self, job: ExportJob, listed: ListedExport) -> None:
        """Download a ready export's file and hand it over. A link the download host
        refused puts the job back among the pending ones (the next poll lists a fresh
        link); a file gone or refused too often creates the export again."""
        try:
            path = self._files.fetch(job, listed)
        except DownloadGone as exc:
            LOGGER.warning("%s: %s; creating the export again", job.name, exc)
            self._guard(job, self._retry, job, "file expired")
            return
        except DownloadRefused as exc:
            job.refusals += 1
            if self.policy.list_again(job.refusals):
                LOGGER.warning(
                    "%s; listing again for a fresh link (%d of %d)",
                    exc,
                    job.refusals,
                    self.policy.refusals,
                )
                self._pending.append(job)
                return
            self._guard(
                job,
                self._retry,
                job,
                f"could not be downloaded: {exc.detail}",
                "the download host keeps refusing its links; run again later",
            )
            return
        except AvicennaError as exc:
            self._fail(job.lane, exc)
            return
        if job.guessed and not self._proven(job, path):
            return
        size = path.stat().st_size
        budget = self._lanes.budget
        budget.handed(job.lane, size)
        self.stats.handed += 1
        self.stats.peak_waiting_files = budget.peak_files
        self.stats.peak_waiting_bytes = budget.peak_bytes
        self._emit(ExportReady(job.lane, ReadyExport(job, path, size)))

    def _proven(self, job: ExportJob, path: Path) -> bool:
        """Whether the file of an export adopted by creation order answers its request
        (the request's `verify`), before anything of it is handed over or its id is
        recorded; if not, the file is deleted and the export created again."""
        assert job.export_id is not None
        verify = job.request.verify
        reason = verify(path, job.name) if verify is not None else None
        if reason is None:
            self._emit(ExportCreated(job.lane, job.request.key, job.export_id))
            return True
        path.unlink(missing_ok=True)
        self._guard(job, self._reject, job, reason)
        return False

    def _oldest(self) -> float | None:
        """The age of the oldest pending export, if any."""
        return max((self._age(job) for job in self._pending), default=None)

    def _age(self, job: ExportJob) -> float:
        return self._clock() - job.created_at

    # --- failures --------------------------------------------------------------------

    def _guard(self, job: ExportJob, action: t.Callable[..., None], *args: t.Any) -> None:
        """Run `action`; an expected failure of it ends the job's lane, not the run."""
        try:
            action(*args)
        except AvicennaError as exc:
            self._fail(job.lane, exc)

    def _fail(self, lane: int, error: AvicennaError) -> None:
        if lane in self._lanes:
            self.drop(lane)
            self._emit(LaneFailed(lane, error))

    def _reject(self, job: ExportJob, reason: str) -> None:
        """The file is not the request's: the export is released (never looked at
        again) and created again."""
        self._creator.release(job)
        self.stats.rejected += 1
        self._retry(
            job,
            f"is not the export requested ({reason})",
            "is another process creating exports in this study? see README, Troubleshooting",
        )

    def _retry(self, job: ExportJob, reason: str | None = None, advice: str = _ADVICE) -> None:
        if reason is None:
            reason = (
                f"timed out after {self._age(job):.0f}s" if not job.failed else "failed at Avicenna"
            )
        if not self.policy.create_again(job.attempt):
            raise ExportFailed(
                f"{job.name} {reason} on attempt {job.attempt} of {self.policy.attempts}; "
                f"giving up ({advice})"
            )
        self.stats.retried += 1
        LOGGER.warning("%s %s; creating it again", job.name, reason)
        self._lanes.requeue(job)
