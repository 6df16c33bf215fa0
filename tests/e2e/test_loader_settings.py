"""The loader settings meltano.yml ships for speed land exactly what target-postgres's own
defaults land, `_sdc_*` columns included; and what those columns hold after a BATCH load.

Needs PGTEST_PORT (see tests/e2e/conftest.py); `bash scripts/test.sh` provides it.
"""

from __future__ import annotations

import contextlib
import typing as t
from pathlib import Path

import pytest
from psycopg import sql

from tap_avicenna.simulator import Simulator
from tests.e2e.conftest import (
    MELTANO,
    Done,
    Pipeline,
    Postgres,
    describe_difference,
    isolated_names,
    run,
    table_multiset,
)

pytestmark = pytest.mark.e2e

# 4 participants x 10 days of accelerometer readings every 300 s: 11,520 rows, more than
# target-postgres's default batch of 10,000 and fewer than the shipped 50,000.
SETTINGS: dict[str, t.Any] = {
    "start_date": "2025-01-01T00:00:00Z",
    "end_date": "2025-01-11T00:00:00Z",
    "participant_ids": [101, 102, 103, 104],
    "data_sources": [{"id": 20, "name": "accelerometer"}, {"id": 30, "name": "battery"}],
    "surveys": [{"activity_id": 5679, "name": "screen", "columns": ["Q1", "Q2"]}],
    "participants_per_export": 2,
    "export_window_days": 7,
    "lookback_days": 0,
    "poll_interval_seconds": 0.1,
}
TABLES = ("participants", "sensor_accelerometer", "sensor_battery", "survey_screen")

# target-postgres 0.8.1's defaults for the settings meltano.yml sets: what it shipped before.
TARGET_DEFAULTS = {
    "TARGET_POSTGRES_VALIDATE_RECORDS": "true",
    "TARGET_POSTGRES_BATCH_SIZE_ROWS": "10000",
    "TARGET_POSTGRES_ADD_RECORD_METADATA": "true",
    "TARGET_POSTGRES_ACTIVATE_VERSION": "true",
}
# The record metadata a RECORD load fills, and what it leaves NULL: the tap sends no
# ACTIVATE_VERSION message (no table version) and deletes nothing.
FILLED = (
    "_sdc_extracted_at",
    "_sdc_received_at",
    "_sdc_batched_at",
    "_sdc_sequence",
    "_sdc_sync_started_at",
)
EMPTY = ("_sdc_deleted_at", "_sdc_table_version")
SDC_COLUMNS = (*FILLED, *EMPTY)
FULL_DRAIN = "Target sink for 'sensor_accelerometer' is full. Current size is '10000'"


def load(pipeline: Pipeline, **target_env: str) -> Done:
    """`meltano run tap-avicenna target-postgres` with loader settings from the environment."""
    done = run(
        [MELTANO, "run", "--state-id-suffix", pipeline.name, "tap-avicenna", "target-postgres"],
        env={**pipeline.env(), **target_env},
        what=f"meltano run ({pipeline.name})",
    )
    assert done.returncode == 0, done.tail()
    return done


def nulls(pg: Postgres, schema: str, table: str, column: str) -> int:
    query = sql.SQL("select count(*) from {} where {} is null").format(
        sql.Identifier(schema, table), sql.Identifier(column)
    )
    return int(pg.scalar(query))


def test_given_shipped_loader_settings_when_loaded_then_same_rows_and_metadata_as_target_defaults(
    pg: Postgres, simulator: Simulator
) -> None:
    sim = simulator
    with contextlib.ExitStack() as names:
        shipped = Pipeline(sim, pg, names.enter_context(isolated_names(pg, "shipped")), SETTINGS)
        before = Pipeline(sim, pg, names.enter_context(isolated_names(pg, "defaults")), SETTINGS)
        fast = load(shipped)
        slow = load(before, **TARGET_DEFAULTS)

        # The settings reach the target through meltano: only the default batch fills up.
        assert FULL_DRAIN in slow.stderr, slow.tail()
        assert FULL_DRAIN not in fast.stderr, fast.tail()
        assert pg.count(shipped.schema, "sensor_accelerometer") == 11_520
        for table in TABLES:
            want = table_multiset(pg, before.schema, table)
            got = table_multiset(pg, shipped.schema, table)
            assert want, f"{table}: no rows loaded\n{slow.tail(1500)}"
            assert got == want, f"{table}: {describe_difference(want, got)}"
            columns = pg.column_types(shipped.schema, table)
            assert columns == pg.column_types(before.schema, table), table
            assert set(SDC_COLUMNS) <= set(columns), (table, columns)
            count = pg.count(shipped.schema, table)
            for schema in (shipped.schema, before.schema):
                for column in SDC_COLUMNS:
                    expected = count if column in EMPTY else 0
                    assert nulls(pg, schema, table, column) == expected, (schema, table, column)


def test_given_parquet_batch_files_when_loaded_then_sdc_columns_exist_but_are_null(
    pg: Postgres, simulator: Simulator, tmp_path: Path
) -> None:
    """singer-sdk's BATCH path (Sink.process_batch_files) adds no record metadata: the
    README documents it, and this test notices the day an upgrade fills the columns."""
    batch_config = {
        "encoding": {"format": "parquet", "compression": "none"},
        "storage": {"root": (tmp_path / "files").as_uri()},
    }
    with isolated_names(pg, "batchsdc") as name:
        pipeline = Pipeline(simulator, pg, name, {**SETTINGS, "batch_config": batch_config})
        done = load(pipeline)
        for table in TABLES:
            count = pg.count(name, table)
            assert count > 0, f"{table}: no rows loaded\n{done.tail(1500)}"
            assert set(SDC_COLUMNS) <= set(pg.column_types(name, table)), table
            for column in SDC_COLUMNS:
                assert nulls(pg, name, table, column) == count, (table, column)
