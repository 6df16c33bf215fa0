"""The job model: what is asked of Avicenna, and one attempt at getting it."""

from __future__ import annotations

import datetime as dt
import time
import typing as t
from dataclasses import dataclass, field

from tap_avicenna.client import epoch_ms
from tap_avicenna.exports.status import ExportStatus, classify


@dataclass(frozen=True)
class ExportRequest:
    """One export to obtain: a sensor export (data source, window, participants) or a
    filter export (a JSON body). `key` identifies it across runs (state)."""

    key: str
    label: str
    data_source_id: int | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    participant_ids: tuple[int, ...] = ()
    body: dict[str, t.Any] | None = field(default=None, hash=False, compare=False)

    def matches(self, listed: ListedExport) -> bool:
        """Could this listed export be the one created for this request?

        Used when a create response carries no id: every field the list shows must
        agree; fields it does not show are not held against it.
        """
        if self.body is not None:
            if listed.data_source is not None:
                return False
            wanted = self.body.get("activity_id")
            return listed.activity_id is None or wanted is None or listed.activity_id == wanted
        if listed.data_source is not None and listed.data_source != self.data_source_id:
            return False
        if listed.activity_id is not None:
            return False
        if self.start and listed.start_ms not in (None, epoch_ms(self.start)):
            return False
        if self.end and listed.end_ms not in (None, epoch_ms(self.end)):
            return False
        return listed.participant_ids is None or (
            tuple(sorted(listed.participant_ids)) == self.participant_ids
        )


@dataclass
class ListedExport:
    """One entry of the study's export list, read liberally."""

    export_id: int
    label: str
    status: ExportStatus
    content: str | None = field(repr=False)  # a download URL: never logged
    data_source: int | None = None
    activity_id: int | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    participant_ids: list[int] | None = None

    @classmethod
    def from_json(cls, entry: dict[str, t.Any]) -> ListedExport | None:
        export_id = _int(entry.get("study_specific_id", entry.get("id")))
        if export_id is None:
            return None
        raw_status = entry.get("status")
        if isinstance(raw_status, dict):
            label = raw_status.get("label", raw_status.get("name", raw_status.get("id")))
        else:
            label = raw_status if raw_status is not None else entry.get("status_label")
        content = next(
            (
                entry[k]
                for k in ("content", "download_url", "url", "file")
                if isinstance(entry.get(k), str) and entry[k].strip()
            ),
            None,
        )
        status = classify(label)
        if status is ExportStatus.SUCCESS and not content:
            status = ExportStatus.PENDING  # ready only once there is something to fetch
        participants = entry.get("participant_ids")
        if isinstance(participants, str):
            participants = [p for p in participants.split(",") if p.strip()]
        return cls(
            export_id=export_id,
            label=str(label),
            status=status,
            content=content,
            data_source=_int(entry.get("data_source")),
            activity_id=_int(entry.get("activity_id")),
            start_ms=_int(entry.get("start_date")),
            end_ms=_int(entry.get("end_date")),
            participant_ids=(
                [p for p in (_int(x) for x in participants) if p is not None]
                if isinstance(participants, list)
                else None
            ),
        )


def _int(value: t.Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, dict):
        return _int(value.get("id"))
    return None


@dataclass
class ExportJob:
    """One attempt at an export: created (or adopted from state), polled, downloaded."""

    request: ExportRequest
    attempt: int = 1
    export_id: int | None = None
    created_at: float = field(default_factory=time.monotonic)
    known_before: frozenset[int] = frozenset()  # ids listed before a create without id
    label: str = "created"
    resumed: bool = False
    failed: bool = False
    pending_age: float = 0.0  # seconds since creation when last listed as not ready

    @property
    def name(self) -> str:
        ref = f"#{self.export_id}" if self.export_id is not None else "(id pending)"
        return f"export {ref} [{self.request.label}]"

    def elapsed(self) -> float:
        return time.monotonic() - self.created_at
