"""ExportRunner against an in-memory repository: concurrency, polling, retries."""

from __future__ import annotations

import dataclasses
import io
import itertools
import logging
import typing as t
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tap_avicenna.client import DownloadGone, DownloadRefused, ServerBusy
from tap_avicenna.errors import ExportFailed
from tap_avicenna.exports.job import Created, ExportJob, ExportRequest, ListedExport
from tap_avicenna.exports.repository import Enough, Listing
from tap_avicenna.exports.runner import (
    Event,
    ExportCreated,
    ExportReady,
    ExportRunner,
    Lane,
    LaneFailed,
    ReadyExport,
)
from tap_avicenna.exports.status import classify
from tap_avicenna.parsing import Limits


def zip_bytes(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", text)
    return buffer.getvalue()


@dataclass
class FakeExport:
    export_id: int
    request: ExportRequest
    labels: list[str]  # one label per poll; the last one sticks
    polls: int = 0
    empty: bool = False  # Success without a file

    @property
    def label(self) -> str:
        return self.labels[min(self.polls, len(self.labels) - 1)]


@dataclass
class FakeRepository:
    """Each created export walks through `script` labels, one per list call."""

    script: t.Callable[[int], list[str]] = lambda n: ["Pending", "Success"]
    omit_ids: int = 0  # creates answering without any id
    answer_ref: str | None = None  # creates answering only `id`: "pk" (1000 + key) or "key"
    on_create: t.Callable[[FakeRepository, FakeExport], None] | None = None
    metadata: bool = True  # the list shows data source, window and participants
    page_size: int = 0  # 0: the whole list is one page
    newest_first: bool = False
    gone_downloads: int = 0
    refused_downloads: int = 0
    busy_above: int | None = None  # creates refused while this many are unfinished
    exports: list[FakeExport] = field(default_factory=list)
    lists: int = 0
    pages: int = 0
    hide_next: set[int] = field(default_factory=set)  # ids left out of the next list
    stopped_early: int = 0  # list calls that did not read every page
    page_counts: list[int] = field(default_factory=list)  # pages read per list call
    downloads: int = 0
    links: list[str] = field(default_factory=list)  # the links downloaded, in order

    def add(self, request: ExportRequest, labels: list[str] | None = None) -> FakeExport:
        export = FakeExport(
            len(self.exports) + 1, request, labels or self.script(len(self.exports))
        )
        self.exports.append(export)
        return export

    def create(self, request: ExportRequest) -> Created:
        if self.busy_above is not None:
            unfinished = [e for e in self.exports if e.label not in ("Success", "Failed")]
            if len(unfinished) >= self.busy_above:
                raise ServerBusy("HTTP 409: too many running exports", None)
        export = self.add(request)
        if self.on_create is not None:
            self.on_create(self, export)
        if self.omit_ids:
            self.omit_ids -= 1
            return Created()
        if self.answer_ref is not None:
            return Created(ref=export.export_id + (1000 if self.answer_ref == "pk" else 0))
        return Created(export_id=export.export_id)

    def list(self, enough: Enough | None = None) -> Listing:
        self.lists += 1
        entries = []
        hidden, self.hide_next = self.hide_next, set()
        for export in self.exports:
            if export.export_id in hidden:
                continue
            label = export.label
            export.polls += 1
            request = export.request
            shown = self.metadata and request.body is None
            entries.append(
                ListedExport(
                    export_id=export.export_id,
                    label=label,
                    status=classify(label),
                    content=None
                    if export.empty
                    else f"https://files.example/{export.export_id}?list={self.lists}",
                    data_source=request.data_source_id if shown else None,
                    participant_ids=list(request.participant_ids) if shown else None,
                    pk=1000 + export.export_id if self.answer_ref == "pk" else None,
                )
            )
        if self.newest_first:
            entries.reverse()
        size = self.page_size or max(len(entries), 1)
        out: list[ListedExport] = []
        pages = 0
        for i in range(0, max(len(entries), 1), size):
            pages += 1
            out.extend(entries[i : i + size])
            if enough is not None and enough(out):
                self.stopped_early += len(out) < len(entries)
                break
        self.pages += pages
        self.page_counts.append(pages)
        return Listing(out, pages)

    def download(self, listed: ListedExport, dest: t.BinaryIO, *, label: str) -> int:
        self.downloads += 1
        self.links.append(listed.content or "")
        if self.gone_downloads:
            self.gone_downloads -= 1
            raise DownloadGone("gone (HTTP 410)")
        if self.refused_downloads:
            self.refused_downloads -= 1
            raise DownloadRefused(label, "the download host files.example refused the file")
        data = zip_bytes(f"id\n{listed.export_id}\n")
        dest.write(data)
        return len(data)


def requests(n: int) -> list[ExportRequest]:
    """n sensor requests, one participant each (101, 102, ...)."""
    return [
        ExportRequest(key=f"k{i}", label=f"r{i}", data_source_id=10, participant_ids=(101 + i,))
        for i in range(n)
    ]


class FakeTime:
    """The runner's clock, moved only by the driver's sleeps (recorded in `sleeps`)."""

    def __init__(self, sleeps: list[float]) -> None:
        self.sleeps = sleeps
        self.now = 1000.0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


class DrivenRunner(ExportRunner):
    """An ExportRunner driven in the test's thread as RunnerThread and ExportSchedule
    drive it: `run` gives it one lane and yields that lane's files, sleeping on the
    fake clock as long as `step` says; every event is kept in `events`."""

    def __init__(self, repo: FakeRepository, time: FakeTime, **options: t.Any) -> None:
        self.events: list[Event] = []
        self.inbox: list[Event] = []
        super().__init__(repo, emit=self._record, clock=time.clock, **options)
        self.time = time
        self.lane_keys = itertools.count(1)

    def _record(self, event: Event) -> None:
        self.events.append(event)
        self.inbox.append(event)

    def run(
        self,
        requests: list[ExportRequest],
        *,
        resume: dict[str, int] | None = None,
        on_created: t.Callable[[ExportCreated], None] | None = None,
    ) -> t.Iterator[ReadyExport]:
        key = next(self.lane_keys)
        self.add_lane(Lane(key, "test", 0, tuple(requests), resume or {}))
        self.turn(key)
        done = 0
        while done < len(requests):
            wait = self.step()
            if not self.inbox and wait is None:
                raise AssertionError("the runner has nothing to do and nothing to wait for")
            while self.inbox:
                event = self.inbox.pop(0)
                if isinstance(event, LaneFailed):
                    raise event.error
                if isinstance(event, ExportCreated):
                    if on_created is not None:
                        on_created(event)
                    continue
                ready = event.ready
                try:
                    yield ready
                finally:
                    ready.path.unlink(missing_ok=True)
                    self.consumed(ready)
                done += ready.rejected is None
                wait = 0.0
            if wait:
                self.time.sleep(wait)


def make_runner(repo: FakeRepository, sleeps: list[float], **kwargs: t.Any) -> DrivenRunner:
    options: dict[str, t.Any] = {
        "max_concurrent": 4,
        "poll_interval": 1.0,
        "timeout": 100.0,
        "limits": Limits(),
    }
    options.update(kwargs)
    return DrivenRunner(repo, FakeTime(sleeps), **options)


def test_given_10_requests_when_run_then_never_more_than_4_pending_and_all_ready() -> None:
    repo = FakeRepository(script=lambda n: ["Pending", "Processing", "Success"])
    runner = make_runner(repo, [])
    done = [ready.job.request.key for ready in runner.run(requests(10))]
    assert sorted(done) == sorted(f"k{i}" for i in range(10))
    assert runner.stats.max_pending == 4
    assert runner.stats.created == 10


def test_given_pending_exports_when_polling_then_one_list_request_per_tick() -> None:
    repo = FakeRepository(script=lambda n: ["Pending"] * 3 + ["Success"])
    sleeps: list[float] = []
    runner = make_runner(repo, sleeps)
    list(runner.run(requests(8)))
    # one seed list, then exactly one list per sleep (tick), whatever the pending count
    assert repo.lists == len(sleeps) + 1


def test_given_nothing_changes_when_polling_then_tick_backs_off_up_to_3x_interval() -> None:
    repo = FakeRepository(script=lambda n: ["Processing"] * 12 + ["Success"])
    sleeps: list[float] = []
    list(make_runner(repo, sleeps, poll_interval=2.0).run(requests(1)))
    assert sleeps[0] == 2.0
    assert max(sleeps) == pytest.approx(6.0)
    assert sleeps == sorted(sleeps)


def test_given_export_fails_once_when_run_then_recreated_and_completed() -> None:
    repo = FakeRepository(script=lambda n: ["Pending", "Failed"] if n == 0 else ["Success"])
    runner = make_runner(repo, [])
    done = list(runner.run(requests(1)))
    assert len(done) == 1 and done[0].job.attempt == 2
    assert runner.stats.created == 2


def test_given_export_always_fails_when_run_then_clear_error_after_3_attempts() -> None:
    repo = FakeRepository(script=lambda n: ["Failed"])
    with pytest.raises(ExportFailed, match=r"attempt 3 of 3"):
        list(make_runner(repo, []).run(requests(1)))
    assert len(repo.exports) == 3


def test_given_export_never_finishes_when_timeout_passes_then_fails_clearly() -> None:
    repo = FakeRepository(script=lambda n: ["Processing"])
    runner = make_runner(repo, [], timeout=0.0)
    with pytest.raises(ExportFailed, match="timed out"):
        list(runner.run(requests(1)))


def test_given_create_without_id_when_listed_then_new_export_is_found() -> None:
    repo = FakeRepository(omit_ids=2)
    created: list[int | None] = []
    runner = make_runner(repo, [])
    done = list(runner.run(requests(3), on_created=lambda event: created.append(event.export_id)))
    assert sorted(r.job.export_id or 0 for r in done) == [1, 2, 3]
    assert sorted(i or 0 for i in created) == [1, 2, 3]


def test_given_expired_file_when_downloading_then_export_is_recreated() -> None:
    repo = FakeRepository(gone_downloads=1)
    done = list(make_runner(repo, []).run(requests(1)))
    assert len(done) == 1 and done[0].job.export_id == 2


def test_given_export_id_in_resume_map_when_listed_then_adopted_not_created() -> None:
    repo = FakeRepository()
    repo.create(requests(1)[0])  # made by an earlier (killed) run
    runner = make_runner(repo, [])
    done = list(runner.run(requests(2), resume={"k0": 1}))
    assert sorted(r.job.export_id or 0 for r in done) == [1, 2]
    assert (runner.stats.resumed, runner.stats.created) == (1, 1)


def test_given_resume_id_no_longer_listed_when_run_then_created_again() -> None:
    repo = FakeRepository()
    runner = make_runner(repo, [])
    done = list(runner.run(requests(1), resume={"k0": 99}))
    assert done[0].job.export_id == 1 and runner.stats.resumed == 0


def test_given_ready_export_when_consumer_moves_on_then_file_is_deleted() -> None:
    repo = FakeRepository()
    paths = []
    for ready in make_runner(repo, []).run(requests(2)):
        assert ready.path.exists()
        paths.append(ready.path)
    assert paths and not any(p.exists() for p in paths)


def test_given_exports_reach_the_quickest_age_when_sleeping_then_base_tick_not_backoff() -> None:
    runner = make_runner(FakeRepository(), [], poll_interval=1.0)
    runner._timing.durations = [5.0]  # the quickest export was still pending at 5 s
    now = runner._clock()
    young = ExportJob(requests(1)[0], created_at=now - 2.0)
    old = ExportJob(requests(1)[0], created_at=now - 6.0)
    runner._pending = [young]
    assert runner._timing.sleep(3.0, runner._oldest()) == pytest.approx(
        3.0, abs=0.05
    )  # wait to 5 s
    assert runner._timing.sleep(2.0, runner._oldest()) == 2.0  # the backed-off tick is shorter
    runner._pending = [young, old]
    assert runner._timing.sleep(3.0, runner._oldest()) == 1.0  # due now: the base tick
    runner._timing.durations = []
    runner._pending = [old]
    assert runner._timing.sleep(3.0, runner._oldest()) == 3.0  # nothing learnt yet: the tick


# --- the engine against a real API's habits ------------------------------------------


def _foreign(repo: FakeRepository, participant_ids: tuple[int, ...] = ()) -> None:
    """Someone else's export of the same data source."""
    repo.add(ExportRequest(key="x", label="x", data_source_id=10, participant_ids=participant_ids))


def test_given_export_ready_in_the_tick_it_times_out_when_run_then_ready_wins() -> None:
    """Was `ValueError: list.remove(x)`: the export is handed over, not re-created."""
    repo = FakeRepository(script=lambda n: ["Success"])
    runner = make_runner(repo, [], timeout=0.5)  # first listed ready 1 s after the create
    done = list(runner.run(requests(1)))
    assert len(done) == 1 and runner.stats.created == 1


@pytest.mark.parametrize("newest_first", [False, True])
def test_given_paged_list_when_polling_then_one_tick_per_interval_pages_counted_apart(
    newest_first: bool,
) -> None:
    repo = FakeRepository(
        script=lambda n: ["Pending"] * 3 + ["Success"], page_size=2, newest_first=newest_first
    )
    for i in range(40):  # other users' older exports
        repo.add(ExportRequest(key=f"old{i}", label="old", data_source_id=99), ["Success"])
    sleeps: list[float] = []
    runner = make_runner(repo, sleeps)
    assert len(list(runner.run(requests(4)))) == 4
    assert runner.stats.polls == repo.lists == len(sleeps) + 1
    assert runner.stats.pages == repo.pages > runner.stats.polls
    if newest_first:  # stops once every pending export and an older one are read
        assert repo.stopped_early == repo.lists  # the first poll: once an export is read
        assert repo.page_counts[0] == 1 and max(repo.page_counts[1:]) <= 3
    else:
        assert repo.stopped_early == 0


def test_given_create_without_id_and_foreign_exports_when_listed_then_positive_match_only() -> None:
    # a dashboard user's export of the same data source appears right after each create
    repo = FakeRepository(
        omit_ids=2, on_create=lambda repo, export: _foreign(repo, participant_ids=(105,))
    )
    done = list(make_runner(repo, []).run(requests(2)))
    assert sorted((r.job.request.key, r.job.export_id) for r in done) == [("k0", 1), ("k1", 3)]


def verified(repo: FakeRepository, requests: list[ExportRequest]) -> list[ExportRequest]:
    """`requests` whose `verify` proves a file by the request of the export it holds."""

    def verify_for(key: str) -> t.Callable[[Path, str], str | None]:
        def verify(path: Path, name: str) -> str | None:
            with zipfile.ZipFile(path) as archive:
                export_id = int(archive.read("data.csv").split()[1])
            owner = repo.exports[export_id - 1].request.key
            return None if owner == key else f"its rows are {owner}'s"

        return verify

    return [dataclasses.replace(r, verify=verify_for(r.key)) for r in requests]


def test_given_no_metadata_and_two_new_exports_when_listed_then_the_first_one_is_proven() -> None:
    repo = FakeRepository(omit_ids=1, metadata=False, on_create=lambda repo, export: _foreign(repo))
    runner = make_runner(repo, [])
    done = list(runner.run(verified(repo, requests(1))))
    assert done[0].job.export_id == 1 and done[0].job.guessed
    assert (runner.stats.created, runner.stats.rejected) == (1, 0)


def test_given_no_metadata_and_one_new_export_when_listed_then_it_is_adopted_as_a_guess() -> None:
    repo = FakeRepository(omit_ids=1, metadata=False)
    done = list(make_runner(repo, []).run(requests(1)))
    assert done[0].job.export_id == 1 and done[0].job.guessed


def test_given_someone_elses_export_taken_by_creation_order_when_verified_then_released() -> None:
    """Was: handed over, its rows read (and emitted) before the stream rejected it, then
    looked for again."""

    def impostor(repo: FakeRepository, ours: FakeExport) -> None:
        """At the first create, someone else's export is listed first; ours (#1) only one
        poll later."""
        if ours.export_id == 1:
            _foreign(repo)
            repo.hide_next.add(ours.export_id)

    repo = FakeRepository(omit_ids=2, metadata=False, on_create=impostor)
    runner = make_runner(repo, [])
    ids: list[int] = []
    seen = [
        r.job.export_id
        for r in runner.run(
            verified(repo, requests(1)), on_created=lambda e: ids.append(e.export_id)
        )
    ]
    # #2 (someone else's) fails its proof: never handed over nor recorded, created again
    assert seen == ids == [3]
    assert (runner.stats.created, runner.stats.rejected, runner.stats.retried) == (2, 1, 1)
    assert created_keys(repo) == ["k0", "x", "k0"]


def test_given_known_export_rejected_when_run_then_created_again_and_bounded() -> None:
    repo = FakeRepository()
    runner = make_runner(repo, [])
    with pytest.raises(
        ExportFailed, match=r"is not the export requested \(not ours\) on attempt 3"
    ):
        for ready in runner.run(requests(1)):
            ready.reject("not ours")
    assert runner.stats.created == 3


def test_given_resume_id_showing_another_request_when_run_then_created_again() -> None:
    repo = FakeRepository()
    repo.add(ExportRequest(key="x", label="x", data_source_id=10, participant_ids=(999,)))
    runner = make_runner(repo, [])
    done = list(runner.run(requests(1), resume={"k0": 1}))
    assert done[0].job.export_id == 2 and (runner.stats.resumed, runner.stats.created) == (0, 1)


@pytest.mark.parametrize("pk_shown", [True, False])
def test_given_create_answering_only_id_when_listed_then_matched_on_either_field(
    pk_shown: bool,
) -> None:
    repo = FakeRepository(answer_ref="pk" if pk_shown else "key")
    done = list(make_runner(repo, []).run(requests(3)))
    assert sorted(r.job.export_id or 0 for r in done) == [1, 2, 3]


def test_given_success_without_file_past_the_grace_when_run_then_an_empty_export(
    caplog: pytest.LogCaptureFixture,
) -> None:
    repo = FakeRepository(
        script=lambda n: ["Success"], on_create=lambda repo, export: setattr(export, "empty", True)
    )
    sleeps: list[float] = []
    runner = make_runner(repo, sleeps)
    with caplog.at_level(logging.INFO):
        sizes = [ready.path.stat().st_size for ready in runner.run(requests(2))]
    assert sizes == [0, 0] and repo.downloads == 0
    assert sum(sleeps) >= 6.0  # the grace: 6 poll intervals
    empties = [r for r in caplog.records if "without a file" in r.getMessage()]
    assert [r.levelname for r in empties] == ["WARNING", "INFO"]


def test_given_unknown_label_with_a_file_when_listed_then_ready_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    repo = FakeRepository(script=lambda n: ["Exported"])
    done = list(make_runner(repo, []).run(requests(3)))
    assert len(done) == 3
    warnings = [r for r in caplog.records if "'Exported' is not a known label" in r.getMessage()]
    assert len(warnings) == 1


def test_given_download_refused_when_run_then_listed_again_then_created_again() -> None:
    repo = FakeRepository(refused_downloads=1)
    runner = make_runner(repo, [])
    done = list(runner.run(requests(1)))
    assert done[0].job.export_id == 1 and repo.downloads == 2  # a fresh link, same export
    repo = FakeRepository(refused_downloads=3)
    runner = make_runner(repo, [])
    done = list(runner.run(requests(1)))
    assert done[0].job.export_id == 2 and runner.stats.created == 2


def test_given_busy_server_when_creating_then_waits_and_keeps_fewer_pending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    repo = FakeRepository(script=lambda n: ["Pending"] * 2 + ["Success"], busy_above=2)
    sleeps: list[float] = []
    runner = make_runner(repo, sleeps)
    done = list(runner.run(requests(6)))
    assert len(done) == 6 and runner.stats.created == 6
    assert runner._busy.max_concurrent == 2 and runner.stats.busy >= 1
    assert "keeping at most 2 export(s) pending for the rest of this run" in caplog.text


def test_given_server_busy_with_nothing_of_ours_when_past_timeout_then_one_clear_error() -> None:
    repo = FakeRepository(busy_above=0)
    sleeps: list[float] = []
    runner = make_runner(repo, sleeps, timeout=0.0)
    with pytest.raises(ExportFailed, match="Avicenna refused every new export for"):
        list(runner.run(requests(1)))
    assert sleeps[0] == 1.0  # waited (the busy backoff) before trying again


# --- lanes: every stream's exports through one runner ----------------------------------


def lane(key: int, count: int, priority: int | None = None) -> Lane:
    """`count` requests of data source 10 + key, one participant each."""
    return Lane(
        key,
        f"stream{key}",
        key if priority is None else priority,
        tuple(
            ExportRequest(
                key=f"{key}-{i}", label=f"l{key}r{i}", data_source_id=10 + key,
                participant_ids=(101 + i,),
            )
            for i in range(count)
        ),
    )  # fmt: skip


def advance(runner: DrivenRunner) -> list[Event]:
    """One step, then a sleep as long as it asks for; the events of the step."""
    wait = runner.step()
    if wait:
        runner.time.sleep(wait)
    events, runner.inbox = runner.inbox, []
    return events


def handed(events: list[Event]) -> list[ReadyExport]:
    return [event.ready for event in events if isinstance(event, ExportReady)]


def created_keys(repo: FakeRepository) -> list[str]:
    return [export.request.key for export in repo.exports]


def test_given_lanes_when_slots_are_free_then_created_turn_first_then_by_priority() -> None:
    repo = FakeRepository(script=lambda n: ["Pending", "Success"])
    runner = make_runner(repo, [], max_concurrent=4)
    for spec in (lane(3, 2), lane(1, 2), lane(2, 2)):
        runner.add_lane(spec)
    runner.turn(2)
    advance(runner)
    # the turn's lane first, then the others by priority, up to max_concurrent
    assert created_keys(repo) == ["2-0", "2-1", "1-0", "1-1"]
    while len(repo.exports) < 6:
        advance(runner)
    assert created_keys(repo)[4:] == ["3-0", "3-1"]  # one list poll served all three lanes
    assert runner.stats.max_pending == 4


def test_given_files_waiting_over_the_budget_when_later_lanes_ready_then_held_until_consumed() -> (
    None
):
    repo = FakeRepository(script=lambda n: ["Success"])
    runner = make_runner(repo, [], max_concurrent=2, max_waiting_bytes=1)
    runner.add_lane(lane(1, 1))
    runner.add_lane(lane(2, 3))
    runner.turn(1)
    events = advance(runner)  # the first poll, then one create for each lane
    assert created_keys(repo) == ["1-0", "2-0"]
    events = advance(runner)  # both ready: the turn's file comes, the later one is held
    assert [r.job.request.key for r in handed(events)] == ["1-0"]
    assert runner.stats.held == 1 and runner._lanes.held
    for _ in range(3):  # nothing more is created for the later lane over the budget
        assert not handed(advance(runner))
    assert created_keys(repo) == ["1-0", "2-0"]
    first = handed(events)[0]
    lists = repo.lists
    runner.consumed(first)  # the stream read its file: the held one comes
    later = handed(advance(runner)) or handed(advance(runner))
    assert [r.job.request.key for r in later] == ["2-0"]
    # listed again first: the link of the poll it was held at may have expired (was: used)
    assert repo.lists == lists + 1 and repo.links[-1].endswith(f"?list={lists + 1}")
    assert created_keys(repo) == ["1-0", "2-0"]  # its file waits: still no create
    runner.turn(2)  # its turn: creates again, and up to two files at a time over the budget
    delivered, unread = list(later), list(later)
    while len(delivered) < 3:
        new = handed(advance(runner))
        delivered += new
        unread += new
        assert len(unread) <= 2  # the file being read and the next
        if len(unread) == 2:
            runner.consumed(unread.pop(0))
    assert sorted(r.job.request.key for r in delivered) == ["2-0", "2-1", "2-2"]
    assert runner.stats.peak_waiting_files == 2


def test_given_a_lane_whose_export_always_fails_when_run_then_only_that_lane_fails() -> None:
    def failing(repo: FakeRepository, export: FakeExport) -> None:
        if export.request.data_source_id == 12:
            export.labels = ["Failed"]

    repo = FakeRepository(script=lambda n: ["Pending", "Success"], on_create=failing)
    runner = make_runner(repo, [], max_concurrent=2)
    runner.add_lane(lane(1, 3))
    runner.add_lane(lane(2, 1))
    runner.turn(1)
    events: list[Event] = []
    while len(handed(events)) < 3 or not any(isinstance(e, LaneFailed) for e in events):
        new = advance(runner)
        events += new
        for ready in handed(new):
            runner.consumed(ready)
    failures = [event for event in events if isinstance(event, LaneFailed)]
    assert [f.lane for f in failures] == [2]
    assert "failed at Avicenna on attempt 3 of 3" in str(failures[0].error)
    assert sorted(r.job.request.key for r in handed(events)) == ["1-0", "1-1", "1-2"]


def test_given_a_dropped_lane_when_run_on_then_its_work_is_forgotten() -> None:
    repo = FakeRepository(script=lambda n: ["Pending"] * 3 + ["Success"])
    runner = make_runner(repo, [], max_concurrent=2)
    runner.add_lane(lane(1, 4))
    runner.add_lane(lane(2, 1))
    runner.turn(1)
    advance(runner)
    assert created_keys(repo) == ["1-0", "1-1"]
    runner.drop(1)  # its stream stopped (a record limit, an error while reading)
    events = advance(runner)
    while not handed(events):
        events = advance(runner)
    assert created_keys(repo) == ["1-0", "1-1", "2-0"]
    assert all(job.lane == 2 for job in runner._pending)


def next_files(runner: DrivenRunner, steps: int = 20) -> list[ReadyExport]:
    """The files handed over by the first step that hands any (at most `steps` steps)."""
    for _ in range(steps):
        files = handed(advance(runner))
        if files:
            return files
    raise AssertionError(f"no file handed over in {steps} steps")


def test_given_a_later_lanes_guessed_file_waiting_when_the_turns_lane_creates_then_never_held() -> (
    None
):
    """Was: a later lane's guessed file (a survey's, waiting for its turn) held every
    create, the re-create of the turn's failed export too: the run waited for ever."""

    def without_id_for_lane_3(repo: FakeRepository, export: FakeExport) -> None:
        repo.omit_ids = export.request.key.startswith("3-")

    repo = FakeRepository(
        script=lambda n: ["Failed"] if n == 2 else ["Pending", "Success"],
        metadata=False,
        on_create=without_id_for_lane_3,
    )
    runner = make_runner(repo, [], max_concurrent=1)
    runner.add_lane(lane(3, 1))
    runner.turn(3)
    waiting = next_files(runner)  # the later lane's guessed file, never consumed here
    assert waiting[0].job.guessed
    runner.add_lane(lane(1, 3))
    runner.turn(1)
    keys = []
    for _ in range(30):
        for ready in handed(advance(runner)):
            keys.append(ready.job.request.key)
            runner.consumed(ready)
        if len(keys) == 3:
            break
    assert keys == ["1-0", "1-1", "1-2"]
    assert created_keys(repo) == ["3-0", "1-0", "1-1", "1-1", "1-2"]  # 1-1 failed once
