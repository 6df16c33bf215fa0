"""The fast path (`tap-avicenna--fast target-postgres--fast`, README "Throughput, BATCH
and scale-out") against the shipped upsert path, on one simulator with late uploads:
two nights each, dbt after each, then the compaction of the appended copies.

Needs PGTEST_PORT (see tests/e2e/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass

import pytest
from psycopg import sql

from tap_avicenna.simulator import default_config
from tests.conftest import STUDY_ID, make_simulator
from tests.e2e.conftest import Done, Postgres, isolated_names, meltano
from tests.e2e.test_dbt_postgres import SETTINGS as DBT_SETTINGS
from tests.e2e.test_dbt_postgres import SOURCES, DbtPipeline
from tests.unit.test_dbt_package import Rows, assert_same_tables

pytestmark = pytest.mark.e2e

FAST_STATE_ID = "dev:tap-avicenna--fast-to-target-postgres--fast"
SENSORS = [f"sensor_{source['name']}" for source in SOURCES]
NIGHTS = ("2025-01-04T00:00:00Z", "2025-01-05T00:00:00Z")  # the second one day later
# test_dbt_postgres's study (sources, survey, export sizes) from 01-01, lookback 1 day
SETTINGS: dict[str, t.Any] = {
    **DBT_SETTINGS,
    "start_date": "2025-01-01T00:00:00Z",
    "participant_ids": [101, 102],
    "lookback_days": 1,
    # the lookback sent again in full: the appended copies and their compaction
    "skip_unchanged_days": False,
}
UPLOAD_DELAY_SECONDS = 6 * 3600  # readings reach the server up to 6 h late


class FastPipeline(DbtPipeline):
    """The same, through the fast path's plugins of meltano.yml."""

    def env(self, settings: t.Mapping[str, t.Any]) -> dict[str, str]:
        """The settings also under the inherited extractor's own prefix: its `config:`
        in meltano.yml (`batch_config`) wins over the parent's TAP_AVICENNA_* variables."""
        env = super().env(settings)
        parent = "TAP_AVICENNA_"
        own = {
            f"TAP_AVICENNA__FAST_{name[len(parent) :]}": value
            for name, value in env.items()
            if name.startswith(parent) and not name.startswith(parent + "_")
        }
        return {**env, **own}

    def run_with_dbt(self, settings: t.Mapping[str, t.Any]) -> Done:
        return self.meltano(
            [
                "run",
                "--state-id-suffix",
                self.name,
                "tap-avicenna--fast",
                "target-postgres--fast",
                "dbt-postgres:build",
            ],
            settings,
        )


@dataclass(frozen=True)
class Night:
    """What each path left after one night: marts, and per sensor table the raw rows and
    the distinct row ids."""

    marts: dict[str, dict[str, Rows]]  # path -> mart -> rows
    rows: dict[str, dict[str, int]]  # path -> table -> count(*)
    row_ids: dict[str, dict[str, set[str]]]  # path -> table -> distinct _row_id


@dataclass(frozen=True)
class Runs:
    nights: list[Night]
    compacted: Night
    fast_schema: str
    runs: list[Done]


def without_load_times(marts: dict[str, Rows]) -> dict[str, Rows]:
    """The marts without `_loaded_at` (the loader's clock or the tap's: they differ)."""
    return {
        name: [{k: v for k, v in row.items() if k != "_loaded_at"} for row in rows]
        for name, rows in marts.items()
    }


def snapshot(pg: Postgres, paths: dict[str, DbtPipeline]) -> Night:
    return Night(
        marts={path: without_load_times(p.marts()) for path, p in paths.items()},
        rows={path: {s: pg.count(p.name, s) for s in SENSORS} for path, p in paths.items()},
        row_ids={path: {s: pg.row_ids(p.name, s) for s in SENSORS} for path, p in paths.items()},
    )


@pytest.fixture(scope="module")
def runs(pg: Postgres, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Runs]:
    config = default_config()
    config.studies[STUDY_ID].upload_delay_seconds = UPLOAD_DELAY_SECONDS
    sim = make_simulator(config)
    batches = tmp_path_factory.mktemp("fast-batches")
    fast_settings = {
        **SETTINGS,
        "batch_config": {
            "encoding": {"format": "parquet", "compression": "none"},
            "storage": {"root": batches.as_uri(), "prefix": "avicenna-"},
            "batch_size": 50000,
        },
    }
    try:
        with isolated_names(pg, "upsert") as upsert_name, isolated_names(pg, "fast") as fast_name:
            upsert = DbtPipeline(sim, pg, upsert_name, tmp_path_factory.mktemp("dbt-upsert"))
            fast = FastPipeline(sim, pg, fast_name, tmp_path_factory.mktemp("dbt-fast"))
            paths: dict[str, DbtPipeline] = {"upsert": upsert, "fast": fast}
            try:
                nights, done = [], []
                for end in NIGHTS:
                    done.append(upsert.run_with_dbt({**SETTINGS, "end_date": end}))
                    done.append(fast.run_with_dbt({**fast_settings, "end_date": end}))
                    nights.append(snapshot(pg, paths))
                assert any(batches.iterdir()), "no file in the fast path's batch_config root"
                last = {**fast_settings, "end_date": NIGHTS[-1]}
                fast.meltano(
                    ["invoke", "dbt-postgres", "run-operation", "avicenna_compact_raw"], last
                )
                fast.meltano(["invoke", "dbt-postgres", "build"], last)
                yield Runs(nights, snapshot(pg, paths), fast_name, done)
            finally:
                for pipeline in paths.values():
                    pg.drop_schema(pipeline.models)
                meltano(
                    ["state", "clear", "--force", f"{FAST_STATE_ID}:{fast_name}"],
                    pg.port,
                    "meltano state clear",
                )
    finally:
        sim.stop()


def test_given_two_nights_with_late_rows_when_loaded_fast_then_the_marts_of_the_upsert_path(
    runs: Runs,
) -> None:
    """After each night the marts built on the appended tables equal those built on the
    upserted ones (but `_loaded_at`), though the raw tables hold copies."""
    first, second = runs.nights
    for night in (first, second):
        assert night.marts["fast"]["avicenna__participant_day_summary"]
        assert_same_tables(night.marts["fast"], night.marts["upsert"])
        assert night.row_ids["fast"] == night.row_ids["upsert"]
    # the lookback day was sent again and appended: more rows than row ids
    copies = {s: second.rows["fast"][s] - len(second.row_ids["fast"][s]) for s in SENSORS}
    assert all(n > 0 for n in copies.values()), copies
    assert all(second.rows["upsert"][s] == len(second.row_ids["upsert"][s]) for s in SENSORS)
    # late uploads: rows recorded before the first night's end, loaded on the second
    for table in SENSORS:
        late = second.row_ids["upsert"][table] - first.row_ids["upsert"][table]
        assert late and first.row_ids["upsert"][table] <= second.row_ids["upsert"][table]


def test_given_late_rows_when_the_second_night_loads_then_they_are_rows_of_an_earlier_day(
    runs: Runs, pg: Postgres
) -> None:
    """The simulator's late uploads put rows of the first night's last day in the second
    night's exports only: both paths load them (checked on the fast path's table)."""
    first, second = runs.nights
    table = "sensor_battery"
    late = second.row_ids["fast"][table] - first.row_ids["fast"][table]
    query = sql.SQL("select count(*) from {} where _row_id = any(%s) and record_time < %s")
    with pg.connect() as conn:
        found = conn.execute(
            query.format(sql.Identifier(runs.fast_schema, table)),
            (sorted(late), dt.datetime(2025, 1, 4)),
        ).fetchone()
    assert found is not None and found[0] > 0


def test_given_fast_loads_then_tables_without_key_and_a_load_time_from_the_tap(
    runs: Runs, pg: Postgres
) -> None:
    """The sensor tables were appended (no primary key) from BATCH files: `_sdc_batched_at`
    is NULL in every row, the tap's `_extracted_at` in none."""
    for table in SENSORS:
        relation = sql.Identifier(runs.fast_schema, table)
        keys = pg.scalar(
            sql.SQL(
                "select count(*) from pg_constraint where contype = 'p' and conrelid = {}::regclass"
            ).format(sql.Literal(f"{runs.fast_schema}.{table}"))
        )
        assert keys == 0, table
        stamped = sql.SQL(
            "select count(*) filter (where _sdc_batched_at is null and _extracted_at is not null)"
            " = count(*) from {}"
        )
        assert pg.scalar(stamped.format(relation)) is True, table


def test_given_appended_copies_when_compacted_then_one_row_per_row_id_and_the_same_marts(
    runs: Runs,
) -> None:
    compacted, second = runs.compacted, runs.nights[-1]
    for table in SENSORS:
        assert compacted.rows["fast"][table] == len(compacted.row_ids["fast"][table]), table
    assert compacted.row_ids["fast"] == second.row_ids["upsert"]
    assert_same_tables(compacted.marts["fast"], second.marts["upsert"])


def test_given_the_fast_plugins_when_meltano_resolves_them_then_parquet_and_no_sensor_keys(
    pg: Postgres,
) -> None:
    """meltano.yml's fast plugins: Parquet BATCH, `__key_properties__: []` for `sensor_*`,
    and append-only (what the README documents)."""
    done = meltano(["config", "--unsafe", "print", "tap-avicenna--fast"], pg.port, "config")
    assert done.returncode == 0, done.tail()
    assert '"sensor_*"' in done.stdout and '"__key_properties__": []' in done.stdout
    assert '"format": "parquet"' in done.stdout
    done = meltano(["config", "--unsafe", "print", "target-postgres--fast"], pg.port, "config")
    assert done.returncode == 0 and '"load_method": "append-only"' in done.stdout, done.tail()
