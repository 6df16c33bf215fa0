"""day_digests: segments of the lookback, their digests, what is skipped and what is kept."""

from __future__ import annotations

import datetime as dt
import json
import random
import typing as t

from tap_avicenna.bookmarks import iso
from tap_avicenna.day_digests import ExportDigest, Segment, Stored, cuts, prune

Row = tuple[int, str, str]  # participant, record time (the tap's text), row id


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


def rows(
    participant: int, start: str, end: str, every_minutes: int = 7, seed: int = 1
) -> list[Row]:
    """A row every few minutes in [start, end), with random row ids."""
    rng = random.Random(seed * 1000 + participant)
    out, moment = [], at(start)
    while moment < at(end):
        out.append((participant, iso(moment), f"{rng.getrandbits(128):032x}"))
        moment += dt.timedelta(minutes=every_minutes)
    return out


def read(
    export: tuple[str, str],
    data: list[Row],
    stored: Stored,
    cut: str,
    starts: t.Mapping[int, str] | None = None,
) -> tuple[list[Row], ExportDigest]:
    """One export read as the stream does (passes 1 and 2); its digests stored."""
    low, high = at(export[0]), at(export[1])
    members = sorted({p for p, _, _ in data})
    ranges = {p: (max(low, at((starts or {}).get(p, export[0]))), high) for p in members}
    digest = ExportDigest(ranges, stored, at(cut))
    if digest.needs_first_pass:
        for row in data:
            digest.first(*row)
        digest.compare()
    sent = [row for row in data if digest.keep(*row)]
    digest.store(stored)
    return sent, digest


def test_given_a_range_when_cut_then_at_midnights_and_at_the_next_lookback_start() -> None:
    edges = cuts(at("2025-01-19T02:00"), at("2025-01-21T02:00"), at("2025-01-20T02:00"))
    assert [e.isoformat()[:16] for e in edges] == [
        "2025-01-19T02:00",
        "2025-01-20T00:00",
        "2025-01-20T02:00",
        "2025-01-21T00:00",
        "2025-01-21T02:00",
    ]
    assert cuts(at("2025-01-19T02:00"), at("2025-01-19T05:00"), at("2025-01-30")) == [
        at("2025-01-19T02:00"),
        at("2025-01-19T05:00"),
    ]


def test_given_two_nights_when_the_second_reads_the_lookback_then_it_sends_only_new_rows() -> None:
    """Night 1 to 01-20 02:00 (lookback 1 day), night 2 from 01-19 02:00 to 01-21 02:00:
    the stored segments lie inside the second export and match; nothing of them is sent."""
    stored: Stored = {}
    night1 = rows(101, "2025-01-15T00:00", "2025-01-20T02:00") + rows(
        102, "2025-01-15T00:00", "2025-01-20T02:00"
    )
    sent, _ = read(("2025-01-15T00:00", "2025-01-20T02:00"), night1, stored, "2025-01-19T02:00")
    assert sent == night1  # nothing stored yet: everything sent
    assert [Segment.parse(s) for s in stored["101"]] == [
        _digest(night1, 101, "2025-01-19T02:00", "2025-01-20T00:00"),
        _digest(night1, 101, "2025-01-20T00:00", "2025-01-20T02:00"),
    ]
    night2 = [r for r in night1 if r[0] == 101 and r[1] >= "2025-01-19T02:00"] + rows(
        101, "2025-01-20T02:00", "2025-01-21T02:00", seed=2
    )
    sent, digest = read(
        ("2025-01-19T02:00", "2025-01-21T02:00"), night2, stored, "2025-01-20T02:00"
    )
    assert digest.needs_first_pass
    assert sent == [r for r in night2 if r[1] >= "2025-01-20T02:00"]
    assert digest.skipped == len(night2) - len(sent)
    # the state after night 2: the segments of both nights, pruned to the next lookback
    prune(stored, {"101": at("2025-01-20T02:00"), "102": at("2025-01-19T02:00")})
    assert [s.split(":")[:2] for s in stored["101"]] == [
        [str(int(at(a).timestamp())), str(int(at(b).timestamp()))]
        for a, b in [
            ("2025-01-20T02:00", "2025-01-21T00:00"),
            ("2025-01-21T00:00", "2025-01-21T02:00"),
        ]
    ]
    assert len(stored["102"]) == 2  # 102 was not in night 2's export: its digests stay


def _digest(data: list[Row], participant: int, start: str, end: str) -> Segment:
    """The count and sum mod 2**64 of the first 16 hex digits of the ids of the rows."""
    values = [
        int(r[2][:16], 16)
        for r in data
        if r[0] == participant and iso(at(start)) <= r[1] < iso(at(end))
    ]
    return Segment(at(start), at(end), len(values), sum(values) % 2**64)


def night_one(stored: Stored) -> list[Row]:
    data = rows(101, "2025-01-18T00:00", "2025-01-20T00:00")
    read(("2025-01-18T00:00", "2025-01-20T00:00"), data, stored, "2025-01-18T00:00")
    return data


def test_given_the_same_rows_in_another_order_when_read_then_nothing_is_sent() -> None:
    stored: Stored = {}
    data = night_one(stored)
    shuffled = data[:]
    random.Random(7).shuffle(shuffled)
    sent, digest = read(
        ("2025-01-18T00:00", "2025-01-20T00:00"), shuffled, stored, "2025-01-18T00:00"
    )
    assert sent == [] and digest.skipped == len(data)


def test_given_a_row_added_removed_or_changed_when_read_then_only_its_day_is_sent() -> None:
    added = (101, "2025-01-19T23:59:59.000000+00:00", "f" * 32)
    for change in ("added", "removed", "changed"):
        stored: Stored = {}
        data = night_one(stored)
        day2 = [r for r in data if r[1] >= "2025-01-19"]
        if change == "added":
            data = [*data, added]
        elif change == "removed":
            data = [r for r in data if r != day2[5]]
        else:
            data = [(p, w, "0" * 32) if (p, w, i) == day2[5] else (p, w, i) for p, w, i in data]
        sent, _ = read(("2025-01-18T00:00", "2025-01-20T00:00"), data, stored, "2025-01-18T00:00")
        assert sent == [r for r in data if r[1] >= "2025-01-19"], change


def test_given_a_stored_segment_partly_in_the_range_when_read_then_its_rows_are_sent() -> None:
    """A stored segment only partly overlapping the range (the windows changed) proves
    nothing about the part inside: those rows are sent, and the segment dropped."""
    stored: Stored = {}
    data = night_one(stored)
    part = [r for r in data if r[1] >= "2025-01-18T12:00"]
    sent, digest = read(("2025-01-18T12:00", "2025-01-20T00:00"), part, stored, "2025-01-18T12:00")
    assert digest.needs_first_pass  # for the whole day 01-19, which is skipped
    assert digest.skipped == len([r for r in part if r[1] >= "2025-01-19"])
    assert sent == [r for r in part if r[1] < "2025-01-19"]
    assert all(Segment.parse(s).start >= at("2025-01-18T12:00") for s in stored["101"])


def test_given_rows_outside_the_range_when_read_then_sent_and_not_digested() -> None:
    stored: Stored = {}
    data = night_one(stored)
    stray = (101, "2025-01-17T10:00:00.000000+00:00", "a" * 32)
    other = (102, "2025-01-19T10:00:00.000000+00:00", "b" * 32)  # not a member of the export
    low, high = at("2025-01-18T00:00"), at("2025-01-20T00:00")
    digest = ExportDigest({101: (low, high)}, stored, low)
    for row in [stray, other, *data]:
        digest.first(*row)
    digest.compare()
    assert [row for row in [stray, other, *data] if digest.keep(*row)] == [stray, other]


def test_given_a_member_starting_after_the_window_when_read_then_its_range_starts_there() -> None:
    """Participants sharing an export from the earliest start: a later starter's range
    (and digests) begin at its own start."""
    stored: Stored = {}
    data = rows(101, "2025-01-18T00:00", "2025-01-20T00:00") + rows(
        102, "2025-01-19T06:00", "2025-01-20T00:00"
    )
    read(
        ("2025-01-18T00:00", "2025-01-20T00:00"),
        data,
        stored,
        "2025-01-18T00:00",
        {102: "2025-01-19T06:00"},
    )
    assert Segment.parse(stored["102"][0]).start == at("2025-01-19T06:00")
    assert Segment.parse(stored["101"][0]).start == at("2025-01-18T00:00")


def test_given_bounds_when_pruned_then_segments_ending_at_or_before_them_go() -> None:
    stored: Stored = {}
    night_one(stored)
    stored["102"] = list(stored["101"])
    stored["103"] = list(stored["101"])
    prune(stored, {"101": at("2025-01-19T00:00"), "102": None, "104": None})
    assert [Segment.parse(s).start for s in stored["101"]] == [at("2025-01-19T00:00")]
    assert "102" not in stored and len(stored["103"]) == 2


def test_given_5000_participants_3_streams_lookback_1_when_stored_then_state_is_under_2_5_mb() -> (
    None
):
    """Three segments per participant and stream at most (the lookback start to a grid
    edge, to midnight, to the bookmark), counts of a day of 1 Hz readings: ~2.3 MB;
    two (no grid edge in the lookback) ~1.6 MB."""
    text = Segment(at("2025-01-19T02:00"), at("2025-01-20T00:00"), 86_400, 2**64 - 1).text()
    state = {str(100_000 + p): [text] * 3 for p in range(5000)}
    size = 3 * len(json.dumps(state))
    assert size < 2.5e6, size


def test_given_arrow_batches_when_read_then_the_same_digests_and_rows_as_row_by_row() -> None:
    """`first_columns` / `keep_columns` (the BATCH writer's, vectorised) against `first` /
    `keep`: the same rows kept, the same segments stored, in batches of any cut."""
    import pyarrow as pa

    night1 = [
        *rows(101, "2025-01-18T00:00", "2025-01-20T02:00"),
        *rows(102, "2025-01-19T05:00", "2025-01-20T02:00"),
    ]
    late = (101, "2025-01-19T01:00:00.000000+00:00", "e" * 32)
    night2 = [*night1, late, *rows(101, "2025-01-20T02:00", "2025-01-21T02:00", seed=3)]
    random.Random(3).shuffle(night2)
    export, cut = ("2025-01-18T00:00", "2025-01-21T02:00"), "2025-01-20T02:00"
    results = []
    for columnar in (False, True):
        stored: Stored = {}
        read(("2025-01-18T00:00", "2025-01-20T02:00"), night1, stored, "2025-01-18T23:00")
        ranges = {p: (at(export[0]), at(export[1])) for p in (101, 102, 103)}
        digest = ExportDigest(ranges, stored, at(cut))
        assert digest.needs_first_pass
        batches = [night2[i : i + 97] for i in range(0, len(night2), 97)]
        arrays = [
            (
                pa.array([r[0] for r in b], pa.int64()),
                pa.array([r[1] for r in b]),
                pa.array([r[2] for r in b]),
            )
            for b in batches
        ]
        if columnar:
            for arrays_of_batch in arrays:
                digest.first_columns(*arrays_of_batch)
        else:
            for row in night2:
                digest.first(*row)
        digest.compare()
        sent: list[Row] = []
        for batch, batch_arrays in zip(batches, arrays, strict=True):
            if columnar:
                mask = digest.keep_columns(*batch_arrays)
                sent += (
                    batch
                    if mask is None
                    else [r for r, k in zip(batch, mask.to_pylist(), strict=True) if k]
                )
            else:
                sent += [r for r in batch if digest.keep(*r)]
        digest.store(stored)
        results.append((sent, digest.skipped, stored))
    (rows_sent, skipped, stored), columnar_result = results
    assert columnar_result == results[0]
    # unchanged: 101's 01-18 23:00..midnight and 01-20 00:00..02:00, all of 102's
    unchanged = [
        r
        for r in night2
        if r[0] == 102
        or "2025-01-18T23:00" <= r[1] < "2025-01-19"
        or "2025-01-20T00:00" <= r[1] < "2025-01-20T02:00"
    ]
    assert skipped == len(unchanged) > 0
    assert sorted(rows_sent) == sorted(set(night2) - set(unchanged))  # 01-19 changed: sent
    assert late in rows_sent
