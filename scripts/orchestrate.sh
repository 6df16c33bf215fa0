#!/usr/bin/env bash
# orchestrate.sh [--ui | setup] -- meltano.yml's shards under Dagster, on this machine:
# set up (the tap's .venv if missing; Dagster's own orchestrate/.venv), start this
# checkout's throwaway PostgreSQL (scripts/pg-test.sh; its second database `meltano`
# holds meltano's state) and the Avicenna simulator, run the job avicenna_sharded_sync
# (orchestrate/definitions.py: the shards at once, then dbt) and print per shard its
# rows, state id, wall time and retries. `--ui` starts `dagster dev` on 127.0.0.1:3000
# instead (Ctrl-C stops it all); `setup` only sets up.
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS=never MELTANO_SEND_ANONYMOUS_USAGE_STATS=false \
  MELTANO_CLI_DISABLE_VERSION_CHECK=true
[ -x .venv/bin/meltano ] || bash scripts/setup.sh
venv=orchestrate/.venv
if ! cmp -s orchestrate/requirements.txt "$venv/requirements.txt"; then
  .venv/bin/uv venv -q --allow-existing --python .venv/bin/python "$venv"
  .venv/bin/uv pip install -q --python "$venv/bin/python" -r orchestrate/requirements.txt
  cp orchestrate/requirements.txt "$venv/requirements.txt"
fi
[ "${1:-}" = setup ] && exit 0

PGTEST_PORT="$(bash scripts/pg-test.sh port)"
export PGTEST_PORT
mkdir -p output
sim_pid=
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null
  bash scripts/pg-test.sh stop
}
trap cleanup EXIT
bash scripts/pg-test.sh start >/dev/null
.venv/bin/tap-avicenna-simulator --port 0 2>output/simulator.log &
sim_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" output/simulator.log && break
  sleep 0.1
done
sim_url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' output/simulator.log | head -n1)"
[ -n "$sim_url" ] || { cat output/simulator.log >&2; exit 1; }
export TAP_AVICENNA_API_URL="$sim_url" TAP_AVICENNA_POLL_INTERVAL_SECONDS=0.2 \
  TARGET_POSTGRES_PORT="$PGTEST_PORT" TARGET_POSTGRES_PASSWORD=tap \
  DBT_POSTGRES_PORT="$PGTEST_PORT" DBT_POSTGRES_PASSWORD=tap PYTHONPATH="$PWD" \
  MELTANO_DATABASE_URI="postgresql+psycopg://tap:tap@127.0.0.1:$PGTEST_PORT/meltano"
export DAGSTER_HOME="$PWD/output/dagster-home"
mkdir -p "$DAGSTER_HOME" && cp orchestrate/dagster.yaml "$DAGSTER_HOME/"
if [ "${1:-}" = --ui ]; then
  "$venv/bin/dagster" dev -f orchestrate/definitions.py -h 127.0.0.1 -p 3000
  exit
fi
status=0
"$venv/bin/python" -m orchestrate.run output/orchestrate-steps.json || status=$?
.venv/bin/python -m orchestrate.report output/orchestrate-steps.json
exit "$status"
