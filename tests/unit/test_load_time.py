"""`_extracted_at`: the export file's download time, on every record and in the schema."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from tap_avicenna.load_time import EXTRACTED_AT, add_property, extracted_at, stamped


def test_given_a_downloaded_file_when_stamped_then_its_modification_time_in_utc(
    tmp_path: Path,
) -> None:
    path = tmp_path / "export.csv"
    path.write_text("participant_id\n1\n")
    when = dt.datetime(2026, 3, 29, 1, 30, 0, 250000, tzinfo=dt.timezone.utc)
    os.utime(path, (when.timestamp(), when.timestamp()))
    assert extracted_at(path) == "2026-03-29T01:30:00.250000Z"
    records = list(stamped(iter([{"a": 1}, {"a": 2}]), extracted_at(path)))
    assert [r[EXTRACTED_AT] for r in records] == ["2026-03-29T01:30:00.250000Z"] * 2


def test_given_a_schema_when_the_property_is_added_then_a_nullable_date_time() -> None:
    schema: dict[str, dict[str, object]] = {"properties": {"a": {"type": ["integer"]}}}
    add_property(schema)
    assert schema["properties"][EXTRACTED_AT] == {
        "type": ["string", "null"],
        "format": "date-time",
    }
