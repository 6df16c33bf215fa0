"""ExportRepository: the engine's view of Avicenna (create, list, download)."""

from __future__ import annotations

import logging
import typing as t
from urllib.parse import urljoin

from tap_avicenna.client import AvicennaClient
from tap_avicenna.exports.job import ExportRequest, ListedExport, _int

LOGGER = logging.getLogger("tap-avicenna.exports")


class ExportRepository(t.Protocol):
    def create(self, request: ExportRequest) -> int | None:
        """Create the export; its id, or None when the answer does not carry one."""

    def list(self) -> list[ListedExport]:
        """The study's exports, as listed now."""

    def download(self, listed: ListedExport, dest: t.BinaryIO, *, label: str) -> int:
        """Write the export's file into `dest`; return its size."""


class AvicennaExportRepository:
    """ExportRepository over the HTTP client for one study."""

    def __init__(self, client: AvicennaClient, study_id: int) -> None:
        self.client = client
        self.study_id = study_id

    def create(self, request: ExportRequest) -> int | None:
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
        for key in ("study_specific_id", "id", "export_id"):
            export_id = _int(answer.get(key))
            if export_id is not None and export_id > 0:
                return export_id
        return None

    def list(self) -> list[ListedExport]:
        listed = []
        for entry in self.client.list_exports(self.study_id):
            export = ListedExport.from_json(entry)
            if export is None:
                LOGGER.debug("Ignoring an export list entry without an id")
                continue
            listed.append(export)
        return listed

    def download(self, listed: ListedExport, dest: t.BinaryIO, *, label: str) -> int:
        assert listed.content is not None
        # A relative `content` ("/media/...") is taken relative to the API's address.
        url = urljoin(self.client.api_url + "/", listed.content)
        return self.client.download_with_retries(url, dest, label=label)
