"""Which export is ours when Avicenna does not say: a create answered without an id, a
list without details. The export taken by creation order is proven by its file before
anything of it is emitted, announced or bookmarked, and never holds the run.
The tap runs as a subprocess against the simulator; rows and state are checked exactly."""

from __future__ import annotations

import json
import typing as t
from collections import Counter
from pathlib import Path

import pytest

from tap_avicenna.simulator import Simulator
from tests.conftest import (
    STUDY_ID,
    catalog_file,
    expected_sensor_rows,
    multiset,
    run_tap,
    tap_config,
)
from tests.integration.test_batch import batch_config
from tests.integration.test_multi_stream import COLUMNS, END, many_streams
from tests.integration.test_surveys_participants import expected_by_uuid

GPS_ID = 10
GPS = {"id": GPS_ID, "name": "gps"}
WEEK_END = "2025-01-08T00:00:00Z"


@pytest.fixture
def sim(simulator: Simulator) -> Simulator:
    return simulator


def gps_week(sim: Simulator, **overrides: t.Any) -> dict[str, t.Any]:
    """One GPS export: participants 101 and 102, one week."""
    settings: dict[str, t.Any] = {
        "participant_ids": [101, 102],
        "data_sources": [GPS],
        "end_date": WEEK_END,
        "participants_per_export": 2,
    }
    return tap_config(sim, **{**settings, **overrides})


@pytest.mark.parametrize("mode", ["record", "batch"])
def test_given_another_data_sources_export_listed_before_ours_when_synced_then_none_of_its_rows(
    sim: Simulator, tmp_path: Path, mode: str
) -> None:
    """Was: 3,360 battery rows emitted as GPS rows (RECORD, or announced in a BATCH
    message), the GPS week bookmarked as done and never loaded."""
    sim.configure(create_answer="none", list_metadata="none")
    sim.faults.foreign_source_next_creates = 1
    root = tmp_path / "batch"
    extra = {"batch_config": batch_config(root, "jsonl", "gzip")} if mode == "batch" else {}
    config = gps_week(sim, **extra)
    run = run_tap(tmp_path, config, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    records = run.records("sensor_gps")
    assert not [r for r in records if "level" in r or "plugged" in r]  # no battery row
    assert multiset(records) == multiset(expected_sensor_rows(sim, config, GPS_ID))
    final = run.last_state["bookmarks"]["sensor_gps"]
    assert final["participants"] == {
        "101": "2025-01-08T00:00:00.000000+00:00",
        "102": "2025-01-08T00:00:00.000000+00:00",
    }
    kinds = [(e["data_source"], e["status"]) for e in sim.exports(STUDY_ID)]
    assert len(kinds) == 1 + 1 + 2, kinds  # participation, the battery export, ours twice
    rejected = [line for line in run.stderr.splitlines() if "is not the export requested" in line]
    assert len(rejected) == 1 and "has none of the columns of sensor_gps" in rejected[0], rejected
    assert "creating it again" in rejected[0]
    if mode == "batch":  # no file of the battery export is left, nor announced
        announced = {
            Path(url.removeprefix("file://")).name
            for m in run.messages
            if m["type"] == "BATCH"
            for url in m["manifest"]
        }
        assert {p.name for p in root.iterdir()} == announced


def test_given_sensor_creates_with_id_and_survey_creates_without_when_synced_then_ends_exact(
    sim: Simulator, tmp_path: Path
) -> None:
    """Was: the survey's export, taken by creation order while the GPS stream had its
    turn, held every create until its file was read in the survey's turn; the re-create
    of GPS's failed export waited for it, and GPS for that export, for ever."""
    sim.configure(sensor_create_answer="full", filter_create_answer="none", list_metadata="none")
    sim.faults.fail_next_exports = 1  # GPS's first export
    config = many_streams(
        sim,
        participant_ids=[101, 102, 103, 104, 105],  # every stream planned at once
        data_sources=[GPS],
        surveys=[{"activity_id": 5678, "name": "daily", "columns": ["participant_id", "Q3"]}],
        max_concurrent_exports=3,  # GPS's two exports, then the survey's first
    )
    path = catalog_file(tmp_path, config, "sensor_gps")  # and survey_daily: no participants
    catalog = json.loads(path.read_text())
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == "survey_daily":
            next(m for m in entry["metadata"] if m["breadcrumb"] == [])["metadata"]["selected"] = (
                True
            )
    path.write_text(json.dumps(catalog))
    run = run_tap(tmp_path, config, None, "--catalog", str(path), timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert multiset(run.records("sensor_gps")) == multiset(
        expected_sensor_rows(sim, config, GPS_ID)
    )
    rows = expected_by_uuid(sim, 5678, COLUMNS, END[:10])
    assert rows and Counter(r["uuid"] for r in run.records("survey_daily")) == Counter(list(rows))
    kinds = [e["export_type"] for e in reversed(sim.exports(STUDY_ID))]
    assert kinds[:3] == ["data_source", "data_source", "ACTIVITY_RESPONSE"]  # as described
    assert "failed at Avicenna; creating it again" in run.stderr
