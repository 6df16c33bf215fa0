"""The dbt package in PostgreSQL: `meltano run tap-avicenna target-postgres
dbt-postgres:build` against the simulator, the marts checked against what the
simulator serves (computed here in Python), a late load built incrementally against a
full refresh, and the integration project's seeds (tests/unit/test_dbt_package.py).

Needs PGTEST_PORT (see tests/e2e/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import typing as t
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from psycopg.rows import dict_row

from tap_avicenna.simulator import Simulator, churn_config
from tests.conftest import STUDY_ID, make_simulator
from tests.e2e.conftest import (
    MELTANO,
    ROOT,
    Done,
    Postgres,
    base_env,
    isolated_names,
    run,
    tap_env,
)
from tests.unit.mart_truth import assert_marts_match, close
from tests.unit.test_dbt_gps import check_gps_daily
from tests.unit.test_dbt_package import (
    MARTS,
    PROJECT,
    Rows,
    assert_same_tables,
    check_marts,
    compliance,
    seed_study,
)

pytestmark = pytest.mark.e2e

DBT_POSTGRES = ROOT / ".meltano" / "utilities" / "dbt-postgres" / "venv" / "bin" / "dbt"
STATE_ID = "dev:tap-avicenna-to-target-postgres"
SOURCES: list[dict[str, t.Any]] = [
    {"id": 10, "name": "gps"},
    {"id": 20, "name": "accelerometer"},
    {"id": 30, "name": "battery"},
]
START = "2025-01-12T00:00:00Z"
FIRST_END = "2025-01-18T00:00:00Z"
SECOND_END = "2025-01-22T00:00:00Z"
# The churn preset: 104 joins on 01-15, 105 dropped out on 01-20. The first run leaves
# 105 out; the second adds it, so its whole history is late data for old days.
SETTINGS: dict[str, t.Any] = {
    "start_date": START,
    "end_date": FIRST_END,
    "participant_ids": [101, 104],
    "data_sources": SOURCES,
    "surveys": [
        {
            "activity_id": 5678,
            "name": "daily",
            "columns": ["participant_id", "prompt_time", "status_id", "Q2"],
        }
    ],
    "participants_per_export": 2,
    "export_window_days": 7,
    "lookback_days": 2,
    "poll_interval_seconds": 0.1,
}
PARTICIPANTS = [101, 104, 105]
LATE: dict[str, t.Any] = {"end_date": SECOND_END, "participant_ids": PARTICIPANTS}
DAILY_MARTS = (*MARTS, "avicenna__compliance_participant")


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def pg_query(server: Postgres) -> t.Callable[[str], Rows]:
    def query(sql: str) -> Rows:
        with server.connect() as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(sql.encode())
            return list(cursor.fetchall())

    return query


@dataclass
class DbtPipeline:
    """One simulator, one source schema (also the state-id suffix), its models' schema."""

    sim: Simulator
    pg: Postgres
    name: str
    work: Path

    @property
    def models(self) -> str:
        return f"{self.name}_analytics"

    def env(self, settings: t.Mapping[str, t.Any]) -> dict[str, str]:
        return {
            **base_env(self.pg.port),
            **tap_env({"api_url": self.sim.url, **settings}),
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": self.name,
            "DBT_POSTGRES_PORT": str(self.pg.port),
            "DBT_POSTGRES_PASSWORD": "tap",
            "DBT_POSTGRES_SCHEMA": self.models,
            "DBT_POSTGRES_SOURCE_SCHEMA": self.name,
            "DBT_TARGET_PATH": str(self.work / "target"),
            "DBT_LOG_PATH": str(self.work / "logs"),
        }

    def meltano(self, args: t.Sequence[str], settings: t.Mapping[str, t.Any]) -> Done:
        done = run([MELTANO, *args], env=self.env(settings), what=f"meltano {args[0]}")
        assert done.returncode == 0, done.tail()
        return done

    def run_with_dbt(self, settings: t.Mapping[str, t.Any]) -> Done:
        """The command CI runs: `meltano run tap-avicenna target-postgres dbt-postgres:build`."""
        return self.meltano(
            [
                "run",
                "--state-id-suffix",
                self.name,
                "tap-avicenna",
                "target-postgres",
                "dbt-postgres:build",
            ],
            settings,
        )

    def marts(self) -> dict[str, Rows]:
        query = pg_query(self.pg)
        return {
            name: query(f"select * from {self.models}.{name} order by 1, 2, 3")
            for name in DAILY_MARTS
        }


@dataclass(frozen=True)
class Built:
    pipeline: DbtPipeline
    incremental: dict[str, Rows]
    full_refresh: dict[str, Rows]
    late_run: Done


@pytest.fixture(scope="module")
def built(pg: Postgres, tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Built]:
    """Two loads with dbt after each (the second late), then a full refresh of the models."""
    sim = make_simulator(churn_config())
    try:
        with isolated_names(pg, "dbt") as name:
            pipeline = DbtPipeline(sim, pg, name, tmp_path_factory.mktemp("dbt-pg"))
            try:
                pipeline.run_with_dbt(SETTINGS)
                late_run = pipeline.run_with_dbt({**SETTINGS, **LATE})
                incremental = pipeline.marts()
                pipeline.meltano(["invoke", "dbt-postgres", "build", "--full-refresh"], SETTINGS)
                yield Built(pipeline, incremental, pipeline.marts(), late_run)
            finally:
                pg.drop_schema(pipeline.models)
    finally:
        sim.stop()


# --- what the simulator serves, computed in Python --------------------------------------


def moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def survey_truth(sim: Simulator) -> dict[tuple[int, dt.date], dict[str, t.Any]]:
    columns = ["participant_id", "uuid", "record_time", "prompt_time", "status_id", "Q2"]
    body = {"export_version": "v2", "rule_set": {"columns": columns}}
    rows = sim.expected_survey_rows(STUDY_ID, 5678, body)
    lo, hi = when(START), when(SECOND_END)
    loaded = [row for row in rows if lo <= moment(row["record_time"]) < hi]
    return compliance(loaded, lambda text: moment(text).date())


def yield_truth(sim: Simulator) -> dict[tuple[int, dt.date, str], dict[str, int]]:
    truth = {}
    for source in SOURCES:
        minutes: dict[tuple[int, dt.date], set[dt.datetime]] = defaultdict(set)
        readings: dict[tuple[int, dt.date], int] = defaultdict(int)
        rows = sim.expected_rows(
            STUDY_ID, int(source["id"]), PARTICIPANTS, when(START), when(SECOND_END)
        )
        for row in rows:
            at = moment(row["record_time"])
            key = (int(row["user_id"]), at.date())
            minutes[key].add(at.replace(second=0, microsecond=0))
            readings[key] += 1
        for (participant, day), stamps in minutes.items():
            truth[(participant, day, str(source["name"]))] = {
                "readings": readings[(participant, day)],
                "minutes_with_data": len(stamps),
                "hours_with_data": len({s.replace(minute=0) for s in stamps}),
            }
    return truth


# --- tests -------------------------------------------------------------------------------


def test_given_simulator_when_meltano_runs_tap_target_and_dbt_then_compliance_is_the_simulators(
    built: Built,
) -> None:
    truth = survey_truth(built.pipeline.sim)
    marts = {
        (r["participant_id"], r["local_date"]): r
        for r in built.incremental["avicenna__compliance_daily"]
    }
    assert set(marts) == set(truth)
    assert len({p for p, _ in truth}) == 5, "every participant answers the survey"
    for key, values in truth.items():
        for name, value in values.items():
            assert close(marts[key][name], value), (key, name, marts[key][name], value)


def test_given_simulator_when_meltano_runs_tap_target_and_dbt_then_data_yield_is_the_simulators(
    built: Built,
) -> None:
    truth = yield_truth(built.pipeline.sim)
    marts = {
        (r["participant_id"], r["local_date"], r["sensor"]): r
        for r in built.incremental["avicenna__data_yield_daily"]
    }
    assert set(marts) == set(truth)
    for key, values in truth.items():
        assert {name: int(marts[key][name]) for name in values} == values, key
    # the late participant's whole history: 105 from the start to its drop-out (01-20)
    days_105 = sorted({day for participant, day, _ in truth if participant == 105})
    assert days_105[0] == dt.date(2025, 1, 12) and days_105[-1] == dt.date(2025, 1, 19)


def test_given_late_load_when_built_incrementally_then_same_marts_as_a_full_refresh(
    built: Built,
) -> None:
    assert "incremental model" in built.late_run.stdout + built.late_run.stderr
    assert_same_tables(built.full_refresh, built.incremental)
    summary = built.incremental["avicenna__participant_day_summary"]
    dropped = sorted(r["local_date"] for r in summary if r["participant_id"] == 105)
    assert dropped[-1] == dt.date(2025, 1, 19) and all(
        r["is_dropped"] for r in summary if r["participant_id"] == 105
    )


@pytest.mark.parametrize("zone", ["America/New_York", "Australia/Sydney"])
def test_given_integration_seeds_when_dbt_builds_in_postgres_then_marts_hold_the_known_values(
    pg: Postgres, tmp_path: Path, zone: str
) -> None:
    """The project's own vars (America/New_York: check_marts), and Australia/Sydney's
    daylight-saving days: every non-GPS mart equals its recomputation; in both zones
    avicenna__gps_daily equals its own (tests/unit/test_dbt_gps.py)."""
    with isolated_names(pg, "dbtit") as schema:
        env = {
            **os.environ,
            "DBT_PROFILES_DIR": str(PROJECT),
            "DBT_TARGET_PATH": str(tmp_path / "target"),
            "DBT_LOG_PATH": str(tmp_path / "logs"),
            "DBT_POSTGRES_PORT": str(pg.port),
            "DBT_POSTGRES_PASSWORD": "tap",
            "DBT_SCHEMA": schema,
            "DBT_AVICENNA_SCHEMA": schema,
        }
        build = ["build", "--target", "postgres", "--vars", json.dumps({"avicenna_timezone": zone})]
        # the seeds first: the survey models find the survey tables when they are compiled
        for args in (["deps"], ["seed", "--target", "postgres"], build):
            command: list[str | Path] = [DBT_POSTGRES, "--no-use-colors", *args]
            command += ["--project-dir", PROJECT]
            done = run(command, env=env, what=f"dbt {args[0]}")
            assert done.returncode == 0, done.tail()
        if zone == "America/New_York":
            check_marts(pg_query(pg), schema)
        else:
            assert_marts_match(pg_query(pg), schema, seed_study(zone))
        gps = pg_query(pg)(f"select * from {schema}.avicenna__gps_daily")
        check_gps_daily(gps, ZoneInfo(zone))
