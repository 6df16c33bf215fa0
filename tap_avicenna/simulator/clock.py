"""The simulator's clock and the instant conversions it relies on."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_instant(value: str | int | float | datetime) -> datetime:
    """Parse an ISO 8601 string (``Z`` allowed; naive = UTC) or epoch milliseconds."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, bool):
        raise ValueError(f"not an instant: {value!r}")
    elif isinstance(value, int | float):
        return from_ms(int(value))
    else:
        text = value.strip()
        if text.lstrip("-").isdigit():
            return from_ms(int(text))
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch (floor) of an aware datetime."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    """The UTC datetime of epoch milliseconds."""
    return EPOCH + timedelta(milliseconds=ms)


def iso_z(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a ``Z`` suffix (DRF style)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SimClock:
    """``now()`` = configured start + real elapsed time x ``time_scale`` + manual advances."""

    def __init__(self, start: datetime, time_scale: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._base = parse_instant(start)
        self._scale = time_scale
        self._t0 = time.monotonic()

    def _now_locked(self) -> datetime:
        elapsed = (time.monotonic() - self._t0) * self._scale
        return self._base + timedelta(seconds=elapsed)

    def now(self) -> datetime:
        """The current simulated instant (UTC)."""
        with self._lock:
            return self._now_locked()

    def now_ms(self) -> int:
        """The current simulated instant in epoch milliseconds."""
        return to_ms(self.now())

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward (or back, if negative) and return the new now."""
        with self._lock:
            self._base += timedelta(seconds=seconds)
            return self._now_locked()

    def set(self, moment: datetime) -> datetime:
        """Jump to ``moment``; real time keeps running from there."""
        with self._lock:
            self._base = parse_instant(moment)
            self._t0 = time.monotonic()
            return self._base

    @property
    def time_scale(self) -> float:
        """Simulated seconds per real second (0 freezes the clock)."""
        return self._scale

    @time_scale.setter
    def time_scale(self, scale: float) -> None:
        with self._lock:
            self._base = self._now_locked()
            self._t0 = time.monotonic()
            self._scale = scale
