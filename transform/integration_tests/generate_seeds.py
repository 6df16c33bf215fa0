"""Write the seeds of the integration tests: a small synthetic study, shaped like the
tables tap-avicenna loads (target-postgres columns), whose answers are known.

    python transform/integration_tests/generate_seeds.py

Participants (times in America/New_York, the project's `avicenna_timezone`, UTC-5):
- 1: a day at home (2025-03-01: a fix at HOME every 5 minutes, 00:00-23:55 local, so
  the evening's fixes fall on the next UTC day) and a square walk (2025-03-02: from
  HOME at 08:00, a fix every WALK_INTERVAL_SECONDS, counter-clockwise around a
  SIDE_METERS square with HOME as its south-west corner, WALK_STEP_METERS apart,
  WALK_FIXES fixes).
- 2: dropped: participation from 2025-03-01 to 2025-03-03 (exclusive, local midnight),
  battery readings and prompts on 03-01 only, none on 03-02.
- 3: open participation from 2025-03-01, accelerometer readings on 03-01 and 03-04
  only; every 03-01 reading is loaded twice (the same `_row_id`, two load times), as a
  lookback re-emits rows into a loader that appends.
- 21 and 22: daylight-saving days in two hemispheres (DST_DAYS): 21 on New York's
  spring-forward (2025-03-09, 23 h) and fall-back (2025-11-02, 25 h) days, 22 on Sydney's
  fall-back (2025-04-06) and spring-forward (2025-10-05) days, the participants' status
  as an id (22 dropped: 2). Each such day: an accelerometer reading every 2 minutes of
  the whole day (every hour valid at 30 minutes), battery readings every 3 minutes of its
  first 5 hours (20 minutes an hour: not valid), prompts in both copies of a repeated
  hour, and a `diary` survey whose status is a text label and which has a `start_time`.
  21 moves from Toronto (until 01:59 EDT) to Hamilton (from 01:00 EST, ~58 km) across
  New York's repeated hour. They are loaded at DST_LOADED; the tests build the project
  in America/New_York and in Australia/Sydney.

GPS only (no participation rows), for the daylight-saving days of both hemispheres and
places (tests/unit/test_dbt_gps.py recomputes every GPS mart column from these rows):
- 4: America/New_York: on 2025-03-09 (23 h) a fix every 5 minutes all day in Toronto
  (participant 21 has the fall-back day's move).
- 5: Australia/Sydney (the second build's zone): on 2025-04-06 (25 h) a fix every 5
  minutes all day, in Sydney until 02:55 AEDT, then in Parramatta from 02:00 AEST; on
  2025-10-05 (23 h) a fix every 5 minutes all day in Parramatta.
- 6: three places with +-30 m noise (a fix every 5 minutes while still, a minute while
  driving at 30 km/h): on 2025-06-10 home, work, an errand and home again; on
  2025-06-11 home all day.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import typing as t
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

SEEDS = Path(__file__).resolve().parent / "seeds"
ZONE = ZoneInfo("America/New_York")
UTC = timezone.utc
EARTH_RADIUS_METERS = 6_371_008.8
HOME = (45.5, -73.6)
SIDE_METERS = 1000.0
WALK_STEP_METERS = 16.0
WALK_FIXES = 250
WALK_INTERVAL_SECONDS = 12  # 16 m in 12 s: 4.8 km/h, a walk (RAPIDS: static below 1 km/h)
LOADED = "2025-03-05 12:00:00"
RELOADED = "2025-03-06 12:00:00"


def local(text: str) -> datetime:
    """A local wall-clock time as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=ZONE).astimezone(UTC)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def row_id(*cells: object) -> str:
    return hashlib.blake2b(repr(cells).encode(), digest_size=16).hexdigest()


def offset(north_m: float, east_m: float) -> tuple[float, float]:
    """HOME moved north and east by metres (locally flat)."""
    return moved(HOME, north_m, east_m)


def square_point(distance: float) -> tuple[float, float]:
    """(north, east) metres of the point `distance` along the square's perimeter,
    counter-clockwise from the south-west corner: east, north, west, south."""
    side, along = divmod(distance, SIDE_METERS)
    return [
        (0.0, along),
        (along, SIDE_METERS),
        (SIDE_METERS, SIDE_METERS - along),
        (SIDE_METERS - along, 0.0),
    ][int(side) % 4]


def gps_rows() -> list[list[object]]:
    rows: list[list[object]] = []
    day = local("2025-03-01T00:00:00")
    for k in range(288):
        moment = day + timedelta(minutes=5 * k)
        lat, lon = HOME
        rows.append([row_id(1, moment, lat, lon), 1, stamp(moment), lat, lon, 8.0, "gps", LOADED])
    walk = local("2025-03-02T08:00:00")
    for k in range(WALK_FIXES):
        moment = walk + timedelta(seconds=WALK_INTERVAL_SECONDS * k)
        lat, lon = offset(*square_point(k * WALK_STEP_METERS))
        rows.append([row_id(1, moment, lat, lon), 1, stamp(moment), lat, lon, 8.0, "gps", LOADED])
    # an inaccurate fix far away: left out of every feature
    moment = walk + timedelta(minutes=5, seconds=30)
    lat, lon = offset(5000.0, 5000.0)
    rows.append([row_id(1, moment, lat, lon), 1, stamp(moment), lat, lon, 500.0, "network", LOADED])
    return rows


def accelerometer_rows() -> list[list[object]]:
    rows: list[list[object]] = []
    for day, count in (("2025-03-01", 30), ("2025-03-04", 10)):
        start = local(f"{day}T10:00:00")
        for k in range(count):
            moment = start + timedelta(seconds=90 * k)
            x, y, z = 0.1 * (k % 3), -0.2, 9.81
            rid = row_id(3, moment, x, y, z)
            rows.append([rid, 3, stamp(moment), x, y, z, 1, LOADED])
            if day == "2025-03-01":
                rows.append([rid, 3, stamp(moment), x, y, z, 1, RELOADED])
    return rows


def battery_rows() -> list[list[object]]:
    start = local("2025-03-01T06:00:00")
    rows: list[list[object]] = []
    for k in range(12):
        moment = start + timedelta(minutes=15 * k)
        level, plugged = 80 - k, 1 if k < 3 else 0
        rows.append([row_id(2, moment, level), 2, stamp(moment), level, 100, plugged, LOADED])
    return rows


def prompt(
    uuid: str, participant: int, prompted: str, seconds: int, status: int, answer: str
) -> list[object]:
    at = local(prompted)
    metadata = json.dumps({"question_id": 1, "duration_ms": 1000}) if answer else ""
    return [
        uuid,
        participant,
        stamp(at),
        stamp(at + timedelta(seconds=seconds)),
        status,
        answer,
        metadata,
        LOADED,
    ]


def ema_rows() -> list[list[object]]:
    return [
        prompt("e-2-1", 2, "2025-03-01T09:00:00", 60, 1, "4"),
        prompt("e-2-2", 2, "2025-03-01T13:00:00", 180, 1, "2"),
        prompt("e-2-3", 2, "2025-03-01T17:00:00", 3600, 0, ""),
        prompt("e-2-4", 2, "2025-03-01T21:00:00", 0, 4, ""),
        # prompted 23:30 local = 04:30 UTC the next day: counts on the local day
        prompt("e-1-1", 1, "2025-03-01T23:30:00", 300, 1, "5"),
        prompt("e-1-2", 1, "2025-03-02T12:00:00", 900, 2, "3"),
    ]


def weekly_rows() -> list[list[object]]:
    """A survey loaded without prompt_time and status_id: answers, no compliance."""
    return [["w-3-1", 3, stamp(local("2025-03-04T18:00:00")), "fine", LOADED]]


# --- daylight-saving days (participants 21 and 22) -------------------------------------

DST_LOADED = "2025-11-05 12:00:00"
DST_DAYS = {
    21: ("America/New_York", ("2025-03-09", "2025-11-02")),
    22: ("Australia/Sydney", ("2025-04-06", "2025-10-05")),
}
TORONTO = (43.6532, -79.3832)
HAMILTON = (43.2557, -79.8711)


def day_bounds(participant: int, day: str) -> tuple[datetime, datetime]:
    """The UTC instants of the local midnight starting `day` and of the next one, in the
    participant's DST_DAYS zone (23, 24 or 25 hours apart)."""
    zone = ZoneInfo(DST_DAYS[participant][0])
    first = datetime.fromisoformat(day).replace(tzinfo=zone)
    return first.astimezone(UTC), (first + timedelta(days=1)).astimezone(UTC)


def dst_moments(step_minutes: int, hours: float | None = None) -> list[tuple[int, datetime]]:
    """(participant, instant) every `step_minutes` of elapsed time from the start of
    each DST day, through the whole day or its first `hours`."""
    out = []
    for participant, (_, days) in DST_DAYS.items():
        for day in days:
            start, end = day_bounds(participant, day)
            stop = start + timedelta(hours=hours) if hours is not None else end
            moment = start + timedelta(seconds=20)
            while moment < stop:
                out.append((participant, moment))
                moment += timedelta(minutes=step_minutes)
    return out


def dst_accelerometer_rows() -> list[list[object]]:
    rows: list[list[object]] = []
    for k, (participant, moment) in enumerate(dst_moments(2)):
        x, y, z = 0.5 * (k % 4), 0.1 * (k % 7), 9.7
        rid = row_id(participant, moment, x, y, z)
        rows.append([rid, participant, stamp(moment), x, y, z, 1, DST_LOADED])
    return rows


def dst_battery_rows() -> list[list[object]]:
    rows: list[list[object]] = []
    for k, (participant, moment) in enumerate(dst_moments(3, hours=5)):
        level, plugged = 90 - k % 50, k % 3 == 0
        rows.append(
            [
                row_id(participant, moment, level),
                participant,
                stamp(moment),
                level,
                100,
                int(plugged),
                DST_LOADED,
            ]
        )
    return rows


def dst_gps_rows() -> list[list[object]]:
    """Participant 21's fall-back night in New York: a fix a minute at Toronto from
    00:00 EDT to 01:59 EDT, then at Hamilton from 01:00 EST to 03:59 EST."""
    zone = ZoneInfo(DST_DAYS[21][0])
    rows: list[list[object]] = []
    for (lat, lon), first, fold in (
        (TORONTO, "2025-11-02T00:00", 0),
        (HAMILTON, "2025-11-02T01:00", 1),
    ):
        start = datetime.fromisoformat(first).replace(tzinfo=zone, fold=fold).astimezone(UTC)
        for k in range(120 if fold == 0 else 180):
            moment = start + timedelta(minutes=k)
            rows.append(
                [row_id(21, moment, lat, lon), 21, stamp(moment), lat, lon, 10.0, "gps", DST_LOADED]
            )
    return rows


def dst_prompt(
    participant: int, wall: str, fold: int, seconds: int, status: object, **extra: object
) -> dict[str, object]:
    """A session prompted at local wall-clock time `wall` (`fold` 1: the second copy of
    a repeated hour) in the participant's zone, recorded `seconds` later."""
    zone = ZoneInfo(DST_DAYS[participant][0])
    # in UTC: arithmetic on an aware local time is wall-clock arithmetic, which drops `fold`
    at = datetime.fromisoformat(wall).replace(tzinfo=zone, fold=fold).astimezone(UTC)
    return {"participant": participant, "at": at, "seconds": seconds, "status": status, **extra}


def dst_ema_rows() -> list[list[object]]:
    sessions = [
        dst_prompt(21, "2025-03-08T23:30", 0, 300, 1),  # the local day before
        dst_prompt(21, "2025-03-09T00:30", 0, 240, 1),
        dst_prompt(21, "2025-03-09T03:30", 0, 900, 2),  # the first hour after 01:59 EST
        dst_prompt(21, "2025-03-09T20:00", 0, 30, 1),
        dst_prompt(21, "2025-11-02T01:30", 0, 60, 1),  # EDT
        dst_prompt(21, "2025-11-02T01:30", 1, 120, 1),  # EST, an hour later
        dst_prompt(21, "2025-11-02T09:00", 0, 3600, 0),
        dst_prompt(21, "2025-11-02T13:00", 0, 0, 4),
        dst_prompt(21, "2025-11-02T23:30", 0, 600, 3),
        dst_prompt(22, "2025-04-06T02:30", 0, 90, 1),  # AEDT
        dst_prompt(22, "2025-04-06T02:30", 1, 45, 1),  # AEST
        dst_prompt(22, "2025-04-06T12:00", 0, 3600, 0),
        dst_prompt(22, "2025-10-05T01:30", 0, 200, 1),
        dst_prompt(22, "2025-10-05T03:30", 0, 400, 1),  # an hour after 01:30
        dst_prompt(22, "2025-10-05T23:59", 0, 30, 0),
    ]
    rows: list[list[object]] = []
    for n, session in enumerate(sessions):
        at = t.cast(datetime, session["at"])
        rows.append(
            [
                f"e-{session['participant']}-dst-{n}",
                session["participant"],
                stamp(at),
                stamp(at + timedelta(seconds=t.cast(int, session["seconds"]))),
                session["status"],
                "",  # no answer: the answers' checks are participant 1 and 2's
                "",
                DST_LOADED,
            ]
        )
    return rows


def diary_rows() -> list[list[object]]:
    """A daily diary whose export gives the status as a text label (any case) and the
    time the participant started it."""
    sessions = [
        dst_prompt(21, "2025-03-09T21:00", 0, 400, "Completed", started=100),
        dst_prompt(21, "2025-11-02T01:15", 1, 300, "completed", started=40),
        dst_prompt(21, "2025-11-02T21:00", 0, 3600, "Unanswered"),
        dst_prompt(22, "2025-04-06T21:00", 0, 3600, "Unanswered"),
        dst_prompt(22, "2025-10-05T21:00", 0, 250, "COMPLETED", started=70),
        dst_prompt(22, "2025-10-05T22:00", 0, 3600, "Expired"),
    ]
    rows: list[list[object]] = []
    for n, session in enumerate(sessions):
        at = t.cast(datetime, session["at"])
        started = session.get("started")
        rows.append(
            [
                f"d-{session['participant']}-{n}",
                session["participant"],
                stamp(at),
                stamp(at + timedelta(seconds=t.cast(int, started))) if started is not None else "",
                stamp(at + timedelta(seconds=t.cast(int, session["seconds"]))),
                session["status"],
                "ok" if started is not None else "",
                DST_LOADED,
            ]
        )
    return rows


def dst_participants() -> list[list[object]]:
    """21 open, active by id; 22 dropped by id, with an end after the synced data."""
    return [
        [21, stamp(local("2025-03-07T00:00:00")), "", "", DST_LOADED, 1],
        [22, stamp(local("2025-04-01T00:00:00")), "2026-02-01 00:00:00", "", DST_LOADED, 2],
    ]


# --- GPS only: daylight-saving days and places (participants 4, 5, 6) -----------------

SYDNEY = ZoneInfo("Australia/Sydney")
SYDNEY_CBD = (-33.8688, 151.2093)
PARRAMATTA = (-33.8150, 151.0011)
PLACES_HOME = (40.7306, -73.9866)
PLACES_WORK = (40.6500, -73.9496)  # ~9.6 km from home
PLACES_ERRAND = (40.6650, -73.9700)  # ~2.3 km from work, ~7.6 km from home
PLACE_NOISE_METERS = 30.0
DRIVE_METERS_PER_MINUTE = 500.0


def moved(origin: tuple[float, float], north_m: float, east_m: float) -> tuple[float, float]:
    """`origin` moved north and east by metres (locally flat)."""
    lat = origin[0] + math.degrees(north_m / EARTH_RADIUS_METERS)
    lon = origin[1] + math.degrees(
        east_m / (EARTH_RADIUS_METERS * math.cos(math.radians(origin[0])))
    )
    return round(lat, 7), round(lon, 7)


def gps_row(participant: int, moment: datetime, position: tuple[float, float]) -> list[object]:
    lat, lon = position
    return [
        row_id(participant, moment, lat, lon),
        participant,
        stamp(moment),
        lat,
        lon,
        10.0,
        "gps",
        LOADED,
    ]


def every(start: datetime, end: datetime, minutes: int) -> list[datetime]:
    """UTC instants from `start` (included) to `end` (excluded), `minutes` apart."""
    count = int((end - start).total_seconds()) // (60 * minutes)
    return [start + timedelta(minutes=minutes * k) for k in range(count)]


def zoned(text: str, zone: ZoneInfo, fold: int = 0) -> datetime:
    """A wall-clock time of `zone` as a UTC instant (`fold` 1: the repeated hour's second pass)."""
    return datetime.fromisoformat(text).replace(tzinfo=zone, fold=fold).astimezone(UTC)


def gps_only_dst_rows() -> list[list[object]]:
    """Participants 4 (New York's spring-forward day) and 5 (Sydney's two days)."""
    spring = every(zoned("2025-03-09T00:00:00", ZONE), zoned("2025-03-10T00:00:00", ZONE), 5)
    rows = [gps_row(4, m, TORONTO) for m in spring]
    sydney_repeated = zoned("2025-04-06T02:00:00", SYDNEY, fold=1)  # 02:00 AEST
    fall = every(zoned("2025-04-06T00:00:00", SYDNEY), zoned("2025-04-07T00:00:00", SYDNEY), 5)
    rows += [gps_row(5, m, SYDNEY_CBD if m < sydney_repeated else PARRAMATTA) for m in fall]
    spring = every(zoned("2025-10-05T00:00:00", SYDNEY), zoned("2025-10-06T00:00:00", SYDNEY), 5)
    rows += [gps_row(5, m, PARRAMATTA) for m in spring]
    return rows


def places_gps_rows() -> list[list[object]]:
    """Participant 6: a day at three places (home, work, an errand, home), then a day at
    home; still fixes within PLACE_NOISE_METERS of the place (uniform in the disc)."""
    noise = random.Random(22)

    def still(place: tuple[float, float], start: str, end: str) -> list[list[object]]:
        out = []
        for moment in every(local(start), local(end), 5):
            radius = PLACE_NOISE_METERS * math.sqrt(noise.random())
            angle = 2 * math.pi * noise.random()
            out.append(
                gps_row(6, moment, moved(place, radius * math.sin(angle), radius * math.cos(angle)))
            )
        return out

    def drive(
        origin: tuple[float, float], target: tuple[float, float], start: str
    ) -> list[list[object]]:
        """A fix a minute strictly between leaving `origin` at `start` and arriving."""
        north = math.radians(target[0] - origin[0]) * EARTH_RADIUS_METERS
        east = (
            math.radians(target[1] - origin[1])
            * EARTH_RADIUS_METERS
            * math.cos(math.radians(origin[0]))
        )
        minutes = math.ceil(math.hypot(north, east) / DRIVE_METERS_PER_MINUTE)
        return [
            gps_row(
                6,
                local(start) + timedelta(minutes=k),
                moved(origin, north * k / minutes, east * k / minutes),
            )
            for k in range(1, minutes)
        ]

    return [
        *still(PLACES_HOME, "2025-06-10T00:00:00", "2025-06-10T08:00:00"),
        *drive(PLACES_HOME, PLACES_WORK, "2025-06-10T07:55:00"),
        *still(PLACES_WORK, "2025-06-10T08:20:00", "2025-06-10T17:00:00"),
        *drive(PLACES_WORK, PLACES_ERRAND, "2025-06-10T16:55:00"),
        *still(PLACES_ERRAND, "2025-06-10T17:05:00", "2025-06-10T17:50:00"),
        *drive(PLACES_ERRAND, PLACES_HOME, "2025-06-10T17:45:00"),
        *still(PLACES_HOME, "2025-06-10T18:05:00", "2025-06-12T00:00:00"),
    ]


TABLES: dict[str, tuple[list[str], list[list[object]]]] = {
    "participants": (
        ["participant_id", "start_time", "end_time", "status", "_sdc_batched_at", "status_id"],
        [
            [1, stamp(local("2025-03-01T00:00:00")), "", "active", LOADED, ""],
            [
                2,
                stamp(local("2025-03-01T00:00:00")),
                stamp(local("2025-03-03T00:00:00")),
                "dropped",
                LOADED,
                "",
            ],
            [3, stamp(local("2025-03-01T00:00:00")), "", "active", LOADED, ""],
            *dst_participants(),
        ],
    ),
    "sensor_gps": (
        [
            "_row_id",
            "participant_id",
            "record_time",
            "lat",
            "lon",
            "accu",
            "provider",
            "_sdc_batched_at",
        ],
        gps_rows() + dst_gps_rows() + gps_only_dst_rows() + places_gps_rows(),
    ),
    "sensor_accelerometer": (
        [
            "_row_id",
            "participant_id",
            "record_time",
            "x_axis",
            "y_axis",
            "z_axis",
            "accu",
            "_sdc_batched_at",
        ],
        accelerometer_rows() + dst_accelerometer_rows(),
    ),
    "sensor_battery": (
        [
            "_row_id",
            "participant_id",
            "record_time",
            "level",
            "scale",
            "plugged",
            "_sdc_batched_at",
        ],
        battery_rows() + dst_battery_rows(),
    ),
    "survey_ema": (
        [
            "uuid",
            "participant_id",
            "prompt_time",
            "record_time",
            "status_id",
            "q1",
            "q1_metadata",
            "_sdc_batched_at",
        ],
        ema_rows() + dst_ema_rows(),
    ),
    "survey_weekly": (
        ["uuid", "participant_id", "record_time", "q7", "_sdc_batched_at"],
        weekly_rows(),
    ),
    "survey_diary": (
        [
            "uuid",
            "participant_id",
            "prompt_time",
            "start_time",
            "record_time",
            "status",
            "q3",
            "_sdc_batched_at",
        ],
        diary_rows(),
    ),
}


def render(columns: list[str], rows: list[list[object]]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return text.getvalue()


def main() -> None:
    SEEDS.mkdir(exist_ok=True)
    for name, (columns, rows) in TABLES.items():
        (SEEDS / f"{name}.csv").write_text(render(columns, rows))


if __name__ == "__main__":
    main()
