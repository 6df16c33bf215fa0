#!/usr/bin/env bash
# test.sh -- the README's test command: set up, start a throwaway PostgreSQL, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PGTEST_PORT=${PGTEST_PORT:-55432}
trap 'bash scripts/pg-test.sh stop' EXIT
bash scripts/pg-test.sh start >/dev/null
.venv/bin/python -m pytest -q "$@"
