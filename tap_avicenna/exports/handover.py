"""What the export engine hands over to the streams: files on disk, lanes and events."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from tap_avicenna.errors import AvicennaError
from tap_avicenna.exports.job import ExportJob, ExportRequest

MB = 1024 * 1024


class NotOurExport(Exception):
    """The file handed over does not belong to its request (another user's or another
    shard's export): the stream emits nothing of it and rejects it."""


@dataclass
class ReadyExport:
    """A finished export whose file is on disk until its stream has read it."""

    job: ExportJob
    path: Path
    size: int = 0
    rejected: str | None = None

    def reject(self, reason: str) -> None:
        """The file is not the request's: nothing of it was emitted, no window closes."""
        self.rejected = reason


@dataclass(frozen=True)
class Lane:
    """The exports one stream takes this run, in the order it asks for them."""

    key: int  # unique in the run
    name: str  # the stream's, for messages
    priority: int  # streams synced earlier come first
    requests: tuple[ExportRequest, ...]
    resume: t.Mapping[str, int] = field(default_factory=dict)  # request key -> id (state)


@dataclass(frozen=True)
class ExportCreated:
    """An export's id is known (created, found in the list, or resumed from state)."""

    lane: int
    key: str
    export_id: int


@dataclass(frozen=True)
class ExportReady:
    """An export's file is on disk, handed over until `ExportRunner.consumed`."""

    lane: int
    ready: ReadyExport


@dataclass(frozen=True)
class LaneFailed:
    """One of the lane's exports cannot be obtained: the lane gets nothing more."""

    lane: int
    error: AvicennaError


Event = ExportCreated | ExportReady | LaneFailed


def mb(size: float) -> str:
    """A size in MB (2^20 bytes, as the settings' `_mb`), small ones to 3 digits."""
    value = size / MB
    return f"{value:,.0f} MB" if value >= 100 else f"{value:.3g} MB"
