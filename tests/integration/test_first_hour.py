"""The first hour of a new user (issue 13): every mistake is one line, found at start-up.

Each test runs the tap as a subprocess with the mistake and checks its exit code and
its last stderr line (the single ERROR line, no traceback); where the point is that the
failure comes before any export, that no export was created (at start-up: no request). The
README's commands are run by tests/e2e/test_readme_commands.py; meltano.yml's settings
by tests/unit/test_meltano_yml.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import typing as t
from collections import Counter
from pathlib import Path

import pytest

from tap_avicenna.catalogue import known_sources
from tap_avicenna.parsing import normalize_name
from tap_avicenna.simulator import Simulator
from tests.conftest import _OUTPUTS, TapRun, make_simulator, run_tap, tap_config
from tests.forked_tap import TapProcess

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = ("create", "filter_create", "list", "download", "admin", "other")


def small_config(simulator: Simulator, **overrides: t.Any) -> dict[str, t.Any]:
    """One participant, one data source, two days: one export."""
    small: dict[str, t.Any] = {
        "participant_ids": [101],
        "data_sources": [{"id": 10, "name": "gps"}],
        "start_date": "2025-01-01T00:00:00Z",
        "end_date": "2025-01-03T00:00:00Z",
    }
    return tap_config(simulator, **{**small, **overrides})


def tap_run(tmp_path: Path, config: dict[str, t.Any], *args: str) -> TapRun:
    return run_tap(tmp_path, config, None, *args)


def last_line(run: TapRun) -> str:
    lines = run.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def assert_one_error_last(run: TapRun, *expected: str) -> str:
    """Exit 1, exactly one ERROR line, it is the last line, it says `expected`."""
    assert run.returncode == 1, run.stderr[-3000:]
    assert len(run.error_lines()) == 1, run.stderr[-3000:]
    line = last_line(run)
    assert "| ERROR" in line, run.stderr[-3000:]
    for text in expected:
        assert text in line, line
    assert "Traceback" not in run.stderr
    assert not run.messages, run.stdout[:2000]
    return line


def assert_no_export(simulator: Simulator) -> None:
    """The mistake was found before any export was created or downloaded."""
    stats = simulator.stats()
    assert (stats["create"], stats["filter_create"], stats["download"]) == (0, 0, 0), stats


def assert_no_request(simulator: Simulator) -> None:
    """The mistake was found at start-up: before any request reached Avicenna."""
    stats = simulator.stats()
    assert {name: stats[name] for name in REQUESTS} == dict.fromkeys(REQUESTS, 0), stats


def warnings(run: TapRun) -> list[str]:
    return [line for line in run.stderr.splitlines() if "| WARNING" in line]


# --- 2: unknown settings --------------------------------------------------------------

TYPOS = {"participants_ids": [101], "enddate": "2025-01-02", "lookback_day": 1}
CLOSEST = {
    "participants_ids": "participant_ids",
    "enddate": "end_date",
    "lookback_day": "lookback_days",
}


def test_given_misspelt_settings_when_test_then_each_warned_with_closest_known_setting(
    simulator: Simulator, tmp_path: Path
) -> None:
    run = tap_run(tmp_path, small_config(simulator, **TYPOS), "--test")
    assert run.returncode == 0, run.stderr[-3000:]
    lines = warnings(run)
    for typo, meant in CLOSEST.items():
        named = [line for line in lines if f"'{typo}'" in line]
        assert len(named) == 1, lines
        assert f"did you mean '{meant}'?" in named[0] and "ignored" in named[0], named[0]


SDK_KEYS: dict[str, t.Any] = {
    "stream_maps": {"sensor_gps": {"provider": None}},
    "stream_map_config": {"salt": "x"},
    "faker_config": {"seed": 1},
    "flattening_enabled": False,
    "flattening_max_depth": 1,
    "batch_config": None,
    "strict_settings": True,
}


def test_given_singer_sdk_and_meltano_keys_when_strict_then_known(
    simulator: Simulator, tmp_path: Path
) -> None:
    run = tap_run(tmp_path, small_config(simulator, **SDK_KEYS), "--test")
    assert run.returncode == 0, run.stderr[-3000:]
    assert not warnings(run), warnings(run)


@pytest.mark.parametrize(
    "mode", [("--test",), ("--discover",), ()], ids=["test", "discover", "sync"]
)
def test_given_misspelt_setting_and_strict_settings_when_run_then_one_error_line(
    simulator: Simulator, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    config = small_config(simulator, participants_ids=[101], strict_settings=True)
    run = tap_run(tmp_path, config, *mode)
    assert_one_error_last(
        run, "unknown setting 'participants_ids' (did you mean 'participant_ids'?)"
    )
    assert_no_request(simulator)
    assert_no_export(simulator)


def test_given_misspelt_required_setting_when_sync_then_the_error_names_the_misspelling(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = small_config(simulator)
    config["studyid"] = config.pop("study_id")
    run = tap_run(tmp_path, config)
    assert_one_error_last(
        run, "'study_id' is a required property", "unknown setting 'studyid' (did you mean"
    )


# --- 4: folders the tap writes to ------------------------------------------------------


def _under_a_file(tmp_path: Path) -> Path:
    """A folder path that cannot be created, even by root: its parent is a file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "batches"


@pytest.mark.parametrize("mode", [("--test",), ()], ids=["test", "sync"])
@pytest.mark.parametrize("setting", ["batch_config.storage.root", "response_files_dir"])
def test_given_unwritable_output_folder_when_run_then_one_line_before_any_export(
    simulator: Simulator, tmp_path: Path, setting: str, mode: tuple[str, ...]
) -> None:
    folder = _under_a_file(tmp_path)
    if setting == "response_files_dir":
        overrides: dict[str, t.Any] = {"response_files_dir": str(folder)}
    else:
        batch = {"encoding": {"format": "jsonl"}, "storage": {"root": folder.as_uri()}}
        overrides = {"batch_config": batch}
    run = tap_run(tmp_path, small_config(simulator, **overrides), *mode)
    assert_one_error_last(run, f"Setting '{setting}'", "cannot write there")
    assert_no_request(simulator)
    assert_no_export(simulator)


def test_given_new_writable_output_folders_when_sync_then_created_and_used(
    simulator: Simulator, tmp_path: Path
) -> None:
    root = tmp_path / "new" / "batches"
    batch = {"encoding": {"format": "jsonl"}, "storage": {"root": root.as_uri()}}
    run = tap_run(tmp_path, small_config(simulator, batch_config=batch))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.records("sensor_gps")
    written = sorted(p.name for p in root.iterdir())
    assert written and all(not name.startswith(".tap-avicenna-check") for name in written)


# --- 5: the state file -----------------------------------------------------------------

BROKEN_STATES: dict[str, tuple[str, str]] = {
    "empty": ("", "is empty"),
    "truncated": (
        '{"bookmarks": {"sensor_gps": {"participants": {"101": "2025-01',
        "not valid JSON",
    ),
    "a-list": ("[]", "must hold a JSON object"),
    "bookmark-not-a-time": (
        '{"bookmarks": {"sensor_gps": {"participants": {"101": "last tuesday"}}}}',
        "'bookmarks.sensor_gps.participants.101' is not a date-time",
    ),
    "export-id-not-a-number": (
        '{"bookmarks": {"sensor_gps": {"pending_exports": {"k": "12"}}}}',
        "'bookmarks.sensor_gps.pending_exports.k' must be an export id",
    ),
    "bookmarks-not-an-object": ('{"bookmarks": []}', "'bookmarks' must be an object"),
}


BROKEN_CATALOGS = {
    "truncated": ('{"streams": [', "is not valid JSON"),
    "a-list": ("[]", "must hold an object with a 'streams' list"),
    "stream-without-id": ('{"streams": [{"stream": "sensor_gps"}]}', "'tap_stream_id'"),
}
BROKEN_FILES = [
    *(("--state", case, *broken) for case, broken in BROKEN_STATES.items()),
    *(("--catalog", case, *broken) for case, broken in BROKEN_CATALOGS.items()),
]


@pytest.mark.parametrize(
    ("option", "text", "reason"),
    [(option, text, reason) for option, _, text, reason in BROKEN_FILES],
    ids=[f"{option[2:]}-{case}" for option, case, _, _ in BROKEN_FILES],
)
def test_given_broken_state_or_catalog_file_when_sync_then_one_line_naming_the_file(
    simulator: Simulator, tmp_path: Path, option: str, text: str, reason: str
) -> None:
    """A state or catalog file the SDK would fail on (late, or with a traceback) is one
    line naming it, before any export."""
    path = tmp_path / "file.json"
    path.write_text(text)
    run = tap_run(tmp_path, small_config(simulator), option, str(path))
    assert_one_error_last(run, f"'{path}'", reason)
    assert_no_request(simulator)
    assert_no_export(simulator)


def test_given_missing_state_file_when_sync_then_one_line_naming_it(
    simulator: Simulator, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-state.json"
    run = tap_run(tmp_path, small_config(simulator), "--state", str(missing))
    assert_one_error_last(run, f"Cannot read state file '{missing}'")


@pytest.mark.parametrize("wrapper", ["meltano", "state-message"])
def test_given_wrapped_state_when_sync_then_it_resumes_like_the_bare_state(
    simulator: Simulator, tmp_path: Path, wrapper: str
) -> None:
    """`meltano state get` prints {"singer_state": ...}; a tap's output holds STATE
    messages: both resume from their bookmarks instead of exporting everything again."""
    # the resumed runs' rows show where they started: the lookback sent again in full
    config = small_config(
        simulator, end_date="2025-01-15T00:00:00Z", lookback_days=1, skip_unchanged_days=False
    )
    for folder in ("first", "bare"):
        (tmp_path / folder).mkdir()
    first = run_tap(tmp_path / "first", config)
    assert first.returncode == 0, first.stderr[-3000:]
    state = first.last_state
    wrapped = {"singer_state": state} if wrapper == "meltano" else {"type": "STATE", "value": state}
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps(wrapped))
    resumed = tap_run(tmp_path, config, "--state", str(path))
    bare = run_tap(tmp_path / "bare", config, state)
    assert resumed.returncode == bare.returncode == 0, resumed.stderr[-3000:]
    times = [r["record_time"] for r in resumed.records("sensor_gps")]
    assert times and min(times) >= "2025-01-14"  # the lookback day only, not from the 1st
    assert len(times) == len(bare.records("sensor_gps")) < len(first.records("sensor_gps"))


# --- 7 and 8: dates and discovery ------------------------------------------------------


def test_given_start_date_in_future_when_test_then_named_as_such(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = small_config(simulator, start_date="2099-01-01T00:00:00Z")
    del config["end_date"]
    run = tap_run(tmp_path, config, "--test")
    line = assert_one_error_last(run, "Setting 'start_date'", "is in the future")
    assert "end_date" not in line


def test_given_several_missing_settings_when_discover_then_all_named_in_one_line(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = small_config(simulator)
    for name in ("username", "study_id", "start_date"):
        del config[name]
    run = tap_run(tmp_path, config, "--discover")
    assert_one_error_last(run, "'username'", "'study_id'", "'start_date'")
    assert not warnings(run), warnings(run)
    assert_no_request(simulator)


# --- 9: known data source names --------------------------------------------------------


def about(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tap_avicenna", "--about", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    _OUTPUTS.append(("about", done.stdout))
    return done.stdout


def test_given_about_then_every_catalogue_entry_listed_with_typed_fields() -> None:
    entries = json.loads((ROOT / "tap_avicenna" / "datasources.json").read_text())
    listed = json.loads(about("--format=json"))["data_sources"]
    assert len(listed) == len(entries)
    for entry, shown in zip(entries, listed, strict=True):
        assert shown["names"][0] == normalize_name(entry["name"])
        assert set(shown["fields"]) == {normalize_name(f["name"]) for f in entry["fields"]}
    gps = next(s for s in listed if s["names"] == ["gps"])
    assert gps["fields"]["lat"] == "number" and gps["fields"]["satellite_time"] == "date-time"
    for output_format in ((), ("--format=markdown",)):
        text = about(*output_format)
        assert "lat (number)" in text, output_format
        assert all(name in text for source in known_sources() for name in source.names)


def test_given_unknown_data_source_name_when_discover_then_warning_suggests_close_name(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = small_config(
        simulator,
        data_sources=[
            {"id": 10, "name": "location"},
            {"id": 20, "name": "accelerometer"},
            {"id": 40, "name": "light", "fields": {"lux": "number"}},
        ],
    )
    run = tap_run(tmp_path, config, "--discover")
    assert run.returncode == 0, run.stderr[-3000:]
    lines = warnings(run)
    assert len(lines) == 1, lines  # known names, and names typed by `fields`, are not warned
    assert "'location'" in lines[0] and "did you mean 'gps'?" in lines[0]
    assert "strings" in lines[0] and "`fields`" in lines[0]
    streams = {s["tap_stream_id"]: s for s in json.loads(run.stdout)["streams"]}
    location = streams["sensor_location"]["schema"]["properties"]
    assert "lat" not in location  # nothing typed: the file's columns arrive as strings


# --- 10: --help ------------------------------------------------------------------------


def test_given_help_then_test_flag_described_as_this_taps_check() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tap_avicenna", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "one request (the study's export list)" in text
    assert "sync a single record" not in text
    assert '{"singer_state": ...}' in text


# --- 12: SIGINT ------------------------------------------------------------------------


@pytest.mark.parametrize("signals", [1, 2], ids=["once", "twice"])
def test_given_sigint_mid_sync_then_record_count_metric_exact_and_error_line_last(
    tmp_path: Path, signals: int
) -> None:
    """Two weekly exports of 10,080 accelerometer rows each: the signal comes after the
    first 10,000-record bulk, while records are being written; `twice`: a second one on
    the next line the tap writes (a user pressing Ctrl-C again while it stops)."""
    sim = make_simulator(processing_delay=0.05)
    try:
        config = tap_config(
            sim,
            data_sources=[{"id": 20, "name": "accelerometer"}],
            end_date="2025-01-15T00:00:00Z",
            participants_per_export=5,
        )
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        env = {**os.environ, "TAP_AVICENNA_LOGLEVEL": "INFO"}
        with tempfile.TemporaryFile("w+") as err:
            proc = TapProcess(["--config", str(config_path)], stderr=err, env=env)
            assert proc.stdout is not None
            out, seen, sent = [], 0, 0
            for line in proc.stdout:  # read to the end: nothing is left in a buffer
                out.append(line)
                if sent and sent < signals:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGINT)
                    sent += 1
                if line.startswith('{"type":"RECORD","stream":"sensor_accelerometer"'):
                    seen += 1
                    if seen == 12_345:  # once: the line after it may be the final STATE
                        proc.send_signal(signal.SIGINT)
                        sent = 1
            proc.wait(timeout=120)
            err.seek(0)
            stderr = err.read()
        _OUTPUTS.extend([("stdout", "".join(out)), ("stderr", stderr)])
        messages = [json.loads(line) for line in out]
        emitted = Counter(m["stream"] for m in messages if m["type"] == "RECORD")
        counted: Counter[str] = Counter()
        for line in stderr.splitlines():
            if '"metric":"record_count"' in line:
                point = json.loads(line.split("METRIC: ", 1)[1])
                counted[point["tags"]["stream"]] += point["value"]
        assert proc.returncode == 128 + signal.SIGINT, stderr[-3000:]
        assert emitted["sensor_accelerometer"] >= 12_345
        assert counted == emitted
        assert messages[-1]["type"] == "STATE"
        run = TapRun(proc.returncode, "", stderr)
        assert len(run.error_lines()) == 1 and "Traceback" not in stderr
        assert "| ERROR" in last_line(run) and "Interrupted by signal 2" in last_line(run)
    finally:
        sim.stop()
