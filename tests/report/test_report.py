"""tap-avicenna-report on synthetic marts (tests/report/marts.py): what each chart holds,
the compliance grain it follows, the "needs attention" rules, paging and the page's
self-containment. The browser test (test_report_browser.py) opens a report of real marts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from tap_avicenna_report import attention, cli, figures, page, study
from tap_avicenna_report.warehouse import DuckDBWarehouse
from tests.report.marts import FIRST_DAY, write_marts

SCHEMA = "marts"


def make_study(path: Path, participants: int, days: int, **options: Any) -> DuckDBWarehouse:
    write_marts(path, SCHEMA, participants, days, **options)
    return DuckDBWarehouse(str(path), SCHEMA)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> DuckDBWarehouse:
    return make_study(tmp_path_factory.mktemp("marts") / "w.duckdb", 30, 21)


def mart(warehouse: DuckDBWarehouse, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(warehouse.path, read_only=True) as connection:
        return connection.execute(sql).fetchall()


def chart(data: study.Study, chart_id: str) -> Any:
    return {found_id: figure for _, found_id, figure in cli.charts(data)}[chart_id]


def test_given_marts_when_reported_then_each_yield_cell_is_the_marts_hours(
    warehouse: DuckDBWarehouse,
) -> None:
    data = study.load(warehouse)
    for sensor in ("gps", "accelerometer", "battery"):
        outside, values = chart(data, f"yield-{sensor}").data
        rows = mart(
            warehouse,
            f"select participant_id, local_date, {sensor}_hours_with_data"
            f" from {SCHEMA}.avicenna__participant_day_summary",
        )
        assert len(rows) > 400
        labels = [str(label).split()[0] for label in values.y]
        for pid, day, hours in rows:
            cell = (labels.index(str(pid)), list(values.x).index(day.isoformat()))
            assert values.z[cell[0]][cell[1]] == hours, (sensor, pid, day)
            assert outside.z[cell[0]][cell[1]] is None
    # participant 1009 starts a week late: its first week is outside, grey, without a value
    row = labels.index("1009")
    assert values.z[row][:7] == [None] * 7
    assert outside.z[row][:7] == [1] * 7


def test_given_a_survey_grain_when_reported_then_one_compliance_heatmap_per_survey(
    warehouse: DuckDBWarehouse,
) -> None:
    data = study.load(warehouse)
    assert data.per_survey
    titles = [f.layout.title.text for _, i, f in cli.charts(data) if i.startswith("compliance")]
    assert titles == ["Survey compliance: daily", "Survey compliance: weekly"]
    [(pid, day, answered, delivered)] = mart(
        warehouse,
        "select participant_id, local_date, prompts_answered, prompts_delivered"
        f" from {SCHEMA}.avicenna__compliance_daily where survey = 'weekly'"
        " order by participant_id desc, local_date desc limit 1",
    )
    heatmap = chart(data, "compliance-1").data[1]
    cell = ([str(y).split()[0] for y in heatmap.y].index(str(pid)), heatmap.x.index(str(day)))
    assert list(heatmap.customdata[cell[0]][cell[1]]) == [answered, delivered]
    assert heatmap.z[cell[0]][cell[1]] == answered / delivered


def test_given_pooled_compliance_when_reported_then_one_heatmap_of_all_surveys(
    tmp_path: Path,
) -> None:
    data = study.load(make_study(tmp_path / "w.duckdb", 4, 5, surveys=None))
    assert not data.per_survey
    compliance = [f for _, i, f in cli.charts(data) if i.startswith("compliance")]
    assert [f.layout.title.text for f in compliance] == ["Survey compliance: all surveys"]


def trailing(values: list[Any]) -> int:
    """How many of the last values are 0."""
    return next((n for n, value in enumerate(reversed(values)) if value), len(values))


def test_given_a_quiet_gps_when_reported_then_needs_attention_from_the_option_on(
    warehouse: DuckDBWarehouse,
) -> None:
    data = study.load(warehouse)
    hours = [
        h
        for (h,) in mart(
            warehouse,
            f"select gps_hours_with_data from {SCHEMA}.avicenna__participant_day_summary"
            " where participant_id = 1013 order by local_date",
        )
    ]
    quiet = trailing(hours)
    assert quiet >= 5  # every 13th participant: no GPS for its last 5 days at least

    def about_1013(quiet_days: int) -> list[str]:
        found = attention.concerns(data, quiet_days, 0.0)
        return [c.what for c in found if c.participant.id == 1013]

    assert f"no gps for the last {quiet} days" in about_1013(quiet)
    assert about_1013(quiet + 1) == []


def test_given_low_compliance_when_reported_then_needs_attention_below_the_threshold(
    warehouse: DuckDBWarehouse,
) -> None:
    data = study.load(warehouse)
    [(answered, delivered)] = mart(
        warehouse,
        "select sum(prompts_answered), sum(prompts_delivered)"
        f" from {SCHEMA}.avicenna__compliance_daily"
        " where participant_id = 1007 and survey = 'daily'",
    )
    rate = answered / delivered
    assert rate < 0.5  # every 7th participant answers about a third
    expected = f"daily: answered {answered} of {delivered} prompts ({rate:.0%})"
    assert expected in [c.what for c in attention.concerns(data, 99, rate + 0.001)]
    assert expected not in [c.what for c in attention.concerns(data, 99, rate)]


def test_given_200_participants_when_reported_then_pages_of_participants(
    tmp_path: Path,
) -> None:
    marts = make_study(tmp_path / "w.duckdb", 120, 10)
    data = study.load(marts)
    heatmap = chart(data, "yield-gps")
    count = len(data.participants)
    assert 100 < count <= 120
    pages = heatmap.layout.updatemenus[0].buttons
    assert [b.args[0]["yaxis.range"] for b in pages] == [
        [49.5, -0.5],
        [99.5, 49.5],
        [count - 0.5, 99.5],
    ]
    assert heatmap.layout.yaxis.range == (49.5, -0.5)
    assert (
        pages[2].label == f"participants {data.participants[100].id} - {data.participants[-1].id}"
    )
    mobility = chart(data, "mobility")
    assert len(mobility.data) == 2 * figures.MULTIPLES
    last = mobility.layout.updatemenus[0].buttons[-1].args
    shown = [a["text"] for a in last[1]["annotations"] if a["text"]]
    assert shown == [f"participant {p.label}" for p in data.participants[100:]]
    assert last[0]["y"][0] == [
        None if d is None else round(d / 1000, 2)
        for (d,) in mart(
            marts,
            f"select distance_meters from {SCHEMA}.avicenna__participant_day_summary"
            f" where participant_id = {data.participants[100].id} order by local_date",
        )
    ]


def test_given_marts_when_written_then_one_file_without_outside_resources(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    output = tmp_path / "deep" / "report.html"
    assert cli.main(["--path", warehouse.path, "--schema", SCHEMA, "--output", str(output)]) == 0
    page = output.read_text()
    assert page.count("<script") == 1 + len(cli.charts(study.load(warehouse)))
    assert not re.findall(r"<(?:script|link|img)[^>]+(?:src|href)=", page)
    assert "last synced</dt><dd data-fact='last synced'>2025-04-02 03:00 UTC</dd>" in page


@pytest.mark.parametrize(
    ("loaded_at", "shown"),
    [
        # a load time as dbt writes it (UTC, without zone): target-duckdb's rows have
        # only the tap's _extracted_at, with microseconds
        (dt.datetime(2026, 12, 7, 17, 7, 21, 176270), "2026-12-07 17:07 UTC"),
        (
            dt.datetime(2026, 12, 8, 4, 7, tzinfo=ZoneInfo("Australia/Sydney")),
            "2026-12-07 17:07 UTC",
        ),
        (None, "not recorded (no _loaded_at in the marts)"),
    ],
)
def test_given_the_marts_newest_load_time_when_rendered_then_last_synced_in_utc(
    warehouse: DuckDBWarehouse, loaded_at: dt.datetime | None, shown: str
) -> None:
    data = dataclasses.replace(study.load(warehouse), loaded_at=loaded_at)
    made = dt.datetime(2026, 12, 7, 18, 0, tzinfo=dt.timezone.utc)
    html = page.render(data, [], [], quiet_days=3, min_response_rate=0.5, generated=made)
    assert f"<dt>last synced</dt><dd data-fact='last synced'>{shown}</dd>" in html
    assert "<dd data-fact='report made'>2026-12-07 18:00 UTC</dd>" in html
    assert "last loaded" not in html


def test_given_no_marts_when_reported_then_one_line_says_to_build_them(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(SystemExit, match=r"no avicenna__participant_day_summary in schema"):
        cli.main(["--path", str(path), "--output", str(tmp_path / "r.html")])
    with pytest.raises(SystemExit, match=r"no DuckDB file at"):
        cli.main(["--path", str(tmp_path / "missing.duckdb")])


def test_given_first_day_constant_then_synthetic_marts_start_there(
    warehouse: DuckDBWarehouse,
) -> None:
    assert study.load(warehouse).days[0] == FIRST_DAY
    assert study.load(warehouse).days[-1] == FIRST_DAY + dt.timedelta(days=20)
