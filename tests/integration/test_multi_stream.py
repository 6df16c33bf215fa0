"""A sync of many streams: one runner serves them all (participants, three sensor
streams, two surveys), against the simulator, the tap as a subprocess."""

from __future__ import annotations

import json
import re
import signal
import threading
import typing as t
from collections import Counter
from pathlib import Path

import pytest

from tap_avicenna.simulator import Simulator
from tests.conftest import (
    STUDY_ID,
    TapRun,
    catalog_file,
    expected_sensor_rows,
    make_simulator,
    multiset,
    run_tap,
    tap_config,
)
from tests.forked_tap import TapProcess
from tests.integration.test_batch import batch_config
from tests.integration.test_resilience import LiveTap
from tests.integration.test_surveys_participants import expected_by_uuid

SENSORS = {"sensor_gps": 10, "sensor_accelerometer": 20, "sensor_battery": 30}
SURVEYS = {"survey_daily": 5678, "survey_screen": 5679}
END = "2025-01-05T00:00:00Z"
COLUMNS = ["uuid", "record_time", "participant_id", "Q3"]  # of the expected survey rows
FIGURES = re.compile(r"at most (\d+) file\(s\) waiting on disk \(([\d.,]+) MB\), (\d+) download")


def many_streams(sim: Simulator, **overrides: t.Any) -> dict[str, t.Any]:
    """Participants, 3 sensor streams and 2 surveys over 4 days in 2-day windows: 1
    participation export, then 2 per sensor stream (once the participant list is read)
    and 2 per survey (at once)."""
    settings: dict[str, t.Any] = {
        "participant_ids": None,
        "data_sources": [{"id": i, "name": n.removeprefix("sensor_")} for n, i in SENSORS.items()],
        "surveys": [
            {
                "activity_id": i,
                "name": n.removeprefix("survey_"),
                "columns": ["participant_id", "Q3"],
            }
            for n, i in SURVEYS.items()
        ],
        "end_date": END,
        "export_window_days": 2,
        "participants_per_export": 5,
        "lookback_days": 0,
    }
    config = tap_config(sim, **{**settings, **overrides})
    if config["participant_ids"] is None:
        del config["participant_ids"]
    return config


def assert_every_stream_exact(sim: Simulator, config: dict[str, t.Any], run: TapRun) -> None:
    assert run.returncode == 0, run.stderr[-3000:]
    assert multiset(run.records("participants")) == multiset(
        sim.expected_participation_rows(STUDY_ID)
    )
    for stream, source in SENSORS.items():
        expected = expected_sensor_rows(sim, {**config, "participant_ids": None}, source)
        assert expected and multiset(run.records(stream)) == multiset(expected), stream
    for stream, activity in SURVEYS.items():
        rows = expected_by_uuid(sim, activity, COLUMNS, END[:10])
        records = run.records(stream)
        assert Counter(r["uuid"] for r in records) == Counter(list(rows)), stream
        assert rows and all(
            (r["participant_id"], r["q3"])
            == (int(rows[r["uuid"]]["participant_id"]), rows[r["uuid"]]["Q3"] or None)
            for r in records
        ), stream


@pytest.fixture(scope="module")
def sim(simulator_module: Simulator) -> Simulator:
    return simulator_module


@pytest.fixture(scope="module")
def record_run(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> TapRun:
    """The module's first sync (the simulator's first 11 exports are its own)."""
    return run_tap(tmp_path_factory.mktemp("record"), many_streams(sim))


def test_given_six_streams_when_synced_then_exact_rows_one_runner_and_surveys_start_at_once(
    sim: Simulator, record_run: TapRun
) -> None:
    run = record_run
    assert_every_stream_exact(sim, many_streams(sim), run)
    kinds = [e["export_type"] for e in reversed(sim.exports(STUDY_ID))][:11]
    # the participation export and the surveys' at once (the fifth as soon as the
    # participation export frees its slot), the sensor streams' once the list is read
    assert kinds == ["PARTICIPATION"] + ["ACTIVITY_RESPONSE"] * 4 + ["data_source"] * 6
    polls = re.findall(r"Status poll #\d+: (\d+) list requests? for (\d+) pending", run.stderr)
    assert all(lists == "1" and int(pending) <= 4 for lists, pending in polls)
    assert max(int(pending) for _, pending in polls) == 4
    assert "export 11 of 11 done" in run.stderr


def test_given_six_streams_when_synced_as_batch_then_same_records(
    sim: Simulator, record_run: TapRun, tmp_path: Path
) -> None:
    config = many_streams(sim, batch_config=batch_config(tmp_path / "batch", "jsonl", "gzip"))
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert any(m["type"] == "BATCH" for m in run.messages)
    for stream in ["participants", *SENSORS, *SURVEYS]:
        assert multiset(run.records(stream)) == multiset(record_run.records(stream)), stream


def test_given_a_tiny_disk_budget_when_synced_then_exact_rows_and_fewer_files_waiting(
    record_run: TapRun, tmp_path: Path
) -> None:
    """Every file is larger than the budget: a later stream's file is fetched only while
    nothing waits, so at most one waits, beside the file of the stream being synced and
    its next one. Without the budget the 4 survey files wait for the last two turns."""
    simulator = make_simulator()
    try:
        config = many_streams(simulator, max_waiting_files_mb=0.0001)
        run = run_tap(tmp_path, config)
        assert_every_stream_exact(simulator, config, run)
        assert "of the 9.92e-05 MB budget" in run.stderr
        (tiny,), (default,) = FIGURES.findall(run.stderr), FIGURES.findall(record_run.stderr)
        assert int(tiny[0]) <= 3 < int(default[0])
    finally:
        simulator.stop()


def pending_streams(line: str) -> set[str]:
    """The streams with exports in flight in a STATE line (none for other lines)."""
    if not line.startswith('{"type":"STATE"') or not line.endswith("\n"):
        return set()
    bookmarks = json.loads(line)["value"].get("bookmarks", {})
    return {name for name, mark in bookmarks.items() if mark.get("pending_exports")}


def test_given_kill_while_three_streams_have_exports_pending_when_resumed_then_reused_and_complete(
    tmp_path: Path,
) -> None:
    """Two sensor streams and a survey, one export each, all created at once: SIGKILL as
    soon as a STATE holds the exports of all three; the resumed run creates none of them
    again and, with the killed run, emits every row. The simulator's clock stands still
    until the kill, so no export can finish before all of them are created."""
    simulator = make_simulator(processing_delay=1.0, time_scale=0.0)
    try:
        config = many_streams(
            simulator,
            participant_ids=[101, 102, 103],
            data_sources=[{"id": 10, "name": "gps"}, {"id": 30, "name": "battery"}],
            surveys=[{"activity_id": 5678, "name": "daily", "columns": ["participant_id", "Q3"]}],
            export_window_days=7,
            end_date="2025-01-03T00:00:00Z",
        )
        fired: list[set[str]] = []
        procs: list[TapProcess] = []
        attached = threading.Event()

        def watch(line: str) -> None:
            streams = pending_streams(line)
            if len(streams) == 3 and not fired:
                fired.append(streams)
                attached.wait()
                procs[0].send_signal(signal.SIGKILL)

        killed_tap = LiveTap(tmp_path / "killed", config, None, watch=watch)
        procs.append(killed_tap.proc)
        attached.set()
        killed = killed_tap.finish()
        assert fired == [{"sensor_gps", "sensor_battery", "survey_daily"}], killed.stderr[-3000:]
        assert killed.returncode == -signal.SIGKILL
        state = killed.states()[-1]
        in_flight = sum(len(m.get("pending_exports") or {}) for m in state["bookmarks"].values())
        simulator.configure(time_scale=1.0)
        resumed = run_tap(tmp_path, config, state)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert resumed.stderr.count("Resuming export #") == in_flight >= 1
        kinds = Counter(e["export_type"] for e in simulator.exports(STUDY_ID))
        # one export per stream for both runs; the participation export is made anew each run
        assert kinds == {"data_source": 2, "ACTIVITY_RESPONSE": 1, "PARTICIPATION": 2}
        for stream, source in (("sensor_gps", 10), ("sensor_battery", 30)):
            both = killed.records(stream) + resumed.records(stream)
            assert set(multiset(both)) == set(
                multiset(expected_sensor_rows(simulator, config, source))
            )
        rows = expected_by_uuid(simulator, 5678, COLUMNS, "2025-01-03")
        both = killed.records("survey_daily") + resumed.records("survey_daily")
        assert rows and {r["uuid"] for r in both} == set(rows)
    finally:
        simulator.stop()


def test_given_a_catalog_selecting_one_sensor_stream_then_only_it_and_the_participant_list_export(
    tmp_path: Path,
) -> None:
    """Nothing is planned for the streams left out; the participation export still runs
    (the sensor stream needs the participant list) but emits nothing."""
    simulator = make_simulator()
    try:
        config = many_streams(simulator)
        catalog = catalog_file(tmp_path, config, "sensor_battery")
        run = run_tap(tmp_path, config, None, "--catalog", str(catalog))
        assert run.returncode == 0, run.stderr[-3000:]
        kinds = [e["export_type"] for e in reversed(simulator.exports(STUDY_ID))]
        assert kinds == ["PARTICIPATION", "data_source", "data_source"]
        assert {m["stream"] for m in run.messages if m["type"] == "RECORD"} == {"sensor_battery"}
        expected = expected_sensor_rows(simulator, {**config, "participant_ids": None}, 30)
        assert multiset(run.records("sensor_battery")) == multiset(expected)
    finally:
        simulator.stop()
