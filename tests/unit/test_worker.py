"""RunnerThread: the runner in a background thread, against an in-memory repository."""

from __future__ import annotations

import threading
import typing as t
from dataclasses import dataclass, field
from functools import partial

import pytest

from tap_avicenna.errors import ApiError
from tap_avicenna.exports.job import Created, ExportRequest, ListedExport
from tap_avicenna.exports.repository import Enough, Listing
from tap_avicenna.exports.runner import Event, ExportReady, ExportRunner
from tap_avicenna.exports.worker import RunnerStopped, RunnerThread
from tap_avicenna.parsing import Limits
from tests.unit.test_runner import FakeRepository, lane

WAIT = 30.0  # seconds a test waits for an event that must come


@dataclass
class ThreadedRepository(FakeRepository):
    """Records which threads call it; `hold` blocks a list call until released."""

    threads: set[str] = field(default_factory=set)
    hold: threading.Event | None = None
    holding: threading.Event = field(default_factory=threading.Event)
    broken: Exception | None = None

    def create(self, request: ExportRequest) -> Created:
        self.threads.add(threading.current_thread().name)
        return super().create(request)

    def list(self, enough: Enough | None = None) -> Listing:
        self.threads.add(threading.current_thread().name)
        if self.broken is not None:
            raise self.broken
        if self.hold is not None:
            self.holding.set()
            self.hold.wait(WAIT)
        return super().list(enough)

    def download(self, listed: ListedExport, dest: t.BinaryIO, *, label: str) -> int:
        self.threads.add(threading.current_thread().name)
        return super().download(listed, dest, label=label)


def start(repo: FakeRepository) -> RunnerThread:
    def make(emit: t.Callable[[Event], None]) -> ExportRunner:
        return ExportRunner(
            repo, emit=emit, max_concurrent=2, poll_interval=0.01, timeout=60.0, limits=Limits()
        )

    worker = RunnerThread(make)
    worker.start()
    return worker


def test_given_a_lane_when_run_in_the_thread_then_events_come_and_all_http_is_its_own() -> None:
    repo = ThreadedRepository()
    worker = start(repo)
    try:
        spec = lane(1, 3)
        worker.send(lambda runner: runner.add_lane(spec))
        worker.send(lambda runner: runner.turn(1))
        files: list[str] = []
        while len(files) < 3:
            event = worker.events.get(timeout=WAIT)
            if isinstance(event, ExportReady):
                files.append(event.ready.job.request.key)
                event.ready.path.unlink()
                worker.send(partial(ExportRunner.consumed, ready=event.ready))
        assert sorted(files) == ["1-0", "1-1", "1-2"]
    finally:
        assert worker.stop(timeout=WAIT)
    assert repo.threads == {"tap-avicenna-exports"}  # the Session is used by one thread


def test_given_a_list_poll_that_fails_when_running_then_the_error_comes_as_runner_stopped() -> None:
    repo = ThreadedRepository(broken=ApiError("Avicenna GET /api/v1/filter/export/ failed 8 times"))
    worker = start(repo)
    try:
        spec = lane(1, 1)
        worker.send(lambda runner: runner.add_lane(spec))
        event = worker.events.get(timeout=WAIT)
        assert isinstance(event, RunnerStopped) and isinstance(event.error, ApiError)
        assert "failed 8 times" in str(event.error)
    finally:
        assert worker.stop(timeout=WAIT)


def test_given_a_request_in_flight_when_stopped_then_the_thread_says_nothing_more(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An interrupted run ends with its ERROR line: nothing of the runner thread may be
    logged after `stop`, even when a request in flight outlives the wait."""
    repo = ThreadedRepository(hold=threading.Event())
    worker = start(repo)
    spec = lane(1, 1)
    worker.send(lambda runner: runner.add_lane(spec))
    assert repo.holding.wait(WAIT)  # the first list poll is in flight
    assert worker.stop(timeout=0.01) is False  # the request cannot be cut short
    assert repo.hold is not None
    repo.hold.set()  # the answer comes: the runner would log its poll line now
    worker._thread.join(WAIT)
    assert not worker._thread.is_alive()
    assert not [r for r in caplog.records if r.thread == worker._thread.ident]
    assert worker.runner.stats.polls == 1 and not repo.exports  # nothing created after stop
