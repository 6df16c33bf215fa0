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
# uv >= 0.8: `uv pip install --group` (PEP 735)
[ -x .venv/bin/uv ] || .venv/bin/pip install -q 'uv>=0.8'
# the tap (editable, with the report's extra) and the development tools (pyproject's PEP 735 group `dev`)
.venv/bin/uv pip install -q --python .venv/bin/python -e '.[report]' --group dev
mkdir -p output
if ! .venv/bin/meltano install >output/meltano-install.log 2>&1; then
  cat output/meltano-install.log >&2
  exit 1
fi
echo "setup: .venv and meltano plugins ready" >&2
