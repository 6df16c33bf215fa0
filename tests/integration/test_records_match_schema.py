"""Every record the tap emits matches its stream's schema, checked the way target-postgres
checks it with `validate_records: true`. meltano.yml turns that check off in the target
(it was ~70% of the target's CPU); this test is why that is safe."""

from __future__ import annotations

import copy
import typing as t
from pathlib import Path

import pytest
from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks.core import JSONSchemaValidator

from tap_avicenna.simulator import DataSourceConfig, default_config
from tests.conftest import TapRun, make_simulator, run_tap, tap_config

# Every kind of stream and every way the tap types a cell: known sensor columns, an epoch
# timestamp, a generic source typed by `fields` with a column no schema knows (schema
# growth), surveys with and without question columns (answers and metadata objects, the
# tricky survey's headers), and the participants list.
DATA_SOURCES: list[dict[str, t.Any]] = [
    {"id": 10, "name": "gps"},
    {"id": 20, "name": "accelerometer"},
    {"id": 30, "name": "battery"},
    {"id": 40, "name": "light", "fields": {"lux": "number"}},
]
SURVEYS: list[dict[str, t.Any]] = [
    {"activity_id": 5678, "name": "daily", "columns": ["Q2", "Q3", "Q4", "Q5"]},
    {"activity_id": 5679, "name": "screen", "columns": ["Q1", "Q2", "Q3"]},
    {"activity_id": 5678, "name": "sessions"},
]


def validated_records(run: TapRun) -> dict[str, int]:
    """Validate each RECORD against the latest SCHEMA of its stream with singer-sdk's
    record validator (the one target-postgres 0.8.1 runs; formats not checked, as there);
    records per stream."""
    validators: dict[str, JSONSchemaValidator] = {}
    counts: dict[str, int] = {}
    for message in run.messages:
        stream = message.get("stream", "")
        if message["type"] == "SCHEMA":
            validators[stream] = JSONSchemaValidator(message["schema"], validate_formats=False)
        elif message["type"] == "RECORD":
            validators[stream].validate(message["record"])
            counts[stream] = counts.get(stream, 0) + 1
    return counts


def test_given_every_stream_kind_when_synced_then_every_record_passes_the_targets_validation(
    tmp_path: Path,
) -> None:
    sim_config = default_config()
    study = sim_config.studies[1234]
    study.data_sources[10].timestamp_style = "epoch_ms"
    study.data_sources[40] = DataSourceConfig(
        name="light", interval_seconds=3600, kind="generic", columns=["lux", "Sensor Mode"]
    )
    sim = make_simulator(sim_config)
    try:
        config = tap_config(
            sim,
            end_date="2025-01-04T00:00:00Z",
            participant_ids=[101, 102, 103],
            data_sources=DATA_SOURCES,
            surveys=SURVEYS,
        )
        run = run_tap(tmp_path, config)
    finally:
        sim.stop()
    assert run.returncode == 0, run.stderr[-3000:]

    counts = validated_records(run)
    streams = {
        "participants",
        *(f"sensor_{s['name']}" for s in DATA_SOURCES),
        *(f"survey_{s['name']}" for s in SURVEYS),
    }
    assert set(counts) == streams, counts
    assert min(counts.values()) > 0, counts
    assert any(
        "sensor_mode" in m["schema"]["properties"]
        for m in run.schemas("sensor_light")
        if m["type"] == "SCHEMA"
    ), "the schema-growth case did not happen"


def test_given_a_mistyped_record_when_validated_like_the_target_then_rejected(
    tmp_path: Path,
) -> None:
    """The check above can fail: the same validator rejects a number field holding text."""
    sim = make_simulator()
    try:
        config = tap_config(
            sim,
            end_date="2025-01-02T00:00:00Z",
            participant_ids=[101],
            data_sources=[{"id": 20, "name": "accelerometer"}],
        )
        run = run_tap(tmp_path, config)
    finally:
        sim.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    assert validated_records(run)["sensor_accelerometer"] > 0
    schema = run.schemas("sensor_accelerometer")[-1]["schema"]
    record = copy.deepcopy(run.records("sensor_accelerometer")[0])
    record["x_axis"] = "abc"
    with pytest.raises(InvalidRecord):
        JSONSchemaValidator(schema, validate_formats=False).validate(record)
