"""participants: the study's participation list (a PARTICIPATION filter export).

Also the source of participant ids for sensor streams when `participant_ids` is not
set: the export runs at most once per tap run and both uses share its rows.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from tap_avicenna.errors import FileFormatError
from tap_avicenna.exports.job import ExportRequest
from tap_avicenna.exports.planner import Period
from tap_avicenna.exports.runner import NotOurExport, ReadyExport
from tap_avicenna.streams.base import ExportStream, json_type

if t.TYPE_CHECKING:
    from tap_avicenna.tap import TapAvicenna

ID_COLUMNS = ("participant_id", "id", "avicenna_id", "aid", "participant", "user_id")
COLUMN_ALIASES = {"participant_start_time": "start_time", "participant_end_time": "end_time"}
REQUESTED_COLUMNS = ["participant_id", "start_time", "end_time", "status_id"]
KNOWN_TYPES = {"status_id": "integer", "label": "string", "last_recorded_data_time": "date-time"}


class ParticipantsStream(ExportStream):
    """Every participant of the study with the period of their participation."""

    name = "participants"
    primary_keys: t.ClassVar[list[str]] = ["participant_id"]
    replication_key = None

    def __init__(self, tap: TapAvicenna) -> None:
        schema = {
            "type": "object",
            "properties": {
                "participant_id": json_type("integer", nullable=False),
                "start_time": json_type("date-time"),
                "end_time": json_type("date-time"),
                "status": json_type("string"),
            },
        }
        super().__init__(tap, name=self.name, schema=schema)
        self._rows: list[dict[str, t.Any]] | None = None

    def column_names(self, header: list[str]) -> list[str]:
        names = [COLUMN_ALIASES.get(n, n) for n in super().column_names(header)]
        return self.rename_first(names, "participant_id", ID_COLUMNS)

    def new_column_type(self, name: str) -> str:
        return KNOWN_TYPES.get(name, "string")

    def rows(self) -> list[dict[str, t.Any]]:
        """The participation export's rows (created, polled and read once per run)."""
        if self._rows is not None:
            return self._rows
        study_id = self.settings.study_id
        request = ExportRequest(
            key="participation",
            label="participants",
            body={
                "study_id": study_id,
                "site_ssid": None,
                "filter": "PARTICIPATION",
                "rule_set": {"query": {}, "sort_by": [], "columns": REQUESTED_COLUMNS},
            },
        )
        rows: list[dict[str, t.Any]] = []
        for ready in self.runner().run([request]):
            try:
                rows = self._read(ready)
            except NotOurExport as exc:
                ready.reject(str(exc))
        self.logger.info("The participation export lists %d participant(s)", len(rows))
        self._rows = rows
        return rows

    def _read(self, ready: ReadyExport) -> list[dict[str, t.Any]]:
        rows: list[dict[str, t.Any]] = []
        for read in self.read_tables(ready):
            if "participant_id" not in read.columns:
                raise FileFormatError(
                    f"{ready.job.name} ({read.table.name}): no participant id column "
                    f"among {', '.join(read.table.header[:20])}"
                )
            columns = read.columns
            for values in self.typed_rows(read, ready.job.name):
                if values[columns.index("participant_id")] is not None:
                    rows.append(dict(zip(columns, values, strict=True)))
        return rows

    def table_columns(self, header: list[str], source: str) -> tuple[list[str], dict[str, str]]:
        """A file with a record time column (sensor readings, survey sessions) is not a
        participation list: not this stream's export (checked before its columns join
        the schema)."""
        if "record_time" in self.column_names(header):
            columns = ", ".join(header[:6])
            raise NotOurExport(f"its file is not a participation list: {columns}, ...")
        return super().table_columns(header, source)

    def periods(self) -> dict[int, Period]:
        """participant id -> [start, end) of their participation."""

        def instant(value: t.Any) -> dt.datetime | None:
            return dt.datetime.fromisoformat(value) if value else None

        return {
            row["participant_id"]: (instant(row.get("start_time")), instant(row.get("end_time")))
            for row in self.rows()
        }

    def get_records(self, context: t.Mapping[str, t.Any] | None) -> t.Iterator[dict[str, t.Any]]:
        rows = self.rows()
        yield from (dict(row) for row in rows)
        self.logger.info("%s: sync complete, %s rows emitted", self.name, f"{len(rows):,}")
