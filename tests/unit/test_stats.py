"""The runner's line per poll tick, without a runner."""

from __future__ import annotations

import logging

import pytest

from tap_avicenna.exports.budget import DiskBudget
from tap_avicenna.exports.stats import RunnerStats, log_tick


def tick_line(caplog: pytest.LogCaptureFixture, budget: DiskBudget, held: int) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tap-avicenna.exports"):
        log_tick(
            RunnerStats(polls=7),
            pages=1,
            polled_for=3,
            ready=1,
            still=2,
            oldest=12.4,
            timeout=600.0,
            budget=budget,
            held=held,
        )
    [record] = caplog.records
    return record.getMessage()


def test_given_a_tick_when_logged_then_one_line_with_its_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    budget = DiskBudget()
    budget.handed(lane=1, size=3 * 1024 * 1024)
    assert tick_line(caplog, budget, held=0) == (
        "Status poll #7: 1 list request for 3 pending export(s): 1 ready, 2 still pending "
        "(oldest 12s, timeout 600s); 1 file(s) waiting on disk (3 MB)"
    )


def test_given_a_budget_and_held_files_when_logged_then_both_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    line = tick_line(caplog, DiskBudget(max_bytes=200 * 1024 * 1024), held=2)
    assert line.endswith(
        "0 file(s) waiting on disk (0 MB of the 200 MB budget); "
        "2 ready export(s) held back by the budget"
    )
