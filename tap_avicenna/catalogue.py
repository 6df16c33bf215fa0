"""Known data sources and their column types (from Avicenna's public docs)."""

from __future__ import annotations

import functools
import json
from importlib import resources

from tap_avicenna.parsing import normalize_name

_TYPES = {
    "datetime": "date-time",
    "date-time": "date-time",
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "string": "string",
}

COMMON_SENSOR_FIELDS = {"device_id": "string", "study_id": "integer"}
"""Columns every sensor export carries besides the participant and record time."""


@functools.cache
def _catalogue() -> dict[str, dict[str, str]]:
    entries = json.loads(resources.files("tap_avicenna").joinpath("datasources.json").read_text())
    known: dict[str, dict[str, str]] = {}
    for entry in entries:
        fields = {
            normalize_name(f["name"]): _TYPES.get(f.get("type") or "string", "string")
            for f in entry.get("fields", [])
        }
        for name in (entry.get("name"), entry.get("internal_name")):
            if name:
                known.setdefault(normalize_name(name), fields)
    return known


def known_fields(data_source_name: str) -> dict[str, str]:
    """Column -> JSON type for a data source named like the catalogue (any case)."""
    return dict(_catalogue().get(normalize_name(data_source_name), {}))
