"""PollTiming: when the next status poll of the export list is due."""

from __future__ import annotations

TICK_BACKOFF = 1.5
TICK_MAX_FACTOR = 3.0


class PollTiming:
    """The poll tick: the configured interval while something changes, backing off
    (x TICK_BACKOFF, at most TICK_MAX_FACTOR x the interval) while nothing does, and
    never past the age at which this run's exports have been seen to finish."""

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        self.tick = poll_interval
        self.next_poll = 0.0
        self.durations: list[float] = []  # age last seen pending, of this run's ready exports

    def settle(self, changed: bool) -> None:
        """After a poll: back to the interval when something changed, else back off."""
        self.tick = (
            self.poll_interval
            if changed
            else min(self.tick * TICK_BACKOFF, self.poll_interval * TICK_MAX_FACTOR)
        )

    def schedule(self, now: float, oldest: float | None) -> None:
        """Set the next poll from `now`, the oldest pending export being `oldest` s old."""
        self.next_poll = now + self.sleep(self.tick, oldest)

    def sleep(self, tick: float, oldest: float | None) -> float:
        """How long to wait before the next poll.

        The tick backs off while nothing changes, but not once a pending export is as old
        as the quickest export of this run was when it was last seen still pending (a
        lower bound of how long exports take): from then on the tick is the configured
        poll_interval_seconds, and before then the wait ends when one reaches that age.
        """
        if not self.durations or oldest is None:
            return tick
        soonest = min(self.durations) - oldest
        if soonest <= 0:
            return self.poll_interval
        return max(self.poll_interval / 4, min(tick, soonest))
