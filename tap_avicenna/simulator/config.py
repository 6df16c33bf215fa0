"""Simulator configuration: studies, participants, data sources, surveys and fault knobs."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .clock import iso_z, parse_instant

DEFAULT_NOW = datetime(2025, 2, 1, tzinfo=timezone.utc)
DEFAULT_USERS = {"researcher@example.com": "sim-secret-key-0123456789"}
DEFAULT_STUDY_ID = 1234

TIMESTAMP_STYLES = ("space", "iso_z", "offset", "epoch_ms", "local")
HEADER_STYLES = ("snake", "title")
FILE_FORMATS = ("zip", "csv", "gzip")
SENSOR_KINDS = ("gps", "accelerometer", "battery", "generic")
PARTICIPANT_STATUSES = ("active", "dropped")
ROW_ORDERS = ("participant", "time")
SURVEY_HEADER_STYLES = ("auto", "dashboard")
WINDOW_INCLUDES = ("start", "end")
PARTICIPATION_STATUSES = ("status", "status_id", "status_id_labels")
PRESETS = ("default", "churn")
LIST_ORDERS = ("newest", "oldest")
PAGINATIONS = ("page", "limit_offset")
NEXT_LINKS = ("absolute", "relative")
CREATE_ANSWERS = ("full", "id_only", "none")
LIST_METADATA = ("full", "none")
STATUS_FORMATS = ("object", "label", "number")
BUSY_STATUSES = (409, 429, 400)
EXPIRED_STATUSES = (404, 410, 403)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _opt_instant(value: Any) -> datetime | None:
    return None if value is None else parse_instant(value)


@dataclass
class ParticipantConfig:
    """One participant (Avicenna ID) and their participation period ``[start, end)``."""

    id: int
    start: datetime
    end: datetime | None = None
    status: str = "active"
    label: str = ""
    device_model: str = ""

    @property
    def status_id(self) -> int:
        """Numeric status: 1 active, 2 dropped (the simulator's choice; undocumented)."""
        return 1 if self.status == "active" else 2

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParticipantConfig:
        """Build from JSON-like data (times as ISO strings or epoch ms)."""
        return cls(
            id=int(data["id"]),
            start=parse_instant(data.get("start", "2025-01-01T00:00:00Z")),
            end=_opt_instant(data.get("end")),
            status=str(data.get("status", "active")),
            label=str(data.get("label", "")),
            device_model=str(data.get("device_model", "")),
        )


@dataclass
class DataSourceConfig:
    """A sensor data source; ``None`` knobs fall back to the study's."""

    name: str
    interval_seconds: float
    kind: str = "generic"
    columns: list[str] = field(default_factory=list)
    timestamp_style: str | None = None
    header_style: str | None = None
    file_format: str | None = None
    zip_members: int | None = None
    bom: bool | None = None
    jitter_seconds: float | None = None
    """Readings fall up to this long after their interval's tick (default min(interval,
    30 s)); 0: exactly on the tick, midnight included (daily wearable records)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSourceConfig:
        """Build from JSON-like data; ``kind`` defaults to ``name`` when that is a known kind."""
        name = str(data["name"])
        kind = str(data.get("kind", name if name in SENSOR_KINDS else "generic"))
        return cls(
            name=name,
            interval_seconds=float(data["interval_seconds"]),
            kind=kind,
            columns=[str(c) for c in data.get("columns", [])],
            timestamp_style=data.get("timestamp_style"),
            header_style=data.get("header_style"),
            file_format=data.get("file_format"),
            zip_members=None if data.get("zip_members") is None else int(data["zip_members"]),
            bom=None if data.get("bom") is None else bool(data["bom"]),
            jitter_seconds=(
                None if data.get("jitter_seconds") is None else float(data["jitter_seconds"])
            ),
        )


@dataclass
class QuestionConfig:
    """A survey question; ``variable`` defaults to ``Question <id> of Survey <activity>``."""

    id: int
    type_code: str = "TXT"
    variable: str = ""
    added_at: datetime | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuestionConfig:
        """Build from JSON-like data."""
        return cls(
            id=int(data["id"]),
            type_code=str(data.get("type_code", "TXT")).upper(),
            variable=str(data.get("variable", "")),
            added_at=_opt_instant(data.get("added_at")),
        )


@dataclass
class SurveyConfig:
    """A published survey activity. ``file_format`` csv (default) or zip; IMG answers force zip."""

    name: str
    questions: list[QuestionConfig]
    sessions_per_day: int = 2
    tricky: bool = False
    file_format: str = "csv"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SurveyConfig:
        """Build from JSON-like data."""
        return cls(
            name=str(data.get("name", "Survey")),
            questions=[QuestionConfig.from_dict(q) for q in data.get("questions", [])],
            sessions_per_day=int(data.get("sessions_per_day", 2)),
            tricky=bool(data.get("tricky", False)),
            file_format=str(data.get("file_format", "csv")),
        )


@dataclass
class StudyConfig:
    """A study: participants, data sources (by id), surveys (by activity id) and file knobs."""

    participants: list[ParticipantConfig] = field(default_factory=lambda: default_participants())
    data_sources: dict[int, DataSourceConfig] = field(
        default_factory=lambda: default_data_sources()
    )
    surveys: dict[int, SurveyConfig] = field(default_factory=lambda: default_surveys())
    users: list[str] | None = None
    timestamp_style: str = "space"
    header_style: str = "snake"
    file_format: str = "zip"
    zip_members: int = 1
    bom: bool = False
    quote_all: bool = False  # quote every CSV cell (as R's write.csv or csv.QUOTE_ALL do)
    row_order: str = "participant"
    survey_header_style: str = "auto"
    # Data that does not fit (each knob off by default):
    null_word_rate: float = 0.0
    """Share of sensor value cells written as a null word (`None`, `NaN`, `N/A`, ...)."""
    odd_cell_rate: float = 0.0
    """Share of sensor value cells written as text of no type (`high`, `#VALUE!`, ...)."""
    extra_zip_members: bool = False
    """Sensor ZIPs also hold a `codebook.csv` and a `README.txt`."""
    window_includes: str = "start"
    """Sensor exports hold [start, end) ("start") or (start, end] ("end")."""
    local_time_zone: str = "UTC"
    """The zone of `timestamp_style` "local" (local times without an offset)."""
    upload_delay_seconds: float = 0.0
    """> 0: readings reach the server up to this long after their record time (each its
    own delay) and sensor exports select rows by that upload time, not the record time."""
    dashboard_status_labels: bool = False
    """Dashboard survey exports write `Status` and `Participant Status` as labels
    (`Completed`, `Active`) instead of ids."""
    participation_status: str = "status"
    """The participation export's status column: "status" (`active`/`dropped`),
    "status_id" (1/2), "status_id_labels" (`Active`/`Dropped` under `status_id`)."""
    participation_open_end: str = ""
    """The end time written for an open participation (e.g. `N/A`)."""
    survey_default_columns: list[str] | None = None
    """The v2 columns of a survey export that asks for none (None: every session field
    and every question)."""
    refused_columns: list[str] = field(default_factory=list)
    """Filter exports asking for any of these columns are refused: HTTP 400 naming them."""

    def participant(self, participant_id: int) -> ParticipantConfig | None:
        """The participant with this id, if any."""
        return next((p for p in self.participants if p.id == participant_id), None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyConfig:
        """Build from JSON-like data; missing parts take the defaults."""
        study = cls()
        if "participants" in data:
            study.participants = [ParticipantConfig.from_dict(p) for p in data["participants"]]
        if "data_sources" in data:
            study.data_sources = {
                int(k): DataSourceConfig.from_dict(v) for k, v in data["data_sources"].items()
            }
        if "surveys" in data:
            study.surveys = {int(k): SurveyConfig.from_dict(v) for k, v in data["surveys"].items()}
        if data.get("users") is not None:
            study.users = [str(u) for u in data["users"]]
        for name in ("timestamp_style", "header_style", "file_format", "row_order"):
            if name in data:
                setattr(study, name, str(data[name]))
        if "survey_header_style" in data:
            study.survey_header_style = str(data["survey_header_style"])
        if "zip_members" in data:
            study.zip_members = int(data["zip_members"])
        if "bom" in data:
            study.bom = bool(data["bom"])
        if "quote_all" in data:
            study.quote_all = bool(data["quote_all"])
        for name in ("null_word_rate", "odd_cell_rate", "upload_delay_seconds"):
            if name in data:
                setattr(study, name, float(data[name]))
        for name in ("extra_zip_members", "dashboard_status_labels"):
            if name in data:
                setattr(study, name, bool(data[name]))
        for name in (
            "window_includes",
            "local_time_zone",
            "participation_status",
            "participation_open_end",
        ):
            if name in data:
                setattr(study, name, str(data[name]))
        if data.get("survey_default_columns") is not None:
            study.survey_default_columns = [str(c) for c in data["survey_default_columns"]]
        if "refused_columns" in data:
            study.refused_columns = [str(c) for c in data["refused_columns"] or []]
        return study


@dataclass
class Faults:
    """Fault knobs; counters (``*_next_*``) are decremented as they fire.

    Assigning an attribute takes the simulator's lock once the simulator has bound it.
    """

    error_rate: float = 0.0
    error_statuses: list[int] = field(default_factory=lambda: [429, 500, 502, 503])
    retry_after: int | str | None = 1
    """Retry-After of injected 429s and of busy refusals with 429: seconds, or an HTTP
    date as text (a date in the past is allowed), or None for no header."""
    fail_next_exports: int = 0
    fail_data_sources: set[int] = field(default_factory=set)
    never_finish_next_exports: int = 0
    truncate_next_downloads: int = 0
    reset_next_downloads: int = 0
    expire_next_downloads: int = 0
    omit_id_next_creates: int = 0
    hide_next_list_entries: int = 0
    unknown_label_next_exports: int = 0
    unknown_label: str = "Queued For Worker"
    status_label_case: str | None = None
    replace_next_files: list[bytes] = field(default_factory=list)
    """Bytes served instead of the next downloads' rendered files (hostile-file tests)."""
    html_next_creates: int = 0
    """Creates answered 200 with an HTML maintenance page (no export is created)."""
    html_next_lists: int = 0
    """List requests answered 200 with an HTML maintenance page."""
    expire_next_links: int = 0
    """Downloads answered 403 with an object store's "Request has expired" XML (the
    list hands out a fresh link next time)."""
    foreign_source_next_creates: int = 0
    """Sensor creates just before which another user creates an export of the same
    participants and window but another data source; ours is left out of the next list
    answer, so that the other one is listed first, alone."""
    impostor_next_creates: int = 0
    """Creates that also create someone else's export just after (a sensor export of the
    same data source and window for participants not requested; for a filter export, a
    sensor export of all participants), and leave the requested one out of the next list
    answer: the only new export is then the impostor."""

    COUNTERS: ClassVar[tuple[str, ...]] = (
        "fail_next_exports",
        "never_finish_next_exports",
        "truncate_next_downloads",
        "reset_next_downloads",
        "expire_next_downloads",
        "omit_id_next_creates",
        "hide_next_list_entries",
        "unknown_label_next_exports",
        "html_next_creates",
        "html_next_lists",
        "expire_next_links",
        "impostor_next_creates",
        "foreign_source_next_creates",
    )

    def __setattr__(self, name: str, value: Any) -> None:
        lock: threading.RLock | None = self.__dict__.get("_lock")
        if lock is None:
            object.__setattr__(self, name, value)
        else:
            with lock:
                object.__setattr__(self, name, value)

    def bind_lock(self, lock: threading.RLock) -> None:
        """Make attribute assignment take ``lock`` (the simulator's state lock)."""
        self.__dict__["_lock"] = lock

    def take(self, counter: str) -> bool:
        """Consume one unit of a ``*_next_*`` counter; True if it fired."""
        current = int(getattr(self, counter))
        if current > 0:
            setattr(self, counter, current - 1)
            return True
        return False

    def update(self, data: dict[str, Any]) -> None:
        """Set fields from JSON-like data; unknown names raise ``ValueError``."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(unknown)}")
        for name, value in data.items():
            if name == "fail_data_sources":
                value = {int(v) for v in value or []}
            elif name == "error_statuses":
                value = [int(v) for v in value]
            elif name == "error_rate":
                value = float(value)
                if not 0.0 <= value <= 1.0:
                    raise ValueError("error_rate must be between 0 and 1")
            elif name == "retry_after":
                value = value if value is None or isinstance(value, str) else int(value)
            elif name == "status_label_case":
                if value not in (None, "lower", "upper"):
                    raise ValueError("status_label_case must be null, 'lower' or 'upper'")
            elif name == "unknown_label":
                value = str(value)
            elif name == "replace_next_files":
                value = [base64.b64decode(v) for v in value or []]
            else:
                value = int(value)
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy of the knobs."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["fail_data_sources"] = sorted(self.fail_data_sources)
        out["error_statuses"] = list(self.error_statuses)
        out["replace_next_files"] = [
            base64.b64encode(b).decode("ascii") for b in self.replace_next_files
        ]
        return out


SETTINGS = (
    "pending_seconds",
    "processing_delay",
    "expiry_seconds",
    "expired_status",
    "download_requires_auth",
    "download_origin",
    "reject_auth_on_download_origin",
    "log_requests",
    "page_size",
    "list_order",
    "pagination",
    "next_links",
    "list_count",
    "page_last",
    "history_exports",
    "presigned_urls",
    "presign_ttl_seconds",
    "create_answer",
    "sensor_create_answer",
    "filter_create_answer",
    "list_metadata",
    "max_running_exports",
    "busy_status",
    "status_format",
    "success_label",
    "empty_success",
)
"""Runtime settings (``Simulator.configure``, ``POST /_sim/settings``); the
``SimulatorConfig`` fields of the same names document them."""


@dataclass
class SimulatorConfig:
    """Everything the simulator serves. ``download_origin`` may contain ``{port}``."""

    host: str = "127.0.0.1"
    port: int = 0
    now: datetime = DEFAULT_NOW
    time_scale: float = 1.0
    users: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_USERS))
    studies: dict[int, StudyConfig] = field(
        default_factory=lambda: {DEFAULT_STUDY_ID: StudyConfig()}
    )
    pending_seconds: float = 0.2
    processing_delay: float = 1.0
    expiry_seconds: float = 604_800.0
    expired_status: int = 410
    download_requires_auth: bool = True
    download_origin: str | None = None
    reject_auth_on_download_origin: bool = False
    seed: int = 0
    log_requests: bool = False
    page_size: int = 0
    """Exports per page of the list (DRF's ``{"count", "next", "previous", "results"}``);
    0 = one bare array, as Avicenna's documented clients read it."""
    list_order: str = "newest"  # newest | oldest first
    pagination: str = "page"  # page (``?page=N``) | limit_offset (``?limit=&offset=``)
    next_links: str = "absolute"  # absolute | relative (``/api/...?page=2``) next links
    list_count: bool = True
    """Paged list answers carry ``count`` (DRF's page-number and limit/offset paginations
    do; a cursor pagination does not)."""
    page_last: bool = True
    """``?page=last`` answers the last page (DRF's ``last_page_strings``); off: 404."""
    history_exports: int = 0
    """Older exports in every study at start (other users' and data sources', most of
    them expired), so that a study's list is long."""
    presigned_urls: bool = False
    """Content URLs are presigned object-storage links: a signature and an expiry in the
    query, no Authorization needed; an expired or altered link answers 403 with an S3
    XML error body. Fresh links at every list answer."""
    presign_ttl_seconds: float = 3600.0
    create_answer: str = "full"
    """full: the export object; id_only: ``{"id": <pk>}`` (the list then shows ``id``
    beside ``study_specific_id``); none: ``{"detail": ...}`` without any id."""
    sensor_create_answer: str = ""
    """``create_answer`` of the sensor create endpoint alone ("": as ``create_answer``)."""
    filter_create_answer: str = ""
    """``create_answer`` of the filter (participation, survey) create endpoint alone."""
    list_metadata: str = "full"  # full | none (only the id, status and content)
    max_running_exports: int = 0
    """Creates refused with ``busy_status`` while this many exports of the study are
    still running (0 = no limit)."""
    busy_status: int = 409  # 409 | 429 (Retry-After from faults.retry_after) | 400
    status_format: str = "object"  # object ``{"id", "label"}`` | label | number (the id)
    success_label: str = "Success"  # the label of a finished export
    empty_success: bool = False
    """Exports without a data row are ``Success`` with ``content`` null (no file)."""
    faults: Faults = field(default_factory=Faults)

    def validate(self) -> None:
        """Raise ``ValueError`` on an inconsistent configuration."""
        if self.expired_status not in EXPIRED_STATUSES:
            raise ValueError("expired_status must be 404, 410 or 403")
        if self.busy_status not in BUSY_STATUSES:
            raise ValueError("busy_status must be 409, 429 or 400")
        for name, allowed in (
            ("list_order", LIST_ORDERS),
            ("pagination", PAGINATIONS),
            ("next_links", NEXT_LINKS),
            ("create_answer", CREATE_ANSWERS),
            ("sensor_create_answer", ("", *CREATE_ANSWERS)),
            ("filter_create_answer", ("", *CREATE_ANSWERS)),
            ("list_metadata", LIST_METADATA),
            ("status_format", STATUS_FORMATS),
        ):
            _choice(name, getattr(self, name), allowed)
        for name in ("page_size", "history_exports", "max_running_exports"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.presign_ttl_seconds <= 0:
            raise ValueError("presign_ttl_seconds must be > 0")
        if not self.success_label.strip():
            raise ValueError("success_label must not be empty")
        for study_id, study in self.studies.items():
            where = f"study {study_id}"
            _choice(f"{where} timestamp_style", study.timestamp_style, TIMESTAMP_STYLES)
            _choice(f"{where} header_style", study.header_style, HEADER_STYLES)
            _choice(f"{where} file_format", study.file_format, FILE_FORMATS)
            _choice(f"{where} row_order", study.row_order, ROW_ORDERS)
            _choice(f"{where} survey_header_style", study.survey_header_style, SURVEY_HEADER_STYLES)
            if study.zip_members < 1:
                raise ValueError(f"{where} zip_members must be >= 1")
            _choice(f"{where} window_includes", study.window_includes, WINDOW_INCLUDES)
            _choice(
                f"{where} participation_status", study.participation_status, PARTICIPATION_STATUSES
            )
            try:
                ZoneInfo(study.local_time_zone)
            except (ValueError, ZoneInfoNotFoundError):
                raise ValueError(f"{where} local_time_zone: unknown zone") from None
            rates = (study.null_word_rate, study.odd_cell_rate)
            if min(rates) < 0 or sum(rates) > 1:
                raise ValueError(f"{where} null_word_rate + odd_cell_rate must be in [0, 1]")
            if study.upload_delay_seconds < 0:
                raise ValueError(f"{where} upload_delay_seconds must be >= 0")
            ids = [p.id for p in study.participants]
            if len(ids) != len(set(ids)):
                raise ValueError(f"{where} has duplicate participant ids")
            for p in study.participants:
                _choice(f"{where} participant {p.id} status", p.status, PARTICIPANT_STATUSES)
            for ds_id, ds in study.data_sources.items():
                w = f"{where} data source {ds_id}"
                _choice(f"{w} kind", ds.kind, SENSOR_KINDS)
                if ds.interval_seconds < 0.001:
                    raise ValueError(f"{w} interval_seconds must be >= 0.001")
                if ds.kind == "generic" and not ds.columns:
                    raise ValueError(f"{w} of kind generic needs columns")
                if ds.timestamp_style is not None:
                    _choice(f"{w} timestamp_style", ds.timestamp_style, TIMESTAMP_STYLES)
                if ds.header_style is not None:
                    _choice(f"{w} header_style", ds.header_style, HEADER_STYLES)
                if ds.file_format is not None:
                    _choice(f"{w} file_format", ds.file_format, FILE_FORMATS)
                if ds.zip_members is not None and ds.zip_members < 1:
                    raise ValueError(f"{w} zip_members must be >= 1")
                if ds.jitter_seconds is not None and ds.jitter_seconds < 0:
                    raise ValueError(f"{w} jitter_seconds must be >= 0")
            for act_id, survey in study.surveys.items():
                _choice(f"{where} survey {act_id} file_format", survey.file_format, ("csv", "zip"))
                qids = [q.id for q in survey.questions]
                if len(qids) != len(set(qids)):
                    raise ValueError(f"{where} survey {act_id} has duplicate question ids")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulatorConfig:
        """Build from JSON-like data; ``"preset": "churn"`` picks the base config."""
        config = preset_config(str(data.get("preset", "default")))
        if "host" in data:
            config.host = str(data["host"])
        if "port" in data:
            config.port = int(data["port"])
        if "now" in data:
            config.now = parse_instant(data["now"])
        if "users" in data:
            config.users = {str(k): str(v) for k, v in data["users"].items()}
        if "studies" in data:
            config.studies = {int(k): StudyConfig.from_dict(v) for k, v in data["studies"].items()}
        for name in ("time_scale", "seed", *SETTINGS):
            if name in data:
                setattr(config, name, config.coerce(name, data[name]))
        if "faults" in data:
            config.faults.update(data["faults"])
        config.validate()
        return config

    def coerce(self, name: str, value: Any) -> Any:
        """`value` converted to the type of the setting `name` (its current value's)."""
        if name == "download_origin":
            return None if value is None else str(value)
        current = getattr(self, name)
        for kind in (bool, int, float, str):
            if isinstance(current, kind):
                return kind(value)
        raise ValueError(f"{name} is not a setting")

    @classmethod
    def from_json(cls, path: str | Path) -> SimulatorConfig:
        """Load a JSON file in the ``to_dict`` shape (every key optional)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the top level must be a JSON object")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, readable by ``from_dict``."""
        out = _jsonable(self)
        assert isinstance(out, dict)
        out["faults"] = self.faults.to_dict()
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, Faults):
        return value.to_dict()
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, set):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


_MODELS = ("Pixel 7", "iPhone14,5", "SM-G991B", "iPhone13,4", "moto g(7)")
_JAN1 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def default_participants() -> list[ParticipantConfig]:
    """Participants 101..105, all joined 2025-01-01T00:00:00Z, active, no end."""
    return [
        ParticipantConfig(id=pid, start=_JAN1, device_model=_MODELS[i])
        for i, pid in enumerate(range(101, 106))
    ]


def default_data_sources() -> dict[int, DataSourceConfig]:
    """10 gps (600 s), 20 accelerometer (300 s), 30 battery (900 s)."""
    return {
        10: DataSourceConfig(name="gps", interval_seconds=600, kind="gps"),
        20: DataSourceConfig(name="accelerometer", interval_seconds=300, kind="accelerometer"),
        30: DataSourceConfig(name="battery", interval_seconds=900, kind="battery"),
    }


def default_surveys() -> dict[int, SurveyConfig]:
    """5678: plain daily check-in (bare CSV); 5679: tricky texts, an IMG question (ZIP)."""
    return {
        5678: SurveyConfig(
            name="Daily Check-in",
            questions=[
                QuestionConfig(id=2, type_code="SA", variable="mood"),
                QuestionConfig(id=3, type_code="TXT"),
                QuestionConfig(id=4, type_code="MA", variable="activities"),
                QuestionConfig(id=5, type_code="NUM", variable="stress_level"),
            ],
            sessions_per_day=2,
        ),
        5679: SurveyConfig(
            name="Screen Time",
            questions=[
                QuestionConfig(id=1, type_code="TXT", variable="notes"),
                QuestionConfig(id=2, type_code="IMG", variable="iOS screentime"),
                QuestionConfig(id=3, type_code="SA"),
                QuestionConfig(
                    id=7,
                    type_code="TXT",
                    variable="follow_up",
                    added_at=datetime(2025, 2, 2, tzinfo=timezone.utc),
                ),
            ],
            sessions_per_day=1,
            tricky=True,
        ),
    }


def default_config() -> SimulatorConfig:
    """Study 1234, participants 101..105, sources 10/20/30, surveys 5678/5679, one user."""
    return SimulatorConfig()


def churn_config() -> SimulatorConfig:
    """Like the default, but 104 joins 2025-01-15 and 105 dropped out on 2025-01-20."""
    config = SimulatorConfig()
    study = config.studies[DEFAULT_STUDY_ID]
    p104 = study.participant(104)
    p105 = study.participant(105)
    assert p104 is not None and p105 is not None
    p104.start = datetime(2025, 1, 15, tzinfo=timezone.utc)
    p105.end = datetime(2025, 1, 20, tzinfo=timezone.utc)
    p105.status = "dropped"
    return config


def preset_config(name: str) -> SimulatorConfig:
    """A built-in preset: ``default`` or ``churn``."""
    _choice("preset", name, PRESETS)
    return churn_config() if name == "churn" else default_config()
