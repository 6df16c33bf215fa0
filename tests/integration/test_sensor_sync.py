"""Sensor streams end to end: the tap as a subprocess against the real HTTP simulator."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import typing as t
from collections import Counter
from pathlib import Path

import pytest

from tap_avicenna.simulator import DataSourceConfig, Simulator, default_config
from tests.conftest import (
    _OUTPUTS,
    expected_sensor_rows,
    make_simulator,
    multiset,
    run_tap,
    sensor_exports,
    tap_config,
)
from tests.forked_tap import DEVNULL, TapProcess

STREAMS = {"sensor_gps": 10, "sensor_accelerometer": 20}


def assert_exact_rows(sim: Simulator, config: dict[str, t.Any], run: t.Any, **kw: t.Any) -> None:
    for stream, source_id in STREAMS.items():
        records = run.records(stream)
        expected = expected_sensor_rows(sim, config, source_id, **kw)
        assert expected, f"the simulator has no rows for {stream}"
        assert multiset(records) == multiset(expected), stream
        ids = Counter(r["_row_id"] for r in records)
        assert max(ids.values()) == 1, f"{stream}: a row was emitted twice"


def test_given_5_participants_2_sources_30_days_when_synced_then_rows_match_exactly(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = tap_config(simulator)
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert_exact_rows(simulator, config, run)
    # 5 windows (7, 7, 7, 7, 2 days) x 3 participant batches x 2 data sources
    stats = simulator.stats()
    assert len(sensor_exports(simulator)) == 30
    polls = re.findall(r"Status poll #\d+: 1 list request for (\d+) pending", run.stderr)
    assert stats["list"] == len(polls), "one list request per tick, never one per export"
    assert max(int(n) for n in polls) == 4
    assert stats["max_concurrent_pending"] == 4


def test_given_final_state_when_run_again_then_only_rows_from_bookmark_minus_lookback(
    simulator: Simulator, tmp_path: Path
) -> None:
    # every lookback row sent again (the range re-exported): skip_unchanged_days off;
    # on, tests/integration/test_unchanged_days.py
    config = tap_config(simulator, lookback_days=2, skip_unchanged_days=False)
    first = run_tap(tmp_path, config)
    assert first.returncode == 0, first.stderr[-3000:]
    state = first.last_state
    marks = state["bookmarks"]["sensor_gps"]["participants"]
    assert set(marks) == {"101", "102", "103", "104", "105"}
    assert set(marks.values()) == {"2025-01-31T00:00:00.000000+00:00"}
    assert not state["bookmarks"]["sensor_gps"].get("pending_exports")

    before = len(sensor_exports(simulator))
    second = run_tap(tmp_path, config, state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert_exact_rows(simulator, config, second, start="2025-01-29T00:00:00Z")
    # the two lookback days lie in one window: one export per batch and source
    assert len(sensor_exports(simulator)) - before == 6


def test_given_faults_when_synced_then_same_exact_rows_and_exit_0(
    simulator: Simulator, tmp_path: Path
) -> None:
    faults = simulator.faults
    faults.error_rate = 0.2
    faults.retry_after = 0
    faults.fail_next_exports = 1
    faults.truncate_next_downloads = 1
    faults.omit_id_next_creates = 1
    config = tap_config(simulator, retry_backoff_seconds=0.01)
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert_exact_rows(simulator, config, run)
    stats = simulator.stats()
    assert stats["faults_injected"] >= 5
    assert "creating it again" in run.stderr  # the failed export
    assert "(the create answer had no id)" in run.stderr


def test_given_wrong_api_key_when_run_then_one_error_line_naming_user_not_key(
    simulator: Simulator, tmp_path: Path
) -> None:
    wrong = "wrong-key-777"
    run = run_tap(tmp_path, tap_config(simulator, api_key=wrong))
    _OUTPUTS.append(("stderr (wrong key)", run.stderr.replace(wrong, "")))
    assert run.returncode != 0
    errors = run.error_lines()
    assert len(errors) == 1, run.stderr
    assert "rejected the API key for user 'researcher@example.com'" in errors[0]
    assert wrong not in run.stderr + run.stdout
    assert "Traceback" not in run.stderr
    assert not run.records()


def test_given_participant_added_when_run_again_then_only_it_is_backfilled(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = tap_config(
        simulator, participant_ids=[101, 102], data_sources=[{"id": 10, "name": "gps"}]
    )
    first = run_tap(tmp_path, config)
    assert first.returncode == 0, first.stderr[-3000:]
    before = max(e["study_specific_id"] for e in simulator.exports(1234))
    config["participant_ids"] = [101, 102, 103]
    second = run_tap(tmp_path, config, first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    created = [e for e in sensor_exports(simulator) if e["study_specific_id"] > before]
    starts = {
        tuple(e["participant_ids"]): min(
            x["start_date"] for x in created if x["participant_ids"] == e["participant_ids"]
        )
        for e in created
    }
    jan1 = int(dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
    jan29 = int(dt.datetime(2025, 1, 29, tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert starts == {(103,): jan1, (101, 102): jan29}
    new_rows = [r for r in second.records("sensor_gps") if r["participant_id"] == 103]
    expected = simulator.expected_rows(
        1234,
        10,
        [103],
        dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
        dt.datetime(2025, 1, 31, tzinfo=dt.timezone.utc),
    )
    assert multiset(new_rows) == multiset(expected)


@pytest.mark.parametrize(
    "knobs",
    [
        {"timestamp_style": "iso_z", "file_format": "csv"},
        {"timestamp_style": "offset", "header_style": "title", "file_format": "gzip"},
        {"timestamp_style": "epoch_ms", "zip_members": 3, "bom": True},
    ],
    ids=["iso-z-csv", "offset-title-gzip", "epoch-multizip-bom"],
)
def test_given_other_file_forms_when_synced_then_same_records(
    tmp_path: Path, knobs: dict[str, t.Any]
) -> None:
    sim_config = default_config()
    study = sim_config.studies[1234]
    for name, value in knobs.items():
        setattr(study, name, value)
    sim = make_simulator(sim_config)
    try:
        config = tap_config(sim, end_date="2025-01-10T00:00:00Z", participant_ids=[101, 102])
        run = run_tap(tmp_path, config)
        assert run.returncode == 0, run.stderr[-3000:]
        # Compare with the default-form rows: the records must not depend on the form.
        with make_simulator() as plain:
            for stream, source_id in STREAMS.items():
                expected = expected_sensor_rows(plain, config, source_id)
                assert multiset(run.records(stream)) == multiset(expected), stream
    finally:
        sim.stop()


def test_given_file_with_unknown_columns_when_synced_then_schema_grows_before_records(
    tmp_path: Path,
) -> None:
    sim_config = default_config()
    sim_config.studies[1234].data_sources[40] = DataSourceConfig(
        name="light", interval_seconds=3600, kind="generic", columns=["lux", "Sensor Mode"]
    )
    sim = make_simulator(sim_config)
    try:
        config = tap_config(
            sim,
            end_date="2025-01-03T00:00:00Z",
            participant_ids=[101],
            data_sources=[{"id": 40, "name": "light", "fields": {"lux": "number"}}],
        )
        run = run_tap(tmp_path, config)
        assert run.returncode == 0, run.stderr[-3000:]
        kinds = [
            (m["type"], tuple(m.get("schema", {}).get("properties", {})))
            for m in run.messages
            if m.get("stream") == "sensor_light"
        ]
        first_record = next(i for i, (kind, _) in enumerate(kinds) if kind == "RECORD")
        schemas_before = [props for kind, props in kinds[:first_record] if kind == "SCHEMA"]
        assert "sensor_mode" in schemas_before[-1]
        assert "sensor_mode" not in schemas_before[0]
        record = run.records("sensor_light")[0]
        assert isinstance(record["lux"], float) and isinstance(record["sensor_mode"], str)
    finally:
        sim.stop()


def test_given_run_killed_while_exports_pending_when_resumed_then_exports_reused_and_rows_complete(
    tmp_path: Path,
) -> None:
    sim = make_simulator(processing_delay=3.0)
    try:
        config = tap_config(
            sim, data_sources=[{"id": 10, "name": "gps"}], end_date="2025-01-15T00:00:00Z"
        )
        (tmp_path / "config.json").write_text(json.dumps(config))
        proc = TapProcess(["--config", str(tmp_path / "config.json")], stderr=DEVNULL)
        assert proc.stdout is not None
        last_state: dict[str, t.Any] = {}
        for line in proc.stdout:
            message = json.loads(line)
            if message["type"] == "STATE":
                last_state = message["value"]
                pending = last_state["bookmarks"].get("sensor_gps", {}).get("pending_exports")
                if pending and len(pending) == 4:
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.wait()
        _OUTPUTS.append(("killed state", json.dumps(last_state)))
        created_before = len(sensor_exports(sim))
        run = run_tap(tmp_path, config, last_state)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stderr.count("Resuming export #") == 4
        # 2 windows x 3 batches = 6 exports; 4 were adopted, so only 2 new ones
        assert len(sensor_exports(sim)) - created_before == 2
        expected = expected_sensor_rows(sim, config, 10)
        assert multiset(run.records("sensor_gps")) == multiset(expected)
    finally:
        sim.stop()
