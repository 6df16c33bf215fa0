"""Day digests: a lookback day re-exported unchanged emits nothing, a changed one
(a late upload) emits its rows, and state stays bounded."""

from __future__ import annotations

import json
import typing as t

from tap_avicenna.day_digests import (
    Digests,
    changed_days,
    digest_rows,
    only_changed,
    prune,
    record,
)
from tap_avicenna.streams.base import ExportStream


def row(participant: int, when: str, value: int) -> dict[str, t.Any]:
    fields = {"participant_id": participant, "record_time": when, "level": value}
    return {**fields, "_row_id": ExportStream.row_id(fields)}


NIGHT_1 = [
    row(101, "2025-01-02T10:00:00.000000+00:00", 1),
    row(101, "2025-01-03T10:00:00.000000+00:00", 2),
    row(101, "2025-01-03T11:00:00.000000+00:00", 3),
    row(102, "2025-01-03T09:00:00.000000+00:00", 4),
]
LATE = row(101, "2025-01-03T23:00:00.000000+00:00", 5)  # uploaded after night 1
NEW_DAY = [row(101, "2025-01-04T08:00:00.000000+00:00", 6)]


def emitted(rows: list[dict[str, t.Any]], stored: Digests) -> list[dict[str, t.Any]]:
    records, seen = only_changed(lambda: iter(rows), stored)
    out = list(records)
    record(stored, seen)
    return out


def test_given_a_first_night_when_filtered_then_every_row_is_emitted() -> None:
    stored: Digests = {}
    assert emitted(NIGHT_1, stored) == NIGHT_1
    assert set(stored) == {"101", "102"} and set(stored["101"]) == {"2025-01-02", "2025-01-03"}


def test_given_unchanged_lookback_days_when_exported_again_then_nothing_is_emitted() -> None:
    stored: Digests = {}
    emitted(NIGHT_1, stored)
    lookback = [r for r in NIGHT_1 if r["record_time"] >= "2025-01-03"]
    assert emitted(list(reversed(lookback)) + NEW_DAY, stored) == NEW_DAY  # any order


def test_given_a_late_row_in_a_lookback_day_when_exported_again_then_that_day_is_emitted() -> None:
    stored: Digests = {}
    emitted(NIGHT_1, stored)
    lookback = [r for r in NIGHT_1 if r["record_time"] >= "2025-01-03"] + [LATE]
    sent = emitted(lookback, stored)
    # 101's 01-03 changed (all its rows, the late one included); 102's did not
    assert sent == [NIGHT_1[1], NIGHT_1[2], LATE]
    assert emitted(lookback, stored) == []  # the next night: unchanged again


def test_given_a_row_removed_or_altered_when_digested_then_the_day_changes() -> None:
    base = digest_rows((r["participant_id"], r["record_time"], r["_row_id"]) for r in NIGHT_1)
    altered = [*NIGHT_1[:2], row(101, "2025-01-03T11:00:00.000000+00:00", 30), NIGHT_1[3]]
    for rows in (NIGHT_1[:2] + NIGHT_1[3:], altered):
        seen = digest_rows((r["participant_id"], r["record_time"], r["_row_id"]) for r in rows)
        assert changed_days(seen, base) == {("101", "2025-01-03")}


def test_given_5000_participants_when_pruned_to_the_lookback_then_state_stays_bounded() -> None:
    stored: Digests = {}
    for day in range(1, 31):  # a month of nights, lookback 1 day
        seen = digest_rows(
            (p, f"2025-01-{day:02d}T12:00:00.000000+00:00", f"{p * 7919 + day:032x}")
            for p in range(5000)
        )
        record(stored, seen)
        prune(stored, f"2025-01-{day:02d}")
    assert sum(len(days) for days in stored.values()) == 5000  # one day each
    size = len(json.dumps(stored, separators=(",", ":")))
    assert size < 5000 * 45  # ~40 bytes an entry
