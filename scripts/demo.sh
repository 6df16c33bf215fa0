#!/usr/bin/env bash
# demo.sh -- the README's main command: set up, then sync the bundled Avicenna simulator
# into a local DuckDB file with meltano, build the dbt package of transform/ on it, and
# print rows per table and compliance and data yield per participant.
#   bash scripts/demo.sh             # into output/warehouse.duckdb
#   bash scripts/demo.sh postgres    # into this checkout's throwaway PostgreSQL
#                                    # (scripts/pg-test.sh; its port: `... pg-test.sh port`)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-duckdb}" = postgres ]; then
  PGTEST_PORT="$(bash scripts/pg-test.sh port)"
  export PGTEST_PORT
  trap 'bash scripts/pg-test.sh stop' EXIT
  bash scripts/pg-test.sh start >/dev/null
  .venv/bin/python scripts/demo.py --target postgres
else
  .venv/bin/python scripts/demo.py --target duckdb
fi
