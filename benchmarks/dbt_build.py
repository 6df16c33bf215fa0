"""The dbt package (transform/) in PostgreSQL: `dbt build` on the 1,008,000-row
accelerometer export plus a month of GPS for 20 participants, then the incremental
build after one more day of data.

The data goes the real way: the tap against the simulator, piped into target-postgres
(the version meltano.yml installs; `validate_records` off to load faster), into a
schema of the PostgreSQL at PGTEST_PORT (scripts/pg-test.sh), dropped afterwards.
dbt is the dbt-postgres utility's. Both loads are minutes apart, so the builds run
with `avicenna_incremental_lookback_minutes` 0 (the default 60 would make the second
build recompute the first load's days too).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import RunFailed, base_tap_config, catalog_selecting
from benchmarks.report import Section
from benchmarks.simulation import expected_sensor_rows, participants
from tap_avicenna.simulator import DataSourceConfig, Simulator, default_config

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / ".meltano/loaders/target-postgres/venv/bin/target-postgres"
DBT = ROOT / ".meltano/utilities/dbt-postgres/venv/bin/dbt"
STUDY_ID = 1234
GPS, ACCELEROMETER = 10, 20
UTC = dt.timezone.utc
JAN1 = dt.datetime(2025, 1, 1, tzinfo=UTC)
SCHEMA = "bench_dbt"
MODELS = "bench_dbt_analytics"
VARS = {"avicenna__using_battery": False, "avicenna_incremental_lookback_minutes": 0}
INCREMENTAL = (
    "avicenna__data_yield_daily",
    "avicenna__gps_daily",
    "avicenna__accelerometer_daily",
)


@dataclass(frozen=True)
class DbtSizes:
    """Accelerometer: one participant every `interval` s for `days`; GPS: `gps_participants`
    every 600 s for `gps_days`; then one more day of both."""

    interval: float
    days: int
    gps_participants: int
    gps_days: int


FULL_SIZES = DbtSizes(interval=0.6, days=7, gps_participants=20, gps_days=31)
QUICK_SIZES = DbtSizes(interval=6.048, days=7, gps_participants=5, gps_days=7)


@dataclass
class Build:
    wall_seconds: float
    model_seconds: float
    test_seconds: float
    rows_affected: dict[str, int]


@dataclass
class DbtResults:
    rows: dict[str, int] = field(default_factory=dict)
    load_seconds: dict[str, float] = field(default_factory=dict)
    builds: dict[str, Build] = field(default_factory=dict)
    rebuilt_days: dict[str, int] = field(default_factory=dict)  # _loaded_at after the cutoff
    new_days: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    rows_new: int = 0
    rows_total: int = 0
    homes_moved: int = 0


def _simulator(sizes: DbtSizes) -> Simulator:
    config = default_config()
    config.port = 0
    config.now = JAN1 + dt.timedelta(days=max(sizes.days, sizes.gps_days) + 2)
    config.time_scale = 0.0  # exports ready at once, the data never grows during a run
    config.pending_seconds = 0.0
    config.processing_delay = 0.0
    study = config.studies[STUDY_ID]
    study.participants = participants(sizes.gps_participants)
    study.data_sources = {
        GPS: DataSourceConfig(name="gps", interval_seconds=600, kind="gps"),
        ACCELEROMETER: DataSourceConfig(
            name="accelerometer", interval_seconds=sizes.interval, kind="accelerometer"
        ),
    }
    return Simulator(config).start()


class Postgres:
    """The benchmark's schema in the PostgreSQL at PGTEST_PORT."""

    def __init__(self) -> None:
        port = os.environ.get("PGTEST_PORT", "").strip()
        if not port.isdigit():
            raise RunFailed(
                "dbt: set PGTEST_PORT to a PostgreSQL started by scripts/pg-test.sh "
                "(`PGTEST_PORT=55432 bash scripts/pg-test.sh start`)"
            )
        self.port = int(port)

    def rows(self, query: str) -> list[tuple[t.Any, ...]]:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="tap", password="tap", dbname="tapdb"
        ) as conn:
            cursor = conn.execute(query.encode())
            return list(cursor.fetchall()) if cursor.description else []

    def scalar(self, query: str) -> t.Any:
        return self.rows(query)[0][0]

    def drop(self) -> None:
        for schema in (SCHEMA, MODELS):
            self.rows(f"drop schema if exists {schema} cascade")


def _load(workdir: Path, pg: Postgres, name: str, config: dict[str, t.Any], prefix: str) -> float:
    """The tap (only the streams starting with `prefix`) piped into target-postgres."""
    catalog = catalog_selecting(workdir, name, config, prefix)
    config_path = workdir / f"{name}.json"
    config_path.write_text(json.dumps(config))
    target_path = workdir / "target.json"
    target_path.write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "port": pg.port,
                "user": "tap",
                "password": "tap",
                "database": "tapdb",
                "default_target_schema": SCHEMA,
                "use_copy": True,
                "validate_records": False,
            }
        )
    )
    tap = [sys.executable, "-m", "tap_avicenna", "--config", str(config_path), *catalog]
    started = time.perf_counter()
    tap_run = subprocess.Popen(tap, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    target = subprocess.run(
        [str(TARGET), "--config", str(target_path)],
        stdin=tap_run.stdout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tap_run.stdout is not None
    tap_run.stdout.close()
    if tap_run.wait() != 0 or target.returncode != 0:
        raise RunFailed(f"dbt: loading {name} failed: {target.stderr[-2000:]}")
    return time.perf_counter() - started


def _dbt_build(workdir: Path, pg: Postgres, *args: str) -> Build:
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(ROOT / "transform/profiles/postgres"),
        "DBT_POSTGRES_PORT": str(pg.port),
        "DBT_POSTGRES_USER": "tap",
        "DBT_POSTGRES_PASSWORD": "tap",
        "DBT_POSTGRES_DBNAME": "tapdb",
        "DBT_POSTGRES_SCHEMA": MODELS,
        "DBT_AVICENNA_SCHEMA": SCHEMA,
        "DBT_TARGET_PATH": str(workdir / "dbt-target"),
        "DBT_LOG_PATH": str(workdir / "dbt-logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    command = [str(DBT), "--no-use-colors", "build", "--vars", json.dumps(VARS), *args]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT / "transform", env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RunFailed(f"dbt build failed:\n{done.stdout[-3000:]}")
    results = json.loads((workdir / "dbt-target/run_results.json").read_text())["results"]
    models = [r for r in results if r["unique_id"].startswith("model.")]
    tests = [r for r in results if r["unique_id"].startswith("test.")]
    return Build(
        wall_seconds=wall,
        model_seconds=sum(r["execution_time"] for r in models),
        test_seconds=sum(r["execution_time"] for r in tests),
        rows_affected={
            r["unique_id"].split(".")[-1]: int(r["adapter_response"].get("rows_affected", -1))
            for r in models
        },
    )


def run_dbt(workdir: Path, sizes: DbtSizes, results: DbtResults) -> None:
    pg = Postgres()
    if not (DBT.exists() and TARGET.exists()):
        raise RunFailed("dbt: run `bash scripts/setup.sh` (dbt-postgres, target-postgres)")
    pg.drop()
    sim = _simulator(sizes)
    try:
        _run(workdir, sizes, results, sim, pg)
    finally:
        sim.stop()
        pg.drop()


def _run(workdir: Path, sizes: DbtSizes, results: DbtResults, sim: Simulator, pg: Postgres) -> None:
    ids = [p.id for p in sim.config.studies[STUDY_ID].participants]
    accel_end = JAN1 + dt.timedelta(days=sizes.days)
    gps_end = JAN1 + dt.timedelta(days=sizes.gps_days)
    day = dt.timedelta(days=1)

    def config(
        source: int, people: list[int], start: dt.datetime, end: dt.datetime
    ) -> dict[str, t.Any]:
        return base_tap_config(
            sim.url,
            start_date=start.isoformat(),
            end_date=end.isoformat(),
            participant_ids=people,
            data_sources=[
                {"id": source, "name": "accelerometer" if source == ACCELEROMETER else "gps"}
            ],
            participants_per_export=50,
        )

    loads = [
        ("participants", config(GPS, ids, JAN1, gps_end), "participants"),
        ("accelerometer", config(ACCELEROMETER, ids[:1], JAN1, accel_end), "sensor_acc"),
        ("gps", config(GPS, ids, JAN1, gps_end), "sensor_gps"),
    ]
    for name, tap_config, prefix in loads:
        print(f"    loading {name}", file=sys.stderr, flush=True)
        results.load_seconds[name] = _load(workdir, pg, name, tap_config, prefix)
    results.rows["accelerometer"] = expected_sensor_rows(
        sim, ACCELEROMETER, ids[:1], JAN1, accel_end
    )
    results.rows["gps"] = expected_sensor_rows(sim, GPS, ids, JAN1, gps_end)
    for table, source in (("sensor_accelerometer", "accelerometer"), ("sensor_gps", "gps")):
        loaded = int(pg.scalar(f"select count(*) from {SCHEMA}.{table}"))
        if loaded != results.rows[source]:
            raise RunFailed(
                f"dbt: {table} holds {loaded:,} rows, the simulator serves {results.rows[source]:,}"
            )

    print("    dbt build (full)", file=sys.stderr, flush=True)
    results.builds["full"] = _dbt_build(workdir, pg, "--full-refresh")
    cutoff = pg.scalar(f"select max(_sdc_batched_at) from {SCHEMA}.sensor_accelerometer")
    cutoff = max(cutoff, pg.scalar(f"select max(_sdc_batched_at) from {SCHEMA}.sensor_gps"))
    homes_before = pg.rows(f"select * from {MODELS}.avicenna__gps_home order by 1")

    # one more day of both sensors, loaded after the build
    for name, tap_config, prefix in (
        (
            "accelerometer day",
            config(ACCELEROMETER, ids[:1], accel_end, accel_end + day),
            "sensor_acc",
        ),
        ("gps day", config(GPS, ids, gps_end, gps_end + day), "sensor_gps"),
    ):
        print(f"    loading {name}", file=sys.stderr, flush=True)
        results.load_seconds[name] = _load(workdir, pg, name, tap_config, prefix)
    stamp = f"timestamp '{cutoff.isoformat(sep=' ')}'"
    results.rows_new = sum(
        int(pg.scalar(f"select count(*) from {SCHEMA}.{table} where _sdc_batched_at > {stamp}"))
        for table in ("sensor_accelerometer", "sensor_gps")
    )
    results.rows_total = sum(
        int(pg.scalar(f"select count(*) from {SCHEMA}.{table}"))
        for table in ("sensor_accelerometer", "sensor_gps")
    )
    print("    dbt build (incremental)", file=sys.stderr, flush=True)
    results.builds["incremental"] = _dbt_build(workdir, pg)
    results.homes_moved = (
        len(
            set(pg.rows(f"select * from {MODELS}.avicenna__gps_home order by 1"))
            ^ set(homes_before)
        )
        // 2
    )
    for model in INCREMENTAL:
        results.rebuilt_days[model] = int(
            pg.scalar(f"select count(*) from {MODELS}.{model} where _loaded_at > {stamp}")
        )
    results.new_days = {
        sensor: int(
            pg.scalar(
                f"select count(*) from (select distinct participant_id, local_date "
                f"from {MODELS}.stg_avicenna__{sensor} where _loaded_at > {stamp}) as d"
            )
        )
        for sensor in ("accelerometer", "gps")
    }
    results.rows_read = sum(
        int(
            pg.scalar(
                f"select count(*) from {MODELS}.stg_avicenna__{sensor} as s where exists ("
                f"select 1 from {MODELS}.avicenna__data_yield_daily as y "
                f"where y.sensor = '{sensor}' "
                f"and y._loaded_at > {stamp} and y.participant_id = s.participant_id "
                "and y.local_date = s.local_date)"
            )
        )
        for sensor in ("accelerometer", "gps")
    )


def dbt_section(results: DbtResults) -> Section:
    section = Section("dbt", "8. dbt package in PostgreSQL (transform/)")
    if not results.builds:
        return section
    full, incremental = results.builds["full"], results.builds["incremental"]
    section.add(
        "rows loaded: accelerometer / gps",
        f"{results.rows['accelerometer']:,} / {results.rows['gps']:,}",
        key="rows_loaded",
    )
    section.add(
        "load (tap | target-postgres): accelerometer / gps",
        f"{results.load_seconds['accelerometer']:.1f} s / {results.load_seconds['gps']:.1f} s",
        key="load_seconds",
    )
    section.add(
        "dbt build (full): wall", full.wall_seconds, "s", key="full_build_seconds", digits=1
    )
    section.add(
        "dbt build (full): models / tests",
        f"{full.model_seconds:.1f} s / {full.test_seconds:.1f} s",
        key="full_build_split",
    )
    section.add(
        "one more day: new rows / all rows",
        f"{results.rows_new:,} / {results.rows_total:,}",
        key="new_rows",
    )
    section.add(
        "dbt build (incremental): wall",
        incremental.wall_seconds,
        "s",
        key="incremental_build_seconds",
        digits=1,
    )
    section.add(
        "dbt build (incremental): models / tests",
        f"{incremental.model_seconds:.1f} s / {incremental.test_seconds:.1f} s",
        key="incremental_build_split",
    )
    section.add(
        "incremental / full (models)",
        incremental.model_seconds / full.model_seconds,
        "x",
        key="incremental_ratio",
        digits=2,
    )
    new_days = sum(results.new_days.values())
    yield_days = results.rebuilt_days["avicenna__data_yield_daily"]
    section.add(
        "participant-days rebuilt (data yield) / with new rows",
        f"{yield_days} / {new_days}",
        goal="equal",
        met=yield_days == new_days,
        key="rebuilt_days",
    )
    section.add(
        "readings in the participant-days rebuilt (data yield)",
        results.rows_read,
        goal="= new rows",
        met=results.rows_read == results.rows_new,
        key="rows_processed",
    )
    affected = incremental.rows_affected
    section.add(
        "incremental: rows inserted into data_yield / gps_daily / accelerometer_daily",
        " / ".join(str(affected.get(model, "?")) for model in INCREMENTAL),
        key="incremental_rows_inserted",
    )
    section.add(
        "participants whose home moved (all their gps_daily days rebuilt)",
        results.homes_moved,
        key="homes_moved",
    )
    section.extra["rows_affected"] = {k: b.rows_affected for k, b in results.builds.items()}
    return section
