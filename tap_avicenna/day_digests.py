"""Digests of the rows sent per participant and period, so that the part of the lookback
that comes back unchanged is not sent again.

The lookback re-exports the last `lookback_days` of every participant each run to catch
late uploads, and most of those rows were sent already. A period's digest is its row
count and the sum of its rows' `_row_id`s (their first 64 bits, modulo 2**64): it does
not depend on the order of the rows, needs no list of ids in memory, and changes when a
row is added, removed or altered (an altered row has another id).

Why periods and not days: a run exports [bookmark - lookback, end_date), so the next run
starts where this run's lookback will start, e.g. at 02:00; a per-day digest of the day
that starts in would never match (part of the day is missing) and ~22 h would be re-sent
each night. So each emitted export's range for a member, [max(window start, the
member's own start), window end), is cut into *segments* at UTC midnights and at
`end_date - lookback` (the next run's lookback start if this run completes); the next
run's windows (on the same grid, from that point) then hold whole stored segments.

Reading an export (`ExportDigest`): pass 1, only when a stored segment of a member lies
entirely inside that member's range, computes the digest of the export's rows per such
segment; pass 2 skips the rows of the stored segments whose digest is equal and emits the
others, and digests the new segments over ALL the rows of the range (emitted and
skipped; only from `end_date - lookback` on, as earlier segments would be pruned at
once). Rows outside the range (the tap tolerates some) are always emitted and not
digested. A stored segment only partly inside a new range is dropped (its rows are
re-sent later: a copy, never a loss). The new segments replace the overlapped ones in
the STATE that closes the export's window (`store`), so a killed run re-sends rather
than loses; segments ending at or before bookmark - lookback are then pruned.

State, per stream: `"day_digests": {"101": ["<from s>:<until s>:<count>:<16 hex>", ...]}`,
empty segments left out, about 47 bytes a segment in JSON. With lookback 1 day a member
keeps 2 segments (from its bookmark - 1 day to midnight, midnight to the bookmark), 3
when a grid edge falls in between: 5,000 participants x 3 sensor streams is 30,000-45,000
segments, ~1.6-2.3 MB of state (lookback N days: about N+1 segments a member).
"""

from __future__ import annotations

import bisect
import datetime as dt
import sys
import typing as t
from dataclasses import dataclass, field

if t.TYPE_CHECKING:
    import pyarrow as pa

STATE_KEY = "day_digests"
_MASK = (1 << 64) - 1
_DAY = dt.timedelta(days=1)

Stored = dict[str, list[str]]
"""member (text) -> ["<from s>:<until s>:<count>:<16 hex digits>", ...], by time."""


def _iso(value: dt.datetime) -> str:
    """The tap's fixed-width UTC form of record times (compared as text)."""
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def _instant(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def _seconds(value: dt.datetime) -> int:
    return int(value.timestamp())


@dataclass(frozen=True)
class Segment:
    """The digest of a member's rows with record time in [start, end)."""

    start: dt.datetime
    end: dt.datetime
    count: int
    total: int

    def text(self) -> str:
        return f"{_seconds(self.start)}:{_seconds(self.end)}:{self.count}:{self.total:016x}"

    @classmethod
    def parse(cls, text: str) -> Segment:
        start, end, count, total = text.split(":")
        return cls(_instant(int(start)), _instant(int(end)), int(count), int(total, 16))


def cuts(start: dt.datetime, end: dt.datetime, cut: dt.datetime) -> list[dt.datetime]:
    """The edges of the segments of [start, end): its ends, the UTC midnights and `cut`
    inside it."""
    edges = [start]
    utc = dt.timezone.utc
    midnight = dt.datetime.combine(start.astimezone(utc).date(), dt.time(), utc)
    for point in sorted({cut, *_midnights(midnight + _DAY, end)}):
        if start < point < end:
            edges.append(point)
    edges.append(end)
    return edges


def _midnights(first: dt.datetime, end: dt.datetime) -> t.Iterator[dt.datetime]:
    while first < end:
        yield first
        first += _DAY


def row_value(row_id: str) -> int:
    """The part of a row id a digest sums: its first 64 bits."""
    return int(row_id[:16], 16)


def _halves(ids: pa.Array) -> tuple[pa.Array, pa.Array]:
    """`row_value` of each (lower-case hex) row id, as its high and low 32 bits (uint64)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    and_, left, right = pc.bit_wise_and, pc.shift_left, pc.shift_right
    binary = ids.cast(pa.binary())

    def word(first: int) -> pa.Array:
        """8 hex digits from `first` on, read 8 bytes at a time (SWAR)."""
        text = pc.binary_slice(binary, first, first + 8).cast(pa.binary(8))
        if sys.byteorder != "little":  # the digits' order in a word below is little-endian's
            return pa.array([int(s, 16) for s in text.to_pylist()], pa.uint64())
        x = pa.Array.from_buffers(pa.uint64(), len(text), [None, text.buffers()[1]], text.offset)
        # each byte: "0".."9" -> 0..9, "a".."f" -> 10..15 (the 64s bit is that of letters)
        x = pc.add(
            and_(x, 0x0F0F0F0F0F0F0F0F), pc.multiply(and_(right(x, 6), 0x0101010101010101), 9)
        )
        # the first digit (lowest byte) is the most significant: pairs, then quads, then all
        x = pc.bit_wise_or(
            left(and_(x, 0x000F000F000F000F), 4), and_(right(x, 8), 0x000F000F000F000F)
        )
        x = pc.bit_wise_or(
            left(and_(x, 0x000000FF000000FF), 8), and_(right(x, 16), 0x000000FF000000FF)
        )
        return pc.bit_wise_or(left(and_(x, 0xFFFF), 16), and_(right(x, 32), 0xFFFF))

    return word(0), word(8)


def _sums(
    members: pa.Array, times: pa.Array, ids: pa.Array, edges: list[str]
) -> t.Iterator[tuple[int, int, int, int]]:
    """(member, i, count, sum of row values mod 2**64) of the rows in [edges[i-1],
    edges[i]), for each member (an integer) and i with rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    base = len(edges) + 1
    key = pc.multiply(members.cast(pa.int64()), base)  # one key: a faster group_by
    for edge in edges:
        key = pc.add(key, pc.greater_equal(times, edge).cast(pa.int64()))
    high, low = _halves(ids)
    table = pa.table({"k": key, "h": high, "l": low})
    sums = table.group_by("k", use_threads=False).aggregate(
        [("h", "sum"), ("l", "sum"), ("h", "count")]
    )
    names = ("k", "h_count", "h_sum", "l_sum")
    for group, count, high_sum, low_sum in zip(
        *(sums.column(name).to_pylist() for name in names), strict=True
    ):
        member, i = divmod(group, base)
        if 0 < i < len(edges):
            yield member, i, count, ((high_sum << 32) + low_sum) & _MASK


@dataclass
class _Member:
    """One member's range in an export: stored segments inside it, new segments."""

    low: str  # the range [low, high), as record-time text
    high: str
    edges: list[str]  # of the new segments, from max(low, cut) to high
    counts: list[int]
    totals: list[int]
    old: list[Segment]  # stored segments entirely inside the range
    old_edges: list[tuple[str, str]]
    seen: list[list[int]] = field(default_factory=list)  # pass 1: [count, total] per old
    skip: list[tuple[str, str]] = field(default_factory=list)  # old segments found equal
    skip_starts: list[str] = field(default_factory=list)


class ExportDigest:
    """The digests of one export's rows, for its members' ranges.

    `ranges`: member -> [from, until) of the export for that member; `stored`: the
    stream's state of digests; `cut`: `end_date - lookback` (new segments start there).
    Use: if `needs_first_pass`, feed every row to `first` then call `compare`; then
    `keep` each row (pass 2) and `store` once all kept rows are out.
    """

    def __init__(
        self,
        ranges: t.Mapping[t.Any, tuple[dt.datetime, dt.datetime]],
        stored: t.Mapping[str, t.Sequence[str]],
        cut: dt.datetime,
    ) -> None:
        self.ranges = dict(ranges)
        self.members: dict[t.Any, _Member] = {}
        self.skipped = 0
        for member, (low, high) in ranges.items():
            old = [
                s
                for s in map(Segment.parse, stored.get(str(member), ()))
                if low <= s.start and s.end <= high
            ]
            edges = [_iso(e) for e in cuts(max(low, cut), high, cut)] if cut < high else []
            self.members[member] = _Member(
                _iso(low),
                _iso(high),
                edges,
                [0] * max(0, len(edges) - 1),
                [0] * max(0, len(edges) - 1),
                old,
                [(_iso(s.start), _iso(s.end)) for s in old],
                [[0, 0] for _ in old],
            )
        self.needs_first_pass = any(m.old for m in self.members.values())

    def first(self, member: t.Any, when: str, row_id: str) -> None:
        """Pass 1: count a row into the stored segment it lies in, if any."""
        self._seen(member, when, when, 1, row_value(row_id))

    def first_columns(self, members: pa.Array, times: pa.Array, ids: pa.Array) -> None:
        """`first` for Arrow arrays of rows."""
        edges = sorted({e for m in self.members.values() for pair in m.old_edges for e in pair})
        for member, i, count, total in _sums(members, times, ids, edges):
            self._seen(member, edges[i - 1], edges[i], count, total)

    def _seen(self, member: t.Any, start: str, end: str, count: int, total: int) -> None:
        """Rows in [start, end] (one row: start = end) counted into the stored segment
        that holds them, if any."""
        state = self.members.get(member)
        if state is None or not state.old:
            return
        at = bisect.bisect_right(state.old_edges, (start, "\uffff")) - 1
        if at >= 0 and end <= state.old_edges[at][1] and start < state.old_edges[at][1]:
            seen = state.seen[at]
            seen[0] += count
            seen[1] = (seen[1] + total) & _MASK

    def keep_columns(self, members: pa.Array, times: pa.Array, ids: pa.Array) -> pa.Array | None:
        """`keep` for Arrow arrays of rows: a mask of the rows to emit, None for all."""
        import pyarrow.compute as pc

        edges = sorted({e for m in self.members.values() for e in m.edges})
        for member, i, count, total in _sums(members, times, ids, edges):
            state = self.members.get(member)
            if state is None or not state.edges or not state.edges[0] <= edges[i - 1]:
                continue
            at = bisect.bisect_right(state.edges, edges[i - 1]) - 1
            if at < len(state.counts):
                state.counts[at] += count
                state.totals[at] = (state.totals[at] + total) & _MASK
        skip = None
        for member, state in self.members.items():
            for low, high in state.skip:
                inside = pc.and_(
                    pc.equal(members, member),
                    pc.and_(pc.greater_equal(times, low), pc.less(times, high)),
                )
                skip = inside if skip is None else pc.or_(skip, inside)
        skipped = 0 if skip is None else pc.sum(skip).as_py() or 0
        if not skipped:
            return None
        self.skipped += skipped
        return pc.invert(pc.fill_null(skip, False))

    def stored_span(self) -> tuple[str, str]:
        """From the first start to the last end of the stored segments inside the
        ranges (record-time text): the rows `first` needs."""
        edges = [e for m in self.members.values() for e in m.old_edges]
        return min(low for low, _ in edges), max(high for _, high in edges)

    def compare(self) -> None:
        """After pass 1: the stored segments whose rows came back unchanged are skipped."""
        for state in self.members.values():
            state.skip = [
                edges
                for edges, old, (count, total) in zip(
                    state.old_edges, state.old, state.seen, strict=True
                )
                if (count, total) == (old.count, old.total)
            ]
            state.skip_starts = [low for low, _ in state.skip]

    @property
    def watches_from(self) -> str | None:
        """The earliest record time (text) `keep` looks at: rows before it are kept
        without a look; None: no row needs one."""
        starts = [s.skip_starts[0] for s in self.members.values() if s.skip_starts]
        starts += [s.edges[0] for s in self.members.values() if s.edges]
        return min(starts) if starts else None

    def keep(self, member: t.Any, when: str, row_id: str) -> bool:
        """Pass 2: whether to emit a row; digests it into its new segment."""
        state = self.members.get(member)
        if state is None or not state.low <= when < state.high:
            return True
        edges = state.edges
        if edges and when >= edges[0]:
            at = bisect.bisect_right(edges, when) - 1
            state.counts[at] += 1
            state.totals[at] = (state.totals[at] + row_value(row_id)) & _MASK
        if state.skip:
            at = bisect.bisect_right(state.skip_starts, when) - 1
            if at >= 0 and when < state.skip[at][1]:
                self.skipped += 1
                return False
        return True

    def segments(self, member: t.Any) -> list[Segment]:
        """The member's new non-empty segments."""
        state = self.members[member]
        edges = [dt.datetime.fromisoformat(e) for e in state.edges]
        return [
            Segment(edges[i], edges[i + 1], count, total)
            for i, (count, total) in enumerate(zip(state.counts, state.totals, strict=True))
            if count
        ]

    def store(self, stored: Stored) -> None:
        """Put the new segments into `stored` in place of those overlapping the ranges."""
        for member, (low, high) in self.ranges.items():
            key = str(member)
            kept = [
                s
                for s in map(Segment.parse, stored.get(key, ()))
                if s.end <= low or s.start >= high
            ]
            merged = sorted(kept + self.segments(member), key=lambda s: s.start)
            if merged:
                stored[key] = [s.text() for s in merged]
            else:
                stored.pop(key, None)


def prune(stored: Stored, bounds: t.Mapping[str, dt.datetime | None]) -> None:
    """Drop the segments of each member in `bounds` that end at or before its bound
    (bookmark - lookback; None: every segment), and members left without any."""
    for member, bound in bounds.items():
        texts = stored.get(member)
        if texts is None:
            continue
        kept = [text for text in texts if bound is not None and Segment.parse(text).end > bound]
        if kept:
            stored[member] = kept
        else:
            del stored[member]
