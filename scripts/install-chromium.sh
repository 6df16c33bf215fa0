#!/usr/bin/env bash
# install-chromium.sh -- Debian's chromium for the report's browser test
# (tests/report/test_report_browser.py), installed when missing; prints the binary's path.
# The package lists are updated first when they know no chromium, and again when the
# install fails (lists older than the mirror).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -qq --no-install-recommends chromium >&2; }
if ! command -v chromium >/dev/null 2>&1; then
  if ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq >&2
  fi
  install || { apt-get update -qq >&2 && install; }
fi
command -v chromium
