"""participants: the study's participation list (a PARTICIPATION filter export).

Also the source of participant ids for sensor streams when `participant_ids` is not
set: the export runs at most once per tap run and both uses share its rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import typing as t

from tap_avicenna.errors import ColumnsRefused
from tap_avicenna.exports.handover import NotOurExport, ReadyExport
from tap_avicenna.exports.job import ExportRequest
from tap_avicenna.exports.planner import Period
from tap_avicenna.load_time import extracted_at, stamped
from tap_avicenna.parsing import UNTYPED
from tap_avicenna.streams.base import ExportStream, TapServices, json_type

ID_COLUMNS = ("participant_id", "id", "avicenna_id", "aid", "participant", "user_id")
COLUMN_ALIASES = {"participant_start_time": "start_time", "participant_end_time": "end_time"}
REQUESTED_COLUMNS = ("participant_id", "start_time", "end_time", "status_id")
"""The columns NIDB's participation export asks for (API.md 2.3)."""
KNOWN_TYPES = {"label": "string", "last_recorded_data_time": "date-time"}


class ParticipantsStream(ExportStream):
    """Every participant of the study with the period of their participation."""

    name = "participants"
    primary_keys: t.ClassVar[list[str]] = ["participant_id"]
    replication_key = None
    required_columns = ("participant_id",)
    label_fields: t.ClassVar[dict[str, str]] = {"status_id": "status"}

    def __init__(self, tap: TapServices) -> None:
        schema = {
            "type": "object",
            "properties": {
                "participant_id": json_type("integer", nullable=False),
                "start_time": json_type("date-time"),
                "end_time": json_type("date-time"),
                "status_id": json_type("integer"),
                "status": json_type("string"),
                UNTYPED: json_type("string"),
            },
        }
        super().__init__(tap, name=self.name, schema=schema)
        self._rows: list[dict[str, t.Any]] | None = None
        self._columns = list(REQUESTED_COLUMNS)

    def column_names(self, header: list[str]) -> list[str]:
        """A `status` column is read as `status_id`: ids stay there, labels (`Active`,
        `Dropped`) go to `status`, whichever the file holds."""
        names = [COLUMN_ALIASES.get(n, n) for n in super().column_names(header)]
        names = self.rename_first(names, "status_id", ("status",))
        return self.rename_first(names, "participant_id", ID_COLUMNS)

    def new_column_type(self, name: str) -> str:
        return KNOWN_TYPES.get(name, "string")

    @property
    def known(self) -> bool:
        """Whether the participation export was read."""
        return self._rows is not None

    def rows(self) -> list[dict[str, t.Any]]:
        """The participation export's rows (created, polled and read once per run);
        the sensor streams waiting for them are planned as soon as they are read."""
        if self._rows is not None:
            return self._rows
        while True:
            try:
                rows = self._read()
                break
            except ColumnsRefused as refused:
                self._columns = self.without_refused(refused, self._columns, REQUESTED_COLUMNS)
        self._rows = rows
        self.schedule.plan_ready()
        return rows

    def plan(self) -> tuple[list[ExportRequest], dict[str, int]]:
        """One participation export (never resumed: it is created anew every run)."""
        request = ExportRequest(
            key="participation",
            label="participants",
            body={
                "study_id": self.settings.study_id,
                "site_ssid": None,
                "filter": "PARTICIPATION",
                "rule_set": {"query": {}, "sort_by": [], "columns": list(self._columns)},
            },
            verify=self.verify,
        )
        return [request], {}

    def _read(self) -> list[dict[str, t.Any]]:
        rows: list[dict[str, t.Any]] = []
        with contextlib.closing(self.schedule.results(self)) as files:
            for ready in files:
                try:
                    rows = self._rows_of(ready)
                except NotOurExport as exc:
                    ready.reject(str(exc))
                    continue
                self.logger.info(
                    "The participation export lists %d participant(s); %s",
                    len(rows),
                    self.schedule.position(),
                )
        return rows

    def _rows_of(self, ready: ReadyExport) -> list[dict[str, t.Any]]:
        rows: list[dict[str, t.Any]] = []
        for read in self.read_tables(ready):
            pid_at = read.columns.index("participant_id")
            for values in self.typed_rows(read, ready.job.name):
                if values[pid_at] is not None:
                    rows.append(read.record(values))
        return list(stamped(rows, extracted_at(ready.path)))

    def misfit(self, columns: list[str]) -> str | None:
        """A table without the columns asked for is not the participation list."""
        missing = [c for c in self.column_names(list(self._columns)) if c not in columns]
        return f"lacks column(s) {', '.join(missing)} asked for" if missing else None

    def foreign(self, columns: list[str]) -> str | None:
        """A file with a record time column (sensor readings, survey sessions) is not a
        participation list."""
        return "is not a participation list" if "record_time" in columns else None

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
