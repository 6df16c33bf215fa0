"""Coverage bookmarks and in-flight exports, kept in a stream's Singer state.

State of a windowed stream (beside the SDK's own keys), for sensor streams::

    "participants": {"101": "2025-01-15T00:00:00.000000+00:00", ...}
    "pending_exports": {"<request key>": <export id>, ...}
    "data_source_id": 10

and `"covered_until": {"all": ...}` and `"activity_id"` for survey streams. A member's
value means: every row of that member (participant) with a record time before it has
been emitted. It only moves when a whole window has been emitted for that member and
every earlier window of this run has been too, so a STATE never claims a row that was
not emitted. The id the bookmarks are of changing under the same stream name starts
the stream over. Members missing from the map (a participant added to the config later) start from
`start_date` without touching the others.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from tap_avicenna.day_digests import STATE_KEY as DIGESTS
from tap_avicenna.exports.planner import PlannedExport
from tap_avicenna.parsing import parse_timestamp

PENDING = "pending_exports"


def iso(value: dt.datetime) -> str:
    """The fixed-width UTC form used for record times and bookmarks."""
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


Member = int | str


def _participants(plan: PlannedExport) -> t.Sequence[Member]:
    return plan.participant_ids


class CoverageBookmarks:
    """Reads and advances the bookmarks of one stream's state dict (in place).

    `members(plan)` names who a planned export covers: its participants for sensor
    streams, the single member "all" for survey streams.
    """

    def __init__(
        self,
        state: dict[str, t.Any],
        key: str = "participants",
        members: t.Callable[[PlannedExport], t.Sequence[Member]] = _participants,
    ) -> None:
        self.state = state
        self.key = key
        self.members = members
        self._windows: dict[Member, list[PlannedExport]] = {}
        self._next: dict[Member, int] = {}
        self._done: dict[Member, set[dt.datetime]] = {}
        self.starts: dict[Member, dt.datetime] = {}
        """Each member's start in this run (`start_for`)."""

    def bookmark(self, member: Member) -> dt.datetime | None:
        marks = self.state.get(self.key)
        # A state written without per-member keys: the stream-wide bookmark applies.
        value = self.state.get("replication_key_value") if marks is None else marks.get(str(member))
        if value is None:
            return None
        return dt.datetime.fromisoformat(parse_timestamp(str(value)))

    def start_for(
        self, member: Member, start_date: dt.datetime, lookback: dt.timedelta
    ) -> dt.datetime:
        """max(start_date, bookmark - lookback)."""
        mark = self.bookmark(member)
        start = start_date if mark is None else max(start_date, mark - lookback)
        self.starts[member] = start
        return start

    def expect(self, plans: t.Iterable[PlannedExport]) -> None:
        """Register this run's planned exports (in window order)."""
        for plan in plans:
            for member in self.members(plan):
                self._windows.setdefault(member, []).append(plan)
                self._next.setdefault(member, 0)
                self._done.setdefault(member, set())

    def complete(self, plan: PlannedExport) -> None:
        """All rows of `plan` were emitted: advance each member's contiguous prefix."""
        marks = self.state.setdefault(self.key, {})
        for member in self.members(plan):
            self._done[member].add(plan.start)
            windows = self._windows[member]
            index = self._next[member]
            reached: dt.datetime | None = None
            while index < len(windows) and windows[index].start in self._done[member]:
                reached = windows[index].end
                index += 1
            self._next[member] = index
            if reached is not None:
                old = self.bookmark(member)
                if old is None or reached > old:
                    marks[str(member)] = iso(reached)

    def bind(self, key: str, value: t.Any) -> t.Any | None:
        """Record what the coverage is of (`key` = `value`, e.g. the data source id). A
        different value already recorded drops the coverage, the exports in flight and
        the SDK's stream-wide bookmark, and is returned; None otherwise."""
        old = self.state.get(key)
        self.state[key] = value
        if old is None or old == value:
            return None
        for name in (self.key, PENDING, DIGESTS, "replication_key_value"):
            self.state.pop(name, None)
        return old

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


def drop_other_participants(state: t.Mapping[str, object], mine: t.Callable[[int], bool]) -> int:
    """Remove the participant bookmarks (and row digests) of every stream in `state` (in
    place) that `mine` rejects, and return how many bookmarks: a shard's state merged from
    other shards' (resharding) then holds only its own participants', and its STATEs
    claim nothing of theirs."""
    dropped = 0
    streams = state.get("bookmarks")
    for stream_state in streams.values() if isinstance(streams, dict) else ():
        if not isinstance(stream_state, dict) or not isinstance(
            stream_state.get("participants"), dict
        ):
            continue  # not a sensor stream's
        for key in ("participants", DIGESTS):
            marks = stream_state.get(key)
            if not isinstance(marks, dict):
                continue
            others = [m for m in marks if not (m.isdigit() and mine(int(m)))]
            for member in others:
                del marks[member]
            if key == "participants":
                dropped += len(others)
    return dropped
