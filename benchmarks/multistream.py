"""Multi-stream: a default sync of participants, three sensor streams and two surveys,
each export taking `processing_delay` at Avicenna. One export runner serves the whole
run; the same sync in the order before it (each stream's exports created only once its
turn comes: `TAP_AVICENNA_PER_STREAM_EXPORTS`) runs against the same simulator."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import (
    RunFailed,
    TapRun,
    base_tap_config,
    require_success,
    run_child,
    tap_command,
)
from benchmarks.report import Section
from benchmarks.simulation import JAN1, expected_sensor_rows, participants
from tap_avicenna.exports.schedule import PER_STREAM_ENV
from tap_avicenna.simulator import Simulator, default_config

STUDY = 1234
SOURCES = {10: "gps", 20: "accelerometer", 30: "battery"}
SURVEYS = {5678: "daily", 5679: "screen"}
WINDOWS = 2  # exports per stream that has windows
WINDOW_DAYS = 2
MAX_CONCURRENT = 4
POLL_INTERVAL = 0.2
PENDING_SECONDS = 0.2  # part of processing_delay: the export is Pending, then Processing

IDEAL_RATIO_GOAL = 1.3
SPEEDUP_GOAL = 2.0
_FIGURES = re.compile(r"at most (\d+) file\(s\) waiting on disk \(([\d.,]+) MB\)")


PARTICIPANTS = 5
FULL_DELAY = 3.0  # seconds each export takes at Avicenna (`processing_delay`)
QUICK_DELAY = 1.0


@dataclass
class MultiStreamResults:
    delay: float
    runs: dict[str, TapRun] = field(default_factory=dict)  # "one runner", "per stream"
    created: dict[str, int] = field(default_factory=dict)

    @property
    def exports(self) -> int:
        return 1 + WINDOWS * (len(SOURCES) + len(SURVEYS))

    @property
    def ideal_seconds(self) -> float:
        """The participation export first, the surveys' in the other slots beside it;
        the rest (the sensor exports need the participant list) in full rounds."""
        beside = min(MAX_CONCURRENT - 1, WINDOWS * len(SURVEYS))
        rounds = 1 + math.ceil((self.exports - 1 - beside) / MAX_CONCURRENT)
        return rounds * self.delay

    @property
    def per_stream_ideal_seconds(self) -> float:
        """One round per stream (each has at most MAX_CONCURRENT exports)."""
        return (1 + len(SOURCES) + len(SURVEYS)) * self.delay


def run_multistream(workdir: Path, results: MultiStreamResults) -> None:
    config = default_config()
    config.port = 0
    config.pending_seconds = PENDING_SECONDS
    config.processing_delay = results.delay
    config.studies[STUDY].participants = participants(PARTICIPANTS)
    end = JAN1.replace(day=1 + WINDOWS * WINDOW_DAYS)
    tap_config = base_tap_config(
        "",
        end_date=end.isoformat().replace("+00:00", "Z"),
        export_window_days=WINDOW_DAYS,
        participants_per_export=PARTICIPANTS,
        data_sources=[{"id": i, "name": name} for i, name in SOURCES.items()],
        surveys=[{"activity_id": i, "name": name} for i, name in SURVEYS.items()],
        max_concurrent_exports=MAX_CONCURRENT,
        poll_interval_seconds=POLL_INTERVAL,
    )
    with Simulator(config) as sim:
        tap_config["api_url"] = sim.url
        ids = [p.id for p in participants(PARTICIPANTS)]
        expected = {
            f"sensor_{name}": expected_sensor_rows(sim, source, ids, JAN1, end)
            for source, name in SOURCES.items()
        }
        path = workdir / "multistream.json"
        path.write_text(json.dumps(tap_config))
        for name, env in (("one runner", {}), ("per stream", {PER_STREAM_ENV: "1"})):
            before = len(sim.exports(STUDY))
            run = run_child(tap_command("--config", str(path)), env=env)
            results.runs[name] = run
            results.created[name] = len(sim.exports(STUDY)) - before
            require_success(run, f"multi-stream sync ({name})")
            rows = run.rows_by_stream()
            wrong = {s: (rows.get(s), n) for s, n in expected.items() if rows.get(s) != n}
            if wrong or rows.get("participants") != PARTICIPANTS:
                raise RunFailed(f"multi-stream sync ({name}): rows (tap, simulator) {wrong}")
        first, second = (results.runs[n].rows_by_stream() for n in ("one runner", "per stream"))
        if first != second:
            raise RunFailed(f"multi-stream: rows differ between the two orders: {first} {second}")


def multistream_section(results: MultiStreamResults) -> Section:
    section = Section(
        "multistream",
        f"9. Multi-stream: participants, {len(SOURCES)} sensor streams and {len(SURVEYS)} "
        f"surveys, {results.exports} exports x {results.delay:g}s processing, "
        f"max_concurrent_exports {MAX_CONCURRENT}, poll every {POLL_INTERVAL}s",
    )
    ideal = results.ideal_seconds
    section.add(
        "ideal: participation export + ceil(rest / 4) rounds x delay",
        ideal,
        "s",
        digits=2,
        key="ideal",
    )
    run, old = results.runs.get("one runner"), results.runs.get("per stream")
    if run is not None:
        section.add_wall_and_ideal(run.wall_seconds, ideal, IDEAL_RATIO_GOAL)
        section.add("tap exports created", results.created["one runner"], key="tap_created")
        figures = _FIGURES.findall(run.stderr)
        if figures:
            files, size = figures[-1]
            section.add("peak files waiting on disk", int(files), key="peak_waiting_files")
            section.add(
                "peak disk used by waiting files",
                float(size.replace(",", "")),
                "MB",
                digits=3,
                key="peak_waiting_mb",
            )
    if old is not None:
        section.add(
            "per-stream order wall time", old.wall_seconds, "s", digits=2, key="per_stream_wall"
        )
        section.add(
            "per-stream ideal: one round per stream",
            results.per_stream_ideal_seconds,
            "s",
            digits=2,
            key="per_stream_ideal",
        )
    if run is not None and old is not None:
        speedup = old.wall_seconds / run.wall_seconds
        section.add(
            "speed-up vs per-stream order",
            speedup,
            "x",
            goal=f">= {SPEEDUP_GOAL:g} x",
            met=speedup >= SPEEDUP_GOAL,
            key="speedup",
            digits=2,
        )
        phases = [_sync_phase(r) for r in (run, old)]
        if phases[0] is not None and phases[1] is not None:
            section.add(
                "sync phase (first stream start -> last sync complete): one runner / per stream",
                f"{phases[0]:.2f} s / {phases[1]:.2f} s",
                key="sync_phases",
            )
            section.add(
                "speed-up of the sync phase (without start-up)",
                phases[1] / phases[0],
                "x",
                key="phase_speedup",
                digits=2,
            )
    section.notes.append(
        "the per-stream ideal is twice the ideal, so any constant cost (start-up, the "
        "last poll tick) keeps the wall-time speed-up below 2 x; "
        "both wall times include the tap's start-up (section 6); participant_ids is unset, "
        "so the sensor streams are planned once the participation export is read; peak "
        "disk: the tap's closing 'Exports of this run' line (MB = 2^20 bytes)"
    )
    return section


def _sync_phase(run: TapRun) -> float | None:
    begun = run.log_time("Beginning sync of")
    done = run.log_time("sync complete", last=True)
    return None if begun is None or done is None else (done - begun).total_seconds()
