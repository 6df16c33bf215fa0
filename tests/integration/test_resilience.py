"""What the tap survives, against the simulator: faults, kills and signals.

Every run's STATE messages are checked against what was emitted before them: a
participant bookmark B may only appear once every expected row of that participant
before B has been emitted (`assert_states_claim_only_emitted`).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import subprocess
import sys
import time
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tap_avicenna.simulator import Simulator
from tests.conftest import (
    _OUTPUTS,
    TapRun,
    make_simulator,
    multiset,
    row_key,
    run_tap,
    tap_config,
)

STREAM = "sensor_accelerometer"
SOURCE: dict[str, t.Any] = {"id": 20, "name": "accelerometer"}


def small_config(sim: Simulator, **overrides: t.Any) -> dict[str, t.Any]:
    """2 participants x 10 days, one export per (7-day window, participant): 4 exports."""
    settings: dict[str, t.Any] = {
        "participant_ids": [101, 102],
        "data_sources": [SOURCE],
        "end_date": "2025-01-11T00:00:00Z",
        "participants_per_export": 1,
    }
    return tap_config(sim, **{**settings, **overrides})


def expected(sim: Simulator, config: t.Mapping[str, t.Any]) -> list[dict[str, str]]:
    def when(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

    return sim.expected_rows(
        config["study_id"],
        SOURCE["id"],
        config["participant_ids"],
        when(config["start_date"]),
        when(config["end_date"]),
    )


def _utc(text: str) -> str:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def assert_states_claim_only_emitted(
    messages: t.Iterable[dict[str, t.Any]], rows: list[dict[str, str]]
) -> int:
    """No STATE claims a row that was not emitted before it; returns STATEs checked."""
    by_participant: dict[int, list[tuple[str, t.Any]]] = {}
    for row in rows:
        by_participant.setdefault(int(row["user_id"]), []).append(
            (_utc(row["record_time"]), row_key(row))
        )
    emitted: Counter[t.Any] = Counter()
    checked = 0
    for message in messages:
        if message["type"] == "RECORD" and message["stream"] == STREAM:
            emitted[row_key(message["record"])] += 1
        elif message["type"] == "STATE":
            marks = message["value"].get("bookmarks", {}).get(STREAM, {}).get("participants")
            for participant, mark in (marks or {}).items():
                missing = [
                    key
                    for when, key in by_participant.get(int(participant), [])
                    if when < mark and not emitted[key]
                ]
                assert not missing, f"STATE claims {participant} up to {mark}: {missing[:2]}"
                checked += 1
    return checked


def assert_exact(run: TapRun, rows: list[dict[str, str]]) -> None:
    assert run.returncode == 0, run.stderr[-3000:]
    assert multiset(run.records(STREAM)) == multiset(rows)
    assert assert_states_claim_only_emitted(run.messages, rows) > 0


def assert_failed_cleanly(run: TapRun, rows: list[dict[str, str]], message: str) -> None:
    assert run.returncode == 1, run.stderr[-3000:]
    errors = run.error_lines()
    assert len(errors) == 1 and message in errors[0], run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert_states_claim_only_emitted(run.messages, rows)


@dataclass
class Fault:
    """A fault, how to provoke it, and what the sync must end with."""

    name: str
    knobs: dict[str, t.Any]
    settings: dict[str, t.Any] = field(default_factory=dict)
    fails_with: str | None = None  # None: the exact rows, exit 0
    evidence: str | None = None  # a log line that shows the fault happened

    def __str__(self) -> str:
        return self.name


FAULTS = [
    Fault("429 bursts with Retry-After", {"error_rate": 0.3, "error_statuses": [429]},
          evidence="HTTP 429"),
    Fault("500/502/503 HTML pages", {"error_rate": 0.3, "error_statuses": [500, 502, 503]},
          evidence="HTTP 50"),
    Fault("connection reset mid-download", {"reset_next_downloads": 2},
          evidence="retrying in"),
    Fault("body shorter than Content-Length", {"truncate_next_downloads": 2},
          evidence="retrying in"),
    Fault("export fails once", {"fail_next_exports": 1},
          evidence="failed at Avicenna; creating it again"),
    Fault("export always fails", {"fail_data_sources": {20}},
          fails_with="failed at Avicenna on attempt 3 of 3"),
    Fault("export never finishes once", {"never_finish_next_exports": 1},
          {"export_timeout_seconds": 1.5}, evidence="timed out after"),
    Fault("export never finishes", {"never_finish_next_exports": 100},
          {"export_timeout_seconds": 1.0}, fails_with="timed out after"),
    Fault("expired download URL (410)", {"expire_next_downloads": 2},
          evidence="file is gone (HTTP 410); creating the export again"),
    Fault("unknown status label", {"unknown_label_next_exports": 4},
          evidence="status Queued For Worker"),
    Fault("status list briefly omits a pending export", {"hide_next_list_entries": 3}),
    Fault("create answer without the id", {"omit_id_next_creates": 2},
          evidence="the create answer had no id"),
    Fault("status labels in lower case", {"status_label_case": "lower"},
          evidence="status success"),
]  # fmt: skip


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_given_fault_when_synced_then_exact_rows_or_one_clear_line(
    fault: Fault, tmp_path: Path
) -> None:
    sim = make_simulator()
    try:
        sim.faults.retry_after = 1
        for name, value in fault.knobs.items():
            setattr(sim.faults, name, value)
        config = small_config(sim, **fault.settings)
        run = run_tap(tmp_path, config)
        rows = expected(sim, config)
        if fault.fails_with is None:
            assert_exact(run, rows)
        else:
            assert_failed_cleanly(run, rows, fault.fails_with)
        if fault.evidence:
            assert fault.evidence in run.stderr, run.stderr[-3000:]
        elif fault.fails_with is None:
            assert sim.stats()["faults_injected"] > 0
    finally:
        sim.stop()


def test_given_download_on_another_origin_when_synced_then_no_authorization_sent_there(
    tmp_path: Path,
) -> None:
    sim = make_simulator()
    try:
        sim.configure(
            download_origin="http://localhost:{port}",
            download_requires_auth=False,
            reject_auth_on_download_origin=True,  # answers 400 if Authorization comes
        )
        config = small_config(sim)
        assert_exact(run_tap(tmp_path, config), expected(sim, config))
        assert sim.stats()["downloads_completed"] >= 4
    finally:
        sim.stop()


# --- kills --------------------------------------------------------------------------


def _start(config_path: Path, state_path: Path | None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tap_avicenna", "--config", str(config_path)]
    if state_path is not None:
        command += ["--state", str(state_path)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _phase(stderr: str) -> str:
    """What the killed run was doing, from its last progress line."""
    for line in reversed(stderr.splitlines()):
        for marker, phase in (
            ("rows emitted", "emit"),
            ("Downloaded", "parse/emit"),
            ("status Success", "download"),
            ("Status poll", "poll"),
            ("Created export", "create"),
            ("planned", "create"),
        ):
            if marker in line:
                return phase
    return "start-up"


def test_given_20_runs_killed_at_random_when_each_resumed_then_no_row_is_lost(
    tmp_path: Path,
) -> None:
    """SIGKILL at a random moment, then one run from the last STATE the killed run
    printed: the two runs together emit every expected row."""
    sim = make_simulator(processing_delay=0.6)
    rng = random.Random(20261128)
    phases: Counter[str] = Counter()
    reused = created = lost = 0
    try:
        config = small_config(sim, end_date="2025-01-15T00:00:00Z", poll_interval_seconds=0.2)
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        rows = expected(sim, config)
        for trial in range(20):
            killed = _start(config_path, None)
            time.sleep(rng.uniform(0.3, 3.5))
            killed.send_signal(signal.SIGKILL)
            out, err = killed.communicate()
            _OUTPUTS.extend([("killed stdout", out), ("killed stderr", err)])
            phases["finished" if killed.returncode == 0 else _phase(err)] += 1
            first = [json.loads(x) for x in out.splitlines() if x.startswith('{"type"')]
            states = [m["value"] for m in first if m["type"] == "STATE"]
            before = len(sim.exports(1234))
            (tmp_path / f"r{trial}").mkdir()
            resumed = run_tap(tmp_path / f"r{trial}", config, states[-1] if states else None)
            assert resumed.returncode == 0, resumed.stderr[-3000:]
            reused += resumed.stderr.count("Resuming export #")
            created += len(sim.exports(1234)) - before
            union = {row_key(m["record"]) for m in first if m["type"] == "RECORD"}
            union |= {row_key(r) for r in resumed.records(STREAM)}
            missing = set(multiset(rows)) - union
            lost += len(missing)
            assert_states_claim_only_emitted(first, rows)
            assert_states_claim_only_emitted(resumed.messages, rows)
        print(
            f"\nkill trials: 20, rows lost: {lost}, exports re-used by resumed runs: "
            f"{reused}, created by them: {created}, killed during: {dict(phases)}"
        )
        assert lost == 0
        assert reused > 0
        assert len([p for p in phases if p not in ("finished", "start-up")]) >= 3
    finally:
        sim.stop()


def test_given_sigterm_when_syncing_then_final_state_and_nonzero_exit(tmp_path: Path) -> None:
    sim = make_simulator(processing_delay=1.0)
    try:
        config = small_config(sim)
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        proc = _start(config_path, None)
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if '"type":"RECORD"' in line:
                proc.send_signal(signal.SIGTERM)
                break
        out, err = proc.communicate()
        _OUTPUTS.extend([("stdout", "".join(lines) + out), ("stderr", err)])
        assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
        messages = [json.loads(x) for x in ("".join(lines) + out).splitlines() if x]
        assert messages[-1]["type"] == "STATE"
        assert "Interrupted by signal 15" in err and "Traceback" not in err
        assert_states_claim_only_emitted(messages, expected(sim, config))
    finally:
        sim.stop()
