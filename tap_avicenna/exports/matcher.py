"""Which listed export a create answered without its list key is: pure functions of a
list snapshot and of what this run has claimed, created and rejected."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from tap_avicenna.exports.job import ExportRequest, ListedExport, Match
from tap_avicenna.exports.status import ExportStatus


@dataclass
class Claims:
    """What a run knows of the list's entries beyond one snapshot."""

    claimed: set[int] = field(default_factory=set)  # ids taken by a create of this run
    rejected: set[int] = field(default_factory=set)  # ids whose file was not their request's
    orphans: list[frozenset[int]] = field(default_factory=list)
    """Creates without id given up before their export was found (the ids listed before
    each), oldest first: the first unclaimed entry after each is its export."""

    def unclaimed(
        self, listing: t.Iterable[ListedExport], known_before: frozenset[int]
    ) -> list[ListedExport]:
        """The entries new since a create (not listed before it), not claimed by a create
        of this run nor rejected, in creation order (ascending list key)."""
        return sorted(
            (
                e
                for e in listing
                if e.export_id not in known_before
                and e.export_id not in self.claimed
                and e.export_id not in self.rejected
            ),
            key=lambda e: e.export_id,
        )

    def settle_orphans(self, listing: list[ListedExport]) -> list[int]:
        """Give each orphan, oldest first, the first unclaimed entry after it (claimed
        from now on); the ids given."""
        given: list[int] = []
        while self.orphans and (theirs := self.unclaimed(listing, self.orphans[0])):
            self.claimed.add(theirs[0].export_id)
            given.append(theirs[0].export_id)
            del self.orphans[0]
        return given


@dataclass(frozen=True)
class Found:
    """The entry of a create; `guessed`: taken by creation order, its file to be proven."""

    listed: ListedExport
    guessed: bool = False


def identify(
    request: ExportRequest,
    listing: list[ListedExport],
    claims: Claims,
    *,
    known_before: frozenset[int] = frozenset(),
    ref: int | None = None,
    taken: t.AbstractSet[int] = frozenset(),
) -> Found | None:
    """The listed export of a create whose answer did not give its list key.

    With the `id` it answered (`ref`): the entry showing it as `id`, else as its key,
    not `taken` by another pending export. With nothing: among the new entries
    (`Claims.unclaimed`), the first whose shown fields positively match the request;
    where the list shows none of them, the first new entry (creation order: only one
    create without id is pending at a time), as a guess that its file must prove.
    """
    if ref is not None:
        for field_name in ("pk", "export_id"):
            fits = [
                e
                for e in listing
                if getattr(e, field_name) == ref
                and e.export_id not in taken
                and request.match(e) is not Match.NO
            ]
            if fits:
                return Found(fits[0])
        return None
    new = claims.unclaimed(listing, known_before)
    positive = [e for e in new if request.match(e) is Match.YES]
    if positive:
        return Found(positive[0])
    if new and request.match(new[0]) is Match.UNKNOWN:
        return Found(new[0], guessed=True)
    return None


def resumable(
    request: ExportRequest, export_id: int, listing: list[ListedExport], claims: Claims
) -> tuple[ListedExport | None, str]:
    """An export id from state, as the list shows it when it may be resumed; else None
    and why not (not listed, failed, or the list shows another request)."""
    listed = next((e for e in listing if e.export_id == export_id), None)
    if listed is None:
        return None, "not listed"
    if listed.status is ExportStatus.FAILED:
        return None, listed.label
    if export_id in claims.rejected or request.match(listed) is Match.NO:
        return None, "the list shows another request"
    return listed, ""
