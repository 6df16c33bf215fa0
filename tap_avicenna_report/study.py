"""The study as the report draws it: participants, their days, and the marts' numbers per
participant-day, read from the warehouse in a handful of queries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from tap_avicenna_report.warehouse import Row, Warehouse, columns, no_warehouse_errors

SUMMARY = "avicenna__participant_day_summary"
YIELD = "avicenna__data_yield_daily"
COMPLIANCE = "avicenna__compliance_daily"
SENSOR_ORDER = ("gps", "accelerometer", "battery")  # the marts' sensors, in their order
POOLED = "all surveys"  # the compliance heatmap's name when the marts have no survey grain

Day = tuple[Any, dt.date]  # (participant_id, local_date)


@dataclass(frozen=True)
class Participant:
    """A participant and the local days of their participation."""

    id: Any
    dropped: bool
    first_day: dt.date
    last_day: dt.date

    @property
    def label(self) -> str:
        """The row label: the id, marked when the participant dropped out."""
        return f"{self.id} ✕" if self.dropped else str(self.id)

    def takes_part(self, day: dt.date) -> bool:
        return self.first_day <= day <= self.last_day


@dataclass(frozen=True)
class Yield:
    """One sensor's data yield on a participant-day."""

    hours: int
    minutes: int


@dataclass(frozen=True)
class Compliance:
    """One survey's (or all surveys') prompts on a participant-day."""

    delivered: int
    answered: int

    @property
    def rate(self) -> float | None:
        return self.answered / self.delivered if self.delivered else None


@dataclass(frozen=True)
class Mobility:
    """Daily mobility of a participant-day (null features stay None)."""

    distance_meters: float | None
    minutes_at_home: float | None


@dataclass
class Study:
    participants: list[Participant]
    days: list[dt.date]
    sensors: list[str]
    yields: dict[str, dict[Day, Yield]]
    surveys: list[str]
    compliance: dict[str, dict[Day, Compliance]]
    mobility: dict[Day, Mobility] | None
    has_data: dict[Day, bool]
    loaded_at: Any  # the newest _loaded_at: the loader's time, else the download's (_extracted_at)
    schema: str = ""
    per_survey: bool = False

    @property
    def participant_days(self) -> int:
        return len(self.has_data)


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _span(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _participants(summary: list[Row]) -> list[Participant]:
    spans: dict[Any, Participant] = {}
    for row in summary:
        pid, day = row["participant_id"], _as_date(row["local_date"])
        known = spans.get(pid)
        spans[pid] = Participant(
            pid,
            bool(row["is_dropped"]),
            min(day, known.first_day) if known else day,
            max(day, known.last_day) if known else day,
        )
    return [spans[pid] for pid in sorted(spans)]


def load(warehouse: Warehouse) -> Study:
    """Read the marts of `warehouse.schema` (a database error ends the command in one line)."""
    schema = warehouse.schema
    with no_warehouse_errors(f"the marts in schema {schema}"):
        summary_columns = set(columns(warehouse, SUMMARY))
        if not summary_columns:
            raise SystemExit(
                f"tap-avicenna-report: no {SUMMARY} in schema {schema}: build the dbt package"
                " first (meltano run ... dbt-duckdb:build) or give --schema"
            )
        per_survey = "survey" in columns(warehouse, COMPLIANCE)
        summary = warehouse.rows(f"select * from {schema}.{SUMMARY}")
        yields = warehouse.rows(
            "select participant_id, local_date, sensor, hours_with_data, minutes_with_data"
            f" from {schema}.{YIELD}"
        )
        survey = "survey" if per_survey else f"'{POOLED}'"
        compliance = warehouse.rows(
            f"select participant_id, local_date, {survey} as survey,"
            " sum(prompts_delivered) as delivered, sum(prompts_answered) as answered"
            f" from {schema}.{COMPLIANCE} group by 1, 2, 3"
        )
        loaded = warehouse.rows(
            f"select max(_loaded_at) as loaded_at from (select _loaded_at from {schema}.{YIELD}"
            f" union all select _loaded_at from {schema}.{COMPLIANCE}) as loads"
        )
    return build(summary, summary_columns, yields, compliance, loaded[0]["loaded_at"], schema)


def build(
    summary: list[Row],
    summary_columns: set[str],
    yield_rows: list[Row],
    compliance_rows: list[Row],
    loaded_at: Any,
    schema: str = "",
) -> Study:
    """The study from the marts' rows (`load` reads them)."""
    participants = _participants(summary)
    found = {str(row["sensor"]) for row in yield_rows} | {
        sensor for sensor in SENSOR_ORDER if f"{sensor}_hours_with_data" in summary_columns
    }
    sensors = [s for s in SENSOR_ORDER if s in found] + sorted(found - set(SENSOR_ORDER))
    yields: dict[str, dict[Day, Yield]] = {sensor: {} for sensor in sensors}
    for row in yield_rows:
        key = (row["participant_id"], _as_date(row["local_date"]))
        yields[str(row["sensor"])][key] = Yield(
            int(row["hours_with_data"]), int(row["minutes_with_data"])
        )
    compliance: dict[str, dict[Day, Compliance]] = {}
    for row in compliance_rows:
        key = (row["participant_id"], _as_date(row["local_date"]))
        compliance.setdefault(str(row["survey"]), {})[key] = Compliance(
            int(row["delivered"] or 0), int(row["answered"] or 0)
        )
    mobility = None
    if {"distance_meters", "minutes_at_home"} <= summary_columns:
        mobility = {
            (row["participant_id"], _as_date(row["local_date"])): Mobility(
                None if row["distance_meters"] is None else float(row["distance_meters"]),
                None if row["minutes_at_home"] is None else float(row["minutes_at_home"]),
            )
            for row in summary
        }
    every_day = [_as_date(row["local_date"]) for row in summary] + [
        day for _, day in (key for table in yields.values() for key in table)
    ]
    days = _span(min(every_day), max(every_day)) if every_day else []
    return Study(
        participants=participants,
        days=days,
        sensors=sensors,
        yields=yields,
        surveys=sorted(compliance) if compliance else [POOLED],
        compliance=compliance or {POOLED: {}},
        mobility=mobility,
        has_data={
            (row["participant_id"], _as_date(row["local_date"])): bool(row["has_data"])
            for row in summary
        },
        loaded_at=loaded_at,
        schema=schema,
        per_survey=bool(compliance) and POOLED not in compliance,
    )
