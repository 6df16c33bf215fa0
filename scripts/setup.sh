#!/usr/bin/env bash
# setup.sh -- everything the demo and the tests need, on a fresh machine:
# the virtual environment at .venv/ (tap + dev tools + meltano) and meltano's plugins.
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS=never MELTANO_SEND_ANONYMOUS_USAGE_STATS=false \
  MELTANO_CLI_DISABLE_VERSION_CHECK=true
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
[ -x .venv/bin/uv ] || .venv/bin/pip install -q uv
.venv/bin/uv pip install -q --python .venv/bin/python -e '.[dev,report]'
mkdir -p output
if ! .venv/bin/meltano install >output/meltano-install.log 2>&1; then
  cat output/meltano-install.log >&2
  exit 1
fi
echo "setup: .venv and meltano plugins ready" >&2
