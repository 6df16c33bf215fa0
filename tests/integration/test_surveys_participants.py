"""Survey and participants streams, and participant discovery, against the simulator."""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from pathlib import Path

import pytest

from tap_avicenna.load_time import EXTRACTED_AT
from tap_avicenna.simulator import Simulator, churn_config, default_config
from tests.conftest import make_simulator, multiset, run_tap, tap_config

UTC = dt.timezone.utc
SCREEN = 5679  # the simulator's survey with tricky answers, an IMG question, Q7 added Feb 2
DAILY = 5678


def ms(day: int, month: int = 1) -> int:
    return int(dt.datetime(2025, month, day, tzinfo=UTC).timestamp() * 1000)


def survey_config(sim: Simulator, **survey: t.Any) -> dict[str, t.Any]:
    return tap_config(
        sim,
        data_sources=[],
        participant_ids=None,
        surveys=[{"activity_id": SCREEN, "name": "screen", **survey}],
        export_window_days=14,
    )


def expected_by_uuid(
    sim: Simulator, activity: int, columns: list[str], until: str = "2025-01-31"
) -> dict[str, dict[str, str]]:
    """The simulator's sessions with a record time before `until` (the tap's end_date)."""
    body = {"export_version": "v2", "rule_set": {"columns": columns}}
    rows = sim.expected_survey_rows(1234, activity, body)
    return {row["uuid"]: row for row in rows if row["record_time"] < until}


@pytest.fixture
def churn() -> t.Iterator[Simulator]:
    sim = make_simulator(churn_config())
    yield sim
    sim.stop()


def test_given_no_participant_ids_when_synced_then_only_overlapping_participants_exported(
    churn: Simulator, tmp_path: Path
) -> None:
    config = tap_config(churn, participant_ids=None, data_sources=[{"id": 30, "name": "battery"}])
    del config["participant_ids"]
    config["participants_per_export"] = 10
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    sensor = [e for e in churn.exports(1234) if e["export_type"] == "data_source"]
    windows = {(e["start_date"], tuple(e["participant_ids"])) for e in sensor}
    assert windows == {
        (ms(1), (101, 102, 103, 105)),
        (ms(8), (101, 102, 103, 105)),
        (ms(15), (101, 102, 103, 104, 105)),
        (ms(22), (101, 102, 103, 104)),
        (ms(29), (101, 102, 103, 104)),
    }
    expected = churn.expected_rows(
        1234, 30, None, dt.datetime(2025, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 31, tzinfo=UTC)
    )
    assert multiset(run.records("sensor_battery")) == multiset(expected)
    participants = {r["participant_id"]: r for r in run.records("participants")}
    assert set(participants) == {101, 102, 103, 104, 105}
    assert participants[105]["end_time"] == "2025-01-20T00:00:00.000000+00:00"
    assert participants[104]["start_time"] == "2025-01-15T00:00:00.000000+00:00"
    assert participants[101]["end_time"] is None


def test_given_tricky_answers_when_synced_then_every_answer_round_trips_byte_for_byte(
    tmp_path: Path,
) -> None:
    sim_config = default_config()
    sim_config.studies[1234].bom = True
    sim = make_simulator(sim_config)
    try:
        columns = ["participant_id", "Q1", "Q3"]
        run = run_tap(tmp_path, survey_config(sim, columns=columns))
        assert run.returncode == 0, run.stderr[-3000:]
        expected = expected_by_uuid(sim, SCREEN, ["uuid", "record_time", *columns])
        records = {r["uuid"]: r for r in run.records("survey_screen")}
        assert set(records) == set(expected)
        tricky = 0
        for uuid, row in expected.items():
            record = records[uuid]
            assert record["participant_id"] == int(row["participant_id"])
            for n in (1, 3):
                answer, metadata = row[f"Q{n}"], row[f"mQ{n}_metadata"]
                assert record[f"q{n}"] == (answer or None), (uuid, n)
                if not metadata:
                    assert record[f"q{n}_metadata"] is None
                else:
                    try:
                        parsed: t.Any = json.loads(metadata)
                    except ValueError:
                        parsed = {"_text": metadata}  # not JSON: kept as its exact text
                    assert record[f"q{n}_metadata"] == parsed
                tricky += any(c in answer for c in ('"', ",", "\n", "\u00e9")) or answer != (
                    answer.strip()
                )
        assert tricky >= 5, "the simulator's tricky answers were not exercised"
        assert any(isinstance(r["q1_metadata"], dict) for r in records.values())
        assert any("_text" in (r["q1_metadata"] or {}) for r in records.values())
    finally:
        sim.stop()


def test_given_v2_and_dashboard_headers_when_synced_then_same_fields_and_values(
    tmp_path: Path,
) -> None:
    columns = ["participant_id", "uuid", "prompt_time", "record_time", "status_id", "device.id",
               "device.model", "participant.start_time", "participant.status_id",
               "Q2", "Q3", "Q4", "Q5"]  # fmt: skip
    results = []
    for style in ("auto", "dashboard"):
        sim_config = default_config()
        sim_config.studies[1234].survey_header_style = style
        sim = make_simulator(sim_config)
        try:
            config = survey_config(sim, columns=columns)
            config["surveys"][0]["activity_id"] = DAILY
            (tmp_path / style).mkdir()
            run = run_tap(tmp_path / style, config)
            assert run.returncode == 0, run.stderr[-3000:]
            results.append({r["uuid"]: r for r in run.records("survey_screen")})
        finally:
            sim.stop()
    v2, dashboard = results
    assert v2 and set(v2) == set(dashboard)
    for uuid, record in v2.items():
        fields = {k: v for k, v in record.items() if k != EXTRACTED_AT}  # each run's download
        assert {k: dashboard[uuid][k] for k in fields} == fields
    sample = next(iter(v2.values()))
    assert {"device_id", "participant_start_time", "q2", "q2_metadata", "status_id"} <= set(sample)


def test_given_status_query_when_synced_then_only_matching_and_second_run_from_bookmark(
    simulator: Simulator, tmp_path: Path
) -> None:
    query = {"AND": [{"field_name": "status_id", "op": "=", "value": 1}]}
    config = survey_config(simulator, columns=["status_id", "Q1"], query=query)
    # the second run's sessions show where it started: the lookback sent again in full
    config["skip_unchanged_days"] = False
    first = run_tap(tmp_path, config)
    assert first.returncode == 0, first.stderr[-3000:]
    records = first.records("survey_screen")
    expected = expected_by_uuid(
        simulator, SCREEN, ["participant_id", "uuid", "record_time", "status_id", "Q1"]
    )
    completed = {u for u, row in expected.items() if row["status_id"] == "1"}
    assert records and {r["uuid"] for r in records} == completed
    assert {r["status_id"] for r in records} == {1}
    bookmark = first.last_state["bookmarks"]["survey_screen"]["covered_until"]["all"]
    assert bookmark == "2025-01-31T00:00:00.000000+00:00"

    config["lookback_days"] = 3
    second = run_tap(tmp_path, config, first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    again = second.records("survey_screen")
    assert again and all(r["record_time"] >= "2025-01-28T00:00:00" for r in again)
    assert {r["uuid"] for r in again} == {
        r["uuid"] for r in records if r["record_time"] >= "2025-01-28T00:00:00"
    }


@pytest.mark.parametrize("style", ["auto", "dashboard"])
def test_given_question_added_between_runs_when_synced_then_new_field_announced_first(
    tmp_path: Path, style: str
) -> None:
    """v2: the researcher adds Q7 to the survey and to `columns`; dashboard-style
    exports carry every question, so Q7 arrives without a config change."""
    sim_config = default_config()
    sim_config.studies[1234].survey_header_style = style
    sim = make_simulator(sim_config)
    try:
        config = survey_config(sim, columns=["Q1", "Q3"], end_date="2025-02-01T00:00:00Z")
        first = run_tap(tmp_path, config)
        assert first.returncode == 0, first.stderr[-3000:]
        before = first.schemas("survey_screen")[-1]["schema"]["properties"]
        assert "q7" not in before

        sim.clock.advance(3 * 86400)
        config["end_date"] = "2025-02-04T00:00:00Z"
        if style == "auto":
            config["surveys"][0]["columns"] = ["Q1", "Q3", "Q7"]
        second = run_tap(tmp_path, config, first.last_state)
        assert second.returncode == 0, second.stderr[-3000:]
        messages = [m for m in second.messages if m.get("stream") == "survey_screen"]
        first_with_q7 = next(
            i for i, m in enumerate(messages) if m["type"] == "RECORD" and m["record"].get("q7")
        )
        schema = [m for m in messages[:first_with_q7] if m["type"] == "SCHEMA"][-1]["schema"]
        assert schema["properties"]["q7"]["type"] == ["string", "null"]
        assert schema["properties"]["q7_metadata"]["type"][0] == "object"
        for name, spec in before.items():
            assert schema["properties"][name] == spec, name
    finally:
        sim.stop()


def test_given_image_answers_when_extracting_then_files_land_safely_under_the_folder(
    simulator: Simulator, tmp_path: Path
) -> None:
    target = tmp_path / "files"
    config = survey_config(simulator, columns=["Q2"], end_date="2025-01-05T00:00:00Z")
    config["response_files_dir"] = str(target)
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    paths = [r["q2"] for r in run.records("survey_screen") if r["q2"]]
    assert paths and all(p.startswith("response-files/") for p in paths)
    for path in paths:
        assert (target / path).is_file() and (target / path).stat().st_size > 0
