"""The tap against what a real Django REST framework backend does, each behaviour behind
one simulator knob: the tap runs as a subprocess and its rows, exit code and state are
checked exactly.

Paged export lists and long histories, presigned links that expire, storage refusing
deleted files, someone else's export where ours was expected, parallel shards, creates
answering HTML or only an `id`, numeric or unknown statuses, exports without a file,
busy servers, an end_date in the future, a data source id changed under the same name,
and what a first contact cannot retry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import re
import threading
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tap_avicenna.simulator import DataSourceConfig, Simulator, default_config
from tap_avicenna.simulator.clock import to_ms
from tests.conftest import (
    _OUTPUTS,
    API_KEY,
    STUDY_ID,
    USERNAME,
    TapRun,
    catalog_file,
    make_simulator,
    multiset,
    run_tap,
    tap_config,
)
from tests.forked_tap import TapProcess
from tests.integration.test_resilience import (
    STREAM,
    assert_exact,
    assert_states_claim_only_emitted,
    expected,
    small_config,
)

END = "2025-01-11T00:00:00.000000+00:00"  # small_config's end_date


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = make_simulator()
    try:
        yield simulator
    finally:
        simulator.stop()


def assert_complete(run: TapRun, sim: Simulator, config: dict[str, t.Any]) -> None:
    """The exact rows, exit 0, every STATE honest, and a final state that covers the
    whole range for both participants with nothing left in flight."""
    assert_exact(run, expected(sim, config))
    final = run.last_state["bookmarks"][STREAM]
    assert final["participants"] == {"101": END, "102": END}
    assert not final.get("pending_exports")


def polls(run: TapRun) -> list[tuple[int, int]]:
    """(list requests, pending exports) of each status poll tick."""
    return [
        (int(n), int(p))
        for n, p in re.findall(r"Status poll #\d+: (\d+) list requests? for (\d+)", run.stderr)
    ]


# --- lists ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "style",
    [
        {"list_order": "oldest", "pagination": "page", "next_links": "relative"},
        {"list_order": "newest", "pagination": "limit_offset", "next_links": "absolute"},
    ],
    ids=["oldest-page-relative", "newest-offset-absolute"],
)
def test_given_paged_list_and_long_history_when_synced_then_exact_rows(
    sim: Simulator, tmp_path: Path, style: dict[str, str]
) -> None:
    """Was: page 1 read only, our exports never seen, three timeouts."""
    sim.configure(page_size=25, history_exports=300, **style)
    config = small_config(sim)
    run = run_tap(tmp_path, config)
    assert_complete(run, sim, config)
    ticks = polls(run)
    assert sim.stats()["list"] == sum(n for n, _ in ticks)  # pages counted per tick
    # Newest first: page 1 (nothing from state to find); oldest first: page 1, then the
    # last page `count` gives. Later: until its exports and an older one are read.
    assert ticks[0][0] == (1 if style["list_order"] == "newest" else 2)
    assert max(n for n, _ in ticks[1:]) <= 2
    test = run_tap(tmp_path, config, None, "--test")
    assert test.returncode == 0 and "export(s) listed on 13 page(s)" in test.stderr


@pytest.mark.parametrize(
    ("style", "history", "first_poll"),
    [
        ({"pagination": "page"}, 5000, 2),  # page 1, then the last page from `count`
        ({"pagination": "limit_offset", "next_links": "relative"}, 5000, 2),  # last offset
        ({"list_count": False}, 5000, 2),  # page 1, then DRF's page=last
        ({"list_count": False, "page_last": False}, 1000, 101),  # page 1, page=last: 404, all
    ],
    ids=["page-count", "offset-count", "page-last", "neither"],
)
def test_given_5000_older_exports_oldest_first_when_synced_then_exact_rows_few_requests(
    sim: Simulator, tmp_path: Path, style: dict[str, t.Any], history: int, first_poll: int
) -> None:
    """Was: every poll read the first 200 of 500 pages, never ours: three timeouts.
    Without `count` or `page=last` (1,000 exports: the full read is the point), the
    first poll reads the list whole and later ones start at the last page it reached."""
    sim.configure(page_size=10, list_order="oldest", history_exports=history, **style)
    config = small_config(sim, export_timeout_seconds=10)
    run = run_tap(tmp_path, config)
    assert_complete(run, sim, config)
    requests = [n for n, _ in polls(run)]
    assert requests[0] == first_poll
    assert max(requests[1:]) <= 3  # the last page or two, and where the run's exports are
    assert sim.stats()["list"] == sum(requests)


def test_given_html_answers_to_list_and_create_when_synced_then_retried_like_5xx(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.faults.html_next_creates = 1
    sim.faults.html_next_lists = 2
    config = small_config(sim)
    run = run_tap(tmp_path, config)
    assert_complete(run, sim, config)
    assert run.stderr.count("an HTML page (HTTP 200); retry") == 3
    assert sim.stats()["faults_injected"] == 3


# --- downloads ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host"),
    [("http://localhost:{port}", "localhost"), (None, "127.0.0.1")],
    ids=["storage-host", "api-host"],
)
def test_given_presigned_links_that_expire_when_synced_then_fresh_link_same_export(
    sim: Simulator, tmp_path: Path, origin: str | None, host: str
) -> None:
    """Was: "Avicenna rejected the API key", exit 1, for a link the key never went to
    (storage host), and for an object store's XML refusal on the API's own host."""
    sim.configure(presigned_urls=True, download_origin=origin)
    sim.faults.expire_next_links = 2
    config = small_config(sim)
    run = run_tap(tmp_path, config)
    assert_complete(run, sim, config)
    refused = (
        f"the download host {host} refused the file (HTTP 403: AccessDenied, Request has "
        "expired); listing again for a fresh link"
    )
    assert run.stderr.count(refused) == 2
    assert len(sim.exports(STUDY_ID)) == 1 + 4  # no export created again
    assert "rejected the API key" not in run.stderr


def test_given_storage_refusing_a_deleted_file_when_synced_then_export_created_again(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.configure(
        presigned_urls=True, download_origin="http://localhost:{port}", expired_status=403
    )
    sim.faults.expire_next_downloads = 3  # the first export's file, at every fresh link
    # (the participation export's: one export pending at a time, so the three downloads
    # refused are all of it, and the sensor exports are each downloaded once)
    config = small_config(sim, max_concurrent_exports=1)
    run = run_tap(tmp_path, config)
    assert_complete(run, sim, config)
    assert (
        "could not be downloaded: the download host localhost refused the file (HTTP 403: "
        "AccessDenied, Access Denied); creating it again" in run.stderr
    )
    assert multiset(run.records("participants")) == multiset(
        sim.expected_participation_rows(STUDY_ID)
    )
    assert len(sim.exports(STUDY_ID)) == 2 + 4


# --- which export is ours -------------------------------------------------------------


def test_given_someone_elses_export_appearing_first_when_synced_then_not_taken(
    sim: Simulator, tmp_path: Path
) -> None:
    """Creates answer no id, the list shows only id/status/content, and another export
    appears where ours is expected (a dashboard user's GPS export before our participation
    export, twice). Was: adopted, 0 rows, bookmarks moved on; then: its rows read before
    it was rejected and looked for again. Now its file fails the proof at download, the
    export is created again, and our first one (listed late) is never taken for another."""
    sim.configure(create_answer="none", list_metadata="none")
    sim.faults.impostor_next_creates = 2
    config = small_config(sim)
    run = run_tap(tmp_path, config)
    assert_complete(run, sim, config)
    assert multiset(run.records("participants")) == multiset(
        sim.expected_participation_rows(STUDY_ID)
    )
    rejected = [line for line in run.stderr.splitlines() if "is not the export requested" in line]
    assert len(rejected) == 2, run.stderr[-3000:]
    assert all("its file is not a participation list); creating it again" in r for r in rejected)
    assert len(sim.exports(STUDY_ID)) == 1 + 4 + 2 + 2  # the participation export twice again


def test_given_resume_id_of_another_request_when_resumed_then_not_adopted(
    sim: Simulator, tmp_path: Path
) -> None:
    """A state whose in-flight export id is now someone else's export (another window)."""
    config = small_config(sim)
    fields = {
        "study_id": str(STUDY_ID),
        "data_source": "20",
        "start_date": str(to_ms(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))),
        "end_date": str(to_ms(dt.datetime(2024, 1, 8, tzinfo=dt.timezone.utc))),
        "participant_ids": "101",
    }
    answer = requests.post(
        sim.url + "/api/study/export/create/",
        files={k: (None, v) for k, v in fields.items()},
        headers=sim.auth_header(),
    )
    foreign = answer.json()["study_specific_id"]
    key = f"20:{to_ms(dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc))}:1736294400000:101"
    state = {"bookmarks": {STREAM: {"pending_exports": {key: foreign}}}}
    run = run_tap(tmp_path, config, state)
    assert_complete(run, sim, config)
    assert f"Export #{foreign} from state is no longer usable (the list shows another request)" in (
        run.stderr
    )


def _start(folder: Path, config: dict[str, t.Any]) -> TapProcess:
    folder.mkdir()
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return TapProcess(["--config", str(path)])


def test_given_3_shards_at_once_and_creates_without_id_when_synced_then_exact_rows_each(
    sim: Simulator, tmp_path: Path
) -> None:
    """Was: shard 0's participants stream emitted shard 1's GPS rows."""
    sim.configure(create_answer="none")
    config = tap_config(
        sim,
        data_sources=[{"id": 10, "name": "gps"}],
        end_date="2025-01-11T00:00:00Z",
        participants_per_export=1,
        shard_count=3,
    )
    shards = [_start(tmp_path / str(k), {**config, "shard_index": k}) for k in range(3)]
    for index, shard in enumerate(shards):
        out, err = shard.communicate(timeout=300)
        _OUTPUTS.extend([("stdout", out), ("stderr", err)])
        assert shard.returncode == 0, err[-3000:]
        messages = [json.loads(x) for x in out.splitlines() if x.startswith('{"type"')]
        run = TapRun(0, out, err, messages)
        mine = [p for p in config["participant_ids"] if p % 3 == index]
        rows = sim.expected_rows(
            STUDY_ID,
            10,
            mine,
            dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
            dt.datetime(2025, 1, 11, tzinfo=dt.timezone.utc),
        )
        assert multiset(run.records("sensor_gps")) == multiset(rows), index
        marks = run.last_state["bookmarks"]["sensor_gps"]["participants"]
        assert marks == {str(p): END for p in mine}
        if index == 0:
            assert multiset(run.records("participants")) == multiset(
                sim.expected_participation_rows(STUDY_ID)
            )
        else:
            assert not run.records("participants")


def test_given_create_answering_only_a_primary_key_when_synced_then_found_by_it(
    sim: Simulator, tmp_path: Path
) -> None:
    """Was: waited for an id the list never showed as its key."""
    sim.configure(create_answer="id_only")
    config = small_config(sim)
    run = run_tap(tmp_path, config)
    assert_complete(run, sim, config)
    assert (
        len(re.findall(r"Found export #\d+ \[.*\] in the export list \(id 7\d{3}\)", run.stderr))
        == 5
    )


# --- statuses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "label"),
    [
        ({"status_format": "number"}, "'3'"),
        ({"status_format": "label", "success_label": "Ready"}, "'Ready'"),
    ],
    ids=["numeric", "ready"],
)
def test_given_numeric_or_unknown_success_status_when_synced_then_ready_by_its_file(
    sim: Simulator, tmp_path: Path, settings: dict[str, str], label: str
) -> None:
    """Was: pending until 3 x the timeout, then an abort."""
    sim.configure(**settings)
    config = small_config(sim)
    run = run_tap(tmp_path, config)
    assert_complete(run, sim, config)
    warnings = [line for line in run.stderr.splitlines() if "is not a known label" in line]
    assert len(warnings) == 1 and f"Export status {label}" in warnings[0]


def test_given_success_without_file_for_an_empty_window_when_synced_then_window_closed(
    tmp_path: Path,
) -> None:
    """Both participants left the study on 2025-01-06: the window from 01-08 has no data,
    its exports are Success with no content. Was: pending until 3 x the timeout, then an
    abort."""
    base = default_config()
    for participant in base.studies[STUDY_ID].participants[:2]:
        participant.end = dt.datetime(2025, 1, 6, tzinfo=dt.timezone.utc)
    sim = make_simulator(base, empty_success=True)
    try:
        config = small_config(sim, end_date="2025-01-15T00:00:00Z")
        run = run_tap(tmp_path, config)
        rows = expected(sim, config)
        assert_exact(run, rows)
        final = run.last_state["bookmarks"][STREAM]["participants"]
        assert final == dict.fromkeys(("101", "102"), "2025-01-15T00:00:00.000000+00:00")
        empty = [line for line in run.stderr.splitlines() if "without a file for" in line]
        assert len(empty) == 2 and "WARNING" in empty[0] and "INFO" in empty[1]
    finally:
        sim.stop()


# --- busy servers ---------------------------------------------------------------------


@contextlib.contextmanager
def frozen_until(sim: Simulator, event: str) -> Iterator[None]:
    """Avicenna's clock stands still (no export finishes) until the simulator logs
    `event`, then runs again: what happens before it does not depend on timing."""
    sim.configure(time_scale=0.0)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            if any(kind == event for _, kind in sim.stats()["events"]):
                sim.configure(time_scale=1.0)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


@pytest.mark.parametrize(
    ("status", "retry_after"),
    [(409, None), (429, 0), (429, "Wed, 21 Oct 2015 07:28:00 GMT"), (400, None)],
    ids=["409", "429-zero", "429-past-date", "400"],
)
def test_given_cap_on_running_exports_when_synced_then_waits_and_keeps_fewer_pending(
    sim: Simulator, tmp_path: Path, status: int, retry_after: int | str | None
) -> None:
    """At most 2 running exports: the third create is refused while the first two run
    (the clock stands still until then). Was: the first refusal aborted the run."""
    sim.configure(max_running_exports=2, busy_status=status)
    sim.faults.retry_after = retry_after
    config = small_config(sim)
    catalog = catalog_file(tmp_path, config, STREAM)
    with frozen_until(sim, "busy"):
        run = run_tap(tmp_path, config, None, "--catalog", str(catalog))
    assert_complete(run, sim, config)
    assert "keeping at most 2 export(s) pending for the rest of this run" in run.stderr
    waits = [float(w) for w in re.findall(r"next create in ([\d.]+)s", run.stderr)]
    assert waits and min(waits) >= 0.1  # at least the backoff, whatever Retry-After says
    assert max(p for _, p in polls(run)) == 2


# --- state ----------------------------------------------------------------------------


def test_given_end_date_in_the_future_when_synced_then_bookmarks_stop_at_now(
    tmp_path: Path,
) -> None:
    """Was: bookmarks jumped to the future end_date; later runs skipped the days between."""
    now = dt.datetime.now(dt.timezone.utc)
    base = default_config()
    base.now = now
    sim = make_simulator(base)
    try:
        start = (now - dt.timedelta(days=1)).replace(microsecond=0)
        config = small_config(
            sim,
            participant_ids=[101],
            start_date=start.isoformat(),
            end_date=(now + dt.timedelta(days=30)).isoformat(),
        )
        before = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
        run = run_tap(tmp_path, config)
        after = dt.datetime.now(dt.timezone.utc)
        assert run.returncode == 0, run.stderr[-3000:]
        marks = run.last_state["bookmarks"][STREAM]["participants"]
        mark = dt.datetime.fromisoformat(marks["101"])  # the minute the run started
        assert before <= mark <= after and mark.second == mark.microsecond == 0
        rows = sim.expected_rows(STUDY_ID, 20, [101], start, mark)
        assert rows and multiset(run.records(STREAM)) == multiset(rows)
        assert_states_claim_only_emitted(run.messages, rows)
    finally:
        sim.stop()


def test_given_data_source_id_changed_under_same_name_when_synced_then_starts_over(
    tmp_path: Path,
) -> None:
    """Avicenna's accelerometer gets a new data source id (21 for 20). Was: the old
    source's bookmarks applied to the new one, which was then exported from the lookback
    only."""
    base = default_config()
    base.studies[STUDY_ID].data_sources[21] = DataSourceConfig(
        name="accelerometer", interval_seconds=300, kind="accelerometer"
    )
    sim = make_simulator(base)
    try:
        config = small_config(sim)
        (tmp_path / "first").mkdir()
        first = run_tap(tmp_path / "first", config)
        assert_complete(first, sim, config)
        assert first.last_state["bookmarks"][STREAM]["data_source_id"] == 20
        moved = {**config, "data_sources": [{"id": 21, "name": "accelerometer"}]}
        (tmp_path / "second").mkdir()
        second = run_tap(tmp_path / "second", moved, first.last_state)
        assert second.returncode == 0, second.stderr[-3000:]
        rows = sim.expected_rows(
            STUDY_ID,
            21,
            [101, 102],
            dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
            dt.datetime(2025, 1, 11, tzinfo=dt.timezone.utc),
        )
        assert multiset(second.records(STREAM)) == multiset(rows)  # from start_date again
        assert "data_source_id changed from 20 to 21 under the same name" in second.stderr
        final = second.last_state["bookmarks"][STREAM]
        assert final["data_source_id"] == 21 and final["participants"] == {"101": END, "102": END}
    finally:
        sim.stop()


# --- first contact --------------------------------------------------------------------


class _WebServer(http.server.BaseHTTPRequestHandler):
    """A web server that is not the API: every request gets an HTML `status` page."""

    status = 404

    def _answer(self) -> None:
        body = b"<html><body><h1>Not the API</h1></body></html>"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: t.Any) -> None:
        del format, args


@pytest.fixture(params=[404, 401, 403])
def web_server(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (_WebServer,), {"status": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _config(api_url: str) -> dict[str, t.Any]:
    return {
        "api_url": api_url,
        "username": USERNAME,
        "api_key": API_KEY,
        "study_id": STUDY_ID,
        "start_date": "2025-01-01T00:00:00Z",
        "end_date": "2025-01-11T00:00:00Z",
        "participant_ids": [101],
        "data_sources": [{"id": 20, "name": "accelerometer"}],
    }


QUICK_SECONDS = 5.0
"""The most a mistake at first contact may wait in retries before its line."""


def _once(tmp_path: Path, config: dict[str, t.Any], *args: str) -> TapRun:
    """The tap's run; the retries it announces ("retry N in X s") wait under QUICK_SECONDS
    in all (counted from its log, not a clock: load cannot fail it)."""
    run = run_tap(tmp_path, config, None, *args)
    waits = [float(s) for s in re.findall(r"retry \d+ in ([\d.]+)s", run.stderr)]
    assert sum(waits) < QUICK_SECONDS, run.stderr[-3000:]
    return run


def _one_line(run: TapRun) -> str:
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    errors = run.error_lines()
    assert len(errors) == 1, run.stderr[-3000:]
    return errors[0]


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("args", [(), ("--test",)], ids=["sync", "test"])
def test_given_nothing_listening_at_api_url_when_run_then_one_line_within_seconds(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Was: 40-50 s of retries, and a line naming neither the URL nor what to check."""
    url = f"http://127.0.0.1:{_closed_port()}"
    run = _once(tmp_path, _config(url), *args)
    assert (
        f"Cannot connect to {url} (connection refused): check api_url, and that the Avicenna "
        "API (or the simulator, tap-avicenna-simulator) is running there" in _one_line(run)
    )


def test_given_https_api_url_on_a_plain_http_server_when_run_then_tls_line_at_once(
    sim: Simulator, tmp_path: Path
) -> None:
    url = sim.url.replace("http://", "https://")
    run = _once(tmp_path, _config(url))
    line = _one_line(run)
    assert f"Cannot connect to {url}: the TLS handshake failed" in line and "check api_url" in line
    assert sim.stats()["list"] == 0


def test_given_api_url_at_a_web_server_that_is_not_the_api_when_run_then_api_url_blamed(
    web_server: str, tmp_path: Path
) -> None:
    """Was: an HTML 404 blamed the study id, an HTML 401/403 would blame the key."""
    run = _once(tmp_path, _config(web_server))
    line = _one_line(run)
    assert f"api_url ({web_server}) does not point at the Avicenna API" in line
    assert "HTML page" in line and "API key" not in line and "Study" not in line
