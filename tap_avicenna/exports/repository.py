"""ExportRepository: the engine's view of Avicenna (create, list, download)."""

from __future__ import annotations

import logging
import typing as t
from dataclasses import dataclass
from urllib.parse import urljoin

from tap_avicenna.client import AvicennaClient
from tap_avicenna.exports.job import Created, ExportRequest, ListedExport, _int

LOGGER = logging.getLogger("tap-avicenna.exports")

Enough = t.Callable[[list[ListedExport]], bool]
"""Told the entries read so far (after each page), says whether to stop reading."""


@dataclass
class Listing:
    """The export list as read by one poll: its entries and the pages requested."""

    exports: list[ListedExport]
    pages: int


class ExportRepository(t.Protocol):
    def create(self, request: ExportRequest) -> Created:
        """Create the export; what the answer says of its id."""

    def list(self, enough: Enough | None = None) -> Listing:
        """The study's exports as listed now (pages read until `enough` says so)."""

    def download(self, listed: ListedExport, dest: t.BinaryIO, *, label: str) -> int:
        """Write the export's file into `dest`; return its size."""


class AvicennaExportRepository:
    """ExportRepository over the HTTP client for one study."""

    def __init__(self, client: AvicennaClient, study_id: int) -> None:
        self.client = client
        self.study_id = study_id

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
        listed: list[ListedExport] = []
        pages = 0
        for page in self.client.export_pages(self.study_id):
            pages += 1
            for entry in page:
                export = ListedExport.from_json(entry)
                if export is None:
                    LOGGER.debug("Ignoring an export list entry without an id")
                    continue
                listed.append(export)
            if enough is not None and enough(listed):
                break
        return Listing(listed, pages)

    def download(self, listed: ListedExport, dest: t.BinaryIO, *, label: str) -> int:
        assert listed.content is not None
        # A relative `content` ("/media/...") is taken relative to the API's address.
        url = urljoin(self.client.api_url + "/", listed.content)
        return self.client.download_with_retries(url, dest, label=label)
