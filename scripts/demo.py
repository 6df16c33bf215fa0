"""The README's demo: start the Avicenna simulator, run
`meltano run tap-avicenna <target>`, read every table back from the destination and
check its row count against what the tap emitted (its "sync complete" log lines).

    .venv/bin/python scripts/demo.py [--target duckdb|postgres]

Exit 0 only when every stream emitted rows and every table holds exactly that many.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
OUTPUT = ROOT / "output"
SCHEMA = "avicenna"
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


def duckdb_counts(streams: list[str]) -> dict[str, int]:
    python = ROOT / ".meltano/loaders/target-duckdb/venv/bin/python"
    script = (
        "import duckdb, json, sys\n"
        "db = duckdb.connect(sys.argv[1], read_only=True)\n"
        "print(json.dumps({t: db.execute(f'select count(*) from " + SCHEMA + ".{t}').fetchone()[0]"
        " for t in sys.argv[2:]}))\n"
    )
    out = subprocess.run(
        [str(python), "-c", script, str(OUTPUT / "warehouse.duckdb"), *streams],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout))


def postgres_counts(streams: list[str]) -> dict[str, int]:
    import psycopg

    port = pg_port()
    with psycopg.connect(
        host="127.0.0.1", port=port, user="tap", password="tap", dbname="tapdb"
    ) as conn:
        return {
            name: conn.execute(f'select count(*) from {SCHEMA}."{name}"').fetchone()[0]  # type: ignore[index]
            for name in streams
        }


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
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
    }
    started = time.monotonic()
    try:
        print(f"demo: meltano run tap-avicenna target-{args.target} (simulator on port {port})")
        run = subprocess.run(
            [
                str(BIN / "meltano"),
                "run",
                "--full-refresh",
                "tap-avicenna",
                f"target-{args.target}",
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
    stored = (duckdb_counts if args.target == "duckdb" else postgres_counts)(streams)
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
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
