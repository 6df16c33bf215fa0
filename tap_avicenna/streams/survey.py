"""survey_<name>: one survey activity's sessions and answers (ACTIVITY_RESPONSE exports).

Field names do not depend on the export's header style: the v2 names (`uuid`,
`device.id`, `participant.start_time`, `Q2`, `mQ2_metadata`) and the dashboard names
(`UUID`, `Device ID`, `Participant Start Time`, `[2_TXT] Q2`, `[2_TXT metadata] Q2`)
both become `uuid`, `device_id`, `participant_start_time`, `q2`, `q2_metadata`.
"""

from __future__ import annotations

import hashlib
import json
import re
import typing as t

from tap_avicenna.bookmarks import CoverageBookmarks, iso
from tap_avicenna.errors import ColumnsRefused, FileFormatError
from tap_avicenna.exports.handover import ReadyExport
from tap_avicenna.exports.job import ExportRequest
from tap_avicenna.exports.planner import PlannedExport, grid_windows
from tap_avicenna.parsing import UNTYPED, normalize_header, normalize_name
from tap_avicenna.response_files import extract_response_files
from tap_avicenna.settings import Survey
from tap_avicenna.streams.base import TapServices, json_type
from tap_avicenna.streams.windowed import ExportResult, WindowedExportStream

SESSION_COLUMNS = (
    "participant_id",
    "uuid",
    "prompt_time",
    "record_time",
    "status_id",
    "device.id",
    "device.model",
    "participant.start_time",
    "participant.status_id",
)
"""The session fields declared in the schema of a survey without `columns` (whose export
holds the columns Avicenna chooses): who, when, status and device of each session."""

ADDED_COLUMNS = ("uuid", "record_time")
"""Added to a survey's `columns` when missing: the key and the window's time. Both are
documented v2 columns; the participant's id is not (the documented participant fields
are `participant.start_time` and `participant.status_id`), so it is not added: users who
list columns list it themselves (`participant_id`)."""

SURVEY_FIELDS = {
    "participant_id": "integer",
    "participant_label": "string",
    "uuid": "string",
    "activity_version": "string",
    "session_scheduled_time": "date-time",
    "scheduled_time": "date-time",
    "prompt_time": "date-time",
    "start_time": "date-time",
    "end_time": "date-time",
    "record_time": "date-time",
    "expiry_time": "date-time",
    "status_id": "integer",
    "unanswered_status": "string",
    "triggering_logic_id": "integer",
    "triggering_logic_type": "string",
    "device_id": "string",
    "device_model": "string",
    "device_manufacturer": "string",
    "device_last_used": "date-time",
    "device_app_version": "string",
    "device_app_update_date": "date-time",
    "participant_start_time": "date-time",
    "participant_end_time": "date-time",
    "participant_status_id": "integer",
    "duration_seconds_from_scheduled_to_completion_time": "number",
    "duration_seconds_from_first_response_to_completion_time": "number",
    "location": "string",
}
"""Known session, device and participant fields (API.md 3.4) and their types."""

ALIASES = {
    "status": "status_id",
    "participant_status": "participant_status_id",
    "session_uuid": "uuid",
    "avicenna_id": "participant_id",
    "user_id": "participant_id",
}
DASHBOARD_QUESTION = re.compile(r"^\s*\[\s*(\d+)_[^\]\s]*?(\s+metadata)?\s*\]", re.IGNORECASE)
V2_QUESTION = re.compile(r"^\s*q(\d+)\s*$", re.IGNORECASE)
V2_METADATA = re.compile(r"^\s*mq(\d+)_metadata\s*$", re.IGNORECASE)
METADATA = re.compile(r"^q\d+_metadata$")
LABELS = {"status_id": "status", "participant_status_id": "participant_status"}
"""Status columns: ids stay integers, labels (`Completed`, `Dropped`) go to a text field."""


def survey_field_name(raw: str) -> str:
    """`q<id>` / `q<id>_metadata` for question columns, else the normalised name."""
    if match := DASHBOARD_QUESTION.match(raw):
        return f"q{match.group(1)}" + ("_metadata" if match.group(2) else "")
    if match := V2_QUESTION.match(raw):
        return f"q{match.group(1)}"
    if match := V2_METADATA.match(raw):
        return f"q{match.group(1)}_metadata"
    name = normalize_name(raw)
    return ALIASES.get(name, name)


def field_type(name: str) -> str:
    if METADATA.match(name):
        return "object"
    return SURVEY_FIELDS.get(name, "string")


class SurveyStream(WindowedExportStream):
    """Sessions of one survey; incremental on `record_time`, keyed by the session uuid."""

    replication_key = "record_time"
    primary_keys: t.ClassVar[list[str]] = ["uuid"]
    is_sorted = False
    required_columns = ("uuid", "record_time")
    label_fields = LABELS
    objects_may_appear = True  # answers' metadata, in columns Avicenna chooses

    def __init__(self, tap: TapServices, survey: Survey) -> None:
        self.survey = survey
        self.added = [c for c in ADDED_COLUMNS if c not in survey.columns] if survey.columns else []
        self.columns = [*self.added, *survey.columns]
        """Asked for in `rule_set.columns`; none: Avicenna chooses."""
        properties: dict[str, t.Any] = {
            "uuid": json_type("string", nullable=False),
            "record_time": json_type("date-time", nullable=False),
            UNTYPED: json_type("string"),
        }
        for column in self.columns or SESSION_COLUMNS:
            name = survey_field_name(column)
            properties.setdefault(name, json_type(field_type(name)))
            if name in LABELS:
                properties.setdefault(LABELS[name], json_type("string"))
            if V2_QUESTION.match(column):
                properties.setdefault(f"{name}_metadata", json_type("object"))
        schema = {"type": "object", "properties": properties, "additionalProperties": True}
        self.asked = frozenset(properties) if self.columns else None
        """The fields of the columns asked for; None: Avicenna chooses them."""
        super().__init__(tap, name=survey.stream_name, schema=schema)

    def column_names(self, header: list[str]) -> list[str]:
        return normalize_header(header, survey_field_name)

    def new_column_type(self, name: str) -> str:
        return field_type(name)

    def foreign(self, columns: list[str]) -> str | None:
        """A file of participants' rows without a session uuid column (sensor readings, a
        participation list) is not a survey export."""
        if "uuid" not in columns and "participant_id" in columns:
            return "has no session uuid column"
        return None

    def misfit(self, columns: list[str]) -> str | None:
        """Columns not asked for (another survey's export, or another query's)."""
        if self.asked is None:
            return None
        other = [c for c in columns if c not in self.asked]
        return f"has column(s) {', '.join(other[:6])} not asked for" if other else None

    # --- sync ------------------------------------------------------------------------

    def exports(self) -> t.Iterator[ExportResult]:
        """The windows from the bookmark; asked again without the columns the tap adds
        on its own when Avicenna refuses them (the exports are then planned again)."""
        while True:
            try:
                yield from self.export_results(self.read_export)
                return
            except ColumnsRefused as refused:
                self.columns = self.without_refused(refused, self.columns, self.added)

    def planned(self) -> tuple[list[PlannedExport], CoverageBookmarks]:
        settings = self.settings
        bookmarks = CoverageBookmarks(self.stream_state, "covered_until", lambda plan: ("all",))
        self.bind_source(bookmarks, "activity_id", self.survey.activity_id)
        start = bookmarks.start_for("all", settings.start_date, settings.lookback)
        plans = [
            PlannedExport(ws, we, ())
            for ws, we in grid_windows(
                start, settings.end_date, settings.start_date, settings.export_window
            )
        ]
        self.logger.info(
            "%s: %d export(s) planned up to %s", self.name, len(plans), iso(settings.end_date)
        )
        return plans, bookmarks

    def digest_key(self, record: t.Mapping[str, t.Any]) -> tuple[t.Any, str, str]:
        """The one member "all", and the id of the session's content (its uuid stays
        when its answers change)."""
        return "all", record["record_time"], self.row_id(record)

    def after_export(self, ready: ReadyExport) -> None:
        if self.settings.response_files_dir:
            extract_response_files(
                ready.path, self.settings.response_files_dir, self.services.limits, ready.job.name
            )

    def query(self, plan: PlannedExport) -> dict[str, t.Any]:
        """The user's query AND-ed with the window's record_time bounds."""
        bounds = [
            {"field_name": "record_time", "op": ">=", "value": _z(plan.start)},
            {"field_name": "record_time", "op": "<", "value": _z(plan.end)},
        ]
        return {"AND": [self.survey.query, *bounds] if self.survey.query else bounds}

    def request(self, plan: PlannedExport) -> ExportRequest:
        body = {
            "study_id": self.settings.study_id,
            "activity_id": self.survey.activity_id,
            "filter": "ACTIVITY_RESPONSE",
            "site_ssid": self.survey.site_ssid,
            "export_version": "v2",
            "rule_set": {
                "columns": list(self.columns),
                "query": self.query(plan),
                "sort_by": [{"field_name": "record_time", "sort_order": "asc"}],
            },
        }
        return ExportRequest(
            key=self.request_key(plan),
            label=f"{self.name} {plan.start:%Y-%m-%d %H:%M}..{plan.end:%Y-%m-%d %H:%M}",
            body=body,
            verify=lambda path, name: self.verify(path, name, plan),
        )

    def request_key(self, plan: PlannedExport) -> str:
        digest = hashlib.sha256(
            json.dumps([self.columns, self.survey.query, self.survey.site_ssid]).encode()
        ).hexdigest()[:12]
        return self.window_key(f"survey:{self.survey.activity_id}", plan, digest)

    def read_export(self, ready: ReadyExport, plan: PlannedExport) -> t.Iterator[dict[str, t.Any]]:
        """Sessions from `start_date` to `end_date`, whatever the file holds: the server
        may not apply the query's time bounds (sessions outside the export's own window
        are emitted too, and counted; the uuid keys them)."""
        lower, upper = iso(self.settings.start_date), iso(self.settings.end_date)
        window_start, window_end = iso(plan.start), iso(plan.end)
        dropped = outside = 0
        for read in self.read_tables(ready):
            uuid_at, time_at = read.columns.index("uuid"), read.columns.index("record_time")
            for values in self.typed_rows(read, ready.job.name):
                if not values[uuid_at]:
                    raise FileFormatError(
                        f"{ready.job.name} ({read.table.name}) line {read.table.line_num}: "
                        "a session without uuid"
                    )
                when = values[time_at]
                if when is None or not lower <= when < upper:
                    dropped += 1
                    continue
                if not window_start <= when < window_end:
                    outside += 1
                yield read.record(values)
        if dropped:
            self.logger.info(
                "%s: %d session(s) outside start_date..end_date (or without a record time) "
                "not emitted",
                ready.job.name,
                dropped,
            )
        if outside:
            self.logger.warning(
                "%s: %d session(s) outside the export's window emitted (Avicenna's window "
                "differs from the one asked for)",
                ready.job.name,
                outside,
            )


def _z(value: t.Any) -> str:
    return str(iso(value)).replace("+00:00", "Z")
