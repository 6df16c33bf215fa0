"""BusyGate: creates paused, and fewer exports kept pending, while Avicenna is busy."""

from __future__ import annotations

import logging

from tap_avicenna.client import ServerBusy
from tap_avicenna.errors import ExportFailed
from tap_avicenna.exports.policy import RetryPolicy

LOGGER = logging.getLogger("tap-avicenna.exports")


class BusyGate:
    """The most exports kept pending, and when the next create may be made after
    creates refused for too many running exports."""

    def __init__(self, policy: RetryPolicy, max_concurrent: int) -> None:
        self.policy = policy
        self.max_concurrent = max_concurrent
        self.until = 0.0  # no create before this time
        self._since: float | None = None  # the first refusal in a row
        self._count = 0  # refusals in a row

    def created(self) -> None:
        """A create went through: the refusals in a row are over."""
        self._since, self._count = None, 0

    def refused(self, exc: ServerBusy, pending: int, now: float) -> None:
        """A create refused for too many running exports: wait (backing off), and keep
        no more pending than now for the rest of the run. Only when nothing of ours is
        pending and the refusals last past export_timeout_seconds does the run stop."""
        self._count += 1
        if self._since is None:
            self._since = now
        if pending and pending < self.max_concurrent:
            self.max_concurrent = pending
            LOGGER.warning(
                "Avicenna refused a new export (%s): keeping at most %d export(s) pending "
                "for the rest of this run",
                exc,
                pending,
            )
        elif self.policy.busy_gives_up(pending, now - self._since):
            raise ExportFailed(
                f"Avicenna refused every new export for {now - self._since:.0f}s "
                f"({exc}); giving up: other exports of the study keep it busy, run again later"
            )
        delay = self.policy.busy_delay(self._count, exc.retry_after)
        self.until = now + delay
        LOGGER.info("Avicenna is busy (%s); next create in %.1fs", exc, delay)
