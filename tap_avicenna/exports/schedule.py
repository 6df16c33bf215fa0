"""ExportSchedule: the exports of every selected stream, planned at the start of a sync
and run by one runner thread; each stream takes its files when its turn comes.

Everything here runs in the main thread: planning (it reads and changes the streams'
state), applying the runner's events (an export id known goes into its stream's state
with a STATE message; a file on disk joins its stream's queue) and handing files to
the stream being synced. Events are applied at safe points only: while a stream waits
for its next file, between two files, and every 10,000 records of a file (the streams
call `apply_events`), never between a window's close and the message announcing it.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import queue
import re
import shutil
import tempfile
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from tap_avicenna.errors import AvicennaError
from tap_avicenna.exports.handover import (
    Event,
    ExportCreated,
    ExportReady,
    Lane,
    ReadyExport,
    mb,
)
from tap_avicenna.exports.job import ExportRequest
from tap_avicenna.exports.runner import ExportRunner
from tap_avicenna.exports.worker import RunnerStopped, RunnerThread

PER_STREAM_ENV = "TAP_AVICENNA_PER_STREAM_EXPORTS"
"""When set (not empty), each stream's exports are planned and run only once its turn
comes, one stream after another: the order before one runner served the whole run,
kept for the benchmark that compares both (benchmarks/README.md)."""
WAIT_SECONDS = 1.0

FILES_PREFIX = "tap-avicenna-files-"
_OWNER = re.compile(re.escape(FILES_PREFIX) + r"(\d+)-")


def files_folder() -> str:
    """A new folder of the temporary directory for the run's waiting files, named after
    this process. Folders of this user's earlier runs whose process is gone (a run
    killed with SIGKILL cannot delete its own) are deleted first."""
    for folder in Path(tempfile.gettempdir()).glob(f"{FILES_PREFIX}*"):
        owner = _OWNER.match(folder.name)
        with contextlib.suppress(OSError):
            if owner and folder.stat().st_uid == os.getuid() and not _alive(int(owner[1])):
                shutil.rmtree(folder, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{FILES_PREFIX}{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


RunnerFactory = t.Callable[[t.Callable[[Event], None], str], ExportRunner]
"""Makes the run's runner from the event sink and the folder for its files."""


class Planner(t.Protocol):
    """What the schedule needs of a stream (ExportStream implements it)."""

    @property
    def name(self) -> str: ...

    @property
    def logger(self) -> logging.Logger: ...

    def can_plan(self) -> bool:
        """Whether the stream's exports can be planned now."""

    def plan(self) -> tuple[list[ExportRequest], dict[str, int]]:
        """This run's requests, in the order to run them, and the ids from state."""

    def export_created(self, key: str, export_id: int) -> None:
        """Record an export id in the stream's state (and write a STATE message)."""


@dataclass
class _Lane:
    """A stream's lane as the main thread sees it."""

    lane: Lane
    stream: Planner
    files: collections.deque[ReadyExport | AvicennaError] = field(default_factory=collections.deque)
    created: set[str] = field(default_factory=set)  # request keys with an export id
    ready: set[str] = field(default_factory=set)  # request keys with a file handed over
    done: int = 0  # files read whole
    over: bool = False  # failed or dropped: the runner no longer works for it
    failed: AvicennaError | None = None  # why one of its exports cannot be obtained


class ExportSchedule:
    """Plans the streams' exports, runs them through one runner thread, hands each
    stream its files."""

    def __init__(
        self,
        make_runner: RunnerFactory,
        *,
        priorities: t.Mapping[str, int],
        per_stream: bool,
        logger: logging.Logger,
    ) -> None:
        self._make_runner = make_runner
        self._priorities = priorities
        self.per_stream = per_stream
        self._logger = logger
        self._worker: RunnerThread | None = None
        self._directory: str | None = None
        self._lanes: dict[str, _Lane] = {}  # each stream's latest lane
        self._by_key: dict[int, _Lane] = {}
        self._deferred: list[Planner] = []
        self._keys = itertools.count(1)
        self._done = 0
        self._error: BaseException | None = None

    # --- planning ----------------------------------------------------------------------

    def start(self, streams: t.Iterable[Planner]) -> None:
        """Plan every stream's exports now, or as soon as it can be planned (sensor
        streams that wait for the participant list); per stream, none until its turn."""
        if not self.per_stream:
            self._deferred = list(streams)
            self.plan_ready()

    def plan_ready(self) -> None:
        """Plan the waiting streams that can now be planned."""
        for stream in list(self._deferred):
            if stream in self._deferred and stream.can_plan():
                self._deferred.remove(stream)
                self._submit(stream)

    def _submit(self, stream: Planner) -> _Lane:
        requests, resume = stream.plan()
        lane = Lane(
            next(self._keys),
            stream.name,
            self._priorities.get(stream.name, 0),
            tuple(requests),
            resume,
        )
        state = _Lane(lane, stream)
        self._lanes[stream.name] = state
        self._by_key[lane.key] = state
        if requests:
            self._runner().send(lambda runner: runner.add_lane(lane))
        return state

    def _lane_for(self, stream: Planner) -> _Lane:
        lane = self._lanes.get(stream.name)
        if lane is None or lane.over:
            if stream in self._deferred:
                self._deferred.remove(stream)
            lane = self._submit(stream)
        return lane

    def _runner(self) -> RunnerThread:
        if self._worker is None:
            directory = files_folder()
            self._directory = directory
            self._worker = RunnerThread(lambda emit: self._make_runner(emit, directory))
            self._worker.start()
        return self._worker

    # --- handing files over ------------------------------------------------------------

    def results(self, stream: Planner) -> t.Generator[ReadyExport, None, None]:
        """The stream's export files, as they are ready (planning its exports first if
        they were not). Each file is deleted, and the runner told, once the consumer
        asks for the next one or stops. Raises what made one of the stream's exports
        impossible, or what stopped the runner."""
        lane = self._lane_for(stream)
        total = len(lane.lane.requests)
        if not total:
            return
        key = lane.lane.key
        self._runner().send(lambda runner: runner.turn(key))
        self.apply_events()
        self._log_turn(lane)
        try:
            while lane.done < total:
                item = self._next_file(lane)
                if isinstance(item, AvicennaError):
                    lane.over, lane.failed = True, item
                    raise item
                try:
                    yield item
                finally:
                    self._dispose(item)
                if item.rejected is None:
                    lane.done += 1
                    self._done += 1
        finally:
            if lane.done < total and not lane.over:
                self._drop(lane)

    def failure(self, stream: Planner) -> AvicennaError | None:
        """What made one of the stream's exports impossible (its lane alone failed; the
        runner goes on for the others), if anything did."""
        lane = self._lanes.get(stream.name)
        return None if lane is None else lane.failed

    def _next_file(self, lane: _Lane) -> ReadyExport | AvicennaError:
        while not lane.files:
            if self._error is not None:
                raise self._error
            self.apply_events(wait=WAIT_SECONDS)
        return lane.files.popleft()

    def apply_events(self, wait: float = 0.0) -> None:
        """Apply the runner's events (a safe point); with `wait`, wait at most that
        long for one."""
        if self._worker is None:
            return
        events = self._worker.events
        try:
            event = events.get(timeout=wait) if wait > 0 else events.get_nowait()
        except queue.Empty:
            return
        while True:
            self._apply(event)
            try:
                event = events.get_nowait()
            except queue.Empty:
                return

    def _apply(self, event: Event | RunnerStopped) -> None:
        if isinstance(event, RunnerStopped):
            self._error = event.error
            return
        lane = self._by_key[event.lane]
        if isinstance(event, ExportCreated):
            lane.created.add(event.key)
            lane.stream.export_created(event.key, event.export_id)
        elif isinstance(event, ExportReady):
            if lane.over:
                self._dispose(event.ready)
            else:
                lane.ready.add(event.ready.job.request.key)
                lane.files.append(event.ready)
        else:
            lane.files.append(event.error)

    def _dispose(self, ready: ReadyExport) -> None:
        with contextlib.suppress(OSError):
            ready.path.unlink()
        self._runner().send(lambda runner: runner.consumed(ready))

    def _drop(self, lane: _Lane) -> None:
        """The stream stopped taking files: the runner forgets the lane's work."""
        lane.over = True
        while lane.files:
            item = lane.files.popleft()
            if isinstance(item, ReadyExport):
                self._dispose(item)
        key = lane.lane.key
        self._runner().send(lambda runner: runner.drop(key))

    # --- progress ----------------------------------------------------------------------

    def position(self) -> str:
        """`export k of N done` for the file just read: k counts the files of this run
        read whole, N the exports planned (so far, while streams wait to be planned)."""
        total = self._done + sum(
            len(lane.lane.requests) - lane.done for lane in self._lanes.values() if not lane.over
        )
        if self._deferred:
            return f"export {self._done + 1} done of {total} planned so far"
        return f"export {self._done + 1} of {total} done"

    def _log_turn(self, lane: _Lane) -> None:
        """What a stream finds when its turn comes: how many of its exports are already
        on disk, pending at Avicenna, still to create."""
        on_disk = sum(1 for item in lane.files if isinstance(item, ReadyExport))
        pending = len(lane.created - lane.ready)
        to_create = len(lane.lane.requests) - len(lane.created | lane.ready)
        lane.stream.logger.info(
            "%s: its turn: %d export(s) this run, %d already on disk, %d pending at Avicenna, "
            "%d still to create",
            lane.lane.name,
            len(lane.lane.requests),
            on_disk,
            pending,
            to_create,
        )

    # --- the end -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the runner, record the export ids it learnt meanwhile in state, log the
        run's figures and delete every file left."""
        worker = self._worker
        if worker is not None:
            worker.stop()
            with contextlib.suppress(OSError):  # stdout may be what failed
                self.apply_events()
            stats = worker.runner.stats
            self._logger.info(
                "Exports of this run: %d file(s) handed over, %d export(s) created, %d "
                "resumed, %d created again; at most %d pending at once; at most %d file(s) "
                "waiting on disk (%s), %d download(s) held back by the disk budget; %d status "
                "poll(s), %d list request(s)",
                stats.handed,
                stats.created,
                stats.resumed,
                stats.retried,
                stats.max_pending,
                stats.peak_waiting_files,
                mb(stats.peak_waiting_bytes),
                stats.held,
                stats.polls,
                stats.pages,
            )
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
