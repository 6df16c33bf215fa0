"""ExportRunner against an in-memory repository: concurrency, polling, retries."""

from __future__ import annotations

import io
import time
import typing as t
import zipfile
from dataclasses import dataclass, field

import pytest

from tap_avicenna.client import DownloadGone
from tap_avicenna.errors import ExportFailed
from tap_avicenna.exports.job import ExportJob, ExportRequest, ListedExport
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


@dataclass
class FakeRepository:
    """Each created export walks through `script` labels, one per list call."""

    script: t.Callable[[int], list[str]] = lambda n: ["Pending", "Success"]
    omit_ids: int = 0
    gone_downloads: int = 0
    exports: list[FakeExport] = field(default_factory=list)
    lists: int = 0
    pending_at_list: list[int] = field(default_factory=list)
    downloads: int = 0

    def create(self, request: ExportRequest) -> int | None:
        export = FakeExport(len(self.exports) + 1, request, self.script(len(self.exports)))
        self.exports.append(export)
        if self.omit_ids:
            self.omit_ids -= 1
            return None
        return export.export_id

    def list(self) -> list[ListedExport]:
        self.lists += 1
        result = []
        for export in self.exports:
            label = export.labels[min(export.polls, len(export.labels) - 1)]
            export.polls += 1
            result.append(
                ListedExport(
                    export_id=export.export_id,
                    label=label,
                    status=classify(label),
                    content=f"https://files.example/{export.export_id}.zip",
                    data_source=export.request.data_source_id,
                )
            )
        return result

    def download(self, listed: ListedExport, dest: t.BinaryIO, *, label: str) -> int:
        self.downloads += 1
        if self.gone_downloads:
            self.gone_downloads -= 1
            raise DownloadGone("gone (HTTP 410)")
        data = zip_bytes(f"id\n{listed.export_id}\n")
        dest.write(data)
        return len(data)


def requests(n: int) -> list[ExportRequest]:
    return [ExportRequest(key=f"k{i}", label=f"r{i}", data_source_id=10) for i in range(n)]


def make_runner(repo: FakeRepository, sleeps: list[float], **kwargs: t.Any) -> ExportRunner:
    options: dict[str, t.Any] = {
        "max_concurrent": 4,
        "poll_interval": 1.0,
        "timeout": 100.0,
        "limits": Limits(),
    }
    options.update(kwargs)
    return ExportRunner(repo, sleep=sleeps.append, **options)


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
    now = time.monotonic()
    young = ExportJob(requests(1)[0], created_at=now - 2.0)
    old = ExportJob(requests(1)[0], created_at=now - 6.0)
    assert runner._next_sleep(3.0, [young]) == pytest.approx(3.0, abs=0.05)  # wait to 5 s
    assert runner._next_sleep(2.0, [young]) == 2.0  # the backed-off tick is shorter
    assert runner._next_sleep(3.0, [young, old]) == 1.0  # due now: the base tick
    runner._durations = []
    assert runner._next_sleep(3.0, [old]) == 3.0  # nothing learnt yet: the tick
