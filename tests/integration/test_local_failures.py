"""What goes wrong on this machine, not at Avicenna: a disk that refuses the export's
file, a closed stdout, a second signal while stopping. Each ends the run with one line
saying why and a non-zero exit, as a real `python -m tap_avicenna` process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

import pytest

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


def _tap(config: dict[str, t.Any], folder: Path, stderr: t.IO[str]) -> subprocess.Popen[str]:
    """A real `python -m tap_avicenna` (its interpreter's start and shutdown are the
    point) with stdout a pipe of this test."""
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.Popen(
        [sys.executable, "-m", "tap_avicenna", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "TAP_AVICENNA_LOGLEVEL": "INFO"},
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_given_signals_until_the_process_is_gone_when_stopping_then_exit_128_plus_signal(
    simulator: Simulator, tmp_path: Path, signum: int
) -> None:
    """A first signal once records flow, then the same signal again and again until the
    process has exited: every one after the first is ignored, also those that come
    while the interpreter shuts down. Was: ended by the signal (-15 / -2)."""
    config = small_config(simulator)
    with tempfile.TemporaryFile("w+") as err:
        proc = _tap(config, tmp_path, err)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith('{"type":"RECORD"'):
                break
        proc.send_signal(signum)
        while proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)
        proc.stdout.close()
        err.seek(0)
        run = _parsed(proc.returncode, "", err.read())
    assert run.returncode == 128 + signum, run.stderr[-3000:]
    assert len(run.error_lines()) == 1 and "Traceback" not in run.stderr
    assert f"Interrupted by signal {signum}" in run.error_lines()[0]


def test_given_stdout_closed_by_its_reader_when_synced_then_one_line_and_exit_1(
    simulator: Simulator, tmp_path: Path
) -> None:
    """The target stops reading (it died, or `| head`). Was: exit 1 without a line."""
    config = small_config(simulator)
    with tempfile.TemporaryFile("w+") as err:
        proc = _tap(config, tmp_path, err)
        assert proc.stdout is not None
        proc.stdout.readline()
        proc.stdout.close()
        proc.wait(timeout=120)
        err.seek(0)
        run = _parsed(proc.returncode, "", err.read())
    assert run.returncode == 1, run.stderr[-3000:]
    assert run.error_lines() == [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(run.error_lines()) == 1, run.stderr[-3000:]
    assert "stdout was closed" in run.error_lines()[0]
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr
