"""The command line users know: --test, --about, --discover, python -m."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tap_avicenna.simulator import Simulator
from tests.conftest import _OUTPUTS, run_tap, tap_config


def test_given_good_credentials_when_test_flag_then_one_list_request_and_exit_0(
    simulator: Simulator, tmp_path: Path
) -> None:
    run = run_tap(tmp_path, tap_config(simulator), None, "--test")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Connection test passed: user 'researcher@example.com' can read study 1234" in (
        run.stderr
    )
    stats = simulator.stats()
    assert (stats["list"], stats["create"], stats["filter_create"]) == (1, 0, 0)
    assert not run.records()


def test_given_wrong_study_when_test_flag_then_one_error_line(
    simulator: Simulator, tmp_path: Path
) -> None:
    run = run_tap(tmp_path, tap_config(simulator, study_id=999), None, "--test")
    assert run.returncode == 1
    assert len(run.error_lines()) == 1 and "Study 999 was not found" in run.error_lines()[0]
    assert "Traceback" not in run.stderr


def test_given_about_markdown_when_run_as_module_then_settings_listed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tap_avicenna", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    )
    _OUTPUTS.append(("about", done.stdout))
    for setting in ("username", "api_key", "study_id", "participant_ids", "shard_index"):
        assert f"| {setting} |" in done.stdout


def test_given_config_when_discover_then_catalog_has_keys_and_replication(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = tap_config(
        simulator, surveys=[{"activity_id": 5678, "name": "daily", "columns": ["Q2"]}]
    )
    run = run_tap(tmp_path, config, None, "--discover")
    assert run.returncode == 0, run.stderr[-2000:]
    streams = {s["tap_stream_id"]: s for s in json.loads(run.stdout)["streams"]}
    assert set(streams) == {"participants", "sensor_gps", "sensor_accelerometer", "survey_daily"}
    assert streams["sensor_gps"]["key_properties"] == ["_row_id"]
    assert streams["sensor_gps"]["replication_key"] == "record_time"
    assert streams["survey_daily"]["key_properties"] == ["uuid"]
    assert streams["participants"]["key_properties"] == ["participant_id"]
    gps = streams["sensor_gps"]["schema"]["properties"]
    assert gps["lat"]["type"] == ["number", "null"]
    assert gps["record_time"]["format"] == "date-time"
    assert simulator.stats()["list"] == 0  # discovery makes no request
