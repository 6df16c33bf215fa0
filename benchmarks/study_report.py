"""The study-health report at study size: `python -m benchmarks.study_report [P] [D]`.

Synthetic marts of P participants x D days (default 200 x 90; tests/report/marts.py) in a
DuckDB file, then `tap-avicenna-report` on them: the time to write the page, its size
(and how much of it is Plotly's JavaScript), and, when Chromium is installed, the time
until every chart of the page has drawn in headless Chromium. Measurements, not tests.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import plotly.offline

from tap_avicenna_report import cli
from tap_avicenna_report.warehouse import DuckDBWarehouse
from tests.report.chromium import Browser, chromium_binary
from tests.report.marts import write_marts

SCHEMA = "avicenna_analytics"


def drawn_seconds(report: Path, work: Path) -> float | None:
    """Seconds from opening the page to every chart drawn; None without Chromium."""
    binary = chromium_binary()
    if binary is None:
        return None
    browser = Browser(binary, work / "profile", work / "chromium.log")
    try:
        started = time.monotonic()
        browser.open(report.as_uri())
        browser.wait_until(
            "[...document.querySelectorAll('.js-plotly-plot')]"
            ".every(chart => chart.querySelector('.heatmaplayer image, .scatterlayer path'))"
        )
        return time.monotonic() - started
    finally:
        browser.close()


def main(argv: list[str]) -> int:
    participants, days = (int(argv[0]), int(argv[1])) if argv else (200, 90)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        write_marts(work / "marts.duckdb", SCHEMA, participants, days)
        report = work / "study-report.html"
        started = time.monotonic()
        cli.write_report(DuckDBWarehouse(str(work / "marts.duckdb"), SCHEMA), report)
        seconds = time.monotonic() - started
        size = report.stat().st_size
        plotly_js = len(plotly.offline.get_plotlyjs().encode())
        drawn = drawn_seconds(report, work)
    print(f"study-report: {participants} participants x {days} days")
    print(f"  written in      {seconds:6.1f} s")
    print(f"  file size       {size / 1e6:6.2f} MB ({plotly_js / 1e6:.2f} MB of it plotly.js)")
    shown = "n/a (no chromium)" if drawn is None else f"{drawn:6.1f} s"
    print(f"  drawn in chromium {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
