"""sensor_<name>: one data source's readings, exported per (window x participant batch)."""

from __future__ import annotations

import datetime as dt
import typing as t
from collections import Counter

from tap_avicenna.bookmarks import CoverageBookmarks, iso
from tap_avicenna.catalogue import COMMON_SENSOR_FIELDS, known_fields, others_fields
from tap_avicenna.exports.handover import NotOurExport, ReadyExport
from tap_avicenna.exports.job import ExportRequest
from tap_avicenna.exports.planner import PlannedExport, plan_exports
from tap_avicenna.parsing import UNTYPED, converter_for
from tap_avicenna.rowids import ROW_ID, row_id
from tap_avicenna.settings import DataSource
from tap_avicenna.streams.base import RowCheck, TapServices, json_type
from tap_avicenna.streams.windowed import ExportResult, WindowedExportStream

if t.TYPE_CHECKING:
    from tap_avicenna.columnar import Columns

PARTICIPANT_COLUMNS = ("user_id", "participant_id", "participant", "avicenna_id", "aid")
TIME_COLUMNS = ("record_time", "recorded_at", "record_timestamp", "time")
WINDOW_TOLERANCE = dt.timedelta(days=1)
"""How far outside its window a row of an export adopted by creation order may be: a
server reading the window in local time, or as (start, end], is still the request's."""


def sensor_schema(source: DataSource) -> dict[str, t.Any]:
    properties: dict[str, t.Any] = {
        "participant_id": json_type("integer", nullable=False),
        "record_time": json_type("date-time", nullable=False),
        ROW_ID: json_type("string", nullable=False),
        UNTYPED: json_type("string"),
    }
    fields = {**COMMON_SENSOR_FIELDS, **known_fields(source.name), **source.fields}
    for name, type_name in fields.items():
        properties.setdefault(name, json_type(type_name))
    return {"type": "object", "properties": properties, "additionalProperties": True}


def header_misfit(
    name: str,
    known: t.Collection[str],
    own: t.Collection[str],
    others: t.Collection[str],
    columns: list[str],
) -> str | None:
    """Why a file's header is not of the data source `name`, or None.

    Positive evidence only: none of the data source's own documented columns (`own`), or
    a column it does not have (`known`) that the catalogue documents for another data
    source (`others`: battery's `level` in a GPS file). A column documented nowhere is
    taken as one the partial catalogue does not list yet (the schema grows), not as proof.
    """
    if own and not any(c in own for c in columns):
        return f"has none of the columns of {name} ({', '.join(sorted(own)[:6])})"
    foreign = [c for c in columns if c not in known and c in others]
    if foreign:
        return f"has column(s) {', '.join(foreign[:6])} of another data source, not of {name}"
    return None


class SensorStream(WindowedExportStream):
    """Readings of one data source; incremental per participant on `record_time`."""

    replication_key = "record_time"
    primary_keys: t.ClassVar[list[str]] = [ROW_ID]
    is_sorted = False
    required_columns = ("participant_id", "record_time")
    digest_member = "participant_id"

    def __init__(self, tap: TapServices, source: DataSource) -> None:
        super().__init__(tap, name=source.stream_name, schema=sensor_schema(source))
        self.source = source
        self.own_fields = frozenset(known_fields(source.name)) | frozenset(source.fields)
        """The data source's own documented columns (the catalogue's and the settings')."""
        self.others_fields = others_fields(source.name)
        self.columns_known = bool(self.own_fields)
        """Whether the schema holds the data source's columns (from the catalogue, the
        settings, or a file read whole): then a file with other columns is not its."""

    def can_plan(self) -> bool:
        """Without `participant_ids`, once the participation export is read."""
        return self.settings.participant_ids is not None or self.services.participants_known()

    def exports(self) -> t.Iterator[ExportResult]:
        return self.export_results(self.read_export, self.read_columns)

    def planned(self) -> tuple[list[PlannedExport], CoverageBookmarks]:
        settings = self.settings
        participants = self.services.participants_for(self)
        bookmarks = CoverageBookmarks(self.stream_state)
        self.bind_source(bookmarks, "data_source_id", self.source.id)
        starts = {
            p: bookmarks.start_for(p, settings.start_date, settings.lookback) for p in participants
        }
        plans = plan_exports(
            starts,
            settings.end_date,
            origin=settings.start_date,
            window=settings.export_window,
            batch_size=settings.participants_per_export,
            periods={p: period for p, period in participants.items() if period is not None},
        )
        self.logger.info(
            "%s: %d export(s) planned for %d participant(s) up to %s",
            self.name,
            len(plans),
            len(participants),
            iso(settings.end_date),
        )
        return plans, bookmarks

    def request_key(self, plan: PlannedExport) -> str:
        return self.window_key(str(self.source.id), plan, ",".join(map(str, plan.participant_ids)))

    def request(self, plan: PlannedExport) -> ExportRequest:
        ids = plan.participant_ids
        who = str(ids[0]) if len(ids) == 1 else f"{ids[0]}..{ids[-1]} ({len(ids)})"
        return ExportRequest(
            key=self.request_key(plan),
            label=(
                f"{self.name} {plan.start:%Y-%m-%d %H:%M}..{plan.end:%Y-%m-%d %H:%M} "
                f"participants {who}"
            ),
            data_source_id=self.source.id,
            start=plan.start,
            end=plan.end,
            participant_ids=ids,
            verify=lambda path, name: self.verify(path, name, plan),
        )

    def misfit(self, columns: list[str]) -> str | None:
        """Why a header is another data source's (`header_misfit`)."""
        if not self.columns_known:
            return None
        known = self.schema["properties"]
        return header_misfit(self.name, known, self.own_fields, self.others_fields, columns)

    def row_check(self, columns: list[str], plan: PlannedExport | None) -> RowCheck:
        """A row of a participant not asked for, or outside the window (give or take
        WINDOW_TOLERANCE), is not of the request; a cell that does not convert proves
        nothing either way (the reader drops such rows)."""
        assert plan is not None
        pid_at, time_at = columns.index("participant_id"), columns.index("record_time")
        asked = set(plan.participant_ids)
        lower, upper = iso(plan.start - WINDOW_TOLERANCE), iso(plan.end + WINDOW_TOLERANCE)
        to_id, to_time = (
            converter_for("integer"),
            converter_for("date-time", self.settings.naive_time_zone),
        )

        def check(cells: list[str]) -> str | None:
            try:
                pid = to_id(cells[pid_at]) if pid_at < len(cells) else None
                when = to_time(cells[time_at]) if time_at < len(cells) else None
            except ValueError:
                return None
            if pid is not None and pid not in asked:
                return f"it has rows of participant {pid}, who was not asked for"
            if when is not None and not lower <= when < upper:
                return f"it has a row at {when}, outside its window"
            return None

        return check

    def after_export(self, ready: ReadyExport) -> None:
        self.columns_known = True

    def read_export(self, ready: ReadyExport, plan: PlannedExport) -> t.Iterator[dict[str, t.Any]]:
        """Records of the export's participants from `start_date` to `end_date`, whatever
        the file holds (rows outside the export's own window too: see `_log_rows`)."""
        participants = set(plan.participant_ids)
        lower, upper = iso(self.settings.start_date), iso(self.settings.end_date)
        window_start, window_end = iso(plan.start), iso(plan.end)
        dropped = outside = total = ours = 0
        for read in self.read_tables(ready):
            pid_at = read.columns.index("participant_id")
            time_at = read.columns.index("record_time")
            fields = read.converter.fields
            for values in self.typed_rows(read, ready.job.name):
                total += 1
                when = values[time_at]
                mine = values[pid_at] in participants
                inside = when is not None and window_start <= when < window_end
                if mine:
                    ours += 1
                if when is None or not mine or not lower <= when < upper:
                    dropped += 1
                    continue
                if not inside:
                    outside += 1
                record = dict(zip(fields, values, strict=False))  # ReadTable.record, inlined
                record[ROW_ID] = row_id(record)
                yield record
        self._log_rows(ready, dropped, outside)
        self._check_ours(plan, total, ours)

    def read_columns(self, ready: ReadyExport, plan: PlannedExport) -> t.Iterator[Columns]:
        """`read_export`'s rows as typed Arrow batches (the row ids are left to the writer)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from tap_avicenna.columnar import read_columns

        settings = self.settings
        participants = pa.array(plan.participant_ids, pa.int64())
        lower, upper = iso(settings.start_date), iso(settings.end_date)
        window_start, window_end = iso(plan.start), iso(plan.end)
        dropped = outside = total = ours = 0
        untyped: Counter[str] = Counter()
        for table in self.columnar_tables(ready):
            for batch in read_columns(
                table.raw,
                table.columns,
                table.types,
                table.head,
                zone=settings.naive_time_zone,
                strict=settings.strict_types,
            ):
                untyped += batch.untyped
                when = batch.column("record_time")
                keep = pc.fill_null(
                    pc.and_(
                        pc.is_in(batch.column("participant_id"), participants),
                        pc.and_(pc.greater_equal(when, lower), pc.less(when, upper)),
                    ),
                    False,
                )
                kept = pc.sum(keep).as_py() or 0
                total += len(batch)
                dropped += len(batch) - kept
                inside = pc.fill_null(
                    pc.and_(pc.greater_equal(when, window_start), pc.less(when, window_end)),
                    False,
                )
                if not ours:  # evidence that the file is the request's, until found
                    mine = pc.fill_null(
                        pc.is_in(batch.column("participant_id"), participants), False
                    )
                    ours = pc.sum(mine).as_py() or 0
                if kept:
                    outside += pc.sum(pc.and_(keep, pc.invert(inside))).as_py() or 0
                    yield batch if kept == len(batch) else batch.filter(keep)
        self._log_rows(ready, dropped, outside)
        self.warn_untyped(ready, untyped)
        self._check_ours(plan, total, ours)

    @staticmethod
    def _check_ours(plan: PlannedExport, total: int, ours: int) -> None:
        """A file with rows, none of which is of the request's participants, is someone
        else's export (another user's, another shard's): its window is not closed."""
        if ours or not total:
            return
        ids = plan.participant_ids
        who = str(ids[0]) if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"
        raise NotOurExport(f"none of its {total} row(s) is of participant(s) {who}")

    def _log_rows(self, ready: ReadyExport, dropped: int, outside: int) -> None:
        """Rows of other participants, or out of [start_date, end_date), are not emitted
        (INFO). Rows of the export's participants in that range but outside the export's
        own window are emitted (WARNING): the server's window differs from the request's
        (it may read it as (start, end], in local time, or by upload time), and their
        `_row_id` makes a copy emitted again from another export harmless to an upserting
        target; a window's bookmark still moves only once its own export is emitted."""
        if dropped:
            self.logger.info(
                "%s: %d row(s) of other participants or outside start_date..end_date not emitted",
                ready.job.name,
                dropped,
            )
        if outside:
            self.logger.warning(
                "%s: %d row(s) outside the export's window emitted (Avicenna's window "
                "differs from the one asked for)",
                ready.job.name,
                outside,
            )

    def column_names(self, header: list[str]) -> list[str]:
        """The file's participant and time columns become participant_id / record_time."""
        names = self.rename_first(
            super().column_names(header), "participant_id", PARTICIPANT_COLUMNS
        )
        return self.rename_first(names, "record_time", TIME_COLUMNS)
