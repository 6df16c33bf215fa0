"""ExportRunner against an in-memory repository: concurrency, polling, retries."""

from __future__ import annotations

import io
import logging
import typing as t
import zipfile
from dataclasses import dataclass, field

import pytest

from tap_avicenna.client import DownloadGone, DownloadRefused, ServerBusy
from tap_avicenna.errors import ExportFailed
from tap_avicenna.exports.job import Created, ExportJob, ExportRequest, ListedExport
from tap_avicenna.exports.repository import Enough, Listing
from tap_avicenna.exports.runner import ExportRunner
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
                    content=None if export.empty else f"https://files.example/{export.export_id}",
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
    """The runner's clock, moved only by its sleeps (recorded in `sleeps`)."""

    def __init__(self, sleeps: list[float]) -> None:
        self.sleeps = sleeps
        self.now = 1000.0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def make_runner(repo: FakeRepository, sleeps: list[float], **kwargs: t.Any) -> ExportRunner:
    options: dict[str, t.Any] = {
        "max_concurrent": 4,
        "poll_interval": 1.0,
        "timeout": 100.0,
        "limits": Limits(),
    }
    options.update(kwargs)
    fake = FakeTime(sleeps)
    return ExportRunner(repo, sleep=fake.sleep, clock=fake.clock, **options)


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
    done = list(runner.run(requests(3), on_created=lambda job: created.append(job.export_id)))
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
    runner._durations = [5.0]  # the quickest export was still pending at 5 s
    now = runner._clock()
    young = ExportJob(requests(1)[0], created_at=now - 2.0)
    old = ExportJob(requests(1)[0], created_at=now - 6.0)
    assert runner._next_sleep(3.0, [young]) == pytest.approx(3.0, abs=0.05)  # wait to 5 s
    assert runner._next_sleep(2.0, [young]) == 2.0  # the backed-off tick is shorter
    assert runner._next_sleep(3.0, [young, old]) == 1.0  # due now: the base tick
    runner._durations = []
    assert runner._next_sleep(3.0, [old]) == 3.0  # nothing learnt yet: the tick


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
        assert repo.stopped_early == repo.lists - 1  # all but the first poll
        assert repo.page_counts[0] == 20 and max(repo.page_counts[1:]) <= 3
    else:
        assert repo.stopped_early == 0


def test_given_create_without_id_and_foreign_exports_when_listed_then_positive_match_only() -> None:
    # a dashboard user's export of the same data source appears right after each create
    repo = FakeRepository(
        omit_ids=2, on_create=lambda repo, export: _foreign(repo, participant_ids=(105,))
    )
    done = list(make_runner(repo, []).run(requests(2)))
    assert sorted((r.job.request.key, r.job.export_id) for r in done) == [("k0", 1), ("k1", 3)]


def test_given_no_metadata_and_two_new_exports_when_listed_then_none_is_guessed() -> None:
    repo = FakeRepository(omit_ids=1, metadata=False, on_create=lambda repo, export: _foreign(repo))
    runner = make_runner(repo, [], timeout=0.0, max_attempts=1)
    with pytest.raises(ExportFailed, match=r"export \(id pending\) \[r0\] timed out"):
        list(runner.run(requests(1)))


def test_given_no_metadata_and_one_new_export_when_listed_then_it_is_adopted_as_a_guess() -> None:
    repo = FakeRepository(omit_ids=1, metadata=False)
    done = list(make_runner(repo, []).run(requests(1)))
    assert done[0].job.export_id == 1 and done[0].job.guessed


def test_given_guessed_export_rejected_when_run_then_looks_again_without_creating() -> None:

    def impostor(repo: FakeRepository, ours: FakeExport) -> None:
        """Someone else's export is listed first (#2); ours (#1) only one poll later."""
        _foreign(repo)
        repo.hide_next.add(ours.export_id)

    repo = FakeRepository(omit_ids=2, metadata=False, on_create=impostor)
    runner = make_runner(repo, [])
    seen = []
    for ready in runner.run(requests(2)):
        seen.append(ready.job.export_id)
        if ready.job.export_id in (2, 4):
            ready.reject("none of its rows belong to participant 101")
    # no second create while a guess is unchecked: it would leave two exports to find
    assert seen == [2, 1, 4, 3]
    assert (runner.stats.created, runner.stats.rejected) == (2, 2)


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
    assert runner.max_concurrent == 2 and runner.stats.busy >= 1
    assert "keeping at most 2 export(s) pending for the rest of this run" in caplog.text


def test_given_server_busy_with_nothing_of_ours_when_past_timeout_then_one_clear_error() -> None:
    repo = FakeRepository(busy_above=0)
    sleeps: list[float] = []
    runner = make_runner(repo, sleeps, timeout=0.0)
    with pytest.raises(ExportFailed, match="Avicenna refused every new export for"):
        list(runner.run(requests(1)))
    assert sleeps[0] == 1.0  # waited (the busy backoff) before trying again
