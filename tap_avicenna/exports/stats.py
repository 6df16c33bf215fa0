"""RunnerStats: what the export engine did in a run, and its one line per poll tick."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from tap_avicenna.exports.budget import DiskBudget
from tap_avicenna.exports.handover import mb

LOGGER = logging.getLogger("tap-avicenna.exports")


@dataclass
class RunnerStats:
    """Counts of what the engine did in a run (the schedule logs them at its end)."""

    created: int = 0
    resumed: int = 0
    polls: int = 0  # status poll ticks
    pages: int = 0  # list page requests of those ticks
    max_pending: int = 0
    retried: int = 0
    rejected: int = 0
    busy: int = 0
    handed: int = 0  # files handed over
    held: int = 0  # downloads that waited for the disk budget
    peak_waiting_files: int = 0  # handed over and not consumed, at once
    peak_waiting_bytes: int = 0


def log_tick(
    stats: RunnerStats,
    *,
    pages: int,
    polled_for: int,
    ready: int,
    still: int,
    oldest: float,
    timeout: float,
    budget: DiskBudget,
    held: int,
) -> None:
    """One line per poll tick: the exports pending and ready, the oldest pending
    one's age, and the files waiting on disk (and held back by the budget)."""
    of_budget = "" if math.isinf(budget.max_bytes) else f" of the {mb(budget.max_bytes)} budget"
    held_back = f"; {held} ready export(s) held back by the budget" if held else ""
    LOGGER.info(
        "Status poll #%d: %d list request%s for %d pending export(s): %d ready, %d still "
        "pending (oldest %.0fs, timeout %.0fs); %d file(s) waiting on disk (%s%s)%s",
        stats.polls,
        pages,
        "" if pages == 1 else "s",
        polled_for,
        ready,
        still,
        oldest,
        timeout,
        budget.files,
        mb(budget.bytes),
        of_budget,
        held_back,
    )
