"""sensor_<name>: one data source's readings, exported per (window x participant batch)."""

from __future__ import annotations

import logging
import typing as t

from tap_avicenna.bookmarks import CoverageBookmarks, iso
from tap_avicenna.catalogue import COMMON_SENSOR_FIELDS, known_fields
from tap_avicenna.errors import FileFormatError
from tap_avicenna.exports.job import ExportRequest
from tap_avicenna.exports.planner import PlannedExport, plan_exports
from tap_avicenna.exports.runner import NotOurExport, ReadyExport
from tap_avicenna.settings import DataSource
from tap_avicenna.streams.base import ROW_ID, json_type
from tap_avicenna.streams.windowed import ExportResult, WindowedExportStream

if t.TYPE_CHECKING:
    from tap_avicenna.columnar import Columns
    from tap_avicenna.tap import TapAvicenna

PARTICIPANT_COLUMNS = ("user_id", "participant_id", "participant", "avicenna_id", "aid")
TIME_COLUMNS = ("record_time", "recorded_at", "record_timestamp", "time")


def sensor_schema(source: DataSource) -> dict[str, t.Any]:
    properties: dict[str, t.Any] = {
        "participant_id": json_type("integer", nullable=False),
        "record_time": json_type("date-time", nullable=False),
        ROW_ID: json_type("string", nullable=False),
    }
    fields = {**COMMON_SENSOR_FIELDS, **known_fields(source.name), **source.fields}
    for name, type_name in fields.items():
        properties.setdefault(name, json_type(type_name))
    return {"type": "object", "properties": properties, "additionalProperties": True}


class SensorStream(WindowedExportStream):
    """Readings of one data source; incremental per participant on `record_time`."""

    replication_key = "record_time"
    primary_keys: t.ClassVar[list[str]] = [ROW_ID]
    is_sorted = False

    def __init__(self, tap: TapAvicenna, source: DataSource) -> None:
        super().__init__(tap, name=source.stream_name, schema=sensor_schema(source))
        self.source = source

    def exports(self) -> t.Iterator[ExportResult]:
        settings = self.settings
        participants = self._tap.participants_for(self)
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
        return self.export_results(
            plans,
            bookmarks,
            lambda ready, plan: self.read_export(ready, plan, starts),
            lambda ready, plan: self.read_columns(ready, plan, starts),
        )

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
        )

    def read_export(
        self, ready: ReadyExport, plan: PlannedExport, starts: t.Mapping[int, t.Any]
    ) -> t.Iterator[dict[str, t.Any]]:
        """Records of the export's participants inside its window, whatever the file holds."""
        lower = {p: iso(starts[p]) for p in plan.participant_ids}
        window_start, window_end = iso(plan.start), iso(plan.end)
        kept = dropped = theirs = 0  # theirs: dropped rows that are not the request's
        strict = ready.job.guessed
        for read in self.read_tables(ready):
            columns = read.columns
            self._require_columns(ready, read.table.name, columns, read.table.header)
            pid_at, time_at = columns.index("participant_id"), columns.index("record_time")
            for values in self.typed_rows(read, ready.job.name):
                pid, when = values[pid_at], values[time_at]
                floor = lower.get(pid)
                if (
                    floor is None
                    or when is None
                    or not (floor <= when < window_end and when >= window_start)
                ):
                    dropped += 1
                    if floor is None or (strict and not window_start <= (when or "") < window_end):
                        theirs += 1
                    continue
                kept += 1
                record = dict(zip(columns, values, strict=True))
                record[ROW_ID] = self.row_id(record)
                yield record
        self._check_ours(ready, plan, kept, dropped, theirs)
        self._log_dropped(ready, dropped)

    def read_columns(
        self, ready: ReadyExport, plan: PlannedExport, starts: t.Mapping[int, t.Any]
    ) -> t.Iterator[Columns]:
        """`read_export`'s rows as typed Arrow batches (the row ids are left to the writer)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from tap_avicenna.columnar import read_columns

        ids = pa.array(plan.participant_ids, pa.int64())
        floors = pa.array(
            [max(iso(starts[p]), iso(plan.start)) for p in plan.participant_ids], pa.string()
        )
        window_start, window_end = iso(plan.start), iso(plan.end)
        total = dropped = theirs = 0
        for table in self.columnar_tables(ready):
            self._require_columns(ready, table.raw.name, table.columns, table.header)
            for batch in read_columns(table.raw, table.columns, table.types, table.head):
                when = batch.column("record_time")
                floor = pc.take(floors, pc.index_in(batch.column("participant_id"), ids))
                keep = pc.fill_null(
                    pc.and_(pc.greater_equal(when, floor), pc.less(when, window_end)), False
                )
                kept = pc.sum(keep).as_py() or 0
                total += len(batch)
                dropped += len(batch) - kept
                if not kept:  # only then does it matter whose rows these are
                    ours = pc.is_valid(floor)
                    if ready.job.guessed:
                        inside = pc.and_(
                            pc.greater_equal(when, window_start), pc.less(when, window_end)
                        )
                        ours = pc.and_(ours, pc.fill_null(inside, False))
                    theirs += len(batch) - (pc.sum(ours).as_py() or 0)
                else:
                    yield batch if kept == len(batch) else batch.filter(keep)
        self._check_ours(ready, plan, total - dropped, dropped, theirs)
        self._log_dropped(ready, dropped)

    @staticmethod
    def _require_columns(
        ready: ReadyExport, table: str, columns: list[str], header: list[str]
    ) -> None:
        if "participant_id" not in columns or "record_time" not in columns:
            raise FileFormatError(
                f"{ready.job.name} ({table}): no participant or record time "
                f"column among {', '.join(header[:20])}"
            )

    @staticmethod
    def _check_ours(
        ready: ReadyExport, plan: PlannedExport, kept: int, dropped: int, theirs: int
    ) -> None:
        """A file with rows, none of which is of the request's participants (inside its
        window too, for an export adopted from the list by a guess), is someone else's
        export (another user's, another shard's): nothing of it was emitted."""
        if kept or not dropped or theirs < dropped:
            return
        ids = plan.participant_ids
        who = str(ids[0]) if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"
        where = " inside its window" if ready.job.guessed else ""
        raise NotOurExport(f"none of its {dropped} row(s) is of participant(s) {who}{where}")

    def _log_dropped(self, ready: ReadyExport, dropped: int) -> None:
        if dropped:
            self.logger.log(
                logging.INFO,
                "%s: %d row(s) outside its window or participants (or before a bookmark "
                "minus lookback) not emitted",
                ready.job.name,
                dropped,
            )

    def column_names(self, header: list[str]) -> list[str]:
        """The file's participant and time columns become participant_id / record_time."""
        names = self.rename_first(
            super().column_names(header), "participant_id", PARTICIPANT_COLUMNS
        )
        return self.rename_first(names, "record_time", TIME_COLUMNS)
