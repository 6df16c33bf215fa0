#!/usr/bin/env bash
# install-chromium.sh -- Debian's chromium for the report's browser test
# (tests/report/test_report_browser.py), installed when missing; prints the binary's path.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq >&2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
fi
command -v chromium
