"""The report of real marts (the dbt package built on transform/integration_tests' seeds
in DuckDB), opened in headless Chromium with no network, as a person would: every chart
drew, nothing was fetched, nothing failed in the console, and the number a hover shows
for a participant-day is the mart's. The screenshot is kept: output/report-browser.png.

Chromium is Debian's package (`bash scripts/install-chromium.sh`; scripts/test.sh runs it).
"""

from __future__ import annotations

import shutil
import typing as t
from pathlib import Path

import duckdb
import pytest

from tap_avicenna_report import cli, study
from tap_avicenna_report.warehouse import DuckDBWarehouse, columns
from tests.report.chromium import Browser, chromium_binary, js_call
from tests.report.marts import write_marts
from tests.unit.test_dbt_package import DuckDBProject

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "output" / "report-browser.png"


@pytest.fixture(scope="module")
def marts(duckdb_project: DuckDBProject) -> DuckDBWarehouse:
    """The integration project's marts, built by dbt (test_dbt_package's fixture), in a
    copy of its DuckDB file (the dbt session holds the file; a checkpoint first writes
    every change into it)."""
    duckdb_project.execute("checkpoint", mode="write")
    copy = duckdb_project.work / "report.duckdb"
    shutil.copyfile(duckdb_project.path, copy)
    return DuckDBWarehouse(str(copy), duckdb_project.schema)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Browser]:
    binary = chromium_binary()
    if binary is None:
        pytest.fail("no chromium: run `bash scripts/install-chromium.sh`", pytrace=False)
    work = tmp_path_factory.mktemp("chromium")
    opened = Browser(binary, work / "profile", work / "chromium.log")
    try:
        yield opened
    finally:
        opened.close()


def mart_row(marts: DuckDBWarehouse, sql: str) -> tuple[t.Any, ...]:
    with duckdb.connect(marts.path, read_only=True) as connection:
        row = connection.execute(sql).fetchone()
    assert row is not None, sql
    return tuple(row)


def hover_lines(browser: Browser, chart_id: str, label: str, day: str) -> list[str]:
    """Move the mouse over the cell (participant `label`, `day`) of a heatmap; the lines
    of the hover label the page then shows."""
    x, y = browser.evaluate(
        js_call(
            "(id, day, label) => { const chart = document.getElementById(id);"
            " chart.scrollIntoView({block: 'center'});"
            " const layout = chart._fullLayout, box = chart.getBoundingClientRect();"
            " return [box.left + layout.xaxis._offset + layout.xaxis.d2p(day),"
            " box.top + layout.yaxis._offset"
            " + layout.yaxis.c2p(layout.yaxis._categories.indexOf(label))]; }",
            chart_id,
            day,
            label,
        )
    )
    browser.hover(x, y)
    lines = browser.wait_until(
        js_call(
            "id => { const lines = [...document.getElementById(id)"
            ".querySelectorAll('.hoverlayer .hovertext tspan.line')];"
            " return lines.length && lines.map(line => line.textContent); }",
            chart_id,
        )
    )
    return list(lines)


def test_given_the_report_of_real_marts_when_opened_offline_then_it_draws_what_the_marts_hold(
    marts: DuckDBWarehouse, browser: Browser, tmp_path: Path
) -> None:
    report = tmp_path / "study-report.html"
    assert cli.main(["--path", marts.path, "--schema", marts.schema, "--output", str(report)]) == 0
    compliance = f"{marts.schema}.avicenna__compliance_daily"
    per_survey = "survey" in columns(marts, "avicenna__compliance_daily")
    (surveys,) = mart_row(
        marts, f"select {'count(distinct survey)' if per_survey else '1'} from {compliance}"
    )
    chart_ids = [chart_id for _, chart_id, _ in cli.charts(study.load(marts))]
    assert chart_ids == [
        "yield-gps",
        "yield-accelerometer",
        "yield-battery",
        *(f"compliance-{n}" for n in range(surveys)),
        "mobility",
    ]

    browser.open(report.as_uri())
    # every chart drew: a plot with a non-empty SVG, a heatmap image or the mobility lines
    sizes = browser.wait_until(
        js_call(
            "ids => ids.every(id => { const chart = document.getElementById(id);"
            " const mark = chart && chart.querySelector("
            "'.heatmaplayer image, .scatterlayer path.js-line');"
            " const box = mark && mark.getBoundingClientRect();"
            " return box && box.width > 0 && box.height > 0; })"
            " && ids.map(id => { const box = document.getElementById(id)"
            ".querySelector('.main-svg').getBoundingClientRect();"
            " return [box.width, box.height]; })",
            chart_ids,
        )
    )
    assert all(width > 300 and height > 150 for width, height in sizes), sizes

    pid, day, hours, minutes = mart_row(
        marts,
        "select participant_id, local_date, hours_with_data, minutes_with_data"
        f" from {marts.schema}.avicenna__data_yield_daily where sensor = 'gps'"
        " order by hours_with_data, participant_id, local_date limit 1",
    )
    labels = {participant.id: participant.label for participant in study.load(marts).participants}
    lines = hover_lines(browser, "yield-gps", labels[pid], day.isoformat())
    assert lines[0] == f"participant {labels[pid]}"
    assert lines[1].startswith(day.isoformat())
    assert lines[2] == f"gps: {hours} hours with data ({minutes} minutes)"

    survey = study.load(marts).surveys[0]  # the first heatmap's: all surveys, or the first
    pid, day, answered, delivered = mart_row(
        marts,
        "select participant_id, local_date, sum(prompts_answered), sum(prompts_delivered)"
        f" from {compliance} where {f'survey = {survey!r}' if per_survey else 'true'}"
        " group by 1, 2 having sum(prompts_answered) < sum(prompts_delivered)"
        " order by 1 desc, 2 desc limit 1",
    )
    lines = hover_lines(browser, "compliance-0", labels[pid], day.isoformat())
    assert lines[0] == f"participant {labels[pid]}"
    assert lines[1].startswith(day.isoformat())
    assert lines[2] == (
        f"{survey}: {answered} of {delivered} prompts answered ({answered / delivered:.0%})"
    )

    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.screenshot(SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 10_000
    assert browser.errors() == []
    assert [url for url in browser.requests() if not url.startswith("data:")] == [report.as_uri()]


def centre(browser: Browser, chart_id: str, selector: str, text: str = "") -> tuple[float, float]:
    """The middle of the first element of a chart matching `selector` (and holding
    `text`), scrolled into view, once it is there."""
    x, y = browser.wait_until(
        js_call(
            "(id, selector, text) => { const found = [...document.getElementById(id)"
            ".querySelectorAll(selector)].find(element => element.textContent.includes(text));"
            " if (!found) return null; found.scrollIntoView({block: 'center'});"
            " const box = found.getBoundingClientRect();"
            " return [box.left + box.width / 2, box.top + box.height / 2]; }",
            chart_id,
            selector,
            text,
        )
    )
    return x, y


def test_given_120_participants_when_a_person_picks_the_third_page_then_its_rows_show(
    browser: Browser, tmp_path: Path
) -> None:
    marts = DuckDBWarehouse(str(tmp_path / "warehouse.duckdb"), "marts")
    write_marts(Path(marts.path), marts.schema, 120, 10)
    report = tmp_path / "study-report.html"
    assert cli.main(["--path", marts.path, "--schema", marts.schema, "--output", str(report)]) == 0
    participants = study.load(marts).participants
    page = f"participants {participants[100].id} - {participants[-1].id}"
    browser.open(report.as_uri())

    browser.click(*centre(browser, "yield-gps", ".updatemenu-header-group"))
    browser.click(*centre(browser, "yield-gps", ".updatemenu-dropdown-button", page))
    shown = browser.wait_until(
        js_call(
            "(id, range) => { const axis = document.getElementById(id)._fullLayout.yaxis;"
            " return JSON.stringify(axis.range) === JSON.stringify(range) && range; }",
            "yield-gps",
            [len(participants) - 0.5, 99.5],
        )
    )
    assert shown == [len(participants) - 0.5, 99.5]
    last = participants[-1]
    day, hours, minutes = mart_row(
        marts,
        "select local_date, hours_with_data, minutes_with_data"
        " from marts.avicenna__data_yield_daily"
        f" where sensor = 'gps' and participant_id = {last.id} order by local_date limit 1",
    )
    lines = hover_lines(browser, "yield-gps", last.label, day.isoformat())
    assert lines == [
        f"participant {last.label}",
        lines[1],
        f"gps: {hours} hours with data ({minutes} minutes)",
    ]
    assert lines[1].startswith(day.isoformat())
    assert browser.errors() == []
