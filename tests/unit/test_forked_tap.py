"""The forked tap the integration tests run (tests/forked_tap.py) behaves as
`python -m tap_avicenna` does: same output, exit code and working folder, and it ends
by a signal as a process does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests import forked_tap
from tests.conftest import make_simulator, tap_config


def real(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tap_avicenna", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_given_about_then_same_output_as_python_m() -> None:
    forked, started = forked_tap.run(["--about", "--format=json"]), real("--about", "--format=json")
    assert forked.returncode == started.returncode == 0
    assert forked.stdout == started.stdout
    assert json.loads(forked.stdout)["name"] == "tap-avicenna"


def test_given_relative_config_path_then_read_from_the_folder_given_like_python_m(
    tmp_path: Path,
) -> None:
    """The folder is the test's, not the server's: a config file named relative to it."""
    (tmp_path / "config.json").write_text(json.dumps({"username": "someone"}))
    forked = forked_tap.TapProcess(["--config", "config.json", "--discover"], cwd=tmp_path)
    _, err = forked.communicate(120)
    started = real("--config", "config.json", "--discover", cwd=tmp_path)
    assert forked.returncode == started.returncode == 1
    assert (
        err.strip().splitlines()[-1].split("| ", 3)[-1]
        == (started.stderr.strip().splitlines()[-1].split("| ", 3)[-1])
    )
    assert "'study_id'" in err


def test_given_sigkill_then_returncode_says_so_and_pipes_end(tmp_path: Path) -> None:
    """A sync whose export never finishes ends only by the signal."""
    with make_simulator(processing_delay=3600.0) as sim:
        (tmp_path / "config.json").write_text(json.dumps(tap_config(sim)))
        process = forked_tap.TapProcess(["--config", str(tmp_path / "config.json")])
        assert process.poll() is None
        process.kill()
        process.communicate(60)  # returns: both pipes end with the process
        assert process.returncode == -signal.SIGKILL
