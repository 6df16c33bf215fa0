"""Export records: status on the simulated clock, their JSON form and their file bytes.

Status ids (the simulator's choice): 1 Pending, 2 Processing, 3 Success, 4 Failed,
5 Expired, 9 an unknown label (``Faults.unknown_label``).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import iso_z, to_ms
from .config import StudyConfig
from .data import SensorRequest, participation_table, sensor_knobs, sensor_table
from .files import Row, encode_csv, extra_members, gzip_bytes, split_evenly, zip_bytes
from .surveys import SurveyRequest, survey_table

PENDING, PROCESSING, SUCCESS, FAILED, EXPIRED = (
    "Pending",
    "Processing",
    "Success",
    "Failed",
    "Expired",
)
STATUS_IDS = {PENDING: 1, PROCESSING: 2, SUCCESS: 3, FAILED: 4, EXPIRED: 5}
UNKNOWN_STATUS_ID = 9
FINAL = frozenset({SUCCESS, FAILED, EXPIRED})

DATA_SOURCE, PARTICIPATION, ACTIVITY_RESPONSE = "data_source", "PARTICIPATION", "ACTIVITY_RESPONSE"


@dataclass
class Export:
    """One export; its status is a function of the simulated clock."""

    study_id: int
    number: int
    kind: str
    created: datetime
    filename: str
    pending_seconds: float = 0.0
    processing_delay: float = 0.0
    expiry_seconds: float = 604_800.0
    sensor: SensorRequest | None = None
    survey: SurveyRequest | None = None
    outcome: str = "success"  # "success" | "failed" | "never"
    unknown_label: str | None = None
    pk: int = 0  # a global primary key, unlike the per-study number
    has_rows: bool | None = None  # whether the file has a data row (computed once)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    downloaded: bool = False
    content: bytes | None = None
    render_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def cutoff_ms(self) -> int:
        """Data in the file stops at the clock's value when the export was created."""
        return to_ms(self.created)

    @property
    def path(self) -> str:
        """URL path of the file (the token is the secret part)."""
        return f"/media/exports/{self.study_id}/{self.token}/{self.filename}"

    def state(self, now: datetime) -> str:
        """Canonical status label at ``now``."""
        elapsed = (now - self.created).total_seconds()
        if elapsed < self.pending_seconds:
            return PENDING
        if self.outcome == "never" or elapsed < self.processing_delay:
            return PROCESSING
        if self.outcome == "failed":
            return FAILED
        if elapsed >= self.expiry_seconds:
            return EXPIRED
        return SUCCESS

    def to_json(
        self,
        now: datetime,
        content: str | None,
        *,
        label_case: str | None = None,
        status_format: str = "object",
        success_label: str = SUCCESS,
        metadata: bool = True,
        show_pk: bool = False,
    ) -> dict[str, Any]:
        """The object served by the list endpoint (and the create call); ``content`` is
        the download URL (None until ready). Without ``metadata`` only the id, status
        and content are shown."""
        state = self.state(now)
        label, status_id = state, STATUS_IDS[state]
        if state == SUCCESS:
            label = success_label
        if self.unknown_label and state not in FINAL:
            label, status_id = self.unknown_label, UNKNOWN_STATUS_ID
        if label_case == "lower":
            label = label.lower()
        elif label_case == "upper":
            label = label.upper()
        status: Any = {"id": status_id, "label": label}
        if status_format == "label":
            status = label
        elif status_format == "number":
            status = status_id
        entry: dict[str, Any] = {"study_specific_id": self.number}
        if show_pk:
            entry["id"] = self.pk
        entry.update(status=status, content=content)
        if not metadata:
            return entry
        sensor = self.sensor
        entry.update(
            {
                "created": iso_z(self.created),
                "export_type": self.kind,
                "data_source": sensor.data_source if sensor else None,
                "activity_id": self.survey.activity_id if self.survey else None,
                "start_date": sensor.start_ms if sensor else None,
                "end_date": sensor.end_ms if sensor else None,
                "participant_ids": list(sensor.participant_ids)
                if sensor and sensor.participant_ids is not None
                else None,
            }
        )
        return entry


def sensor_filename(study: StudyConfig, study_id: int, number: int, data_source: int) -> str:
    """``study-1234-export-7-data-source-10.zip`` (``.csv`` / ``.csv.gz`` per file_format)."""
    knobs = sensor_knobs(study, study.data_sources[data_source])
    ext = {"zip": "zip", "csv": "csv", "gzip": "csv.gz"}[knobs.file_format]
    return f"study-{study_id}-export-{number}-data-source-{data_source}.{ext}"


def participation_filename(study_id: int, number: int) -> str:
    """``study-1234-export-3-participation.csv``."""
    return f"study-{study_id}-export-{number}-participation.csv"


def survey_filename(
    study_id: int, number: int, activity_id: int, created: datetime, as_zip: bool
) -> str:
    """``study-1234-export-8-survey-responses-5678-2025-02-01-00-00-00.csv`` (or ``.zip``)."""
    stamp = created.strftime("%Y-%m-%d-%H-%M-%S")
    ext = "zip" if as_zip else "csv"
    return f"study-{study_id}-export-{number}-survey-responses-{activity_id}-{stamp}.{ext}"


def render(study: StudyConfig, export: Export, seed: int = 0) -> bytes:
    """The export file's bytes (data as of the export's creation)."""
    if export.kind == DATA_SOURCE:
        assert export.sensor is not None
        return _render_sensor(study, export.sensor, export.cutoff_ms, seed)
    if export.kind == PARTICIPATION:
        header, rows = participation_table(study, export.cutoff_ms)
        return encode_csv(header, rows, bom=study.bom)
    assert export.survey is not None
    table = survey_table(study, export.survey, export.cutoff_ms, export.created, seed)
    body = encode_csv(table.header, table.rows, bom=study.bom)
    if not export.filename.endswith(".zip"):
        return body
    csv_name = export.filename.removesuffix(".zip") + ".csv"
    return zip_bytes([(csv_name, body), *table.images])


def has_rows(study: StudyConfig, export: Export, seed: int = 0) -> bool:
    """Whether the export's file holds at least one data row."""
    if export.kind == DATA_SOURCE:
        assert export.sensor is not None
        _, rows = sensor_table(study, export.sensor, export.cutoff_ms, seed)
        return next(iter(rows), None) is not None
    if export.kind == PARTICIPATION:
        return bool(participation_table(study, export.cutoff_ms)[1])
    assert export.survey is not None
    return bool(survey_table(study, export.survey, export.cutoff_ms, export.created, seed).rows)


def _render_sensor(study: StudyConfig, request: SensorRequest, cutoff_ms: int, seed: int) -> bytes:
    knobs = sensor_knobs(study, study.data_sources[request.data_source])
    header, rows = sensor_table(study, request, cutoff_ms, seed)

    def encode(table: Iterable[Row]) -> bytes:
        return encode_csv(header, table, bom=knobs.bom, plain=True, quote_all=study.quote_all)

    if knobs.file_format == "csv":
        return encode(rows)
    if knobs.file_format == "gzip":
        return gzip_bytes(encode(rows))
    stem = f"study-{request.study_id}-data-source-{request.data_source}"
    if knobs.zip_members == 1:
        members = [(f"{stem}.csv", encode(rows))]
    else:
        parts = split_evenly(list(rows), knobs.zip_members)
        members = [(f"{stem}-part-{i}.csv", encode(part)) for i, part in enumerate(parts, 1)]
    if study.extra_zip_members:
        codebook, readme = extra_members(header)
        members = [codebook, *members, readme]
    return zip_bytes(members)
