"""ExportStream: the mechanics every export-backed stream shares.

Running exports, reading their files into typed records, growing the schema when a
file brings a column it did not know, and checkpointing state between files.
Streams only say what to export and what to keep.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import typing as t
from collections import Counter
from pathlib import Path

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform

from tap_avicenna import rowids
from tap_avicenna.errors import AvicennaError, ColumnsRefused, FileFormatError
from tap_avicenna.exports.handover import NotOurExport, ReadyExport
from tap_avicenna.exports.job import ExportRequest
from tap_avicenna.exports.planner import PlannedExport
from tap_avicenna.load_time import add_property
from tap_avicenna.parsing import (
    UNTYPED,
    RawTable,
    RowConverter,
    Table,
    detect_format,
    normalize_header,
    open_raw_tables,
    open_tables,
    other_members,
)
from tap_avicenna.rowids import ENCODER as ENCODER
from tap_avicenna.rowids import ROW_ID as ROW_ID

if t.TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.mapper import PluginMapper

    from tap_avicenna.errors import AvicennaError as _AvicennaError
    from tap_avicenna.exports.planner import Period
    from tap_avicenna.exports.schedule import ExportSchedule
    from tap_avicenna.interrupts import InterruptGate
    from tap_avicenna.parsing import Limits
    from tap_avicenna.settings import Settings

RowCheck = t.Callable[[list[str]], "str | None"]
BULK = 10_000  # records between flushes, counter updates, bookmark progress and runner events


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
            and isinstance(sys.exc_info()[1], (AvicennaError, BrokenPipeError))
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

    def record(self, values: list[t.Any]) -> dict[str, t.Any]:
        """A row's converted values by field name (`RowConverter.fields`)."""
        return dict(zip(self.converter.fields, values, strict=False))


class ColumnarTable(t.NamedTuple):
    """A file's table for the columnar reader: its header read and its fields named."""

    raw: RawTable
    header: list[str]
    columns: list[str]
    types: dict[str, str]
    head: bytes  # the bytes read past the header line


class _DataTables:
    """Which tables of an export hold data (they have the stream's required columns).

    A ZIP member without them (a codebook, a README) is skipped with one WARNING per
    export naming them all; a whole file without them, or a ZIP none of whose members
    holds data, fails: nothing shows that such a file is the export of the request.
    """

    def __init__(self, stream: ExportStream, ready: ReadyExport) -> None:
        self.stream = stream
        self.name = ready.job.name
        self.zip = detect_format(ready.path) == "zip"
        self.skipped = [f"{m} (not CSV)" for m in other_members(ready.path, self.name)]
        self.data = 0

    def holds_data(self, table: str, header: list[str], columns: list[str]) -> bool:
        """Whether to read the table (counted); a whole file without data fails, and a
        table of another kind of export rejects the file (`ExportStream.foreign`)."""
        foreign = self.stream.foreign(columns)
        if foreign is not None:
            raise NotOurExport(f"its file {foreign}: {', '.join(header[:6])}, ...")
        missing = [c for c in self.stream.required_columns if c not in columns]
        if not missing:
            self.data += 1
            return True
        reason = f"no {' or '.join(missing)} column among {', '.join(header[:20])}"
        if not self.zip:
            raise FileFormatError(f"{self.name}: {reason}")
        self.skipped.append(f"{table} ({reason})")
        return False

    def empty(self) -> None:
        """A table without even a header: no rows, but not a file of something else."""
        self.data += 1

    def finish(self) -> None:
        """The WARNING naming the skipped members, or the failure when none held data."""
        if not self.skipped:
            return
        if not self.data:
            raise FileFormatError(
                f"{self.name}: no ZIP member holds data: {'; '.join(self.skipped)}"
            )
        self.stream.logger.warning(
            "%s: skipped ZIP member(s) without data: %s", self.name, "; ".join(self.skipped)
        )


class TapServices(t.Protocol):
    """What the streams use of their tap (the tap itself, which singer-sdk's `Stream`
    is also given)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def schedule(self) -> ExportSchedule: ...

    @property
    def interrupts(self) -> InterruptGate: ...

    @property
    def limits(self) -> Limits: ...

    @property
    def mapper(self) -> PluginMapper: ...

    def participants_known(self) -> bool:
        """Whether the participation export was read."""

    def participants_for(self, stream: Stream) -> dict[int, Period | None]:
        """The participants whose sensor data the stream exports."""

    def stream_failed(self, name: str, error: _AvicennaError) -> None:
        """The stream stopped on an export that cannot be obtained; the others go on."""


class ExportStream(Stream):
    """A stream whose records come from Avicenna export files."""

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE  # cells are typed once per column here
    required_columns: t.ClassVar[tuple[str, ...]] = ()
    """Fields a table must have to hold this stream's data."""
    label_fields: t.ClassVar[dict[str, str]] = {}
    """Id field -> the text field its cells go to when they are labels, not ids."""

    def __init__(self, tap: TapServices, *, name: str, schema: dict[str, t.Any]) -> None:
        add_property(schema)  # `_extracted_at`, set on every record (load_time)
        super().__init__(t.cast("Tap", tap), schema=schema, name=name)
        self.services = tap
        self.logger.addFilter(_ExpectedErrors())

    @property
    def settings(self) -> Settings:
        return self.services.settings

    # --- exports (what ExportSchedule plans and hands over) ------------------------------

    @property
    def schedule(self) -> ExportSchedule:
        return self.services.schedule

    def can_plan(self) -> bool:
        """Whether this run's exports can be planned now."""
        return True

    def plan(self) -> tuple[list[ExportRequest], dict[str, int]]:
        """This run's export requests, in the order to run them, and the export ids
        in state to resume (request key -> id)."""
        raise NotImplementedError

    def export_created(self, key: str, export_id: int) -> None:
        """An export of this stream has its id (windowed streams keep it in state)."""
        del key, export_id

    # --- the RECORD fast path ---------------------------------------------------------

    def _sync_records(
        self, context: t.Mapping[str, t.Any] | None = None, *, write_messages: bool = True
    ) -> t.Generator[dict[str, t.Any], t.Any, t.Any]:
        """The SDK's record loop, or a lean one when nothing needs its per-record work.

        singer-sdk spends most of each record's time on work these streams do not need:
        a per-record mask walk, a no-op transform, a `time_extracted` per record, a
        bookmark comparison per record and a stdout flush per message. When the stream
        has no stream map or flattening, no record limit and writes messages (not
        BATCH), `fast_records` writes the same RECORD messages with none of that;
        otherwise the SDK's loop runs unchanged.
        """
        if write_messages and context is None and self._fast_path_applies():
            return self.fast_records()
        return super()._sync_records(context, write_messages=write_messages)

    def _fast_path_applies(self) -> bool:
        maps = self.stream_maps
        return (
            self.ABORT_AT_RECORD_COUNT is None
            and not self.child_streams
            and len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not maps[0].flattening_enabled
            and maps[0].stream_alias == self.name
        )

    def fast_records(self) -> t.Generator[dict[str, t.Any], t.Any, t.Any]:
        """Write RECORD messages for `get_records(None)` the way the SDK would, in bulk.

        Field selection still applies, the replication key's maximum still feeds the
        SDK's bookmark, STATE messages come from the streams (after each file) and the
        SDK's final state handling runs at the end. A signal waits while a record is
        written and counted, and the records not counted yet are counted however the
        loop ends, so the final `record_count` METRIC is exact.
        """
        out = sys.stdout.buffer
        encode = ENCODER.encode
        prefix = b'{"type":"RECORD","stream":' + ENCODER.encode(self.name) + b',"record":'
        key = self.replication_key
        gate = self.services.interrupts
        counter, timer = self.get_record_counter(), self.get_sync_timer()
        try:
            with counter, timer:
                self._write_starting_replication_value(None)
                latest: t.Any = None
                pending = 0
                suffix, dropped = self._record_suffix(), self._deselected()
                records = t.cast(t.Iterator[dict[str, t.Any]], self.get_records(None))
                try:
                    for record in records:
                        gate.held = True
                        if dropped:
                            for name in dropped:
                                record.pop(name, None)
                        out.write(prefix + encode(record) + suffix)
                        if key is not None:
                            value = record.get(key)
                            if value is not None and (latest is None or value > latest):
                                latest = value
                        pending += 1
                        if pending == BULK:
                            self._fast_progress(counter, pending, latest)
                            pending = 0
                            suffix, dropped = self._record_suffix(), self._deselected()
                        gate.held = False
                        if gate.deferred is not None:
                            gate.release()
                        yield record
                finally:
                    gate.held = True  # the meters log their final figures
                    self._fast_progress(counter, pending, latest)
        finally:
            gate.release()
        self._finalize_state(self.stream_state)
        self._write_state_message()

    def _fast_progress(self, counter: t.Any, count: int, latest: t.Any) -> None:
        sys.stdout.buffer.flush()
        counter.increment(count)
        if latest is not None and self.replication_key:
            self._increment_stream_state({self.replication_key: latest})

    def _record_suffix(self) -> bytes:
        extracted = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
        return b',"time_extracted":' + ENCODER.encode(extracted) + b"}\n"

    def _deselected(self) -> list[str]:
        mask = self.mask
        return [name for name in self.schema["properties"] if not mask[("properties", name)]]

    def checkpoint(self) -> None:
        """Write a STATE now (the SDK only writes one every 10,000 records)."""
        sys.stdout.buffer.flush()
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
        self.services.mapper.register_raw_stream_schema(self.name, self.schema, self.primary_keys)
        self._stream_maps = None
        self.logger.warning(
            "%s brings column(s) the schema did not have: %s; added as nullable fields",
            source,
            ", ".join(columns),
        )
        if self.selected:
            self._write_schema_message()

    # --- files -----------------------------------------------------------------------

    def foreign(self, columns: list[str]) -> str | None:
        """Why a table with these fields is another kind of export's (a participation list
        where sensor readings were asked for, ...), or None: such a file is not the
        request's export, whatever the list said (`NotOurExport`)."""
        del columns
        return None

    def verify(self, path: Path, name: str, plan: PlannedExport | None = None) -> str | None:
        """Why a file adopted by creation order is not this request's export, or None
        when it answers the request: no table is another kind of export's (`foreign`),
        every data table's header fits (`misfit`) and every row fits (`row_check`).

        The runner calls it (in its thread) before anything of the file is used; it
        reads the file once and changes nothing. A file that cannot be read, or whose
        tables hold no data, is not proven; a file without any header (an export
        without data) has nothing that could disagree.
        """
        headers = data = 0
        try:
            for table in open_tables(path, display_name=name, limits=self.services.limits):
                if not table.header:
                    continue
                headers += 1
                columns = self.column_names(list(table.header))
                why = self.foreign(columns)
                if why is None:
                    if any(c not in columns for c in self.required_columns):
                        continue  # a member without data (a codebook)
                    why = self.misfit(columns)
                if why is not None:
                    return f"its file {why}"
                data += 1
                check = self.row_check(columns, plan)
                if check is None:
                    continue
                for cells in table.rows:
                    if (why := check(cells)) is not None:
                        return f"{why} (line {table.line_num})"
        except (FileFormatError, ValueError) as exc:
            return f"its file cannot be read ({exc})"
        if headers and not data:
            return f"no table of its file has {' and '.join(self.required_columns)}"
        return None

    def misfit(self, columns: list[str]) -> str | None:
        """Why a data table with these fields is not of this request (`verify`)."""
        del columns
        return None

    def row_check(self, columns: list[str], plan: PlannedExport | None) -> RowCheck | None:
        """Says why a row (its cells) is not of the request (`verify`); None: no check."""
        del columns, plan
        return None

    def column_names(self, header: list[str]) -> list[str]:
        """Field names for a file's raw header (normalised; streams add their aliases)."""
        return normalize_header(header)

    @staticmethod
    def rename_first(names: list[str], target: str, candidates: t.Sequence[str]) -> list[str]:
        """`names` with the first of `candidates` present renamed to `target`, unless
        `target` is already there (how a file's participant or time column is found)."""
        if target not in names:
            found = next((c for c in candidates if c in names), None)
            if found is not None:
                names[names.index(found)] = target
        return names

    def schema_types(self, columns: list[str], header: list[str], source: str) -> dict[str, str]:
        """The types of the stream's fields, once the schema has every field of a table's
        `columns` (fields it does not know are added to it first)."""
        types = self.column_types()
        unknown = {c: raw for c, raw in zip(columns, header, strict=True) if c not in types}
        if unknown:
            self.add_columns(unknown, source)
            types = self.column_types()
        return types

    def read_tables(self, ready: ReadyExport) -> t.Iterator[ReadTable]:
        """Each data table of the export, with its columns named and typed; then one
        WARNING for the export's untyped cells and one for its members without data."""
        data = _DataTables(self, ready)
        untyped: Counter[str] = Counter()
        settings = self.settings
        for table in open_tables(
            ready.path, display_name=ready.job.name, limits=self.services.limits
        ):
            if not table.header:
                self.logger.info("%s: %s is empty", ready.job.name, table.name)
                data.empty()
                continue
            columns = self.column_names(table.header)
            if not data.holds_data(table.name, table.header, columns):
                continue
            types = self.schema_types(columns, table.header, f"{ready.job.name} ({table.name})")
            converter = RowConverter(
                columns,
                types,
                labels=self.label_fields,
                strict=settings.strict_types,
                zone=settings.naive_time_zone,
            )
            yield ReadTable(table, columns, converter)
            untyped += converter.untyped
        data.finish()
        self.warn_untyped(ready, untyped)

    def columnar_tables(self, ready: ReadyExport) -> t.Iterator[ColumnarTable]:
        """Each data table of the export for `columnar.read_columns` (which raises
        `NotColumnar` for what only the row-by-row path reads exactly); then the WARNING
        for its members without data."""
        from tap_avicenna.columnar import read_header

        data = _DataTables(self, ready)
        for raw in open_raw_tables(
            ready.path, display_name=ready.job.name, limits=self.services.limits
        ):
            header, head = read_header(raw)
            columns = self.column_names(header)
            if data.holds_data(raw.name, header, columns):
                types = self.schema_types(columns, header, f"{ready.job.name} ({raw.name})")
                yield ColumnarTable(raw, header, columns, types, head)
        data.finish()

    def warn_untyped(self, ready: ReadyExport, counts: t.Mapping[str, int]) -> None:
        """One WARNING per export for its cells that did not fit their column's type."""
        if counts:
            self.logger.warning(
                "%s: %d cell(s) did not fit their column's type: their fields are null and "
                "their text is kept in %s (%s); set strict_types to fail instead",
                ready.job.name,
                sum(counts.values()),
                UNTYPED,
                ", ".join(f"{name}: {count}" for name, count in counts.items()),
            )

    def without_refused(
        self, refused: ColumnsRefused, columns: t.Sequence[str], added: t.Collection[str]
    ) -> list[str]:
        """`columns` without those Avicenna refused that the tap adds on its own (with a
        WARNING), to ask again; the error itself when it refused a column of the user's
        (or none of `added`)."""
        dropped = [c for c in refused.columns if c in added and c in columns]
        if not dropped or any(c not in added for c in refused.columns):
            raise refused
        self.logger.warning(
            "%s: Avicenna refused column(s) %s, which the tap asks for on its own; "
            "asking again without them",
            self.name,
            ", ".join(dropped),
        )
        return [c for c in columns if c not in dropped]

    row_id = staticmethod(rowids.row_id)

    @staticmethod
    def typed_rows(read: ReadTable, source: str) -> t.Iterator[list[t.Any]]:
        """Converted cells of each row; ragged or mistyped rows fail with file and line."""
        convert = read.converter.convert
        for cells in read.table.rows:
            try:
                yield convert(cells)
            except (ValueError, FileFormatError) as exc:
                where = source if read.table.name == source else f"{source} ({read.table.name})"
                raise FileFormatError(f"{where} line {read.table.line_num}: {exc}") from None
