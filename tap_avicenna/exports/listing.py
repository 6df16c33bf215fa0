"""ExportList: the study's export list as a run polls it, and when a poll may stop reading."""

from __future__ import annotations

import itertools

from tap_avicenna.exports.job import ListedExport
from tap_avicenna.exports.repository import Enough, ExportRepository, Listing


def newest_first(ids: list[int]) -> bool:
    """Whether the ids go down (the entries read newest first)."""
    return len(ids) > 1 and ids[0] > ids[-1] and all(a >= b for a, b in itertools.pairwise(ids))


def enough_for(wanted: set[int], known: frozenset[int]) -> Enough:
    """When a poll may stop reading pages (the repository reads the newest exports
    first): once every export `wanted` is found and an export listed before (`known`)
    is reached (all that follows is older, and was listed before; a new export is
    newer), in newest-first order (any other order is read to its end)."""

    def enough(exports: list[ListedExport]) -> bool:
        ids = [e.export_id for e in exports]
        reached = not known or not known.isdisjoint(ids)
        return wanted.issubset(ids) and reached and newest_first(ids)

    return enough


class ExportList:
    """The list's latest snapshot and every export id it has shown in the run."""

    def __init__(self, repo: ExportRepository) -> None:
        self.repo = repo
        self.snapshot: list[ListedExport] | None = None  # None: not read yet
        self.known: set[int] = set()

    def poll(self, wanted: set[int]) -> Listing:
        """Read the list until `enough_for` the ids `wanted` (pending exports whose id is
        known, ids from state still to check)."""
        listing = self.repo.list(enough_for(wanted, frozenset(self.known)))
        self.known.update(e.export_id for e in listing.exports)
        self.snapshot = listing.exports
        return listing
