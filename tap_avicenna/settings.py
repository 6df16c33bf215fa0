"""Settings: the JSON schema users see, and the checked, typed form the tap runs on."""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
import ipaddress
import re
import typing as t
import zoneinfo
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pendulum
from singer_sdk import typing as th

from tap_avicenna.errors import ConfigError

DEFAULT_API_URL = "https://avicennaresearch.com"

FIELD_TYPES = ("string", "integer", "number", "boolean", "date-time", "date", "object")
"""Types a data source's `fields` override may name (`datetime` is accepted for date-time)."""

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "username",
        th.StringType,
        required=True,
        description="E-mail of the Avicenna researcher account the API key belongs to.",
    ),
    th.Property(
        "api_key",
        th.StringType,
        required=True,
        secret=True,
        description="API key issued by Avicenna support for `username`.",
    ),
    th.Property("study_id", th.IntegerType, required=True, description="Numeric study id."),
    th.Property(
        "api_url",
        th.StringType,
        default=DEFAULT_API_URL,
        description="Base URL of the Avicenna API (https, or http on a loopback host only).",
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        required=True,
        description="Earliest record time to extract (inclusive).",
    ),
    th.Property(
        "end_date",
        th.DateTimeType,
        description=(
            "Latest record time to extract (exclusive). Default, and at most: now (to the minute)."
        ),
    ),
    th.Property(
        "participant_ids",
        th.ArrayType(th.IntegerType),
        description="Participant (Avicenna) ids whose sensor data is exported.",
    ),
    th.Property(
        "data_sources",
        th.ArrayType(
            th.ObjectType(
                th.Property("id", th.IntegerType, required=True),
                th.Property("name", th.StringType, required=True),
                th.Property("fields", th.ObjectType(additional_properties=th.StringType)),
            )
        ),
        description=(
            "Sensor data sources to export, one stream `sensor_<name>` each: "
            '`{"id": <data source id>, "name": "gps", "fields": {"column": "number"}}`. '
            "`fields` types columns the built-in catalogue does not know "
            f"({', '.join(FIELD_TYPES)})."
        ),
    ),
    th.Property(
        "surveys",
        th.ArrayType(
            th.ObjectType(
                th.Property("activity_id", th.IntegerType, required=True),
                th.Property("name", th.StringType, required=True),
                th.Property("columns", th.ArrayType(th.StringType)),
                th.Property("query", th.ObjectType()),
                th.Property("site_ssid", th.StringType),
            )
        ),
        description=(
            "Survey activities to export, one stream `survey_<name>` each: "
            '`{"activity_id": 5678, "name": "daily", "columns": ["participant_id", "Q2", "Q3"], '
            '"query": {"AND": [...]}, "site_ssid": null}`. Without `columns` the tap asks '
            "for none and reads every column Avicenna chooses, answers included (see README)."
        ),
    ),
    th.Property(
        "response_files_dir",
        th.StringType,
        description="Folder to extract survey answer files (`response-files/...` in a "
        "ZIP export) into; unset: not extracted (records keep the path either way).",
    ),
    th.Property(
        "shard_count",
        th.IntegerType,
        default=1,
        description="Split the study's participants across this many tap processes "
        "(each with its own state); see README, Scale-out.",
    ),
    th.Property(
        "shard_index",
        th.IntegerType,
        default=0,
        description="Which shard this process is, 0 .. shard_count-1: it exports the sensor "
        "data of the participants whose id modulo shard_count equals it. Shard 0 also syncs "
        "the participants and survey streams.",
    ),
    th.Property(
        "lookback_days",
        th.NumberType,
        default=2,
        description="Days before each participant's bookmark that are exported again, "
        "to pick up data that reached Avicenna late.",
    ),
    th.Property(
        "skip_unchanged_days",
        th.BooleanType,
        default=True,
        description="Send the rows of the lookback again only for the days (periods) whose "
        "rows changed: a digest per participant (survey: per stream) and period, kept in "
        "state, tells. Costs a second read of an export that overlaps what was sent.",
    ),
    th.Property(
        "export_window_days",
        th.NumberType,
        default=7,
        description="Days of data per export.",
    ),
    th.Property(
        "participants_per_export",
        th.IntegerType,
        default=50,
        description="Participants per export.",
    ),
    th.Property(
        "max_concurrent_exports",
        th.IntegerType,
        default=4,
        description="Exports the tap keeps pending at Avicenna at once.",
    ),
    th.Property(
        "poll_interval_seconds",
        th.NumberType,
        default=10,
        description="Seconds between two polls of the study's export list "
        "(backs off up to 3x while nothing changes).",
    ),
    th.Property(
        "export_timeout_seconds",
        th.NumberType,
        default=3600,
        description="Seconds an export may take before it is re-created (3 attempts).",
    ),
    th.Property(
        "max_uncompressed_file_mb",
        th.NumberType,
        default=20480,
        description="Largest uncompressed size of one export file; a ZIP or gzip that "
        "expands beyond it fails the sync (protection against compression bombs).",
    ),
    th.Property(
        "max_waiting_files_mb",
        th.NumberType,
        default=2048,
        description="Disk space for finished export files that wait for their stream's "
        "turn (streams are synced one after another, their exports run at once); when the "
        "waiting files reach it, the tap creates and downloads nothing more for later "
        "streams until a file is read (the stream being synced always gets its next file).",
    ),
    th.Property(
        "request_timeout_seconds",
        th.NumberType,
        default=300,
        description="Timeout of one HTTP request.",
    ),
    th.Property(
        "strict_settings",
        th.BooleanType,
        default=False,
        description="Make a setting the tap does not know (a misspelt name) an error "
        "instead of a warning.",
    ),
    th.Property(
        "retry_backoff_seconds",
        th.NumberType,
        default=0.5,
        description="Base of the exponential backoff between retries of a failed request: "
        "retry n waits a random time between half and all of this x 2^(n-1) seconds, at "
        "most 60 (a Retry-After answer is honoured instead).",
    ),
    # How cells are read.
    th.Property(
        "strict_types",
        th.BooleanType,
        default=False,
        description="Fail the sync on a cell that does not fit its column's type (naming the "
        "file, line, column and value) instead of leaving the field null and keeping the "
        "cell's text in the record's `_untyped_cells`.",
    ),
    th.Property(
        "naive_timestamps_time_zone",
        th.StringType,
        default="UTC",
        description="Time zone (IANA name, e.g. `America/Toronto`) of the timestamps export "
        "files write without an offset.",
    ),
).to_dict()

_NUMBER_SETTINGS = {
    name: spec["type"]
    for name, spec in CONFIG_SCHEMA["properties"].items()
    if spec.get("type") in ("number", "integer")
    or (isinstance(spec.get("type"), list) and {"number", "integer"} & set(spec["type"]))
}


def coerce_numbers(config: dict[str, t.Any]) -> None:
    """Turn numeric strings and Decimals into int/float in place.

    Meltano passes `kind: string` settings set from the environment as strings (and
    crashes on `kind: decimal`), so `"0.5"` must be accepted wherever a number is; the
    SDK reads JSON config files with Decimal floats.
    """
    for name in _NUMBER_SETTINGS:
        value = config.get(name)
        if isinstance(value, decimal.Decimal):
            config[name] = int(value) if value == value.to_integral_value() else float(value)
        elif isinstance(value, str) and value.strip():
            try:
                number = float(value)
            except ValueError:
                continue  # left for the schema check, which names the setting
            config[name] = int(number) if number.is_integer() else number


@dataclass(frozen=True)
class DataSource:
    """One configured sensor data source."""

    id: int
    name: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def stream_name(self) -> str:
        return f"sensor_{self.name}"


@dataclass(frozen=True)
class Survey:
    """One configured survey activity."""

    activity_id: int
    name: str
    columns: tuple[str, ...] = ()
    query: dict[str, t.Any] | None = None
    site_ssid: str | None = None

    @property
    def stream_name(self) -> str:
        return f"survey_{self.name}"


@dataclass(frozen=True)
class Settings:
    """Checked settings with parsed dates; built once at start-up."""

    username: str
    api_key: str
    study_id: int
    api_url: str
    start_date: dt.datetime
    end_date: dt.datetime
    participant_ids: tuple[int, ...] | None
    data_sources: tuple[DataSource, ...]
    surveys: tuple[Survey, ...]
    response_files_dir: str | None
    lookback: dt.timedelta
    skip_unchanged_days: bool
    export_window: dt.timedelta
    participants_per_export: int
    max_concurrent_exports: int
    poll_interval_seconds: float
    export_timeout_seconds: float
    request_timeout_seconds: float
    retry_backoff_seconds: float
    max_uncompressed_file_bytes: int
    max_waiting_files_bytes: int
    shard_index: int
    shard_count: int
    strict_types: bool
    naive_time_zone: dt.tzinfo | None  # of timestamps without an offset; None: UTC

    def in_shard(self, participant_id: int) -> bool:
        return participant_id % self.shard_count == self.shard_index


_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def _datetime(config: t.Mapping[str, t.Any], name: str) -> dt.datetime:
    try:
        parsed = pendulum.parse(str(config[name]))
    except (ValueError, pendulum.parsing.exceptions.ParserError) as exc:
        raise ConfigError(f"Setting '{name}' is not a date-time: {config[name]!r}") from exc
    if not isinstance(parsed, dt.datetime):
        parsed = pendulum.datetime(parsed.year, parsed.month, parsed.day)  # type: ignore[union-attr]
    return dt.datetime.fromtimestamp(parsed.timestamp(), dt.timezone.utc)


def default(name: str) -> t.Any:
    """A setting's default: the settings schema's, its only source."""
    return CONFIG_SCHEMA["properties"][name]["default"]


def _positive(config: t.Mapping[str, t.Any], name: str) -> float:
    value = config.get(name)
    if value is None:
        return float(default(name))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"Setting '{name}' must be a positive number, got {value!r}")
    return float(value)


def _positive_int(config: t.Mapping[str, t.Any], name: str) -> int:
    value = _positive(config, name)
    if not value.is_integer():
        raise ConfigError(f"Setting '{name}' must be a whole number, got {config[name]!r}")
    return int(value)


def _api_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"Setting 'api_url' must be an http(s) URL, got {value!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            "Setting 'api_url' must use https (plain http is allowed for loopback hosts only)"
        )
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _stream_name(name: t.Any, where: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"Setting '{where}' must be a lower snake_case name (letters, digits, _), got {name!r}"
        )
    return name


def _data_sources(raw: t.Any) -> tuple[DataSource, ...]:
    if raw is None:
        return ()
    sources: list[DataSource] = []
    seen: set[str] = set()
    seen_ids: set[int] = set()
    for index, item in enumerate(raw):
        where = f"data_sources[{index}]"
        name = _stream_name(item.get("name"), f"{where}.name")
        if name in seen:
            raise ConfigError(f"Setting 'data_sources' names '{name}' twice")
        source_id = item.get("id")
        if isinstance(source_id, bool) or not isinstance(source_id, int):
            raise ConfigError(f"Setting '{where}.id' must be an integer, got {source_id!r}")
        if source_id in seen_ids:
            raise ConfigError(f"Setting 'data_sources' lists data source id {source_id} twice")
        fields: dict[str, str] = {}
        for column, type_name in (item.get("fields") or {}).items():
            normal = "date-time" if type_name == "datetime" else type_name
            if normal not in FIELD_TYPES:
                raise ConfigError(
                    f"Setting '{where}.fields.{column}' has unknown type {type_name!r} "
                    f"(one of {', '.join(FIELD_TYPES)})"
                )
            fields[column] = normal
        seen.add(name)
        seen_ids.add(source_id)
        sources.append(DataSource(id=source_id, name=name, fields=fields))
    return tuple(sources)


def _surveys(raw: t.Any) -> tuple[Survey, ...]:
    surveys: list[Survey] = []
    for index, item in enumerate(raw or ()):
        where = f"surveys[{index}]"
        name = _stream_name(item.get("name"), f"{where}.name")
        if any(s.name == name for s in surveys):
            raise ConfigError(f"Setting 'surveys' names '{name}' twice")
        activity_id = item.get("activity_id")
        if isinstance(activity_id, bool) or not isinstance(activity_id, int) or activity_id <= 0:
            raise ConfigError(
                f"Setting '{where}.activity_id' must be a positive integer, got {activity_id!r}"
            )
        columns = item.get("columns") or ()
        if not all(isinstance(c, str) and c.strip() for c in columns):
            raise ConfigError(f"Setting '{where}.columns' must be a list of column names")
        query = item.get("query")
        if query is not None and not isinstance(query, dict):
            raise ConfigError(f"Setting '{where}.query' must be an object")
        surveys.append(
            Survey(activity_id, name, tuple(columns), query or None, item.get("site_ssid"))
        )
    return tuple(surveys)


def unknown_settings(config: t.Mapping[str, t.Any], known: t.Collection[str]) -> list[str]:
    """One line per top-level setting that is not in `known`, naming the closest known
    setting when there is one (`participants_ids` -> `participant_ids`)."""
    lines = []
    for name in config:
        if name in known:
            continue
        close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        lines.append(f"unknown setting '{name}'{hint}")
    return lines


def _check_start_not_future(start: dt.datetime, limit: dt.datetime) -> None:
    """A `start_date` at or after `limit` (now, to the minute: `end_date` is capped there)
    leaves nothing to export: name `start_date`, not `end_date`."""
    if start >= limit:
        raise ConfigError(
            f"Setting 'start_date' ({start.isoformat()}) is in the future: there is "
            f"nothing to export before now ({limit.isoformat()})"
        )


def _time_zone(value: t.Any) -> dt.tzinfo | None:
    """`naive_timestamps_time_zone` as a zone, None for UTC."""
    name = str(value or "UTC").strip()
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise ConfigError(
            f"Setting 'naive_timestamps_time_zone' is not a known time zone: {value!r} "
            "(an IANA name such as 'UTC' or 'America/Toronto')"
        ) from None


def parse_settings(config: t.Mapping[str, t.Any], now: dt.datetime | None = None) -> Settings:
    """Check the settings beyond what the JSON schema can say; raise ConfigError."""
    for name in ("username", "api_key"):
        if not str(config.get(name) or "").strip():
            raise ConfigError(f"Setting '{name}' is required")
    study_id = config.get("study_id")
    if isinstance(study_id, bool) or not isinstance(study_id, int) or study_id <= 0:
        raise ConfigError(f"Setting 'study_id' must be a positive integer, got {study_id!r}")
    if config.get("start_date") in (None, ""):
        raise ConfigError("Setting 'start_date' is required")
    start = _datetime(config, "start_date")
    # whole minutes: a run resumed within the minute asks for the same last window
    cap = (now or dt.datetime.now(dt.timezone.utc)).replace(second=0, microsecond=0)
    _check_start_not_future(start, cap)
    # an end_date in the future is capped at now: bookmarks never pass what was exported
    end = min(_datetime(config, "end_date"), cap) if config.get("end_date") else cap
    if end <= start:
        raise ConfigError(
            f"Setting 'end_date' ({end.isoformat()}) must be after 'start_date' "
            f"({start.isoformat()})"
        )
    participant_ids = config.get("participant_ids")
    if participant_ids is not None:
        if not participant_ids:
            raise ConfigError(
                "Setting 'participant_ids' is empty: leave it out to export every participant "
                "of the study"
            )
        if any(isinstance(p, bool) or not isinstance(p, int) or p <= 0 for p in participant_ids):
            raise ConfigError("Setting 'participant_ids' must be a list of positive integers")
        participant_ids = tuple(sorted(set(participant_ids)))
    shard_count = _positive_int(config, "shard_count")
    shard_index = config.get("shard_index", default("shard_index"))
    if (
        isinstance(shard_index, bool)
        or not isinstance(shard_index, int)
        or not 0 <= shard_index < shard_count
    ):
        raise ConfigError(
            f"Setting 'shard_index' must be an integer from 0 to shard_count - 1 "
            f"({shard_count - 1}), got {shard_index!r}"
        )
    lookback = config.get("lookback_days", default("lookback_days"))
    if isinstance(lookback, bool) or not isinstance(lookback, (int, float)) or lookback < 0:
        raise ConfigError(f"Setting 'lookback_days' must be zero or more, got {lookback!r}")
    return Settings(
        username=str(config["username"]).strip(),
        api_key=str(config["api_key"]).strip(),
        study_id=study_id,
        api_url=_api_url(str(config.get("api_url") or default("api_url"))),
        start_date=start,
        end_date=end,
        participant_ids=participant_ids,
        data_sources=_data_sources(config.get("data_sources")),
        surveys=_surveys(config.get("surveys")),
        response_files_dir=config.get("response_files_dir") or None,
        lookback=dt.timedelta(days=float(lookback)),
        skip_unchanged_days=config.get("skip_unchanged_days", default("skip_unchanged_days"))
        is True,
        export_window=dt.timedelta(days=_positive(config, "export_window_days")),
        participants_per_export=_positive_int(config, "participants_per_export"),
        max_concurrent_exports=_positive_int(config, "max_concurrent_exports"),
        poll_interval_seconds=_positive(config, "poll_interval_seconds"),
        export_timeout_seconds=_positive(config, "export_timeout_seconds"),
        request_timeout_seconds=_positive(config, "request_timeout_seconds"),
        retry_backoff_seconds=_positive(config, "retry_backoff_seconds"),
        max_uncompressed_file_bytes=int(
            _positive(config, "max_uncompressed_file_mb") * 1024 * 1024
        ),
        max_waiting_files_bytes=int(_positive(config, "max_waiting_files_mb") * 1024 * 1024),
        shard_index=shard_index,
        shard_count=shard_count,
        strict_types=config.get("strict_types") is True,
        naive_time_zone=_time_zone(config.get("naive_timestamps_time_zone")),
    )
