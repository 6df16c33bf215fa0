"""Bad settings: every one ends the run with exit 1 and one ERROR line naming the setting.

Each case runs the tap's command twice (a sync and `--discover`) against a running
simulator and checks: exit code 1, exactly one `| ERROR` line on stderr, that line
naming the setting, no traceback, nothing on stdout, and no request reaching the
simulator (settings are checked before any network call). Sync and `--discover` share
one settings check, so the cases run the command in this process; a few run it as a
process too, for the exit code and the output of a real one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

import pytest
from singer_sdk.helpers.capabilities import BATCH_CONFIG, FLATTENING_CONFIG, STREAM_MAPS_CONFIG

from tap_avicenna.settings import CONFIG_SCHEMA
from tap_avicenna.simulator import Simulator
from tests.conftest import (
    _OUTPUTS,
    TapRun,
    cli_in_process,
    run_tap,
    sensor_exports,
    tap_config,
)

REMOVE = object()
"""An override value that deletes the setting from the config."""

REQUEST_COUNTERS = ("create", "filter_create", "list", "download", "other")


@dataclass(frozen=True)
class BadSetting:
    """One invalid configuration and the setting its ERROR line must name."""

    id: str
    overrides: dict[str, t.Any]
    names: str


BAD_SETTINGS: list[BadSetting] = [
    BadSetting("missing-username", {"username": REMOVE}, "username"),
    BadSetting("missing-api-key", {"api_key": REMOVE}, "api_key"),
    BadSetting("missing-study-id", {"study_id": REMOVE}, "study_id"),
    BadSetting("study-id-not-numeric", {"study_id": "abc"}, "study_id"),
    BadSetting("study-id-negative", {"study_id": -5}, "study_id"),
    BadSetting("missing-start-date", {"start_date": REMOVE}, "start_date"),
    BadSetting("start-date-not-a-date", {"start_date": "yesterday"}, "start_date"),
    BadSetting(
        "end-date-before-start-date",
        {"start_date": "2025-01-10T00:00:00Z", "end_date": "2025-01-05T00:00:00Z"},
        "end_date",
    ),
    BadSetting(
        "end-date-equals-start-date",
        {"start_date": "2025-01-10T00:00:00Z", "end_date": "2025-01-10T00:00:00Z"},
        "end_date",
    ),
    BadSetting(
        "data-source-name-twice",
        {"data_sources": [{"id": 10, "name": "gps"}, {"id": 11, "name": "gps"}]},
        "data_sources",
    ),
    BadSetting(
        "data-source-id-twice",
        {"data_sources": [{"id": 10, "name": "gps"}, {"id": 10, "name": "location"}]},
        "data_sources",
    ),
    BadSetting(
        "data-source-name-not-snake-case",
        {"data_sources": [{"id": 10, "name": "GPS Data"}]},
        "data_sources[0].name",
    ),
    BadSetting(
        "data-source-unknown-field-type",
        {"data_sources": [{"id": 40, "name": "light", "fields": {"lux": "float"}}]},
        "data_sources[0].fields.lux",
    ),
    BadSetting(
        "survey-name-twice",
        {
            "surveys": [
                {"activity_id": 5678, "name": "daily"},
                {"activity_id": 5679, "name": "daily"},
            ]
        },
        "surveys",
    ),
    BadSetting("survey-activity-id-missing", {"surveys": [{"name": "daily"}]}, "activity_id"),
    BadSetting("export-window-days-zero", {"export_window_days": 0}, "export_window_days"),
    BadSetting("export-window-days-negative", {"export_window_days": -1}, "export_window_days"),
    BadSetting(
        "participants-per-export-zero", {"participants_per_export": 0}, "participants_per_export"
    ),
    BadSetting(
        "participants-per-export-fraction",
        {"participants_per_export": 2.5},
        "participants_per_export",
    ),
    BadSetting(
        "max-concurrent-exports-zero", {"max_concurrent_exports": 0}, "max_concurrent_exports"
    ),
    BadSetting(
        "poll-interval-not-numeric", {"poll_interval_seconds": "abc"}, "poll_interval_seconds"
    ),
    BadSetting("lookback-days-negative", {"lookback_days": -1}, "lookback_days"),
    BadSetting("api-url-http-remote-host", {"api_url": "http://example.com"}, "api_url"),
    BadSetting("api-url-ftp", {"api_url": "ftp://127.0.0.1/avicenna"}, "api_url"),
    BadSetting("participant-ids-empty", {"participant_ids": []}, "participant_ids"),
    BadSetting(
        "participant-id-not-an-integer", {"participant_ids": [101, "x102"]}, "participant_ids"
    ),
    BadSetting(
        "max-uncompressed-file-mb-zero",
        {"max_uncompressed_file_mb": 0},
        "max_uncompressed_file_mb",
    ),
    BadSetting(
        "max-waiting-files-mb-zero",
        {"max_waiting_files_mb": 0},
        "max_waiting_files_mb",
    ),
    BadSetting(
        "export-timeout-seconds-zero", {"export_timeout_seconds": 0}, "export_timeout_seconds"
    ),
    BadSetting(
        "request-timeout-seconds-negative",
        {"request_timeout_seconds": -1},
        "request_timeout_seconds",
    ),
    BadSetting("retry-backoff-seconds-zero", {"retry_backoff_seconds": 0}, "retry_backoff_seconds"),
    BadSetting("shard-count-zero", {"shard_count": 0}, "shard_count"),
    BadSetting("shard-index-not-below-count", {"shard_count": 2, "shard_index": 2}, "shard_index"),
]


@dataclass(frozen=True)
class BadConfigFile:
    """A `--config` argument that cannot be read as a JSON settings object."""

    id: str
    make: t.Callable[[Path], Path]


def _directory(tmp: Path) -> Path:
    path = tmp / "config-dir.json"
    path.mkdir()
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "no-such-config.json"


def _invalid_json(tmp: Path) -> Path:
    path = tmp / "broken.json"
    path.write_text('{"username": "researcher@example.com",\n  "api_key": \n')
    return path


BAD_CONFIG_FILES: list[BadConfigFile] = [
    BadConfigFile("config-path-is-a-directory", _directory),
    BadConfigFile("config-file-missing", _missing),
    BadConfigFile("config-file-invalid-json", _invalid_json),
]

MODES = {"sync": (), "discover": ("--discover",)}


@pytest.fixture(scope="module")
def sim(simulator_module: Simulator) -> Simulator:
    return simulator_module


def requests_served(sim: Simulator) -> int:
    stats = sim.stats()
    return sum(int(stats[name]) for name in REQUEST_COUNTERS)


def bad_config(sim: Simulator, overrides: dict[str, t.Any]) -> dict[str, t.Any]:
    config = tap_config(
        sim,
        participant_ids=[101],
        data_sources=[{"id": 20, "name": "accelerometer"}],
        start_date="2025-01-01T00:00:00Z",
        end_date="2025-01-03T00:00:00Z",
    )
    for name, value in overrides.items():
        if value is REMOVE:
            config.pop(name, None)
        else:
            config[name] = value
    return config


def run_cli(config_path: Path, *args: str) -> TapRun:
    """Run the installed `tap-avicenna` command with a config file of our making."""
    command = [str(Path(sys.executable).parent / "tap-avicenna"), "--config", str(config_path)]
    env = {**os.environ, "TAP_AVICENNA_LOGLEVEL": "INFO"}
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    _OUTPUTS.extend([("stdout", done.stdout), ("stderr", done.stderr)])
    return TapRun(done.returncode, done.stdout, done.stderr)


def assert_one_error_naming(run: TapRun, name: str) -> None:
    assert run.returncode == 1, run.stderr[-3000:]
    errors = run.error_lines()
    assert len(errors) == 1, run.stderr[-3000:]
    assert name in errors[0], errors[0]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.stdout.strip() == "", run.stdout[:2000]


def test_given_the_tap_schema_then_each_required_and_number_setting_has_a_bad_case() -> None:
    """A setting the tap requires, or a number setting, added without a case here fails.
    (singer-sdk adds its own settings to the tap's schema object once a tap is made.)"""
    sdk = {
        name
        for settings in (FLATTENING_CONFIG, STREAM_MAPS_CONFIG, BATCH_CONFIG)
        for name in settings["properties"]
    }
    properties = {k: v for k, v in CONFIG_SCHEMA["properties"].items() if k not in sdk}
    kinds = {name: spec.get("type") for name, spec in properties.items()}
    numbers = {
        name
        for name, kind in kinds.items()
        if {"integer", "number"} & set(kind if isinstance(kind, list) else [kind])
    }
    missing = {
        name
        for name in CONFIG_SCHEMA["required"]
        if not any(case.overrides.get(name) is REMOVE for case in BAD_SETTINGS)
    }
    missing |= {
        name
        for name in numbers
        if not any(
            case.names == name and case.overrides.get(name, REMOVE) is not REMOVE
            for case in BAD_SETTINGS
        )
    }
    assert {"username", "study_id", "start_date", "lookback_days"} <= set(properties)
    assert not missing, f"no bad-setting case for {sorted(missing)}"


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", BAD_SETTINGS, ids=[case.id for case in BAD_SETTINGS])
def test_given_bad_setting_when_run_then_exit_1_with_one_error_line_naming_it(
    sim: Simulator, tmp_path: Path, case: BadSetting, mode: str
) -> None:
    before = requests_served(sim)
    run = cli_in_process(tmp_path, bad_config(sim, case.overrides), *MODES[mode])
    assert_one_error_naming(run, case.names)
    assert requests_served(sim) == before, "a request was sent before the settings were checked"


AS_PROCESS = ["missing-api-key", "end-date-before-start-date", "data-source-unknown-field-type"]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case_id", AS_PROCESS)
def test_given_bad_setting_when_run_as_a_process_then_exit_1_with_one_error_line_naming_it(
    sim: Simulator, tmp_path: Path, case_id: str, mode: str
) -> None:
    case = next(case for case in BAD_SETTINGS if case.id == case_id)
    before = requests_served(sim)
    run = run_tap(tmp_path, bad_config(sim, case.overrides), None, *MODES[mode], timeout=60)
    assert_one_error_naming(run, case.names)
    assert requests_served(sim) == before, "a request was sent before the settings were checked"


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", BAD_CONFIG_FILES, ids=[case.id for case in BAD_CONFIG_FILES])
def test_given_unreadable_config_file_when_run_then_exit_1_with_one_error_line_naming_it(
    tmp_path: Path, case: BadConfigFile, mode: str
) -> None:
    path = case.make(tmp_path)
    assert_one_error_naming(cli_in_process(tmp_path, path, *MODES[mode]), str(path))


def test_given_unreadable_config_file_when_installed_command_run_then_exit_1_one_line(
    tmp_path: Path,
) -> None:
    path = _invalid_json(tmp_path)
    assert_one_error_naming(run_cli(path), str(path))


def test_given_numeric_strings_for_number_settings_when_synced_then_accepted(
    sim: Simulator, tmp_path: Path
) -> None:
    config = bad_config(
        sim,
        {
            "poll_interval_seconds": "0.1",
            "export_window_days": "7",
            "lookback_days": "2",
            "participants_per_export": "50",
            "max_uncompressed_file_mb": "100",
            "max_waiting_files_mb": "100",
        },
    )
    before = len(sensor_exports(sim))
    run = run_tap(tmp_path, config, None, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.error_lines(), run.stderr[-3000:]
    assert run.records("sensor_accelerometer")
    # export_window_days "7" was read as 7 days: the 2 days are one export
    assert len(sensor_exports(sim)) - before == 1
    marks = run.last_state["bookmarks"]["sensor_accelerometer"]["participants"]
    assert marks == {"101": "2025-01-03T00:00:00.000000+00:00"}


def test_given_survey_and_data_source_with_same_name_when_discovered_then_two_streams(
    sim: Simulator, tmp_path: Path
) -> None:
    config = bad_config(
        sim,
        {
            "data_sources": [{"id": 20, "name": "daily"}],
            "surveys": [{"activity_id": 5678, "name": "daily"}],
        },
    )
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    run = run_cli(path, "--discover")
    assert run.returncode == 0, run.stderr[-3000:]
    streams = {s["tap_stream_id"] for s in json.loads(run.stdout)["streams"]}
    assert {"sensor_daily", "survey_daily"} <= streams
