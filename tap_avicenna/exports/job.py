"""The job model: what is asked of Avicenna, and one attempt at getting it."""

from __future__ import annotations

import datetime as dt
import enum
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from tap_avicenna.client import epoch_ms
from tap_avicenna.exports.status import ExportStatus, classify, status_label

_FILTER_KINDS = ("PARTICIPATION", "ACTIVITY_RESPONSE")

Verify = t.Callable[[Path, str], "str | None"]
"""Told a downloaded file (and its name for messages), says why it does not answer the
request, or None when it does: how an export adopted from the list by a guess is proven
before anything of it is used."""


class Match(enum.Enum):
    """How a listed export compares with a request, on what the list shows of it."""

    NO = "no"  # something shown disagrees
    UNKNOWN = "unknown"  # the list shows nothing to compare
    YES = "yes"  # something shown agrees, and nothing disagrees


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
    verify: Verify | None = field(default=None, hash=False, compare=False, repr=False)

    def match(self, listed: ListedExport) -> Match:
        """Compare with a listed export on every field the list shows.

        A create answer without an id is resolved to an export on YES (or, where the
        list shows nothing to compare, by creation order and then `verify`), and an
        export id from state is only resumed when this is not NO.
        """
        if self.body is not None:
            kind = str(self.body.get("filter") or "").upper()
            checks = [
                listed.data_source is None,
                listed.start_ms is None and listed.end_ms is None,
                listed.participant_ids is None,
            ]
            if not all(checks):
                return Match.NO
            agree: list[bool] = []
            if listed.kind is not None:
                agree.append(listed.kind == kind)
            if listed.activity_id is not None:
                agree.append(listed.activity_id == self.body.get("activity_id"))
        else:
            if listed.activity_id is not None or listed.kind in _FILTER_KINDS:
                return Match.NO
            agree = []
            if listed.data_source is not None:
                agree.append(listed.data_source == self.data_source_id)
            if self.start is not None and listed.start_ms is not None:
                agree.append(listed.start_ms == epoch_ms(self.start))
            if self.end is not None and listed.end_ms is not None:
                agree.append(listed.end_ms == epoch_ms(self.end))
            if listed.participant_ids is not None:
                agree.append(tuple(sorted(listed.participant_ids)) == self.participant_ids)
        if not agree:
            return Match.UNKNOWN
        return Match.YES if all(agree) else Match.NO


@dataclass(frozen=True)
class Created:
    """What a create call answered: the export's list key (`study_specific_id`), or
    only a reference (`id`) that the list may show as either field, or neither."""

    export_id: int | None = None
    ref: int | None = None


@dataclass
class ListedExport:
    """One entry of the study's export list, read liberally."""

    export_id: int  # the list key: study_specific_id, else id
    label: str
    status: ExportStatus
    content: str | None = field(repr=False)  # a download URL: never logged
    data_source: int | None = None
    activity_id: int | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    participant_ids: list[int] | None = None
    pk: int | None = None  # the entry's `id` field, when it has one
    kind: str | None = None  # PARTICIPATION, ACTIVITY_RESPONSE, DATA_SOURCE, ...

    @classmethod
    def from_json(cls, entry: dict[str, t.Any]) -> ListedExport | None:
        pk = _int(entry.get("id"))
        export_id = _int(entry.get("study_specific_id"))
        if export_id is None:
            export_id = pk
        if export_id is None:
            return None
        label = status_label(entry)
        content = next(
            (
                entry[k]
                for k in ("content", "download_url", "url", "file")
                if isinstance(entry.get(k), str) and entry[k].strip()
            ),
            None,
        )
        participants = entry.get("participant_ids")
        if isinstance(participants, str):
            participants = [p for p in participants.split(",") if p.strip()]
        kind = next(
            (entry[k] for k in ("export_type", "filter", "type") if isinstance(entry.get(k), str)),
            None,
        )
        return cls(
            export_id=export_id,
            label=label,
            status=classify(label),
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
            pk=pk,
            kind=kind.strip().upper() if kind and kind.strip() else None,
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
    lane: int = 0  # the key of the lane (stream) it belongs to
    created_at: float = field(default_factory=time.monotonic)  # on the runner's clock
    known_before: frozenset[int] = frozenset()  # ids listed before a create without id
    ref: int | None = None  # a create answer's `id`, matched on either list field
    label: str = "created"
    resumed: bool = False
    guessed: bool = False  # adopted from the list by creation order, until its file is verified
    failed: bool = False
    pending_age: float = 0.0  # seconds since creation when last listed as not ready
    empty_since: float | None = None  # when first listed as Success without a file
    empty_polls: int = 0
    refusals: int = 0  # downloads the download host refused

    @property
    def name(self) -> str:
        ref = f"#{self.export_id}" if self.export_id is not None else "(id pending)"
        return f"export {ref} [{self.request.label}]"
