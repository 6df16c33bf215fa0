#!/usr/bin/env bash
# test.sh -- the README's test command and what CI runs: set up, start this checkout's
# throwaway PostgreSQL (scripts/pg-test.sh: its port, or PGTEST_PORT), run the tests
# without it on two workers (see pyproject.toml), then the e2e tests in one process
# (they share the server and meltano's system database), stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-chromium.sh >/dev/null  # the report's browser test (Debian's chromium)
PGTEST_PORT="$(bash scripts/pg-test.sh port)"
export PGTEST_PORT
trap 'bash scripts/pg-test.sh stop' EXIT
bash scripts/pg-test.sh start >/dev/null
# exit 5: the arguments selected no test of that kind
.venv/bin/python -m pytest -q -m "not e2e" "$@" || [ $? = 5 ]
.venv/bin/python -m pytest -q -m e2e -n 0 "$@" || [ $? = 5 ]
