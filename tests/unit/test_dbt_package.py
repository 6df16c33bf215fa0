"""The dbt package (transform/) on its integration-test seeds, in DuckDB: every model
built and tested by `dbt build`, and the marts checked against values computed here
from the seeds' rows and the synthetic GPS track's geometry (not from the SQL).

Needs the dbt-duckdb utility (`bash scripts/setup.sh` installs it); its dbt and DuckDB
run in one process for the module (tests/unit/dbt_session.py). The same checks run in
PostgreSQL in tests/e2e/test_dbt_postgres.py.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import importlib.util
import json
import math
import typing as t
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import pytest

from tests.unit.dbt_session import DbtSession
from tests.unit.mart_truth import (
    Statuses,
    Study,
    as_date,
    assert_marts_match,
    close,
    compliance_measures,
    same_value,
)

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "transform" / "integration_tests"
DUCKDB_VENV = ROOT / ".meltano" / "utilities" / "dbt-duckdb" / "venv" / "bin"
ZONE = ZoneInfo("America/New_York")
TOLERANCE = 0.01  # GPS geometry: 1% of the known value
SENSORS = ("gps", "accelerometer", "battery")

Rows = list[dict[str, t.Any]]
Query = t.Callable[[str], Rows]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_seeds", PROJECT / "generate_seeds.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- what the seeds say, computed in Python ---------------------------------------


def seed_rows(name: str) -> list[dict[str, str]]:
    with (PROJECT / "seeds" / f"{name}.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def local_time(text: str) -> dt.datetime:
    """A seed's UTC timestamp text as local wall-clock time."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).astimezone(ZONE)


def compliance(
    prompts: t.Iterable[dict[str, str]], day: t.Callable[[str], dt.date]
) -> dict[tuple[int, dt.date], dict[str, t.Any]]:
    """Compliance per (participant, day of the prompt) of exported survey rows (UTC
    timestamp texts), with the package's status vars (mart_truth)."""
    days: dict[tuple[int, dt.date], list[dict[str, str]]] = defaultdict(list)
    for row in prompts:
        days[(int(row["participant_id"]), day(row["prompt_time"]))].append(row)
    return {key: compliance_measures(rows, Statuses()) for key, rows in days.items()}


def seed_study(zone: str) -> Study:
    """The seeds as the rows the package reads, in `zone`."""
    names = [path.stem for path in sorted((PROJECT / "seeds").glob("*.csv"))]
    return Study(
        participants=seed_rows("participants"),
        sensors={n[7:]: seed_rows(n) for n in names if n.startswith("sensor_")},
        surveys={n[7:]: seed_rows(n) for n in names if n.startswith("survey_")},
        zone=zone,
    )


def expected_compliance() -> dict[tuple[t.Any, ...], dict[str, t.Any]]:
    return seed_study(ZONE.key).compliance()


def expected_yield() -> dict[tuple[t.Any, ...], dict[str, int]]:
    counts = ("readings", "minutes_with_data", "hours_with_data")
    return {
        key: {name: values[name] for name in counts}
        for key, values in seed_study(ZONE.key).data_yield().items()
    }


def expected_summary_days() -> dict[int, list[dt.date]]:
    """Each participant's local days inside the synced window: start to end (exclusive)
    or, while open, to the last day with data of any kind."""
    out: dict[int, list[dt.date]] = defaultdict(list)
    for participant, day in sorted(seed_study(ZONE.key).summary()):
        out[participant].append(day)
    return dict(out)


# --- checks shared with the PostgreSQL run -------------------------------------------


def assert_same_tables(actual: dict[str, Rows], expected: dict[str, Rows]) -> None:
    assert set(actual) == set(expected)
    for table, rows in expected.items():
        assert len(actual[table]) == len(rows), (table, len(actual[table]), len(rows))
        for got, want in zip(actual[table], rows, strict=True):
            differ = {k: (got.get(k), v) for k, v in want.items() if not same_value(got.get(k), v)}
            assert not differ and set(got) == set(want), f"{table} {want}: {differ}"


def by_day(rows: Rows, *extra: str) -> dict[tuple[t.Any, ...], dict[str, t.Any]]:
    return {
        (int(r["participant_id"]), as_date(r["local_date"]), *(r[e] for e in extra)): r
        for r in rows
    }


def check_marts(query: Query, schema: str) -> None:
    """The marts of the integration project hold what the seeds say."""
    compliance = by_day(query(f"select * from {schema}.avicenna__compliance_daily"))
    want = expected_compliance()
    assert set(compliance) == set(want)
    for key, values in want.items():
        got = compliance[key]
        for name, value in values.items():
            assert close(got[name], value), (key, name, got[name], value)
    # the 23:30 local prompt of participant 1 counts on its local day, not the UTC one
    assert (1, dt.date(2025, 3, 1)) in compliance

    data_yield = by_day(query(f"select * from {schema}.avicenna__data_yield_daily"), "sensor")
    assert set(data_yield) == set(expected_yield())
    for sensor_day, counts in expected_yield().items():
        got_counts = {name: int(data_yield[sensor_day][name]) for name in counts}
        assert got_counts == counts, sensor_day
    # a whole local day of fixes every 5 minutes, across the UTC midnight: one day
    assert data_yield[(1, dt.date(2025, 3, 1), "gps")]["minutes_with_data"] == 288
    assert data_yield[(1, dt.date(2025, 3, 1), "gps")]["hours_with_data"] == 24
    # every reading loaded twice (same _row_id) counts once
    assert data_yield[(3, dt.date(2025, 3, 1), "accelerometer")]["readings"] == 30

    gps = by_day(query(f"select * from {schema}.avicenna__gps_daily"))
    seeds = load_generator()
    home_day, walk_day = gps[(1, dt.date(2025, 3, 1))], gps[(1, dt.date(2025, 3, 2))]
    # a day at home: no movement, 24 hours at home, one place
    assert abs(home_day["distance_meters"]) < 0.5, home_day
    assert abs(home_day["radius_of_gyration_meters"]) < 0.5, home_day
    assert abs(home_day["minutes_at_home"] - 1440) < 1e-6, home_day
    assert home_day["places"] == 1, home_day
    # the square walk: the path, the radius of gyration of a square's perimeter
    # (side / sqrt 3) and the opposite corner (side * sqrt 2), within 1%
    side = seeds.SIDE_METERS
    path = (seeds.WALK_FIXES - 1) * seeds.WALK_STEP_METERS
    assert math.isclose(walk_day["distance_meters"], path, rel_tol=TOLERANCE), walk_day
    assert math.isclose(
        walk_day["radius_of_gyration_meters"], side / math.sqrt(3), rel_tol=TOLERANCE
    ), walk_day
    assert math.isclose(
        walk_day["max_distance_from_home_meters"], side * math.sqrt(2), rel_tol=TOLERANCE
    ), walk_day
    assert walk_day["fixes"] == seeds.WALK_FIXES + 1 and walk_day["valid_fixes"] == seeds.WALK_FIXES

    summary = query(
        f"select * from {schema}.avicenna__participant_day_summary "
        "order by participant_id, local_date"
    )
    days: dict[int, list[dt.date]] = defaultdict(list)
    for row in summary:
        days[int(row["participant_id"])].append(as_date(row["local_date"]))
    assert dict(days) == expected_summary_days()
    rows = by_day(summary)
    # the dropped participant's day without data, and an open participant's
    for key in [(2, dt.date(2025, 3, 2)), (3, dt.date(2025, 3, 2)), (3, dt.date(2025, 3, 3))]:
        day = rows[key]
        assert not day["has_data"], day
        assert day["prompts_delivered"] == 0 and day["accelerometer_minutes_with_data"] == 0, day
        assert day["response_rate"] is None and day["distance_meters"] is None, day
    assert rows[(2, dt.date(2025, 3, 1))]["is_dropped"]

    answers = query(f"select * from {schema}.stg_avicenna__survey_answers")
    pairs = sorted((r["survey_name"], r["session_uuid"], int(r["question_id"])) for r in answers)
    expected_pairs = sorted(
        [("ema", r["uuid"], 1) for r in seed_rows("survey_ema") if r["q1"]]
        + [("weekly", r["uuid"], 7) for r in seed_rows("survey_weekly")]
        + [("diary", r["uuid"], 3) for r in seed_rows("survey_diary") if r["q3"]]
    )
    assert pairs == expected_pairs
    metadata = [r["answer_metadata"] for r in answers if r["survey_name"] == "ema"]
    parsed = [m if isinstance(m, dict) else json.loads(m) for m in metadata]  # jsonb / text
    assert [m["question_id"] for m in parsed] == [1] * 4, metadata

    # every non-GPS mart, daylight-saving days included, equals its recomputation
    assert_marts_match(query, schema, seed_study(ZONE.key))


# --- DuckDB ----------------------------------------------------------------------------


@dataclass
class DuckDBProject:
    """The integration project built into one DuckDB file by one dbt session."""

    path: Path
    work: Path
    schema: str = "it"

    @property
    def env(self) -> dict[str, str]:
        """dbt's environment: the profile's file and schemas, target and logs in `work`."""
        return {
            "DBT_PROFILES_DIR": str(PROJECT),
            "DBT_TARGET_PATH": str(self.work / "target"),
            "DBT_LOG_PATH": str(self.work / "logs"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_DUCKDB_PATH": str(self.path),
            "DBT_SCHEMA": self.schema,
            "DBT_AVICENNA_SCHEMA": self.schema,
        }

    @cached_property
    def session(self) -> DbtSession:
        return DbtSession(DUCKDB_VENV / "python", PROJECT, self.env, self.work / "session.log")

    def build(self, *args: str) -> str:
        return self.session.dbt("build", *args)

    def execute(self, sql: str, mode: str = "read") -> Rows:
        """SQL run by the dbt session's duckdb (the tests' environment has none), in a
        read-only transaction unless `mode` is "write"."""
        return self.session.sql(sql, write=mode == "write")

    def query(self, sql: str) -> Rows:
        return self.execute(sql)


@contextlib.contextmanager
def seeded_project(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[DuckDBProject]:
    """A new DuckDB file with the package's dependencies installed and the seeds loaded."""
    if not (DUCKDB_VENV / "dbt").exists():
        pytest.fail("the dbt-duckdb utility is missing: run `bash scripts/setup.sh`", pytrace=False)
    work = tmp_path_factory.mktemp("dbt-duckdb")
    project = DuckDBProject(work / "warehouse.duckdb", work)
    try:
        project.session.dbt("deps")
        # the seeds first: the survey models find the survey tables when they are compiled
        project.session.dbt("seed")
        yield project
    finally:
        project.session.close()


@pytest.fixture(scope="module")
def duckdb_project(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[DuckDBProject]:
    with seeded_project(tmp_path_factory) as project:
        output = project.build()
        assert "ERROR=0" in output and "WARN=0" in output, output[-3000:]
        yield project


def test_given_generator_when_run_then_the_committed_seeds_are_its_output() -> None:
    seeds = load_generator()
    for name, (columns, rows) in seeds.TABLES.items():
        committed = (PROJECT / "seeds" / f"{name}.csv").read_text()
        assert committed == seeds.render(columns, rows), (
            f"{name}.csv is stale: run generate_seeds.py"
        )


def test_given_seeds_when_dbt_builds_in_duckdb_then_marts_hold_the_known_values(
    duckdb_project: DuckDBProject,
) -> None:
    check_marts(duckdb_project.query, duckdb_project.schema)


def test_given_survey_table_without_participant_id_when_built_then_left_out_with_a_warning(
    duckdb_project: DuckDBProject,
) -> None:
    """A survey whose `columns` left out `participant_id` loads a table without it: the
    survey models build without that table and dbt's warning says what to add."""
    project, schema = duckdb_project, duckdb_project.schema
    project.execute(
        f"create table {schema}.survey_nameless as "
        f"select * exclude (participant_id) from {schema}.survey_ema",
        mode="write",
    )
    survey_models = ("--select", "stg_avicenna__survey_prompts", "stg_avicenna__survey_answers")
    try:
        output = project.build(*survey_models)
        assert f"{schema}.survey_nameless has no participant_id column and is left out" in output, (
            output[-3000:]
        )
        for model in ("stg_avicenna__survey_prompts", "stg_avicenna__survey_answers"):
            names = project.query(f"select distinct survey_name from {schema}.{model}")
            assert {r["survey_name"] for r in names} >= {"ema"}, model
            assert "nameless" not in {r["survey_name"] for r in names}, model
    finally:  # the models were built without it: dropping it leaves them as they were
        project.execute(f"drop table {schema}.survey_nameless", mode="write")


MARTS = (
    "avicenna__compliance_daily",
    "avicenna__data_yield_daily",
    "avicenna__gps_daily",
    "avicenna__accelerometer_daily",
    "avicenna__battery_daily",
    "avicenna__participant_day_summary",
)


def snapshot(project: DuckDBProject) -> dict[str, Rows]:
    return {
        name: project.query(
            f"select * exclude (_loaded_at) from {project.schema}.{name} order by all"
            if name != "avicenna__participant_day_summary"
            else f"select * from {project.schema}.{name} order by all"
        )
        for name in MARTS
    }


def test_given_late_rows_when_built_incrementally_then_same_marts_as_a_full_refresh(
    duckdb_project: DuckDBProject,
) -> None:
    """Late data for an old day (participant 3's 03-02, which had none) and a copy of an
    already loaded row: the incremental build adds that day, and its marts equal those of
    a full refresh."""
    project, schema = duckdb_project, duckdb_project.schema
    late = "2025-12-01 12:00:00"  # after every seed's load time
    project.execute(
        f"insert into {schema}.sensor_accelerometer "
        f"select md5(_row_id || 'late'), participant_id, record_time + interval 1 day, "
        f"x_axis, y_axis, z_axis, accu, "
        f"timestamp '{late}' from {schema}.sensor_accelerometer "
        f"where participant_id = 3 and record_time < timestamp '2025-03-02'",
        mode="write",
    )
    project.execute(
        f"insert into {schema}.sensor_accelerometer select _row_id, participant_id, record_time, "
        f"x_axis, y_axis, z_axis, accu, timestamp '{late}' from {schema}.sensor_accelerometer "
        f"where participant_id = 3 and record_time >= timestamp '2025-03-04' limit 1",
        mode="write",
    )
    keep_seeds = ("--exclude-resource-type", "seed")  # `dbt build` would load them again
    project.build(*keep_seeds)
    incremental = snapshot(project)
    days = {
        (r["participant_id"], r["local_date"]) for r in incremental["avicenna__accelerometer_daily"]
    }
    assert (3, "2025-03-02") in days
    project.build("--full-refresh", *keep_seeds)
    assert_same_tables(snapshot(project), incremental)


def test_given_meltano_yml_when_utilities_read_then_dbt_pins_install_offline() -> None:
    """dbt-core 1.12.1+ needs a download from GitHub while installing: the utilities pin
    1.12.0 and its parser; dbt-duckdb uses target-duckdb's duckdb (one file format)."""
    import yaml

    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    utilities = {u["name"]: u["pip_url"].split() for u in project["plugins"]["utilities"]}
    assert set(utilities) == {"dbt-postgres", "dbt-duckdb"}
    for packages in utilities.values():
        assert (
            "dbt-core==1.12.0" in packages and "dbt-core-experimental-parser==2.0.0a4" in packages
        )
    loaders = {  # the inherited ones (target-postgres--fast) install their parent's
        loader["name"]: loader["pip_url"].split()
        for loader in project["plugins"]["loaders"]
        if "inherit_from" not in loader
    }
    duckdb = [p for p in loaders["target-duckdb"] if p.startswith("duckdb==")]
    assert duckdb and duckdb[0] in utilities["dbt-duckdb"]
