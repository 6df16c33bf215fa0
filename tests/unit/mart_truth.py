"""The non-GPS marts of the dbt package recomputed in plain Python from the loaded rows
(the integration seeds' CSV rows, or the simulator's), in a given time zone and with
the package's vars (transform/dbt_project.yml): what each mart must hold, computed
without SQL.

A local day runs from the UTC instant of its local midnight to the next one (23, 24 or
25 hours); minutes and hours are counted in elapsed time from that instant.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import typing as t
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

UTC = dt.timezone.utc
PACKAGE = Path(__file__).resolve().parents[2] / "transform"
SENSORS = ("gps", "accelerometer", "battery")

Row = t.Mapping[str, t.Any]
Values = dict[str, t.Any]


def package_vars() -> dict[str, t.Any]:
    """The package's vars, as dbt_project.yml defines them."""
    project = yaml.safe_load((PACKAGE / "dbt_project.yml").read_text())
    return t.cast(dict[str, t.Any], project["vars"])


def instant(value: t.Any) -> dt.datetime:
    """A loaded timestamp (naive UTC text or datetime) as an aware UTC instant."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def present(row: Row, column: str) -> bool:
    return row.get(column) not in (None, "")


def close(actual: float | None, expected: float | None, relative: float = 1e-9) -> bool:
    """Within `relative`, or 1e-6 absolute: the marts' floats are metres, minutes and
    ratios, and a value that is 0 in exact arithmetic comes out as ~1e-8 m or 0 by the
    order in which the database adds (the radius of gyration of a day at one place: the
    mean of 288 equal latitudes, summed in parallel parts)."""
    if actual is None or expected is None:
        return actual is expected
    return math.isclose(float(actual), expected, rel_tol=relative, abs_tol=1e-6)


def same_value(a: t.Any, b: t.Any) -> bool:
    """Equal; floats as `close` (sums of floats depend on the order of the rows, which a
    database does not promise)."""
    if isinstance(a, float) or isinstance(b, float):
        return close(a, b)
    return bool(a == b)


def as_date(value: t.Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass(frozen=True)
class Days:
    """Local days of a time zone."""

    zone: ZoneInfo

    def date(self, moment: dt.datetime) -> dt.date:
        return moment.astimezone(self.zone).date()

    def start(self, day: dt.date) -> dt.datetime:
        """The UTC instant of the local midnight that starts `day`."""
        return dt.datetime.combine(day, dt.time(), tzinfo=self.zone).astimezone(UTC)

    def hours(self, day: dt.date) -> float:
        """The real length of `day` in hours."""
        return (self.start(day + dt.timedelta(days=1)) - self.start(day)).total_seconds() / 3600


@dataclass(frozen=True)
class Statuses:
    """The session and participant status vars: ids and labels mapped both ways."""

    vars: dict[str, t.Any] = field(default_factory=package_vars)

    @cached_property
    def session_labels(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in self.vars["avicenna_survey_status_labels"].items()}

    def session_id(self, row: Row) -> int | None:
        """The session's status id: its `status_id`, else the id of its `status` label."""
        if present(row, "status_id"):
            return int(row["status_id"])
        if present(row, "status"):
            by_label = {v.lower(): k for k, v in self.session_labels.items()}
            return by_label.get(str(row["status"]).strip().lower())
        return None

    def is_dropped(self, row: Row) -> bool:
        labels = {
            int(k): str(v) for k, v in self.vars["avicenna_participant_status_labels"].items()
        }
        label = (
            str(row["status"])
            if present(row, "status")
            else labels.get(int(row["status_id"]), "")
            if present(row, "status_id")
            else ""
        )
        dropped = {str(s).lower() for s in self.vars["avicenna_dropped_participant_statuses"]}
        return label.strip().lower() in dropped


def compliance_measures(sessions: t.Sequence[Row], statuses: Statuses) -> Values:
    """avicenna_compliance_measures() over sessions with a known status."""
    ids = [statuses.session_id(s) for s in sessions]
    known = [i for i in ids if i is not None and i in statuses.session_labels]
    completed = set(statuses.vars["avicenna_survey_completed_status_ids"])
    undelivered = set(statuses.vars["avicenna_survey_undelivered_status_ids"])
    unanswered = set(statuses.vars["avicenna_survey_unanswered_status_ids"])
    answered = [
        s
        for s, i in zip(sessions, ids, strict=True)
        if i in completed and i in statuses.session_labels
    ]
    delivered = sum(1 for i in known if i not in undelivered)

    def seconds(row: Row, column: str) -> float:
        return (instant(row[column]) - instant(row["prompt_time"])).total_seconds()

    return {
        "prompts": len(sessions),
        "prompts_delivered": delivered,
        "prompts_answered": len(answered),
        "prompts_unanswered": sum(1 for i in known if i in unanswered),
        "response_rate": len(answered) / delivered if delivered else None,
        "median_seconds_to_start": median(
            [seconds(s, "start_time") for s in answered if present(s, "start_time")]
        ),
        "median_seconds_to_submit": median([seconds(s, "record_time") for s in answered]),
    }


def compliance_by(
    sessions: t.Iterable[tuple[str, Row]],
    day: t.Callable[[dt.datetime], dt.date],
    per_survey: bool,
    statuses: Statuses,
) -> dict[tuple[t.Any, ...], Values]:
    """Compliance per (participant, local day of the prompt[, survey]) of (survey name,
    session row) pairs; sessions without a prompt time have no day."""
    groups: dict[tuple[t.Any, ...], list[Row]] = defaultdict(list)
    for survey, row in sessions:
        if present(row, "prompt_time"):
            key = (int(row["participant_id"]), day(instant(row["prompt_time"])))
            groups[(*key, survey) if per_survey else key].append(row)
    return {key: compliance_measures(rows, statuses) for key, rows in groups.items()}


@dataclass
class Study:
    """Loaded rows: participants, sensor readings by sensor, survey sessions by survey."""

    participants: t.Sequence[Row]
    sensors: t.Mapping[str, t.Sequence[Row]]
    surveys: t.Mapping[str, t.Sequence[Row]]
    zone: str
    statuses: Statuses = field(default_factory=Statuses)

    @cached_property
    def days(self) -> Days:
        return Days(ZoneInfo(self.zone))

    def unique_readings(self, sensor: str) -> list[Row]:
        """One row per `_row_id` (the staging models' deduplication)."""
        return list({row["_row_id"]: row for row in self.sensors.get(sensor, [])}.values())

    def readings_by_day(self, sensor: str) -> dict[tuple[int, dt.date], list[Row]]:
        out: dict[tuple[int, dt.date], list[Row]] = defaultdict(list)
        for row in self.unique_readings(sensor):
            out[(int(row["participant_id"]), self.days.date(instant(row["record_time"])))].append(
                row
            )
        return out

    def data_yield(self) -> dict[tuple[t.Any, ...], Values]:
        """avicenna__data_yield_daily by (participant, day, sensor)."""
        threshold = self.statuses.vars["avicenna_valid_hour_min_minutes"]
        out = {}
        for sensor in self.sensors:
            for (participant, day), rows in self.readings_by_day(sensor).items():
                start, hours = self.days.start(day), self.days.hours(day)
                minutes = {
                    int((instant(r["record_time"]) - start).total_seconds() // 60) for r in rows
                }
                per_hour: dict[int, int] = defaultdict(int)
                for minute in minutes:
                    per_hour[minute // 60] += 1
                valid = sum(1 for count in per_hour.values() if count >= threshold)
                out[(participant, day, sensor)] = {
                    "day_hours": hours,
                    "readings": len(rows),
                    "minutes_with_data": len(minutes),
                    "hours_with_data": len(per_hour),
                    "valid_hours": valid,
                    "valid_hour_ratio": valid / hours,
                    "minute_ratio": len(minutes) / (60 * hours),
                }
        return out

    def accelerometer(self) -> dict[tuple[t.Any, ...], Values]:
        out = {}
        for key, rows in self.readings_by_day("accelerometer").items():
            magnitudes = [
                math.sqrt(sum(float(r[axis]) ** 2 for axis in ("x_axis", "y_axis", "z_axis")))
                for r in rows
            ]
            out[key] = {
                "readings": len(rows),
                "magnitude_mean": statistics.fmean(magnitudes),
                "magnitude_sd": statistics.stdev(magnitudes) if len(magnitudes) > 1 else None,
                "magnitude_min": min(magnitudes),
                "magnitude_median": statistics.median(magnitudes),
                "magnitude_max": max(magnitudes),
            }
        return out

    def battery(self) -> dict[tuple[t.Any, ...], Values]:
        out = {}
        for key, rows in self.readings_by_day("battery").items():
            levels = [
                100
                * float(r["level"])
                / (float(r["scale"]) if present(r, "scale") and float(r["scale"]) else 100)
                for r in rows
            ]
            plugged = [present(r, "plugged") and int(r["plugged"]) != 0 for r in rows]
            out[key] = {
                "readings": len(rows),
                "level_percent_mean": statistics.fmean(levels),
                "level_percent_min": min(levels),
                "level_percent_max": max(levels),
                "plugged_ratio": sum(plugged) / len(rows),
            }
        return out

    def sessions(self) -> list[tuple[str, Row]]:
        return [(survey, row) for survey, rows in self.surveys.items() for row in rows]

    def compliance(self) -> dict[tuple[t.Any, ...], Values]:
        """avicenna__compliance_daily: every survey pooled."""
        return compliance_by(self.sessions(), self.days.date, False, self.statuses)

    def compliance_per_participant(self) -> dict[tuple[t.Any, ...], Values]:
        """avicenna__compliance_participant: every prompt of the participant, pooled."""
        sessions: dict[tuple[t.Any, ...], list[Row]] = defaultdict(list)
        days: dict[tuple[t.Any, ...], set[dt.date]] = defaultdict(set)
        for _, row in self.sessions():
            if present(row, "prompt_time"):
                key = (int(row["participant_id"]),)
                sessions[key].append(row)
                days[key].add(self.days.date(instant(row["prompt_time"])))
        return {
            key: {
                "days_with_prompts": len(days[key]),
                "first_prompt_date": min(days[key]),
                "last_prompt_date": max(days[key]),
                **compliance_measures(rows, self.statuses),
            }
            for key, rows in sessions.items()
        }

    def compliance_per_survey(self) -> dict[tuple[t.Any, ...], Values]:
        """avicenna__compliance_survey_daily, with `is_provisional`."""
        out = compliance_by(self.sessions(), self.days.date, True, self.statuses)
        if not out:
            return out
        loads = [r.get("_sdc_batched_at") for _, r in self.sessions()]
        loaded = [instant(x) for x in loads if x not in (None, "")]
        last_sync = self.days.date(
            max(loaded) if loaded else max(instant(r["record_time"]) for _, r in self.sessions())
        )
        pending = dt.timedelta(days=self.statuses.vars["avicenna_survey_pending_days"])
        for (_, day, _), values in out.items():
            values["is_provisional"] = (
                values["prompts_unanswered"] > 0 and day >= last_sync - pending
            )
        return out

    def summary(self) -> dict[tuple[t.Any, ...], Values]:
        """avicenna__participant_day_summary (its non-GPS columns) inside the synced
        window: the first to the last local day with data in the marts."""
        compliance, data_yield = self.compliance(), self.data_yield()
        accelerometer, battery = self.accelerometer(), self.battery()
        provisional = {
            (p, d) for (p, d, _), v in self.compliance_per_survey().items() if v["is_provisional"]
        }
        data_days = [key[1] for key in compliance] + [key[1] for key in data_yield]
        first_synced, last_synced = min(data_days), max(data_days)
        out = {}
        for row in self.participants:
            participant = int(row["participant_id"])
            start = self.days.date(instant(row["start_time"]))
            end = (
                self.days.date(instant(row["end_time"]) - dt.timedelta(seconds=1))
                if present(row, "end_time")
                else last_synced
            )
            day = max(start, first_synced)
            while day <= min(end, last_synced):
                key = (participant, day)
                prompts = compliance.get(key, {})
                values: Values = {
                    "participation_day": (day - start).days + 1,
                    "day_hours": self.days.hours(day),
                    "is_dropped": self.statuses.is_dropped(row),
                    "prompts_delivered": prompts.get("prompts_delivered", 0),
                    "prompts_answered": prompts.get("prompts_answered", 0),
                    "prompts_unanswered": prompts.get("prompts_unanswered", 0),
                    "response_rate": prompts.get("response_rate"),
                    "median_seconds_to_start": prompts.get("median_seconds_to_start"),
                    "median_seconds_to_submit": prompts.get("median_seconds_to_submit"),
                    "is_provisional": key in provisional,
                    "has_data": bool(prompts) or any((*key, s) in data_yield for s in self.sensors),
                }
                for sensor in self.sensors:
                    counts = data_yield.get((*key, sensor), {})
                    for name in ("minutes_with_data", "hours_with_data", "valid_hours"):
                        values[f"{sensor}_{name}"] = counts.get(name, 0)
                if "accelerometer" in self.sensors:
                    values["accelerometer_magnitude_mean"] = accelerometer.get(key, {}).get(
                        "magnitude_mean"
                    )
                    values["accelerometer_magnitude_sd"] = accelerometer.get(key, {}).get(
                        "magnitude_sd"
                    )
                if "battery" in self.sensors:
                    values["battery_level_percent_mean"] = battery.get(key, {}).get(
                        "level_percent_mean"
                    )
                out[key] = values
                day += dt.timedelta(days=1)
        return out

    def marts(self) -> dict[str, tuple[tuple[str, ...], dict[tuple[t.Any, ...], Values]]]:
        """Each mart's key columns and expected values by key."""
        out = {
            "avicenna__compliance_daily": (("participant_id", "local_date"), self.compliance()),
            "avicenna__compliance_participant": (
                ("participant_id",),
                self.compliance_per_participant(),
            ),
            "avicenna__compliance_survey_daily": (
                ("participant_id", "local_date", "survey_name"),
                self.compliance_per_survey(),
            ),
            "avicenna__data_yield_daily": (
                ("participant_id", "local_date", "sensor"),
                self.data_yield(),
            ),
            "avicenna__participant_day_summary": (("participant_id", "local_date"), self.summary()),
        }
        if "accelerometer" in self.sensors:
            out["avicenna__accelerometer_daily"] = (
                ("participant_id", "local_date"),
                self.accelerometer(),
            )
        if "battery" in self.sensors:
            out["avicenna__battery_daily"] = (("participant_id", "local_date"), self.battery())
        return out


def assert_marts_match(
    query: t.Callable[[str], list[dict[str, t.Any]]], schema: str, study: Study
) -> None:
    """Every non-GPS mart in `schema` holds exactly the rows `study` recomputes: the same
    keys, and the recomputed columns equal."""
    for mart, (key_columns, expected) in study.marts().items():
        rows = query(f"select * from {schema}.{mart}")
        actual = {
            tuple(
                as_date(r[c]) if c == "local_date" else int(r[c]) if c == "participant_id" else r[c]
                for c in key_columns
            ): r
            for r in rows
        }
        assert len(actual) == len(rows), f"{mart}: duplicate keys"
        assert set(actual) == set(expected), (
            mart,
            sorted(set(actual) - set(expected))[:5],
            sorted(set(expected) - set(actual))[:5],
        )
        for key, values in expected.items():
            got = {
                name: as_date(actual[key][name])
                if isinstance(value, dt.date) and actual[key][name] is not None
                else actual[key][name]
                for name, value in values.items()
            }
            differ = {
                name: (got[name], value)
                for name, value in values.items()
                if not same_value(got[name], value)
            }
            assert not differ, f"{mart} {key}: (mart, recomputed) {differ}"
