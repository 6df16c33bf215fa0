"""RetryPolicy: how often and how long the engine tries again (attempts, busy back-off,
refused links, timeouts, exports without a file), in one place."""

from __future__ import annotations

from dataclasses import dataclass

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class RetryPolicy:
    """Every retry decision of the export engine; pure (times are given)."""

    poll_interval: float
    timeout: float  # export_timeout_seconds
    attempts: int = MAX_ATTEMPTS  # creates of one request before its lane fails
    refusals: int = 2
    """Downloads refused by a download host (an expired link) retried with a fresh link
    from the list before the export is created again."""
    busy_backoff_max: float = 300.0
    empty_grace_polls: int = 3
    empty_grace_intervals: int = 6
    """`Success` without a file on `empty_grace_polls` polls spanning this many poll
    intervals (a minute with the default) is an export without data."""

    def create_again(self, attempt: int) -> bool:
        """Whether a request whose attempt `attempt` failed is created once more."""
        return attempt < self.attempts

    def timed_out(self, age: float) -> bool:
        return age > self.timeout

    def list_again(self, refusals: int) -> bool:
        """Whether a refused download is tried with a fresh link (else: created again)."""
        return refusals <= self.refusals

    def busy_delay(self, refusals: int, retry_after: float | None) -> float:
        """Seconds before the next create after the `refusals`-th busy answer in a row:
        doubling from the poll interval up to `busy_backoff_max`, or Retry-After."""
        backoff = min(self.busy_backoff_max, self.poll_interval * 2.0 ** (refusals - 1))
        return max(retry_after or 0.0, backoff)

    def busy_gives_up(self, pending: int, busy_for: float) -> bool:
        """Whether busy answers end the run: nothing of ours pending, for too long."""
        return not pending and busy_for > self.timeout

    def without_file(self, polls: int, seconds: float) -> bool:
        """Whether `Success` without a file, seen on `polls` polls over `seconds`, is an
        export without data."""
        grace = self.empty_grace_intervals * self.poll_interval
        return polls >= self.empty_grace_polls and seconds >= grace
