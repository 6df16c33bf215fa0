"""What goes wrong on this machine, not at Avicenna: a disk that refuses the export's
file, a closed stdout, a second signal while stopping. Each ends the run with one line
saying why and a non-zero exit, as a real `python -m tap_avicenna` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tap_avicenna.simulator import Simulator
from tests.conftest import _parsed
from tests.integration.test_resilience import small_config

# `python -m tap_avicenna` whose regular files may not grow past 4 KiB (RLIMIT_FSIZE;
# Python ignores SIGXFSZ, so a write past it fails with EFBIG): a disk that refuses
# the export files, for a process that is root and that no permission stops.
SMALL_FILES_TAP = (
    "import resource, runpy, sys; "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); "
    "sys.argv[0] = 'tap_avicenna'; "
    "runpy.run_module('tap_avicenna', run_name='__main__', alter_sys=True)"
)


def test_given_files_folder_refusing_writes_when_synced_then_one_error_naming_it(
    simulator: Simulator, tmp_path: Path
) -> None:
    """Was: "connection failed (OSError)", retried 8 times, then "Download of ... failed"."""
    config = small_config(simulator)
    (tmp_path / "config.json").write_text(json.dumps(config))
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", SMALL_FILES_TAP, "--config", str(tmp_path / "config.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(temp), "TAP_AVICENNA_LOGLEVEL": "INFO"},
        check=False,
    )
    run = _parsed(done.returncode, done.stdout, done.stderr)
    assert run.returncode == 1, run.stderr[-3000:]
    errors = run.error_lines()
    assert len(errors) == 1, run.stderr[-3000:]
    assert f"in {temp}/tap-avicenna-files-" in errors[0]
    assert errors[0].endswith(": File too large (EFBIG)")
    assert "retrying" not in run.stderr and "connection failed" not in run.stderr
