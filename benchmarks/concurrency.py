"""Concurrency: many small exports that each take `processing_delay` at Avicenna, synced by
the tap (up to `max_concurrent_exports` pending, one list request per tick) and by the
simple sequential client, against the same simulator."""

from __future__ import annotations

import math
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import (
    STUDY_ID,
    RunFailed,
    TapRun,
    auth_header,
    base_tap_config,
    catalog_selecting,
    require_rows,
    require_success,
    run_tap,
)
from benchmarks.report import Section
from benchmarks.sequential import SequentialResult, run_sequential
from benchmarks.simulation import (
    JAN1,
    JAN8,
    WarmSimulator,
    expected_sensor_rows,
    participants,
    sensor_config,
)

SOURCE_ID = 30
SOURCE_NAME = "battery"
INTERVAL_SECONDS = 900.0  # 672 rows per participant-week: small exports
MAX_CONCURRENT = 4
POLL_INTERVAL = 0.2
PENDING_SECONDS = 0.2  # part of processing_delay: the export is Pending, then Processing

IDEAL_RATIO_GOAL = 1.25
SPEEDUP_GOAL = 3.0


@dataclass(frozen=True)
class ConcurrencySizes:
    exports: int
    processing_delay: float


FULL_SIZES = ConcurrencySizes(exports=16, processing_delay=2.0)
QUICK_SIZES = ConcurrencySizes(exports=8, processing_delay=1.0)


@dataclass
class ConcurrencyResults:
    sizes: ConcurrencySizes
    rows: int = 0
    run: TapRun | None = None
    tap_stats: dict[str, t.Any] = field(default_factory=dict)
    sequential: SequentialResult | None = None
    sequential_stats: dict[str, t.Any] = field(default_factory=dict)

    @property
    def ideal_seconds(self) -> float:
        return math.ceil(self.sizes.exports / MAX_CONCURRENT) * self.sizes.processing_delay


def run_concurrency(workdir: Path, sizes: ConcurrencySizes, results: ConcurrencyResults) -> None:
    config = sensor_config(
        interval_seconds=INTERVAL_SECONDS,
        participant_count=sizes.exports,
        kind=SOURCE_NAME,
        source_id=SOURCE_ID,
        frozen=False,
    )
    config.pending_seconds = PENDING_SECONDS
    config.processing_delay = sizes.processing_delay
    ids = [p.id for p in participants(sizes.exports)]
    with WarmSimulator(config) as sim:
        results.rows = expected_sensor_rows(sim, SOURCE_ID, ids)
        tap_config = base_tap_config(
            sim.url,
            participant_ids=ids,
            data_sources=[{"id": SOURCE_ID, "name": SOURCE_NAME}],
            participants_per_export=1,
            max_concurrent_exports=MAX_CONCURRENT,
            poll_interval_seconds=POLL_INTERVAL,
        )
        catalog = catalog_selecting(workdir, "concurrency", tap_config, f"sensor_{SOURCE_NAME}")
        sim.reset_stats()
        run = run_tap(workdir, "concurrency", tap_config, *catalog)
        results.run = run
        results.tap_stats = _counts(sim.stats())
        require_success(run, "concurrent sync")
        require_rows(run, "concurrent sync", results.rows, prefix=f"sensor_{SOURCE_NAME}")

        sim.reset_stats()
        results.sequential = run_sequential(
            sim.url,
            auth_header(),
            study_id=STUDY_ID,
            data_source=SOURCE_ID,
            participant_ids=ids,
            start=JAN1,
            end=JAN8,
            poll_interval=POLL_INTERVAL,
        )
        results.sequential_stats = _counts(sim.stats())
        if results.sequential.rows != results.rows:
            raise RunFailed(
                f"sequential client read {results.sequential.rows:,} rows, "
                f"expected {results.rows:,}"
            )


def _counts(stats: dict[str, t.Any]) -> dict[str, t.Any]:
    return {k: v for k, v in stats.items() if k != "events"}


def concurrency_section(results: ConcurrencyResults) -> Section:
    sizes = results.sizes
    section = Section(
        "concurrency",
        f"5. Concurrency: {sizes.exports} exports x {sizes.processing_delay:g}s processing, "
        f"max_concurrent_exports {MAX_CONCURRENT}, poll every {POLL_INTERVAL}s",
    )
    run, sequential = results.run, results.sequential
    section.add("ideal: ceil(n / 4) x delay", results.ideal_seconds, "s", digits=2, key="ideal")
    if run is None:
        return section
    section.add_wall_and_ideal(run.wall_seconds, results.ideal_seconds, IDEAL_RATIO_GOAL)
    begun = run.log_time(f"Beginning sync of 'sensor_{SOURCE_NAME}'")
    done = run.log_time(f"sensor_{SOURCE_NAME}: sync complete")
    if begun is not None and done is not None:
        phase = (done - begun).total_seconds()
        section.add(
            f"tap sensor_{SOURCE_NAME} phase (stream start -> sync complete)",
            phase,
            "s",
            digits=2,
            key="tap_sensor_phase_seconds",
        )
        section.add(
            "tap sensor phase / ideal",
            phase / results.ideal_seconds,
            "x",
            digits=2,
            key="tap_sensor_phase_ideal_ratio",
        )
    stats = results.tap_stats
    created = int(stats.get("exports_created", 0)) or sizes.exports
    lists = int(stats.get("list", 0))
    polls = run.polls()
    section.add("tap exports created", created, key="tap_exports_created")
    section.add(
        "tap max exports pending at once",
        int(stats.get("max_concurrent_pending", 0)),
        key="tap_max_pending",
    )
    section.add("tap list requests (simulator)", lists, key="tap_list_requests")
    section.add(
        "tap list requests per export", lists / created, digits=2, key="tap_lists_per_export"
    )
    section.add("tap poll ticks (stderr)", len(polls), key="tap_poll_ticks")
    per_tick = lists / len(polls) if polls else None
    one_each = bool(polls) and lists == len(polls) and all(n == 1 for n, _ in polls)
    section.add(
        "tap list requests per tick",
        per_tick,
        digits=2,
        goal="1 per tick",
        met=one_each,
        key="tap_lists_per_tick",
    )
    if polls:
        busy = [pending for _, pending in polls if pending]
        section.add(
            "tap exports pending per tick (mean, busy ticks)",
            sum(busy) / len(busy) if busy else 0.0,
            digits=2,
            key="tap_pending_per_tick",
        )
    if sequential is not None:
        speedup = sequential.wall_seconds / run.wall_seconds
        section.add(
            "sequential client wall time",
            sequential.wall_seconds,
            "s",
            digits=2,
            key="sequential_wall_seconds",
        )
        section.add(
            "speed-up vs sequential",
            speedup,
            "x",
            goal=f">= {SPEEDUP_GOAL:g} x",
            met=speedup >= SPEEDUP_GOAL,
            key="speedup",
            digits=2,
        )
        seq_lists = int(results.sequential_stats.get("list", sequential.list_requests))
        section.add(
            "sequential list requests per export",
            seq_lists / sequential.exports,
            digits=2,
            key="sequential_lists_per_export",
        )
    section.notes.append(
        "only the sensor stream is selected (a default sync also runs the participants "
        "export first); the tap's wall time includes its start-up (section 6), the "
        "sequential client runs in-process and has none"
    )
    return section
