"""ExportStream: the mechanics every export-backed stream shares.

Running exports, reading their files into typed records, growing the schema when a
file brings a column it did not know, and checkpointing state between files.
Streams only say what to export and what to keep.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import typing as t

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_avicenna.errors import AvicennaError, FileFormatError
from tap_avicenna.exports.runner import ExportRunner, ReadyExport
from tap_avicenna.parsing import RowConverter, Table, normalize_header, open_tables

if t.TYPE_CHECKING:
    from tap_avicenna.settings import Settings
    from tap_avicenna.tap import TapAvicenna

ROW_ID = "_row_id"


def json_type(name: str, nullable: bool = True) -> dict[str, t.Any]:
    base, fmt = ("string", "date-time") if name == "date-time" else (name, None)
    if base == "object":
        spec: dict[str, t.Any] = {"type": ["object", "null"]}
    else:
        spec = {"type": [base, "null"] if nullable else [base]}
    if fmt:
        spec["format"] = fmt
    if name == "date":
        spec = {"type": ["string", "null"], "format": "date"}
    return spec


def schema_type(spec: dict[str, t.Any]) -> str:
    """The converter type name for a JSON schema property."""
    types = spec.get("type", "string")
    types = [types] if isinstance(types, str) else list(types)
    if spec.get("format") in ("date-time", "date"):
        return str(spec["format"])
    for name in ("object", "integer", "number", "boolean"):
        if name in types:
            return name
    return "string"


class _ExpectedErrors(logging.Filter):
    """Drop the SDK's generic "unhandled error" line when the error is an expected one:
    the CLI prints that error's own single line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno >= logging.ERROR
            and str(record.msg).startswith("An unhandled error occurred")
            and isinstance(sys.exc_info()[1], AvicennaError)
        )


class _ResumableNote(logging.Filter):
    """Drop the SDK's "progress is not resumable" warning: these streams checkpoint
    per-participant bookmarks after every export file, so an interrupted sync resumes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "progress is not resumable" not in str(record.msg)


logging.getLogger("singer_sdk").addFilter(_ResumableNote())


class ReadTable(t.NamedTuple):
    """A file's table with its header normalised and its converter built."""

    table: Table
    columns: list[str]
    converter: RowConverter


class ExportStream(Stream):
    """A stream whose records come from Avicenna export files."""

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE  # cells are typed once per column here
    _tap: TapAvicenna

    def __init__(self, tap: TapAvicenna, *, name: str, schema: dict[str, t.Any]) -> None:
        super().__init__(tap, schema=schema, name=name)
        self.logger.addFilter(_ExpectedErrors())

    @property
    def settings(self) -> Settings:
        return self._tap.settings

    def runner(self) -> ExportRunner:
        return self._tap.export_runner()

    # --- state -----------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Write a STATE now (the SDK only writes one every 10,000 records)."""
        self.state_manager.is_flushed = False
        self._write_state_message()

    # --- schema ----------------------------------------------------------------------

    def column_types(self) -> dict[str, str]:
        return {name: schema_type(spec) for name, spec in self.schema["properties"].items()}

    def new_column_type(self, name: str) -> str:
        """The type of a column first seen in a file (nullable string unless overridden)."""
        del name
        return "string"

    def add_columns(self, columns: t.Mapping[str, str], source: str) -> None:
        """Grow the schema by nullable columns (name -> raw header) and announce it with
        a SCHEMA message before any record carries them."""
        for schema in (self.schema, self._input_schema):
            if schema is not None:
                for name, raw in columns.items():
                    spec = json_type(self.new_column_type(name))
                    if raw != name:
                        spec["description"] = raw
                    schema["properties"].setdefault(name, spec)
        self._tap.mapper.register_raw_stream_schema(self.name, self.schema, self.primary_keys)
        self._stream_maps = None
        self.logger.warning(
            "%s brings column(s) the schema did not have: %s; added as nullable fields",
            source,
            ", ".join(columns),
        )
        if self.selected:
            self._write_schema_message()

    # --- files -----------------------------------------------------------------------

    def column_names(self, header: list[str]) -> list[str]:
        """Field names for a file's raw header (normalised; streams add their aliases)."""
        return normalize_header(header)

    def read_tables(self, ready: ReadyExport) -> t.Iterator[ReadTable]:
        """Each CSV of the export, with its columns named and typed.

        Columns the schema does not know are added to it first.
        """
        for table in open_tables(ready.path, display_name=ready.job.name, limits=self._tap.limits):
            if not table.header:
                self.logger.info("%s: %s is empty", ready.job.name, table.name)
                continue
            columns = self.column_names(table.header)
            types = self.column_types()
            named = zip(columns, table.header, strict=True)
            unknown = {c: raw for c, raw in named if c not in types}
            if unknown:
                self.add_columns(unknown, f"{ready.job.name} ({table.name})")
                types = self.column_types()
            yield ReadTable(table, columns, RowConverter(columns, types))

    @staticmethod
    def typed_rows(read: ReadTable, source: str) -> t.Iterator[list[t.Any]]:
        """Converted cells of each row; ragged or mistyped rows fail with file and line."""
        convert = read.converter.convert
        for cells in read.table.rows:
            try:
                yield convert(cells)
            except (ValueError, FileFormatError) as exc:
                raise FileFormatError(
                    f"{source} ({read.table.name}) line {read.table.line_num}: {exc}"
                ) from None

    @staticmethod
    def row_id(columns: t.Sequence[str], values: t.Sequence[t.Any]) -> str:
        """A stable id of a row's content, independent of column order and empty cells."""
        text = "\x1f".join(
            f"{name}\x1e{value}"
            for name, value in sorted(zip(columns, values, strict=True), key=lambda nv: nv[0])
            if value is not None and value != ""
        )
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
