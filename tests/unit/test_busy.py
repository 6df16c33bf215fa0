"""BusyGate: creates paused and fewer exports pending while Avicenna is busy, without HTTP."""

from __future__ import annotations

import pytest

from tap_avicenna.client import ServerBusy
from tap_avicenna.errors import ExportFailed
from tap_avicenna.exports.busy import BusyGate
from tap_avicenna.exports.policy import RetryPolicy

BUSY = ServerBusy("HTTP 409: too many running exports", None)


def gate() -> BusyGate:
    return BusyGate(RetryPolicy(poll_interval=10.0, timeout=100.0), max_concurrent=4)


def test_given_refusals_with_exports_pending_when_refused_then_keeps_fewer_and_backs_off() -> None:
    busy = gate()
    busy.refused(BUSY, pending=2, now=1000.0)
    assert (busy.max_concurrent, busy.until) == (2, 1010.0)
    busy.refused(BUSY, pending=2, now=1010.0)  # the same count pending: kept, doubled wait
    assert (busy.max_concurrent, busy.until) == (2, 1030.0)
    busy.created()  # the refusals in a row are over: the back-off starts again
    busy.refused(ServerBusy("HTTP 429", 25.0), pending=2, now=2000.0)
    assert busy.until == 2025.0  # Retry-After, longer than the interval


def test_given_refusals_with_nothing_pending_past_the_timeout_when_refused_then_gives_up() -> None:
    busy = gate()
    busy.refused(BUSY, pending=0, now=1000.0)
    busy.refused(BUSY, pending=0, now=1100.0)  # 100 s: not past the timeout yet
    with pytest.raises(ExportFailed, match=r"refused every new export for 101s"):
        busy.refused(BUSY, pending=0, now=1101.0)
    assert busy.max_concurrent == 4
