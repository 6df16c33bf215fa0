"""ExportRepository: the engine's view of Avicenna (create, list, download)."""

from __future__ import annotations

import itertools
import logging
import typing as t
from dataclasses import dataclass
from urllib.parse import urljoin

from tap_avicenna.client import AvicennaClient, ListPage
from tap_avicenna.exports.job import Created, ExportRequest, ListedExport, _int

LOGGER = logging.getLogger("tap-avicenna.exports")

Enough = t.Callable[[list[ListedExport]], bool]
"""Told the entries read so far (after each page), says whether to stop reading."""


@dataclass
class Listing:
    """The export list as read by one poll: its entries and the list requests made."""

    exports: list[ListedExport]
    pages: int


class _Reading:
    """The entries one `list` call has read, and the list requests made before it."""

    def __init__(self, enough: Enough | None, before: int, whole: list[ListedExport]) -> None:
        self.enough = enough
        self.before = before
        self.exports: list[ListedExport] = []
        self.stopped = False  # before the list's end
        self._whole = whole
        self._oldest: int | None = None

    def add(self, entries: t.Iterable[dict[str, t.Any]]) -> bool:
        """Take a page's entries; whether to stop reading: `enough` says so, or the
        reading has reached the exports of the last reading of the whole list and not
        even all of them older than it would satisfy `enough` (what it waits for is not
        in the list: reading on would not find it)."""
        for entry in entries:
            export = ListedExport.from_json(entry)
            if export is None:
                LOGGER.debug("Ignoring an export list entry without an id")
                continue
            self.exports.append(export)
            if self._oldest is None or export.export_id < self._oldest:
                self._oldest = export.export_id
        if self.enough is None:
            return False
        if self.enough(self.exports):
            self.stopped = True
        elif self._whole and self._oldest is not None and self._oldest <= self._whole[0].export_id:
            older = [e for e in self._whole if e.export_id < self._oldest]
            self.stopped = not self.enough(self.exports + older)
        return self.stopped


def _ascending(entries: t.Iterable[dict[str, t.Any]]) -> bool:
    """Whether the entries' ids go up (an oldest-first list)."""
    ids = [e.export_id for e in map(ListedExport.from_json, entries) if e is not None]
    return len(ids) > 1 and all(a < b for a, b in itertools.pairwise(ids))


class ExportRepository(t.Protocol):
    def create(self, request: ExportRequest) -> Created:
        """Create the export; what the answer says of its id."""

    def list(self, enough: Enough | None = None) -> Listing:
        """The study's exports as listed now: pages read until `enough` says so (every
        page when None), the newest exports first read."""

    def download(self, listed: ListedExport, dest: t.BinaryIO, *, label: str) -> int:
        """Write the export's file into `dest`; return its size."""


class AvicennaExportRepository:
    """ExportRepository over the HTTP client for one study."""

    def __init__(self, client: AvicennaClient, study_id: int) -> None:
        self.client = client
        self.study_id = study_id
        self._tail: str | None = None  # an oldest-first list's last page, when last read
        self._whole: list[ListedExport] = []  # the last reading of the whole list, newest first

    def create(self, request: ExportRequest) -> Created:
        if request.body is not None:
            answer = self.client.create_filter_export(request.body)
        else:
            assert request.data_source_id is not None and request.start and request.end
            answer = self.client.create_sensor_export(
                study_id=self.study_id,
                data_source_id=request.data_source_id,
                start=request.start,
                end=request.end,
                participant_ids=request.participant_ids,
            )
        export_id = _int(answer.get("study_specific_id"))
        if export_id is not None and export_id > 0:
            return Created(export_id=export_id)
        for key in ("id", "export_id", "pk"):
            ref = _int(answer.get(key))
            if ref is not None and ref > 0:
                return Created(ref=ref)
        return Created()

    def list(self, enough: Enough | None = None) -> Listing:
        """The list as `ExportRepository.list`, read where the newest exports are.

        A newest-first list is read from its first page. An oldest-first one is read
        from its end: the last page `count` (or DRF's `page=last`) points at, or else,
        after one full read, the last page that read reached, remembered; then forward
        to the end and back through `previous` links until `enough`. Such a reading
        hands the entries over newest first. Once the list has been read whole, a
        reading that gets back to its exports stops where even they cannot satisfy
        `enough` (an id waited for that is not in the list costs no second full read).
        """
        reading = _Reading(enough, self._requests(), self._whole)
        if self._tail is None or not self._from_end(self._tail, reading):
            first = self.client.list_page(self.study_id)
            assert first is not None  # a first page past the end is an error, not None
            end = self.client.last_page_url(first) if _ascending(first.entries) else None
            if enough is None or end is None or not self._from_end(end, reading):
                self._from_start(first, reading)
        if not reading.stopped:
            self._whole = sorted(reading.exports, key=lambda e: e.export_id, reverse=True)
        return Listing(reading.exports, self._requests() - reading.before)

    def _requests(self) -> int:
        return self.client.request_counts.get("list", 0)

    def _from_start(self, first: ListPage, reading: _Reading) -> None:
        """Forward through `next` links until `enough` or the end; an oldest-first list
        read to its end leaves its last page as the place later readings start."""
        read: list[ListPage] = []
        for page in self.client.follow(self.study_id, first, "next"):
            read.append(page)
            if reading.add(page.entries):
                return
        if len(read) > 1 and _ascending(e for p in read for e in p.entries):
            self._tail = read[-1].url
            LOGGER.info(
                "The export list is oldest first (%d pages): later polls read it from its end",
                len(read),
            )

    def _from_end(self, url: str, reading: _Reading) -> bool:
        """From the page at `url` forward to the end, then back until `enough`; False
        (nothing read) when that page is gone."""
        page = self.client.list_page(self.study_id, url)
        if page is None:
            self._tail = None
            return False
        segment = list(self.client.follow(self.study_id, page, "next"))
        self._tail = segment[-1].url
        if reading.add(e for p in reversed(segment) for e in reversed(p.entries)):
            return True
        back = self.client.follow(self.study_id, segment[0], "previous")
        next(back)  # segment[0], read already
        for page in back:
            if reading.add(reversed(page.entries)):
                break
        return True

    def download(self, listed: ListedExport, dest: t.BinaryIO, *, label: str) -> int:
        assert listed.content is not None
        # A relative `content` ("/media/...") is taken relative to the API's address.
        url = urljoin(self.client.api_url + "/", listed.content)
        return self.client.download_with_retries(url, dest, label=label)
