"""Known data sources and their column types (from Avicenna's public docs)."""

from __future__ import annotations

import difflib
import functools
import json
import typing as t
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

ALIASES = {"location": "gps"}
"""Names users reach for that the catalogue does not use: Avicenna's reference page for
GPS is called "Location"."""


class KnownSource(t.NamedTuple):
    """A catalogue entry: the names it is matched by (the first is its own) and the
    types of its documented columns."""

    names: tuple[str, ...]
    fields: dict[str, str]


@functools.cache
def known_sources() -> tuple[KnownSource, ...]:
    """Every data source of the catalogue, in its order."""
    entries = json.loads(resources.files("tap_avicenna").joinpath("datasources.json").read_text())
    sources: list[KnownSource] = []
    for entry in entries:
        fields = {
            normalize_name(f["name"]): _TYPES.get(f.get("type") or "string", "string")
            for f in entry.get("fields", [])
        }
        names = tuple(
            dict.fromkeys(
                normalize_name(name)
                for name in (entry.get("name"), entry.get("internal_name"))
                if name
            )
        )
        sources.append(KnownSource(names, fields))
    return tuple(sources)


@functools.cache
def _by_name() -> dict[str, dict[str, str]]:
    known: dict[str, dict[str, str]] = {}
    for source in known_sources():
        for name in source.names:
            known.setdefault(name, source.fields)
    return known


def is_known(data_source_name: str) -> bool:
    return normalize_name(data_source_name) in _by_name()


def others_fields(data_source_name: str) -> frozenset[str]:
    """Columns the catalogue documents for data sources other than this one."""
    own = _by_name().get(normalize_name(data_source_name))
    return frozenset(
        field for source in known_sources() if source.fields is not own for field in source.fields
    )


def known_fields(data_source_name: str) -> dict[str, str]:
    """Column -> JSON type for a data source named like the catalogue (any case)."""
    return dict(_by_name().get(normalize_name(data_source_name), {}))


def closest_known(data_source_name: str) -> str | None:
    """The known name a user most likely meant (`location` -> `gps`), if any."""
    name = normalize_name(data_source_name)
    if name in ALIASES:
        return ALIASES[name]
    close = difflib.get_close_matches(name, list(_by_name()), n=1, cutoff=0.75)
    return close[0] if close else None


_ABOUT_INTRO = (
    "Data source names the tap knows (`data_sources[].name`, any case) and the columns "
    "it types for them; every sensor stream also has `participant_id`, `record_time`, "
    f"{', '.join(f'`{name}`' for name in COMMON_SENSOR_FIELDS)} and `_row_id`. Other "
    "columns, and every column of a name not listed, are strings unless the data "
    "source's `fields` types them."
)


def _described(source: KnownSource) -> tuple[str, str]:
    names = " or ".join(f"`{name}`" for name in source.names)
    fields = ", ".join(f"{name} ({kind})" for name, kind in source.fields.items())
    return names, fields or "none documented"


def data_sources_markdown() -> str:
    """The known data sources as a Markdown section (`--about --format=markdown`)."""
    rows = "\n".join("| {} | {} |".format(*_described(s)) for s in known_sources())
    return (
        f"## Known data sources\n\n{_ABOUT_INTRO}\n\n"
        f"| name | typed columns |\n|:-----|:--------------|\n{rows}\n"
    )


def data_sources_text() -> str:
    """The known data sources as plain text (`--about`)."""
    lines = "\n".join("  - {}: {}".format(*_described(s)) for s in known_sources())
    return f"Known data sources:\n{_ABOUT_INTRO}\n{lines}"
