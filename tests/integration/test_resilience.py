"""What the tap survives, against the simulator: faults, kills and signals.

Every run's STATE messages are checked against what was emitted before them: a
participant bookmark B may only appear once every expected row of that participant
before B has been emitted (`assert_states_claim_only_emitted`).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import signal
import threading
import typing as t
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tap_avicenna.simulator import Simulator
from tests.conftest import (
    _OUTPUTS,
    STUDY_ID,
    TapRun,
    catalog_file,
    make_simulator,
    multiset,
    row_key,
    run_tap,
    sync_in_process,
    tap_config,
)
from tests.forked_tap import TapProcess

STREAM = "sensor_accelerometer"
SOURCE: dict[str, t.Any] = {"id": 20, "name": "accelerometer"}


SKIPPED = re.compile(r"([\d,]+) row\(s\) of periods sent before and unchanged not emitted")


def skipped(run: TapRun) -> int:
    """Rows a run logged as not sent again, their periods unchanged (skip_unchanged_days)."""
    return sum(int(n.replace(",", "")) for n in SKIPPED.findall(run.stderr))


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


class Claims:
    """Checks STATE messages, fed in order (across runs that resume one another), against
    the rows emitted before them: a participant bookmark B may only appear once every
    expected row of that participant before B has been emitted."""

    def __init__(self, rows: list[dict[str, str]]) -> None:
        by_participant: dict[str, list[tuple[str, t.Any]]] = {}
        for row in rows:
            by_participant.setdefault(str(int(row["user_id"])), []).append(
                (_utc(row["record_time"]), row_key(row))
            )
        self._rows = {p: sorted(marks) for p, marks in by_participant.items()}
        self.expected = {key for marks in self._rows.values() for _, key in marks}
        self.emitted: Counter[t.Any] = Counter()
        self.checked = 0
        self._out = dict.fromkeys(self._rows, 0)  # each participant's emitted prefix

    def fresh(self) -> Claims:
        """A new checker of the same rows (nothing emitted yet)."""
        new = copy.copy(self)
        new.emitted, new.checked, new._out = Counter(), 0, dict.fromkeys(self._rows, 0)
        return new

    def feed(self, messages: t.Iterable[dict[str, t.Any]]) -> Claims:
        for message in messages:
            if message["type"] == "RECORD" and message["stream"] == STREAM:
                self.emitted[row_key(message["record"])] += 1
            elif message["type"] == "STATE":
                marks = message["value"].get("bookmarks", {}).get(STREAM, {}).get("participants")
                for participant, mark in (marks or {}).items():
                    self._check(participant, mark)
        return self

    def _check(self, participant: str, mark: str) -> None:
        rows = self._rows.get(participant, [])
        done = self._out.get(participant, 0)
        while done < len(rows) and self.emitted[rows[done][1]]:
            done += 1
        self._out[participant] = done
        missing = [key for when, key in rows[done:] if when < mark and not self.emitted[key]]
        assert not missing, f"STATE claims {participant} up to {mark}: {missing[:2]}"
        self.checked += 1


def assert_states_claim_only_emitted(
    messages: t.Iterable[dict[str, t.Any]], rows: list[dict[str, str]]
) -> int:
    """No STATE claims a row that was not emitted before it; returns STATEs checked."""
    return Claims(rows).feed(messages).checked


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
        config = small_config(sim, retry_backoff_seconds=0.01, **fault.settings)
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
        # A 429's Retry-After (1 s) is honoured; other first retries wait 0.005-0.01 s.
        first_retries = re.findall(r": HTTP (\d+); retry 1 in ([\d.]+)s", run.stderr)
        assert bool(first_retries) == (fault.evidence or "").startswith("HTTP")
        for status, delay in first_retries:
            assert delay == ("1.0" if status == "429" else "0.0"), (status, delay)
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


class LiveTap:
    """The tap as a process whose stdout and stderr are read as they come, by one
    thread each, so that it never blocks on a full pipe; `watch` sees each stdout line
    as soon as it is read."""

    def __init__(
        self,
        tmp_path: Path,
        config: dict[str, t.Any],
        state: dict[str, t.Any] | None,
        *args: str,
        watch: t.Callable[[str], None] = lambda line: None,
    ) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        command = ["--config", str(tmp_path / "config.json")]
        (tmp_path / "config.json").write_text(json.dumps(config))
        if state is not None:
            (tmp_path / "state.json").write_text(json.dumps(state))
            command += ["--state", str(tmp_path / "state.json")]
        env = {**os.environ, "TMPDIR": str(tmp_path)}  # what a killed run leaves is pytest's
        self.proc = TapProcess([*command, *args], env=env)
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out, watch)),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err, None)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(
        pipe: t.IO[str] | None, lines: list[str], watch: t.Callable[[str], None] | None
    ) -> None:
        assert pipe is not None
        for line in pipe:
            lines.append(line)
            if watch is not None:
                watch(line)

    def finish(self, timeout: float = 300) -> TapRun:
        """Wait for the process to end; what it printed (complete lines only)."""
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join()
        out, err = "".join(self.out), "".join(self.err)
        _OUTPUTS.extend([("stdout", out), ("stderr", err)])
        messages = [json.loads(x) for x in self.out if x.startswith('{"type"') and x.endswith("\n")]
        return TapRun(code, out, err, messages)


@dataclass(frozen=True)
class KillPoint:
    """SIGKILL once the tap has done `event` for the `nth` time.

    Events are requests the simulator receives (`create`, `list`, `download`: the tap
    is killed while it waits for the answer) or messages it writes (`record` of the
    stream, `state+export`: a STATE adding a pending export, `state+window`: a STATE
    moving a bookmark). After a message the tap can write at most a pipe's worth more
    before it blocks, so a kill point never depends on how fast the machine is.
    """

    phase: str
    event: str
    nth: int

    def __str__(self) -> str:
        return f"{self.phase} ({self.event} #{self.nth})"


class KillSwitch:
    """Counts the tap's events and sends it `signum` at `point`."""

    def __init__(self, point: KillPoint, signum: int = signal.SIGKILL) -> None:
        self.point = point
        self.signum = signum
        self.seen: Counter[str] = Counter()
        self.fired = False
        self._proc: TapProcess | None = None
        self._attached = threading.Event()
        self._lock = threading.Lock()
        self._state: dict[str, t.Any] = {}

    def attach(self, proc: TapProcess) -> None:
        self._proc = proc
        self._attached.set()

    def event(self, name: str) -> None:
        self._attached.wait()
        with self._lock:
            self.seen[name] += 1
            if name == self.point.event and self.seen[name] == self.point.nth:
                assert self._proc is not None
                self._proc.send_signal(self.signum)
                self.fired = True

    def message(self, line: str) -> None:
        """Turns a stdout line into events."""
        if line.startswith('{"type":"RECORD","stream":"' + STREAM + '"'):
            self.event("record")
        elif line.startswith('{"type":"STATE"') and line.endswith("\n"):
            state = json.loads(line)["value"].get("bookmarks", {}).get(STREAM, {})
            before, self._state = self._state, state
            if set(state.get("pending_exports") or {}) - set(before.get("pending_exports") or {}):
                self.event("state+export")
            if (state.get("participants") or {}) != (before.get("participants") or {}):
                self.event("state+window")


# 4 exports (2 participants x 2 windows), at most 2 pending: two are created, polled and
# downloaded, and the third is created while the first file is emitted. The events of
# the runner thread (list, create, download) keep their order, and so do those of the
# main thread (state, record); each point fires at its own event, whatever the other
# thread is doing then.
KILL_POINTS = [
    KillPoint("poll", "list", 1),  # before any export exists
    KillPoint("create", "create", 1),
    KillPoint("create", "create", 2),
    KillPoint("state written", "state+export", 1),
    KillPoint("state written", "state+export", 2),
    KillPoint("poll", "list", 2),
    KillPoint("download", "download", 1),
    KillPoint("create", "create", 3),  # right after the first file's download
    KillPoint("parse/emit", "record", 1),
    KillPoint("state written", "state+window", 1),
    KillPoint("download", "download", 2),
    KillPoint("create", "create", 4),
    KillPoint("parse/emit", "record", 2500),
    KillPoint("state written", "state+window", 2),
    KillPoint("poll", "list", 3),
    KillPoint("download", "download", 3),
    KillPoint("parse/emit", "record", 4500),
    KillPoint("download", "download", 4),
    KillPoint("state written", "state+window", 3),
    KillPoint("parse/emit", "record", 7000),
]


@dataclass
class Trial:
    point: KillPoint
    lost: int  # expected rows neither run emitted
    reused: int  # exports of the killed run the resumed run took over
    created: int  # exports the resumed run created
    checked: int  # STATE bookmarks checked
    skipped: int  # rows the resumed run did not send again (digests the killed run stored)


def kill_and_resume(
    point: KillPoint, folder: Path, catalog: Path, claims: Claims, resume: threading.Lock
) -> Trial:
    """Kill a sync at `point`, then run one in-process sync from the last STATE the killed
    run printed; each trial has its own simulator."""
    sim = make_simulator(processing_delay=0.1)
    try:
        config = small_config(
            sim,
            end_date="2025-01-15T00:00:00Z",
            max_concurrent_exports=2,
            poll_interval_seconds=0.05,
        )
        switch = KillSwitch(point)
        sim.on_request = switch.event
        tap = LiveTap(folder, config, None, "--catalog", str(catalog), watch=switch.message)
        switch.attach(tap.proc)
        killed = tap.finish()
        assert switch.fired and killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        state = killed.states()[-1] if killed.states() else None
        before = len(sim.exports(STUDY_ID))
        with resume:  # one in-process sync at a time: they share this process's stdout
            resumed = sync_in_process(config, state, catalog)
        created = len(sim.exports(STUDY_ID)) - before
        claims = claims.fresh().feed(killed.messages).feed(resumed.messages)
        assert set(claims.emitted) <= claims.expected, point
        lost = len(claims.expected - set(claims.emitted))
        reused = resumed.stderr.count("Resuming export #")
        return Trial(point, lost, reused, created, claims.checked, skipped(resumed))
    finally:
        sim.stop()


def test_given_20_runs_killed_at_chosen_points_when_each_resumed_then_no_row_is_lost(
    tmp_path: Path,
) -> None:
    """SIGKILL at each of KILL_POINTS, then one run from the last STATE the killed run
    printed: the two runs together emit every expected row, and no STATE of either
    claims a row that neither had emitted before it. Lookback 2 days with
    skip_unchanged_days (the default): a resumed run skips the rows of the periods the
    killed run closed, by the digests in the killed run's state. Two trials run at a
    time (each process mostly waits for its simulator)."""
    sim = make_simulator()
    config = small_config(sim, end_date="2025-01-15T00:00:00Z")
    rows = expected(sim, config)
    catalog = catalog_file(tmp_path, config, STREAM)
    sim.stop()
    claims = Claims(rows)
    assert len(claims.expected) == len(rows) == 4 * 2016
    resume = threading.Lock()

    def trial(n: int) -> Trial:
        return kill_and_resume(KILL_POINTS[n], tmp_path / f"t{n}", catalog, claims, resume)

    with ThreadPoolExecutor(2) as pool:
        trials = list(pool.map(trial, range(len(KILL_POINTS))))
    lost = sum(trial.lost for trial in trials)
    reused = sum(trial.reused for trial in trials)
    print(
        f"\nkill trials: {len(trials)}, rows lost: {lost}, exports re-used by resumed runs: "
        f"{reused}, created by them: {sum(trial.created for trial in trials)}, STATE "
        f"bookmarks checked: {sum(trial.checked for trial in trials)}, rows not sent again "
        f"(digests): {sum(trial.skipped for trial in trials)}, killed during: "
        f"{dict(Counter(trial.point.phase for trial in trials))}"
    )
    assert lost == 0
    assert reused > 0
    assert sum(trial.skipped for trial in trials) > 0  # resumed runs relied on digests
    assert all(trial.checked > 0 for trial in trials)


def test_given_sigterm_while_exports_pending_and_records_emitted_then_final_state_claims_them(
    tmp_path: Path,
) -> None:
    """SIGTERM in the middle of the second file (the first window closed, the third
    export pending at Avicenna): exit 143, one ERROR line, and a last STATE that keeps
    the closed window and the pending exports and claims only rows emitted before it."""
    sim = make_simulator(processing_delay=0.1)
    try:
        config = small_config(sim, max_concurrent_exports=2, poll_interval_seconds=0.05)
        switch = KillSwitch(KillPoint("parse/emit", "record", 2500), signal.SIGTERM)
        tap = LiveTap(tmp_path, config, None, watch=switch.message)
        switch.attach(tap.proc)
        run = tap.finish()
        assert switch.fired and run.returncode == 128 + signal.SIGTERM, run.stderr[-2000:]
        assert "Traceback" not in run.stderr
        assert len(run.error_lines()) == 1 and "Interrupted by signal 15" in run.error_lines()[0]
        # the last STATE (the SDK writes none when nothing changed since the one before)
        last = max(i for i, m in enumerate(run.messages) if m["type"] == "STATE")
        final = run.messages[last]["value"]["bookmarks"][STREAM]
        assert final["participants"] and final["pending_exports"], final
        claims = Claims(expected(sim, config)).feed(run.messages[:last])
        before = claims.checked
        assert claims.feed(run.messages[last:]).checked > before
    finally:
        sim.stop()
