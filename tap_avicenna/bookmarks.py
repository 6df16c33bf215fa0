"""Per-participant bookmarks and in-flight exports, kept in a stream's Singer state.

State of a participant-windowed stream (beside the SDK's own keys)::

    "participants": {"101": "2025-01-15T00:00:00.000000+00:00", ...}
    "pending_exports": {"<request key>": <export id>, ...}

A participant's value means: every row of that participant with a record time
before it has been emitted. It only moves when a whole window has been emitted for
that participant and every earlier window of this run has been too, so a STATE never
claims a row that was not emitted. Participants missing from the map (added to the
config later) start from `start_date` without touching the others.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from tap_avicenna.exports.planner import PlannedExport
from tap_avicenna.parsing import parse_timestamp

PARTICIPANTS = "participants"
PENDING = "pending_exports"


def iso(value: dt.datetime) -> str:
    """The fixed-width UTC form used for record times and bookmarks."""
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


class ParticipantBookmarks:
    """Reads and advances the bookmarks of one stream's state dict (in place)."""

    def __init__(self, state: dict[str, t.Any]) -> None:
        self.state = state
        self._windows: dict[int, list[PlannedExport]] = {}
        self._next: dict[int, int] = {}
        self._done: dict[int, set[dt.datetime]] = {}

    def bookmark(self, participant: int) -> dt.datetime | None:
        value = self.state.get(PARTICIPANTS, {}).get(str(participant))
        if value is None:
            # A state written without per-participant keys: the stream-wide bookmark.
            value = (
                self.state.get("replication_key_value") if PARTICIPANTS not in self.state else None
            )
        if value is None:
            return None
        return dt.datetime.fromisoformat(parse_timestamp(str(value)))

    def start_for(
        self, participant: int, start_date: dt.datetime, lookback: dt.timedelta
    ) -> dt.datetime:
        """max(start_date, bookmark - lookback)."""
        mark = self.bookmark(participant)
        return start_date if mark is None else max(start_date, mark - lookback)

    def expect(self, plans: t.Iterable[PlannedExport]) -> None:
        """Register this run's planned exports (in window order)."""
        for plan in plans:
            for participant in plan.participant_ids:
                self._windows.setdefault(participant, []).append(plan)
                self._next.setdefault(participant, 0)
                self._done.setdefault(participant, set())

    def complete(self, plan: PlannedExport) -> None:
        """All rows of `plan` were emitted: advance each participant's contiguous prefix."""
        marks = self.state.setdefault(PARTICIPANTS, {})
        for participant in plan.participant_ids:
            self._done[participant].add(plan.start)
            windows = self._windows[participant]
            index = self._next[participant]
            reached: dt.datetime | None = None
            while index < len(windows) and windows[index].start in self._done[participant]:
                reached = windows[index].end
                index += 1
            self._next[participant] = index
            if reached is not None:
                old = self.bookmark(participant)
                if old is None or reached > old:
                    marks[str(participant)] = iso(reached)

    # --- exports in flight -----------------------------------------------------------

    def resume_map(self) -> dict[str, int]:
        pending = self.state.get(PENDING) or {}
        return {str(k): int(v) for k, v in pending.items() if isinstance(v, int)}

    def forget_pending_except(self, keys: t.Container[str]) -> None:
        """Drop in-flight exports this run does not plan (their windows changed)."""
        pending = self.state.get(PENDING)
        if pending:
            self.state[PENDING] = {k: v for k, v in pending.items() if k in keys}

    def add_pending(self, key: str, export_id: int) -> None:
        self.state.setdefault(PENDING, {})[key] = export_id

    def remove_pending(self, key: str) -> None:
        pending = self.state.get(PENDING)
        if pending is not None:
            pending.pop(key, None)
