"""The dbt package's marts on the integration seeds built with other vars, in DuckDB:
the local days of Australia/Sydney (the southern hemisphere's daylight-saving days),
studies with any mix of streams, and session and participant statuses in every form.
Each test builds the models it checks with `--full-refresh` and its own vars, on one
DuckDB file with the seeds loaded once (test_dbt_package.py checks the project's own
vars: America/New_York).
"""

from __future__ import annotations

import datetime as dt
import json
import typing as t

import pytest

from tests.unit.mart_truth import Study, assert_marts_match
from tests.unit.test_dbt_package import DuckDBProject, by_day, seed_study, seeded_project

SYDNEY = "Australia/Sydney"
NEW_YORK = "America/New_York"
KEEP_SEEDS = ("--exclude-resource-type", "seed")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[DuckDBProject]:
    with seeded_project(tmp_path_factory) as seeded:
        yield seeded


def build(project: DuckDBProject, variables: dict[str, t.Any], *select: str) -> str:
    """`dbt build` of the models (all, or `select`) from scratch with `variables`."""
    args = [*KEEP_SEEDS, "--full-refresh", "--vars", json.dumps(variables)]
    output = project.build(*args, *(("--select", *select) if select else ()))
    assert "ERROR=0" in output and "WARN=0" in output, output[-3000:]
    return output


def test_given_dst_seeds_when_built_in_sydney_then_every_mart_equals_its_recomputation(
    project: DuckDBProject,
) -> None:
    build(project, {"avicenna_timezone": SYDNEY})
    assert_marts_match(project.query, project.schema, seed_study(SYDNEY))
    yield_days = by_day(
        project.query(f"select * from {project.schema}.avicenna__data_yield_daily"), "sensor"
    )
    # Sydney's fall-back day (25 h) and spring-forward day (23 h), a reading every 2 minutes
    for day, hours in ((dt.date(2025, 4, 6), 25), (dt.date(2025, 10, 5), 23)):
        row = yield_days[(22, day, "accelerometer")]
        assert (row["day_hours"], row["hours_with_data"], row["valid_hours"]) == (hours,) * 3
        assert row["minutes_with_data"] == 30 * hours and row["minute_ratio"] == 0.5, row


MIXES: dict[str, tuple[dict[str, t.Any], tuple[str, ...], tuple[str, ...]]] = {
    "surveys only": (
        {"avicenna__using_gps": False, "avicenna__using_accelerometer": False}
        | {"avicenna__using_battery": False},
        (),
        ("ema", "diary", "weekly"),
    ),
    "sensors only": ({"avicenna_surveys": []}, ("gps", "accelerometer", "battery"), ()),
    "one sensor": (
        {"avicenna__using_gps": False, "avicenna__using_accelerometer": False},
        ("battery",),
        ("ema", "diary", "weekly"),
    ),
}


@pytest.mark.parametrize("mix", list(MIXES))
def test_given_a_mix_of_streams_when_built_then_the_marts_are_those_of_its_streams(
    project: DuckDBProject, mix: str
) -> None:
    """A study loads surveys only, sensors only or one sensor: the package builds (the
    `avicenna__using_*` vars, `avicenna_surveys`) and every mart equals its recomputation
    from those streams alone."""
    variables, sensors, surveys = MIXES[mix]
    output = build(project, variables)
    for sensor in {"gps", "accelerometer", "battery"} - set(sensors):
        assert f"stg_avicenna__{sensor} " not in output, (sensor, output[-3000:])
    seeds = seed_study(NEW_YORK)
    study = Study(
        participants=seeds.participants,
        sensors={s: seeds.sensors[s] for s in sensors},
        surveys={s: seeds.surveys[s] for s in surveys},
        zone=NEW_YORK,
    )
    assert_marts_match(project.query, project.schema, study)
    summary = project.query(f"select * from {project.schema}.avicenna__participant_day_summary")
    assert summary, mix
    columns = set(summary[0])
    for sensor in ("gps", "accelerometer", "battery"):
        assert (f"{sensor}_minutes_with_data" in columns) == (sensor in sensors), (mix, sensor)


def test_given_status_labels_and_ids_when_built_then_both_map_to_the_same_statuses(
    project: DuckDBProject,
) -> None:
    """The diary exports its session statuses as text labels in any case, the EMA as ids;
    participants 21 and 22 have numeric status ids (22: 2, dropped)."""
    build(project, {}, "stg_avicenna__survey_prompts", "stg_avicenna__participants")
    schema = project.schema
    sessions = project.query(
        f"select survey_name, status_text, status_id, status_label, is_completed"
        f" from {schema}.stg_avicenna__survey_prompts where survey_name = 'diary'"
    )
    by_text = {r["status_text"]: (r["status_id"], r["status_label"]) for r in sessions}
    assert by_text == {
        "Completed": (1, "Completed"),
        "completed": (1, "Completed"),
        "COMPLETED": (1, "Completed"),
        "Unanswered": (0, "Unanswered"),
        "Expired": (3, "Expired"),
    }
    assert {r["is_completed"] for r in sessions if r["status_id"] == 1} == {True}
    participants = project.query(
        f"select participant_id, status_label, is_dropped from {schema}.stg_avicenna__participants"
    )
    dropped = {int(r["participant_id"]): (r["status_label"], r["is_dropped"]) for r in participants}
    assert dropped == {
        1: ("active", False),
        2: ("dropped", True),
        3: ("active", False),
        21: ("active", False),
        22: ("dropped", True),
    }


def test_given_a_status_no_var_maps_when_built_then_a_test_fails_until_the_var_maps_it(
    project: DuckDBProject,
) -> None:
    """A session whose status label is unknown (`Snoozed`) would count as neither
    delivered nor answered: the staging model's test fails; once
    avicenna_survey_status_labels names it, the build passes."""
    schema = project.schema
    project.execute(
        f"create table {schema}.survey_odd as select * replace"
        f" ('odd-1' as uuid, 'Snoozed' as status) from {schema}.survey_diary limit 1",
        mode="write",
    )
    try:
        with pytest.raises(AssertionError, match="stg_avicenna__survey_prompts_status_label"):
            build(project, {}, "stg_avicenna__survey_prompts")
        labels = {0: "Unanswered", 1: "Completed", 2: "Canceled", 3: "Expired", 4: "Blocked"}
        build(
            project,
            {"avicenna_survey_status_labels": {**labels, 5: "Snoozed"}},
            "stg_avicenna__survey_prompts",
        )
        odd = project.query(
            f"select status_id, status_label, is_delivered, is_completed"
            f" from {schema}.stg_avicenna__survey_prompts where session_uuid = 'odd-1'"
        )
        assert odd == [
            {"status_id": 5, "status_label": "Snoozed", "is_delivered": True, "is_completed": False}
        ]
    finally:
        project.execute(f"drop table {schema}.survey_odd", mode="write")
