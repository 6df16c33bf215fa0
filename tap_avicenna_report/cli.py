"""`tap-avicenna-report`: write the study-health report of the marts to one HTML file.

tap-avicenna-report --target duckdb --path output/warehouse.duckdb
tap-avicenna-report --target postgres        # DBT_POSTGRES_USER, _DBNAME, ... set
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import plotly.graph_objects as go

from tap_avicenna_report import attention, figures, page, study
from tap_avicenna_report.warehouse import Warehouse, duckdb_warehouse, postgres_warehouse

REPORT_NAME = "study-report.html"


def charts(data: study.Study) -> list[tuple[str, str, go.Figure]]:
    """(section heading, element id, figure) of every chart, in page order."""
    found: list[tuple[str, str, go.Figure]] = []
    for n, sensor in enumerate(data.sensors):
        heading = "Sensor data yield (hours with data a day)" if n == 0 else ""
        found.append((heading, f"yield-{sensor}", figures.yield_heatmap(data, sensor)))
    for n, survey in enumerate(data.surveys):
        heading = "Survey compliance (share of the delivered prompts answered)" if n == 0 else ""
        found.append((heading, f"compliance-{n}", figures.compliance_heatmap(data, survey)))
    if data.mobility is not None and data.participants:
        found.append(("Daily mobility", "mobility", figures.mobility_multiples(data)))
    return found


def write_report(
    warehouse: Warehouse,
    output: Path,
    *,
    quiet_days: int = attention.QUIET_DAYS,
    min_response_rate: float = attention.MIN_RESPONSE_RATE,
) -> study.Study:
    """Read the marts of `warehouse` and write the report to `output`."""
    data = study.load(warehouse)
    found = attention.concerns(data, quiet_days, min_response_rate)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        page.render(
            data,
            charts(data),
            found,
            quiet_days=quiet_days,
            min_response_rate=min_response_rate,
            generated=dt.datetime.now(dt.timezone.utc),
        ),
        encoding="utf-8",
    )
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tap-avicenna-report",
        description="Write the study-health report (one offline HTML file) from the marts of"
        " the dbt package, read with the dbt profiles' settings (DBT_DUCKDB_PATH, or"
        " DBT_POSTGRES_HOST, _PORT, _USER, _PASSWORD, _DBNAME; the models' schema from"
        " DBT_DUCKDB_SCHEMA / DBT_POSTGRES_SCHEMA, default avicenna_analytics).",
    )
    parser.add_argument("--target", choices=["duckdb", "postgres"], default="duckdb")
    parser.add_argument("--path", help="the DuckDB file (default: DBT_DUCKDB_PATH)")
    parser.add_argument("--schema", help="schema of the marts (default: the profile's)")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"the HTML file (default: {REPORT_NAME} beside the DuckDB file, or here)",
    )
    parser.add_argument(
        "--quiet-days",
        type=int,
        default=attention.QUIET_DAYS,
        help="needs attention: no data for the last N days or more (default %(default)s)",
    )
    parser.add_argument(
        "--min-response-rate",
        type=float,
        default=attention.MIN_RESPONSE_RATE,
        help="needs attention: a survey's response rate below this (default %(default)s)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    warehouse: Warehouse
    if args.target == "duckdb":
        warehouse = duckdb_warehouse(args.path, args.schema)
        output = args.output or Path(warehouse.path).resolve().parent / REPORT_NAME
    else:
        warehouse = postgres_warehouse(args.schema)
        output = args.output or Path(REPORT_NAME)
    data = write_report(
        warehouse, output, quiet_days=args.quiet_days, min_response_rate=args.min_response_rate
    )
    print(
        f"tap-avicenna-report: {len(data.participants)} participants x {len(data.days)} days"
        f" in {time.monotonic() - started:.1f} s, {output.stat().st_size / 1e6:.1f} MB",
        file=sys.stderr,
    )
    print(output.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
