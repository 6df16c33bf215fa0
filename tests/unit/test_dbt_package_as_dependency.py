"""The dbt package (transform/) as a user installs it: a dbt project of their own, in a
folder outside this checkout, that lists it in `packages.yml` (`local:`, and `git:` with
`subdirectory: transform` from a file URL of a commit), sets its vars the two ways dbt
and fivetran's packages document (scoped under `avicenna:`, and global), loads the
integration seeds where a Hub-style loader writes, and selects from two of our marts in
a model of its own, in DuckDB. From that project: the errors and warnings of tables
missing from the source schema, and the gap test on loaded days with holes.

Runs in one dbt-duckdb process (tests/unit/dbt_session.py); both projects share its
DuckDB file and write to schemas of their own.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import typing as t
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from tests.unit.dbt_session import DbtSession
from tests.unit.mart_truth import as_date
from tests.unit.test_dbt_package import (
    DUCKDB_VENV,
    PROJECT,
    ROOT,
    expected_compliance,
    expected_yield,
)

TIMEZONE = "America/New_York"  # the seeds' zone: with the default, UTC, the days differ
USER_MODEL = """\
{#- The user's own model over two of the package's marts: a participant-day's prompts
    and sensor readings. -#}
with compliance as (
    select * from {{ ref('avicenna', 'avicenna__compliance_daily') }}
),

data_yield as (
    select participant_id, local_date, sum(readings) as readings
    from {{ ref('avicenna__data_yield_daily') }}
    group by participant_id, local_date
),

final as (
    select
        coalesce(compliance.participant_id, data_yield.participant_id) as participant_id,
        coalesce(compliance.local_date, data_yield.local_date) as local_date,
        coalesce(compliance.prompts_delivered, 0) as prompts_delivered,
        coalesce(compliance.prompts_answered, 0) as prompts_answered,
        coalesce(data_yield.readings, 0) as readings
    from compliance
    full outer join data_yield
        on compliance.participant_id = data_yield.participant_id
        and compliance.local_date = data_yield.local_date
)

select * from final
"""
# dbt's default puts a custom schema after the target's (`<target>_<custom>`); loaded
# tables live in a schema of the loader's, which the seeds stand in for
SCHEMA_MACRO = """\
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name or target.schema }}
{%- endmacro %}
"""


def snapshot_of_transform(destination: Path) -> str:
    """A git repository at `destination` whose one commit holds transform/ as a clone of
    this checkout would (tracked and unignored files, with their working-tree content);
    returns the commit."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "transform"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
            cwd=destination,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "snapshot")
    return git("rev-parse", "HEAD")


def write_user_project(
    folder: Path,
    package: dict[str, str],
    vars_: dict[str, t.Any],
    source_schema: str,
    aliases: t.Mapping[str, str] = {},
) -> None:
    """A user's dbt project in `folder`: the package, the vars, the integration seeds
    (with their column types) in `source_schema`, those of `aliases` loaded under
    another name, and one model over two marts. The integration project's
    avicenna_gaps_max_empty_days comes along: the seeds are days months apart."""
    integration = yaml.safe_load((PROJECT / "dbt_project.yml").read_text())
    gaps = {key: integration["vars"][key] for key in ("avicenna_gaps_max_empty_days",)}
    seed_types = integration["seeds"]["avicenna_integration_tests"]
    for seed, alias in aliases.items():
        seed_types[seed]["+alias"] = alias
    (folder / "models").mkdir(parents=True)
    (folder / "macros").mkdir()
    shutil.copytree(PROJECT / "seeds", folder / "seeds")
    project = {
        "name": "study",
        "version": "1.0.0",
        "config-version": 2,
        "profile": "study",
        "vars": {**gaps, **vars_},
        "seeds": {"study": {"+schema": source_schema, **seed_types}},
    }
    (folder / "dbt_project.yml").write_text(yaml.safe_dump(project, sort_keys=False))
    (folder / "packages.yml").write_text(yaml.safe_dump({"packages": [package]}))
    profile = {
        "study": {
            "target": "dev",
            "outputs": {
                target: {
                    "type": "duckdb",
                    "path": "{{ env_var('DBT_DUCKDB_PATH') }}",
                    "schema": schema,
                    "threads": 2,
                }
                for target, schema in [("dev", folder.name), ("scratch", f"{folder.name}_scratch")]
            },
        }
    }
    (folder / "profiles.yml").write_text(yaml.safe_dump(profile))
    (folder / "macros" / "generate_schema_name.sql").write_text(SCHEMA_MACRO)
    (folder / "models" / "study_days.sql").write_text(USER_MODEL)


def expected_study_days() -> dict[tuple[int, dt.date], tuple[int, int, int]]:
    """(prompts delivered, answered, readings) per participant-day, from the seeds."""
    out: dict[tuple[int, dt.date], list[int]] = defaultdict(lambda: [0, 0, 0])
    for (participant, day), values in expected_compliance().items():
        out[(participant, day)][0] = values["prompts_delivered"]
        out[(participant, day)][1] = values["prompts_answered"]
    for (participant, day, _sensor), counts in expected_yield().items():
        out[(participant, day)][2] += counts["readings"]
    return {key: (a, b, c) for key, (a, b, c) in out.items()}


class UserProjects:
    """The user's projects, run by one dbt session in `work`."""

    def __init__(self, work: Path) -> None:
        self.work = work
        env = {
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_DUCKDB_PATH": str(work / "warehouse.duckdb"),
            "DBT_LOG_PATH": str(work / "logs"),
        }
        self.session = DbtSession(DUCKDB_VENV / "python", work, env, work / "session.log")

    def dbt(self, folder: Path, *args: str) -> str:
        return self.session.dbt(*args, *self.project(folder))

    def scratch(self, folder: Path, vars_: str, *args: str) -> tuple[bool, str]:
        """dbt `args` in the project of `folder` with `--vars vars_`, into its target
        `scratch` (a schema of its own, so its models stay as they were): whether dbt
        succeeded, and its output."""
        return self.session.dbt_outcome(
            *args, "--vars", vars_, "--target", "scratch", *self.project(folder)
        )

    @staticmethod
    def project(folder: Path) -> tuple[str, ...]:
        return ("--project-dir", str(folder), "--profiles-dir", str(folder))

    def build(self, folder: Path) -> str:
        """`dbt deps`, the seeds (the loader's tables), then everything else."""
        self.dbt(folder, "deps")
        self.dbt(folder, "seed")
        # after the seeds: the survey models find the survey tables when compiled
        return self.dbt(folder, "build", "--exclude-resource-type", "seed")

    def study_days(self, schema: str) -> dict[tuple[int, dt.date], tuple[int, int, int]]:
        rows = self.session.sql(f"select * from {schema}.study_days", write=False)
        return {
            (int(r["participant_id"]), as_date(r["local_date"])): (
                int(r["prompts_delivered"]),
                int(r["prompts_answered"]),
                int(r["readings"]),
            )
            for r in rows
        }


@pytest.fixture(scope="module")
def user_projects(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[UserProjects]:
    if not (DUCKDB_VENV / "dbt").exists():
        pytest.fail("the dbt-duckdb utility is missing: run `bash scripts/setup.sh`", pytrace=False)
    projects = UserProjects(tmp_path_factory.mktemp("dbt-user"))
    try:
        yield projects
    finally:
        projects.session.close()


@pytest.fixture(scope="module")
def local_project(user_projects: UserProjects) -> tuple[Path, str]:
    """`local:` path, vars under `avicenna:`, the loaded tables in the default schema
    (`tap_avicenna`, where meltano's Hub loaders write for this extractor): the project's
    folder and the output of its build."""
    folder = user_projects.work / "study_local"
    write_user_project(
        folder,
        {"local": str(ROOT / "transform")},
        {"avicenna": {"avicenna_timezone": TIMEZONE}},
        source_schema="tap_avicenna",
    )
    return folder, user_projects.build(folder)


def test_given_local_package_and_scoped_vars_when_built_then_user_model_reads_the_marts(
    user_projects: UserProjects, local_project: tuple[Path, str]
) -> None:
    output = local_project[1]
    assert "ERROR=0" in output and "WARN=0" in output, output[-3000:]
    assert user_projects.study_days("study_local") == expected_study_days()


def test_given_git_package_and_global_vars_when_built_then_user_model_reads_the_marts(
    user_projects: UserProjects,
) -> None:
    """`git:` file URL of a commit with `subdirectory: transform`, vars set globally,
    the loaded tables in a schema the user names, one of them under another name (the
    fivetran-style `avicenna_<table>_identifier` var)."""
    repository = user_projects.work / "tap-avicenna"
    repository.mkdir()
    commit = snapshot_of_transform(repository)
    folder = user_projects.work / "study_git"
    write_user_project(
        folder,
        {"git": repository.as_uri(), "revision": commit, "subdirectory": "transform"},
        {
            "avicenna_timezone": TIMEZONE,
            "avicenna_schema": "raw_avicenna",
            "avicenna_sensor_battery_identifier": "battery_readings",
        },
        source_schema="raw_avicenna",
        aliases={"sensor_battery": "battery_readings"},
    )
    output = user_projects.build(folder)
    assert "ERROR=0" in output and "WARN=0" in output, output[-3000:]
    assert user_projects.study_days("study_git") == expected_study_days()


def test_given_tables_missing_from_the_source_schema_when_built_then_error_names_the_setting(
    user_projects: UserProjects, local_project: tuple[Path, str]
) -> None:
    """A schema without the loaded tables, or without a sensor's or a listed survey's,
    fails the models that read them with the schema and the var to set; no survey table
    at all warns that the survey models are empty. Built into a target schema of its own
    (`--target scratch`), so the project's models stay as they were."""
    folder = local_project[0]
    user_projects.session.sql(
        "create schema if not exists partial;"
        " create or replace table partial.participants as"
        " select * from tap_avicenna.participants",
        write=True,
    )

    def run(selector: str, vars_: str) -> tuple[bool, str]:
        return user_projects.scratch(folder, vars_, "run", "--select", selector)

    ok, output = run(
        "stg_avicenna__participants stg_avicenna__survey_prompts", "{avicenna_schema: nowhere}"
    )
    assert not ok and "OK created" not in output, output[-3000:]
    assert "avicenna: no table participants in schema nowhere" in output, output[-3000:]
    assert "set the var avicenna_schema" in output, output[-3000:]

    # participants only: the GPS model fails, the survey model warns and builds empty
    ok, output = run("stg_avicenna__gps stg_avicenna__survey_prompts", "{avicenna_schema: partial}")
    assert not ok and "avicenna: no table sensor_gps in schema partial" in output, output[-3000:]
    assert "avicenna__using_gps: false" in output, output[-3000:]
    assert "set the var avicenna_sensor_gps_identifier" in output, output[-3000:]
    assert "avicenna: no survey_* table in schema partial" in output, output[-3000:]
    assert "OK created sql view model study_local_scratch.stg_avicenna__survey_prompts" in output

    ok, output = run(
        "stg_avicenna__survey_prompts", "{avicenna_schema: partial, avicenna_surveys: []}"
    )
    assert ok and "no survey_* table" not in output, output[-3000:]

    ok, output = run("stg_avicenna__survey_prompts", "{avicenna_surveys: [ema, daily]}")
    assert not ok, output[-3000:]
    assert "avicenna_surveys lists daily but schema tap_avicenna" in output, output[-3000:]


def test_given_loaded_days_with_holes_when_tested_then_the_gap_test_names_them(
    user_projects: UserProjects, local_project: tuple[Path, str]
) -> None:
    """The issue's case: a fresh database loaded from an old state, whose sensor tables
    start days after the participations, or skip days inside them. The seeds' tables
    without their first local day (03-01; the accelerometer's next day is 03-04) and
    with the GPS day 03-02 loaded again 5 days later: the gap test warns about those two
    (the study's complete tables pass it), and fails the build with
    avicenna_gaps_severity: error."""
    folder = local_project[0]
    # UTC instants of local midnights in America/New_York; participants 1-3 until 03-05
    # are the study the generator's docstring describes: complete, their own schema
    first_day_ends, study_ends = "2025-03-02 05:00:00", "2025-03-05 05:00:00"
    study = "participant_id in (1, 2, 3)"
    tables = ("participants", "sensor_gps", "sensor_accelerometer", "sensor_battery")
    user_projects.session.sql(
        "create schema if not exists complete; create schema if not exists gapped;"
        + "".join(
            f" create or replace table complete.{table} as select * from tap_avicenna.{table}"
            f" where {study}"
            + ("" if table == "participants" else f" and record_time < timestamp '{study_ends}'")
            + f"; create or replace table gapped.{table} as select * from complete.{table};"
            for table in tables
        )
        + "".join(
            f" delete from gapped.{table} where record_time < timestamp '{first_day_ends}';"
            for table in tables[1:]
        )
        + " insert into gapped.sensor_gps by name select md5(_row_id || 'later') as _row_id,"
        " * exclude (_row_id, record_time), record_time + interval 5 day as record_time"
        " from gapped.sensor_gps",
        write=True,
    )

    def dbt(*args: str, vars_: str = "avicenna_schema: gapped") -> tuple[bool, str]:
        # the package's default avicenna_gaps_max_empty_days, not the project's
        return user_projects.scratch(folder, f"{{{vars_}, avicenna_gaps_max_empty_days: 2}}", *args)

    selector = ("--select", "+avicenna_loaded_days_have_no_gaps")
    ok, output = dbt("run", "--full-refresh", *selector, vars_="avicenna_schema: complete")
    assert ok, output[-3000:]
    ok, output = dbt(
        "test", "--select", "avicenna_loaded_days_have_no_gaps", vars_="avicenna_schema: complete"
    )
    assert ok and "PASS avicenna_loaded_days_have_no_gaps" in output, output[-3000:]

    ok, output = dbt("run", "--full-refresh", *selector)
    assert ok, output[-3000:]
    ok, output = dbt("test", "--store-failures", "--select", "avicenna_loaded_days_have_no_gaps")
    assert ok and "WARN 2 avicenna_loaded_days_have_no_gaps" in output, output[-3000:]
    gaps = user_projects.session.sql(
        "select * from dbt_test__audit.avicenna_loaded_days_have_no_gaps order by stream",
        write=False,
    )
    columns = ("stream", "problem", "first_missing_day", "last_missing_day", "missing_days")
    assert [tuple(str(row[c]) for c in columns) for row in gaps] == [
        ("sensor_accelerometer", "late_start", "2025-03-01", "2025-03-03", "3"),
        ("sensor_gps", "empty_days", "2025-03-03", "2025-03-06", "4"),
    ]

    ok, output = dbt(
        "test",
        "--select",
        "avicenna_loaded_days_have_no_gaps",
        vars_="avicenna_schema: gapped, avicenna_gaps_severity: error",
    )
    assert not ok and "FAIL 2 avicenna_loaded_days_have_no_gaps" in output, output[-3000:]
