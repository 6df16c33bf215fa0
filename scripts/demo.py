"""The README's demo: start the Avicenna simulator, run
`meltano run tap-avicenna <target> dbt-<target>:build` (the load, then the dbt package of
transform/), read every table back from the destination and check its row count against
what the tap emitted (its "sync complete" log lines), then print survey compliance and
sensor data yield per participant from the marts.

    .venv/bin/python scripts/demo.py [--target duckdb|postgres]

Exit 0 only when every stream emitted rows, every table holds exactly that many, and
the marts have a row for every participant.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
OUTPUT = ROOT / "output"
SCHEMA = "avicenna"
MODELS = "avicenna_analytics"
SENSORS = ("gps", "accelerometer", "battery")
SUMMARY = re.compile(r"(\w+): sync complete, ([\d,]+) rows emitted")


def pg_port() -> str:
    """The test PostgreSQL's port: PGTEST_PORT, else this checkout's (scripts/pg-test.sh)."""
    script = ROOT / "scripts" / "pg-test.sh"
    return (
        os.environ.get("PGTEST_PORT")
        or subprocess.run(
            ["bash", str(script), "port"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )


def start_simulator() -> tuple[subprocess.Popen[str], int]:
    """The simulator on a free port it binds itself (`--port 0`), and that port."""
    sim = subprocess.Popen(
        [str(BIN / "tap-avicenna-simulator"), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert sim.stderr is not None
    line = sim.stderr.readline()
    found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if found is None:
        sim.kill()
        sys.exit(f"demo: the simulator did not start: {line.strip()}")
    return sim, int(found.group(1))


def emitted_counts(log: str) -> Counter[str]:
    """Records per stream from the tap's end-of-stream summary lines."""
    counts: Counter[str] = Counter()
    for match in SUMMARY.finditer(log):
        counts[match.group(1)] += int(match.group(2).replace(",", ""))
    return counts


def duckdb_rows(query: str) -> list[list[Any]]:
    """Rows of a query on the demo's DuckDB file, read by target-duckdb's own duckdb."""
    python = ROOT / ".meltano/loaders/target-duckdb/venv/bin/python"
    script = (
        "import duckdb, json, sys\n"
        "db = duckdb.connect(sys.argv[1], read_only=True)\n"
        "print(json.dumps(db.execute(sys.argv[2]).fetchall(), default=str))\n"
    )
    out = subprocess.run(
        [str(python), "-c", script, str(OUTPUT / "warehouse.duckdb"), query],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(out.stdout))


def postgres_rows(query: str) -> list[list[Any]]:
    import psycopg

    port = pg_port()
    with psycopg.connect(
        host="127.0.0.1", port=port, user="tap", password="tap", dbname="tapdb"
    ) as conn:
        return [list(row) for row in conn.execute(query.encode()).fetchall()]


def table_counts(rows: Callable[[str], list[list[Any]]], streams: list[str]) -> dict[str, int]:
    query = " union all ".join(
        f"select '{name}', count(*) from {SCHEMA}.\"{name}\"" for name in streams
    )
    return {str(name): int(count) for name, count in rows(query)}


# Per participant: compliance over the participation, and the mean hours with data a
# day of each sensor (days without data count as 0).
MART_QUERY = f"""
select s.participant_id, count(*) as days,
       coalesce(max(c.prompts_delivered), 0), coalesce(max(c.prompts_answered), 0),
       max(c.response_rate), max(c.median_seconds_to_submit),
       {", ".join(f"avg({sensor}_hours_with_data)" for sensor in SENSORS)}
from {MODELS}.avicenna__participant_day_summary as s
left join {MODELS}.avicenna__compliance_participant as c on c.participant_id = s.participant_id
group by s.participant_id
order by s.participant_id
"""


def print_marts(rows: list[list[Any]]) -> None:
    print(f"demo: analysis-ready data (dbt models in schema {MODELS}), per participant:")
    print(
        f"  {'participant':<12}{'days':>5}{'delivered':>10}{'answered':>10}{'rate':>7}"
        f"{'median latency':>16}  hours with data a day: " + " / ".join(SENSORS)
    )
    for pid, days, delivered, answered, rate, latency, *hours in rows:
        shown_rate = "-" if rate is None else f"{float(rate):.0%}"
        shown_latency = "-" if latency is None else f"{float(latency) / 60:.1f} min"
        print(
            f"  {pid!s:<12}{days:>5}{delivered:>10}{answered:>10}{shown_rate:>7}"
            f"{shown_latency:>16}  " + " / ".join(f"{float(h):.1f}" for h in hours)
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", choices=["duckdb", "postgres"], default="duckdb")
    args = parser.parse_args()
    OUTPUT.mkdir(exist_ok=True)
    if args.target == "duckdb":
        (OUTPUT / "warehouse.duckdb").unlink(missing_ok=True)
    sim, port = start_simulator()
    env = {
        **os.environ,
        "TAP_AVICENNA_API_URL": f"http://127.0.0.1:{port}",
        "TARGET_POSTGRES_PASSWORD": "tap",
        "TARGET_POSTGRES_PORT": pg_port(),
        "DBT_POSTGRES_PASSWORD": "tap",
        "DBT_POSTGRES_PORT": pg_port(),
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
    }
    started = time.monotonic()
    try:
        print(
            f"demo: meltano run tap-avicenna target-{args.target} dbt-{args.target}:build "
            f"(simulator on port {port})"
        )
        run = subprocess.run(
            [
                str(BIN / "meltano"),
                "run",
                "--full-refresh",
                "tap-avicenna",
                f"target-{args.target}",
                f"dbt-{args.target}:build",
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    log = run.stdout + run.stderr
    (OUTPUT / "demo.log").write_text(log)
    if run.returncode != 0:
        print(log[-4000:], file=sys.stderr)
        print(f"demo: meltano run failed (exit {run.returncode}); log in output/demo.log")
        return 1
    emitted = emitted_counts(log)
    streams = sorted(emitted)
    rows = duckdb_rows if args.target == "duckdb" else postgres_rows
    stored = table_counts(rows, streams)
    print(f"demo: done in {time.monotonic() - started:.1f}s; rows per table:")
    print(f"  {'table':<24}{'emitted':>10}{'in ' + args.target:>14}")
    ok = bool(streams)
    for name in streams:
        match = emitted[name] == stored.get(name) and emitted[name] > 0
        ok &= match
        verdict = "ok" if match else "MISMATCH"
        print(f"  {name:<24}{emitted[name]:>10,}{stored.get(name, 0):>14,}  {verdict}")
    if not ok:
        print("demo: the destination does not hold exactly the rows the tap emitted")
        return 1
    marts = rows(MART_QUERY)
    print_marts(marts)
    if len(marts) != stored["participants"]:
        print("demo: the marts do not have a row for every participant")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
