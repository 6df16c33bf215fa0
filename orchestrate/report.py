"""Per shard of a finished `orchestrate.run`: rows, state id, wall time, retries.

    .venv/bin/python -m orchestrate.report output/orchestrate-steps.json

Rows are the loaded sensor rows of the shard's participants (participant id modulo the
shard count); shard 0 also loads the participants and survey tables. Reads PostgreSQL
as scripts/orchestrate.sh sets it up (PGTEST_PORT, user and password tap).
"""

from __future__ import annotations

import json
import os
import sys
import typing as t
from pathlib import Path

import psycopg
from psycopg import sql

from orchestrate.plan import plan_shards

SCHEMA = os.environ.get("TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA", "avicenna")


def connect(database: str) -> psycopg.Connection[t.Any]:
    port = int(os.environ["PGTEST_PORT"])
    return psycopg.connect(host="127.0.0.1", port=port, user="tap", password="tap", dbname=database)


def sensor_rows(count: int) -> dict[int, int]:
    """Loaded sensor rows per shard index."""
    rows = dict.fromkeys(range(count), 0)
    with connect("tapdb") as conn:
        tables = conn.execute(
            "select table_name from information_schema.tables where table_schema = %s "
            "and table_name like 'sensor\\_%%'",
            (SCHEMA,),
        ).fetchall()
        for (table,) in tables:
            query = sql.SQL("select participant_id % {n}, count(*) from {t} group by 1").format(
                n=sql.Literal(count), t=sql.Identifier(SCHEMA, table)
            )
            for index, number in conn.execute(query):
                rows[int(index)] += int(number)
    return rows


def stored_state_ids() -> set[str]:
    with connect("meltano") as conn:
        return {str(state_id) for (state_id,) in conn.execute("select state_id from state")}


def main(steps_json: str) -> int:
    report = json.loads(Path(steps_json).read_text(encoding="utf-8"))
    shards = plan_shards()
    rows, stored = sensor_rows(len(shards)), stored_state_ids()
    print(f"{'shard':<8}{'sensor rows':>12}  {'wall s':>7}{'retries':>8}  state id")
    for shard in shards:
        events = report["steps"].get(f"shard_{shard.index}", [])
        times = [event["time"] for event in events]
        retries = sum(event["event"] == "retry" for event in events)
        wall = max(times) - min(times) if times else 0.0
        state_id = shard.state_id()
        shown = state_id if state_id in stored else f"{state_id} (not stored)"
        print(f"{shard.index:<8}{rows[shard.index]:>12}  {wall:>7.1f}{retries:>8}  {shown}")
    dbt = report["steps"].get("dbt_build", [])
    if dbt:
        print(f"dbt build: {max(e['time'] for e in dbt) - min(e['time'] for e in dbt):.1f} s")
    print("job " + ("succeeded" if report["success"] else "FAILED"))
    return 0 if report["success"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
