#!/usr/bin/env bash
# test.sh -- the README's test command and what CI runs: set up, start this checkout's
# throwaway PostgreSQL (scripts/pg-test.sh: its port, or PGTEST_PORT), run pytest (two
# workers, see pyproject.toml), stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PGTEST_PORT="$(bash scripts/pg-test.sh port)"
export PGTEST_PORT
trap 'bash scripts/pg-test.sh stop' EXIT
bash scripts/pg-test.sh start >/dev/null
.venv/bin/python -m pytest -q "$@"
