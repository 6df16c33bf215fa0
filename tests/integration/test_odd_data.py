"""Data that does not fit, end to end (the tap as a subprocess against the simulator), in
RECORD mode and in BATCH mode (Parquet asked for): null words and odd cells, status
labels, non-data ZIP members, rows outside the export's window, surveys without columns
and refused columns. Each test checks the exact rows."""

from __future__ import annotations

import datetime as dt
import json
import re
import typing as t
from collections import Counter
from pathlib import Path

import pytest

from tap_avicenna.load_time import EXTRACTED_AT
from tap_avicenna.simulator import (
    DataSourceConfig,
    Simulator,
    SimulatorConfig,
    churn_config,
    default_config,
)
from tap_avicenna.simulator.data import NULL_WORDS, ODD_CELLS
from tap_avicenna.simulator.surveys import SESSION_STATUSES
from tests.conftest import (
    TapRun,
    expected_sensor_rows,
    make_simulator,
    multiset,
    run_tap,
    tap_config,
)

UTC = dt.timezone.utc
MODES = ["records", "batch"]
UNTYPED = "_untyped_cells"
ACCELEROMETER = {"x_axis": "number", "y_axis": "number", "z_axis": "number", "accu": "integer"}
GPS = {
    "lat": "number",
    "lon": "number",
    "alt": "number",
    "accu": "number",
    "bearing": "number",
    "speed": "number",
    "provider": "string",
    "satellite_time": "date-time",
}
DAILY = 40  # one reading a day, exactly at midnight (daily wearable records)


@pytest.fixture
def sims() -> t.Iterator[t.Callable[[SimulatorConfig], Simulator]]:
    started: list[Simulator] = []

    def start(config: SimulatorConfig) -> Simulator:
        started.append(make_simulator(config, processing_delay=0.05))
        return started[-1]

    yield start
    for sim in started:
        sim.stop()


def sync(
    tmp_path: Path, config: dict[str, t.Any], mode: str, state: dict[str, t.Any] | None = None
) -> TapRun:
    """One tap run; in "batch" mode with Parquet BATCH files asked for."""
    if mode == "batch":
        (tmp_path / "files").mkdir(parents=True, exist_ok=True)
        config = {
            **config,
            "batch_config": {
                "encoding": {"format": "parquet", "compression": "none"},
                "storage": {"root": (tmp_path / "files").as_uri()},
            },
        }
    tmp_path.mkdir(parents=True, exist_ok=True)
    run = run_tap(tmp_path, config, state, timeout=120)
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    return run


def ok(run: TapRun) -> TapRun:
    """A successful run; in BATCH mode every sensor file went the columnar way (null
    words, odd cells or local times never send a file to the row-by-row path)."""
    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.error_lines(), run.stderr[-3000:]
    assert "read row by row" not in run.stderr, run.stderr[-3000:]
    return run


def present(record: t.Mapping[str, t.Any]) -> str:
    """A record as comparable text: its non-null fields but the row id and the download
    time (a Parquet file has a column for every field: null there is a field a RECORD
    message leaves out)."""
    return json.dumps(
        {k: v for k, v in record.items() if v is not None and k not in ("_row_id", EXTRACTED_AT)},
        sort_keys=True,
    )


def utc(text: str) -> str:
    return dt.datetime.fromisoformat(text).astimezone(UTC).isoformat(timespec="microseconds")


def day(n: int) -> dt.datetime:
    return dt.datetime(2025, 1, n, tzinfo=UTC)


def warnings(run: TapRun, pattern: str) -> list[re.Match[str]]:
    return [m for line in run.stderr.splitlines() if (m := re.search(pattern, line))]


# --- null words and odd cells --------------------------------------------------------------


def typed_record(row: dict[str, str], types: dict[str, str]) -> dict[str, t.Any]:
    """What the tap makes of a simulator row: null words null in typed columns, odd cells
    null with their text in `_untyped_cells` (file order)."""
    record: dict[str, t.Any] = {
        "participant_id": int(row["user_id"]),
        "device_id": row["device_id"],
        "study_id": int(row["study_id"]),
        "record_time": utc(row["record_time"]),
    }
    untyped: dict[str, str] = {}
    for column, kind in types.items():
        cell = row[column]
        if kind == "string":
            record[column] = cell
        elif cell in NULL_WORDS:
            record[column] = None
        elif cell in ODD_CELLS:
            record[column] = None
            untyped[column] = cell
        else:
            convert: dict[str, t.Callable[[str], t.Any]] = {
                "number": float,
                "integer": int,
                "date-time": utc,
            }
            record[column] = convert[kind](cell)
    if untyped:
        record[UNTYPED] = json.dumps(untyped, separators=(",", ":"), ensure_ascii=False)
    return record


@pytest.mark.parametrize("mode", MODES)
def test_given_null_words_and_odd_cells_when_synced_then_every_row_kept_with_the_odd_text(
    sims: t.Callable[[SimulatorConfig], Simulator], tmp_path: Path, mode: str
) -> None:
    config = default_config()
    study = config.studies[1234]
    study.null_word_rate, study.odd_cell_rate = 0.05, 0.02
    sim = sims(config)
    settings = tap_config(
        sim, participant_ids=[101, 102], end_date="2025-01-04T00:00:00Z", participants_per_export=2
    )
    run = ok(sync(tmp_path, settings, mode))

    odd: Counter[str] = Counter()
    for stream, source, types in (
        ("sensor_accelerometer", 20, ACCELEROMETER),
        ("sensor_gps", 10, GPS),
    ):
        rows = expected_sensor_rows(sim, settings, source)
        expected = [typed_record(row, types) for row in rows]
        assert Counter(map(present, run.records(stream))) == Counter(map(present, expected))
        odd.update(c for r in expected if UNTYPED in r for c in json.loads(r[UNTYPED]))
    assert odd["x_axis"] > 5 and odd["satellite_time"] > 5 and odd["provider"] == 0
    logged: Counter[str] = Counter()
    for match in warnings(run, r"did not fit their column's type: .* \((.*)\); set strict_types"):
        logged.update({k: int(v) for k, v in (p.split(": ") for p in match[1].split(", "))})
    assert logged == odd, "one WARNING per export, with the count of each column"


def test_given_strict_types_when_an_odd_cell_comes_then_the_sync_fails_naming_it(
    sims: t.Callable[[SimulatorConfig], Simulator], tmp_path: Path
) -> None:
    config = default_config()
    config.studies[1234].odd_cell_rate = 0.01
    sim = sims(config)
    settings = tap_config(
        sim,
        participant_ids=[101],
        data_sources=[{"id": 20, "name": "accelerometer"}],
        end_date="2025-01-02T00:00:00Z",
        strict_types=True,
    )
    run = sync(tmp_path, settings, "records")
    assert run.returncode == 1 and len(run.error_lines()) == 1, run.stderr[-3000:]
    assert re.search(
        r" line \d+: column '\w+': cannot read '[^']+' as (number|integer)", run.error_lines()[0]
    )


# --- status labels ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_given_status_labels_in_one_export_and_ids_in_the_next_when_synced_then_both_load(
    sims: t.Callable[[SimulatorConfig], Simulator], tmp_path: Path, mode: str
) -> None:
    """Dashboard surveys: `Status` labels go to `status`, ids to `status_id` (an integer
    in every run's schema)."""
    config = default_config()
    study = config.studies[1234]
    study.survey_header_style, study.dashboard_status_labels = "dashboard", True
    sim = sims(config)
    settings = tap_config(
        sim,
        data_sources=[],
        surveys=[{"activity_id": 5678, "name": "daily"}],
        end_date="2025-01-08T00:00:00Z",
        lookback_days=0,
    )
    first = ok(sync(tmp_path / "1", settings, mode))
    study.dashboard_status_labels = False
    later = {**settings, "end_date": "2025-01-15T00:00:00Z"}
    second = ok(sync(tmp_path / "2", later, mode, first.last_state))

    study.survey_header_style = "auto"  # the sessions, under v2 names and with ids
    body = {"export_version": "v2", "rule_set": {"columns": []}}
    truth = {r["uuid"]: r for r in sim.expected_survey_rows(1234, 5678, body)}
    labels = {str(k): v for k, v in SESSION_STATUSES.items()}
    for run, labelled, lower, upper in (
        (first, True, "2025-01-01", "2025-01-08"),
        (second, False, "2025-01-08", "2025-01-15"),
    ):
        records = run.records("survey_daily")
        window = {u for u, r in truth.items() if lower <= r["record_time"] < upper}
        assert records and {r["uuid"] for r in records} == window
        for record in records:
            status = truth[record["uuid"]]["status_id"]
            if labelled:
                assert (record["status_id"], record["status"]) == (None, labels[status])
                assert record["participant_status"] == "Active"
            else:
                assert record["status_id"] == int(status) and record.get("status") is None
                assert record["participant_status_id"] == 1
        schema = run.schemas("survey_daily")[-1]["schema"]["properties"]
        assert schema["status_id"]["type"] == ["integer", "null"]
        assert schema["status"]["type"] == ["string", "null"]
        assert not warnings(run, "did not fit")


@pytest.mark.parametrize("mode", MODES)
def test_given_participation_labels_and_na_end_times_when_synced_then_participants_and_sensors(
    sims: t.Callable[[SimulatorConfig], Simulator], tmp_path: Path, mode: str
) -> None:
    """`status_id` holding `Active`/`Dropped` and `end_time` `N/A`: the participants load,
    and sensor exports follow their periods (no `participant_ids`)."""
    config = churn_config()
    study = config.studies[1234]
    study.participation_status, study.participation_open_end = "status_id_labels", "N/A"
    sim = sims(config)
    settings = tap_config(
        sim,
        participant_ids=None,
        data_sources=[{"id": 30, "name": "battery"}],
        participants_per_export=10,
    )
    del settings["participant_ids"]
    run = ok(sync(tmp_path, settings, mode))

    participants = {r["participant_id"]: r for r in run.records("participants")}
    assert sorted(participants) == [101, 102, 103, 104, 105]
    assert participants[105]["status"] == "Dropped" and participants[101]["status"] == "Active"
    assert {r.get("status_id") for r in participants.values()} == {None}
    assert participants[105]["end_time"] == "2025-01-20T00:00:00.000000+00:00"
    assert participants[101]["end_time"] is None
    battery = sim.expected_rows(1234, 30, None, day(1), day(31))
    assert multiset(run.records("sensor_battery")) == multiset(battery)


# --- ZIP members without data ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_given_a_codebook_and_a_readme_in_each_zip_when_synced_then_skipped_with_a_warning(
    sims: t.Callable[[SimulatorConfig], Simulator], tmp_path: Path, mode: str
) -> None:
    config = default_config()
    config.studies[1234].extra_zip_members = True
    sim = sims(config)
    settings = tap_config(sim, participant_ids=[101, 102], end_date="2025-01-10T00:00:00Z")
    run = ok(sync(tmp_path, settings, mode))
    for stream, source in (("sensor_gps", 10), ("sensor_accelerometer", 20)):
        expected = expected_sensor_rows(sim, settings, source)
        assert multiset(run.records(stream)) == multiset(expected)
    skipped = warnings(
        run,
        r"(export #\d+) .*: skipped ZIP member\(s\) without data: "
        r"README\.txt \(not CSV\); codebook\.csv \(no participant_id or "
        r"record_time column among column, description\)$",
    )
    exports = [e for e in sim.exports(1234) if e["export_type"] == "data_source"]
    assert sorted(m[1] for m in skipped) == sorted(
        f"export #{e['study_specific_id']}" for e in exports
    )


# --- rows outside the export's window ------------------------------------------------------------


def daily_study(config: SimulatorConfig) -> None:
    config.studies[1234].data_sources[DAILY] = DataSourceConfig(
        "steps", 86_400, "generic", columns=["steps"], jitter_seconds=0
    )


@pytest.mark.parametrize("mode", MODES)
def test_given_windows_read_as_start_exclusive_end_inclusive_when_synced_then_midnight_kept(
    sims: t.Callable[[SimulatorConfig], Simulator], tmp_path: Path, mode: str
) -> None:
    """A server exporting (start, end]: each window's midnight row comes with the export
    before it, outside that export's window: emitted (one WARNING per export)."""
    config = default_config()
    daily_study(config)
    config.studies[1234].window_includes = "end"
    sim = sims(config)
    settings = tap_config(
        sim,
        participant_ids=[101, 102],
        end_date="2025-01-22T00:00:00Z",
        data_sources=[{"id": DAILY, "name": "steps"}],
    )
    run = ok(sync(tmp_path, settings, mode))

    records = run.records("sensor_steps")
    days = sorted({r["record_time"][:10] for r in records})
    assert days == [f"2025-01-{d:02d}" for d in range(2, 22)]  # (start_date, end_date)
    served = sim.expected_rows(1234, DAILY, [101, 102], day(1), day(22))
    assert multiset(records) == multiset([r for r in served if r["record_time"] < "2025-01-22"])
    outside = warnings(run, r": (\d+) row\(s\) outside the export's window emitted")
    assert [int(m[1]) for m in outside] == [2, 2]  # Jan 8 and Jan 15, of both participants
    marks = run.last_state["bookmarks"]["sensor_steps"]["participants"]
    assert marks == {
        "101": "2025-01-22T00:00:00.000000+00:00",
        "102": "2025-01-22T00:00:00.000000+00:00",
    }


@pytest.mark.parametrize("mode", MODES)
def test_given_local_times_without_offset_when_zone_set_then_exact_instants_and_every_row(
    sims: t.Callable[[SimulatorConfig], Simulator], tmp_path: Path, mode: str
) -> None:
    config = default_config()
    study = config.studies[1234]
    study.timestamp_style, study.local_time_zone = "local", "America/Toronto"
    sim = sims(config)
    settings = tap_config(
        sim,
        participant_ids=[101],
        data_sources=[{"id": 30, "name": "battery"}],
        end_date="2025-01-10T00:00:00Z",
        naive_timestamps_time_zone="America/Toronto",
    )
    run = ok(sync(tmp_path, settings, mode))

    expected = sim.expected_rows(1234, 30, [101], day(1), day(10))
    zone = dt.timezone(dt.timedelta(hours=-5))  # EST: no DST change in January
    instants = Counter(
        dt.datetime.fromisoformat(r["record_time"]).replace(tzinfo=zone).astimezone(UTC)
        for r in expected
    )
    records = run.records("sensor_battery")
    assert Counter(dt.datetime.fromisoformat(r["record_time"]) for r in records) == instants
    edges = (day(1) + dt.timedelta(minutes=15), day(10) - dt.timedelta(minutes=20))
    assert min(instants) < edges[0] and max(instants) > edges[1]  # rows near both edges


@pytest.mark.parametrize("mode", MODES)
def test_given_a_server_filtering_by_upload_time_when_synced_then_late_uploads_kept(
    sims: t.Callable[[SimulatorConfig], Simulator], tmp_path: Path, mode: str
) -> None:
    config = default_config()
    config.studies[1234].upload_delay_seconds = 6 * 3600
    sim = sims(config)
    settings = tap_config(
        sim,
        participant_ids=[101, 102],
        end_date="2025-01-04T00:00:00Z",
        data_sources=[{"id": 30, "name": "battery"}],
        export_window_days=1,
    )
    run = ok(sync(tmp_path, settings, mode))

    served = sim.expected_rows(1234, 30, [101, 102], day(1), day(4))  # uploaded before Jan 4
    assert multiset(run.records("sensor_battery")) == multiset(served)
    late = sum(int(m[1]) for m in warnings(run, r": (\d+) row\(s\) outside the export's window"))
    by_day = Counter(r["record_time"][:10] for r in served)
    assert late > 10 and by_day["2025-01-01"] > by_day["2025-01-03"]


# --- surveys without columns, refused columns ----------------------------------------------


def survey_truth(sim: Simulator, activity: int) -> dict[str, dict[str, str]]:
    """The sessions before Jan 15 under their v2 names, whatever the study's header style."""
    study = sim.config.studies[1234]
    style, study.survey_header_style = study.survey_header_style, "auto"
    body = {"export_version": "v2", "rule_set": {"columns": []}}
    rows = sim.expected_survey_rows(1234, activity, body)
    study.survey_header_style = style
    return {r["uuid"]: r for r in rows if r["record_time"] < "2025-01-15"}


@pytest.mark.parametrize("mode", MODES)
def test_given_a_survey_without_columns_when_synced_then_every_answer_in_both_header_styles(
    sims: t.Callable[[SimulatorConfig], Simulator], tmp_path: Path, mode: str
) -> None:
    results = []
    for style in ("auto", "dashboard"):
        config = default_config()
        config.studies[1234].survey_header_style = style
        sim = sims(config)
        settings = tap_config(
            sim,
            data_sources=[],
            end_date="2025-01-15T00:00:00Z",
            surveys=[{"activity_id": 5678, "name": "daily"}],
        )
        run = ok(sync(tmp_path / style, settings, mode))
        records = {r["uuid"]: r for r in run.records("survey_daily")}
        truth = survey_truth(sim, 5678)
        assert set(records) == set(truth)
        for uuid, row in truth.items():
            record = records[uuid]
            assert record["participant_id"] == int(row["participant_id"])
            assert record["status_id"] == int(row["status_id"])
            for q in (2, 3, 4, 5):
                assert record[f"q{q}"] == (row[f"Q{q}"] or None)
                metadata = row[f"mQ{q}_metadata"]
                assert record[f"q{q}_metadata"] == (json.loads(metadata) if metadata else None)
        results.append(records)
    v2, dashboard = results
    for uuid, record in v2.items():
        assert present({k: v for k, v in dashboard[uuid].items() if k in record}) == present(record)


def test_given_avicenna_refuses_columns_the_tap_adds_when_synced_then_asked_again_without_them(
    sims: t.Callable[[SimulatorConfig], Simulator], tmp_path: Path
) -> None:
    """The tap's own `uuid` (a dashboard export carries the session UUID anyway) and the
    participation export's `status_id`: dropped with a WARNING, the export asked again.
    `participant_id` is not asked for (undocumented for surveys): a server refusing it
    does not stop a survey whose user columns do not name it."""
    config = default_config()
    study = config.studies[1234]
    study.survey_header_style = "dashboard"
    study.refused_columns = ["uuid", "status_id", "participant_id"]
    sim = sims(config)
    settings = tap_config(
        sim,
        participant_ids=None,
        data_sources=[{"id": 30, "name": "battery"}],
        end_date="2025-01-08T00:00:00Z",
        surveys=[{"activity_id": 5678, "name": "daily", "columns": ["Q2"]}],
    )
    del settings["participant_ids"]
    run = ok(sync(tmp_path, settings, "records"))

    refused = warnings(run, r"(\w+): Avicenna refused column\(s\) (.*), which the tap asks for")
    assert sorted((m[1], m[2]) for m in refused) == [
        ("participants", "participant_id, status_id"),
        ("survey_daily", "uuid"),
    ]
    assert len(run.records("participants")) == 5
    truth = {u: r for u, r in survey_truth(sim, 5678).items() if r["record_time"] < "2025-01-08"}
    records = run.records("survey_daily")
    assert {r["uuid"] for r in records} == set(truth)
    assert all(r["q2"] == (truth[r["uuid"]]["Q2"] or None) for r in records)
    battery = sim.expected_rows(1234, 30, None, day(1), day(8))
    assert multiset(run.records("sensor_battery")) == multiset(battery)


def test_given_avicenna_refuses_a_column_of_the_users_when_synced_then_one_error_line(
    sims: t.Callable[[SimulatorConfig], Simulator], tmp_path: Path
) -> None:
    config = default_config()
    config.studies[1234].refused_columns = ["Q2"]
    sim = sims(config)
    settings = tap_config(
        sim,
        data_sources=[],
        end_date="2025-01-08T00:00:00Z",
        surveys=[{"activity_id": 5678, "name": "daily", "columns": ["Q2"]}],
    )
    run = sync(tmp_path, settings, "records")
    assert run.returncode == 1, run.stderr[-3000:]
    assert [line.split("| ")[-1] for line in run.error_lines()] == [
        "Avicenna refused POST /api/v1/filter/export/ with HTTP 400: Unknown column(s): Q2."
    ]
