"""When a poll may stop reading the export list, without HTTP."""

from __future__ import annotations

import pytest

from tap_avicenna.exports.job import ListedExport
from tap_avicenna.exports.listing import enough_for, newest_first
from tap_avicenna.exports.status import ExportStatus


def listed(*ids: int) -> list[ListedExport]:
    return [ListedExport(i, "Pending", ExportStatus.PENDING, None) for i in ids]


@pytest.mark.parametrize(
    ("ids", "expected"),
    [([9, 7, 7, 2], True), ([2, 7, 9], False), ([9, 2, 7], False), ([9], False), ([], False)],
)
def test_given_ids_when_asked_then_newest_first_only_when_they_go_down(
    ids: list[int], expected: bool
) -> None:
    assert newest_first(ids) is expected


@pytest.mark.parametrize(
    ("wanted", "known", "read", "expected"),
    [
        ({8}, frozenset({5}), (9, 8, 5), True),  # found, and a listed-before export reached
        ({8}, frozenset({5}), (9, 8), False),  # not yet back to what was listed before
        ({8}, frozenset(), (9, 8), True),  # nothing listed before: nothing to reach
        ({7}, frozenset({5}), (9, 8, 5), False),  # not found yet
        ({8}, frozenset({5}), (5, 8, 9), False),  # oldest first: read to its end
        (set(), frozenset({5}), (6, 5), True),  # nothing waited for
    ],
)
def test_given_a_reading_when_asked_then_enough_once_all_wanted_found_and_known_reached(
    wanted: set[int], known: frozenset[int], read: tuple[int, ...], expected: bool
) -> None:
    assert enough_for(wanted, known)(listed(*read)) is expected
