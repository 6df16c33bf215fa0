"""`_extracted_at`: when the tap downloaded the export a record comes from (UTC).

target-postgres fills `_sdc_batched_at` only for RECORD loads; BATCH loads leave it
NULL. This column is set by the tap in both modes (RECORD messages and BATCH files),
so that dbt's incremental models and the staging layer's "latest copy" order have a
load time after any load. It is not part of `_row_id`: the same row downloaded on
two nights keeps its id and gets a later `_extracted_at`.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from pathlib import Path

EXTRACTED_AT = "_extracted_at"


def extracted_at(path: Path) -> str:
    """The export file's download time: its modification time, as `...Z` with microseconds."""
    stamp = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc)
    return stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")


def add_property(schema: dict[str, t.Any]) -> None:
    """Declare `_extracted_at` (a nullable date-time) in a stream's schema."""
    schema["properties"].setdefault(
        EXTRACTED_AT, {"type": ["string", "null"], "format": "date-time"}
    )


def stamped(records: t.Iterable[dict[str, t.Any]], stamp: str) -> t.Iterator[dict[str, t.Any]]:
    """`records`, each with `_extracted_at` set to `stamp`."""
    for record in records:
        record[EXTRACTED_AT] = stamp
        yield record
