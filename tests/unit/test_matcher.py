"""The matcher on tables of list snapshots: which entry a create without its list key is."""

from __future__ import annotations

import pytest

from tap_avicenna.exports.job import ExportRequest, ListedExport
from tap_avicenna.exports.matcher import Claims, identify, resumable
from tap_avicenna.exports.status import classify

GPS = ExportRequest(key="g", label="g", data_source_id=10, participant_ids=(101,))


def entry(export_id: int, source: int | None = None, pk: int | None = None) -> ListedExport:
    """A list entry; `source`: the data source the list shows (None: no details)."""
    return ListedExport(
        export_id, "Pending", classify("Pending"), None, data_source=source, pk=pk,
        participant_ids=None if source is None else [101],
    )  # fmt: skip


# (case, list snapshot, ids listed before the create, claimed, rejected, expected, guessed)
TABLE = [
    ("nothing new yet", [entry(1)], {1}, set(), set(), None, False),
    ("the only new one, no details", [entry(1), entry(2)], {1}, set(), set(), 2, True),
    ("the first new one by creation order", [entry(3), entry(2)], set(), set(), set(), 2, True),
    ("claimed by another create: the next", [entry(2), entry(3)], set(), {2}, set(), 3, True),
    ("rejected before: the next", [entry(2), entry(3)], set(), set(), {2}, 3, True),
    ("a positive match wins", [entry(2, 30), entry(3, 10)], set(), set(), set(), 3, False),
    ("shown to disagree: never", [entry(2, 30)], set(), set(), set(), None, False),
]


@pytest.mark.parametrize(
    ("listing", "known", "claimed", "rejected", "expected", "guessed"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_given_a_list_snapshot_when_a_create_without_id_is_matched_then_by_the_table(
    listing: list[ListedExport],
    known: set[int],
    claimed: set[int],
    rejected: set[int],
    expected: int | None,
    guessed: bool,
) -> None:
    claims = Claims(claimed=set(claimed), rejected=set(rejected))
    found = identify(GPS, listing, claims, known_before=frozenset(known))
    assert (found and (found.listed.export_id, found.guessed)) == (expected and (expected, guessed))


def test_given_an_orphaned_create_when_its_export_shows_then_no_later_create_takes_it() -> None:
    """A create whose guess was rejected: its own export shows later, before the
    re-create's, and is the orphan's, not the re-create's."""
    claims = Claims(rejected={2}, orphans=[frozenset({1})])
    listing = [entry(1), entry(2), entry(3), entry(4)]  # 3: the first create's, 4: the re-create's
    assert claims.settle_orphans(listing) == [3] and not claims.orphans
    found = identify(GPS, listing, claims, known_before=frozenset({1, 2}))
    assert found is not None and (found.listed.export_id, found.guessed) == (4, True)


def test_given_an_orphan_whose_export_has_not_shown_when_settled_then_it_waits() -> None:
    claims = Claims(orphans=[frozenset({1, 2})])
    assert claims.settle_orphans([entry(1), entry(2)]) == [] and claims.orphans


@pytest.mark.parametrize(("pk", "expected"), [(7001, 5), (None, None)], ids=["pk", "absent"])
def test_given_a_create_answering_an_id_when_matched_then_the_entry_showing_it(
    pk: int | None, expected: int | None
) -> None:
    listing = [entry(4, pk=7000), entry(5, pk=pk)]
    found = identify(GPS, listing, Claims(), ref=7001, taken={4})
    assert (found and found.listed.export_id) == expected


def failed(export_id: int) -> ListedExport:
    return ListedExport(export_id, "Failed", classify("Failed"), None)


# (case, list snapshot, rejected, resumed?, why not)
RESUME = [
    ("listed, nothing disagrees", [entry(5)], set(), True, ""),
    ("not listed", [entry(4)], set(), False, "not listed"),
    ("failed", [failed(5)], set(), False, "Failed"),
    ("shows another data source", [entry(5, 30)], set(), False, "the list shows another request"),
    ("rejected this run", [entry(5)], {5}, False, "the list shows another request"),
]


@pytest.mark.parametrize(
    ("listing", "rejected", "resumed", "why"),
    [row[1:] for row in RESUME],
    ids=[row[0] for row in RESUME],
)
def test_given_an_id_from_state_when_listed_then_resumed_by_the_table(
    listing: list[ListedExport], rejected: set[int], resumed: bool, why: str
) -> None:
    listed, reason = resumable(GPS, 5, listing, Claims(rejected=set(rejected)))
    assert (listed is not None, reason) == (resumed, why)
