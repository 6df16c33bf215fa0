"""Write the seeds of the integration tests: a small synthetic study, shaped like the
tables tap-avicenna loads (target-postgres columns), whose answers are known.

    python transform/integration_tests/generate_seeds.py

Participants (times in America/New_York, the project's `avicenna_timezone`, UTC-5):
- 1: a day at home (2025-03-01: a fix at HOME every 5 minutes, 00:00-23:55 local, so
  the evening's fixes fall on the next UTC day) and a square walk (2025-03-02: from
  HOME at 08:00, one fix a minute, counter-clockwise around a SIDE_METERS square with
  HOME as its south-west corner, WALK_STEP_METERS apart, WALK_FIXES fixes).
- 2: dropped: participation from 2025-03-01 to 2025-03-03 (exclusive, local midnight),
  battery readings and prompts on 03-01 only, none on 03-02.
- 3: open participation from 2025-03-01, accelerometer readings on 03-01 and 03-04
  only; every 03-01 reading is loaded twice (the same `_row_id`, two load times), as a
  lookback re-emits rows into a loader that appends.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
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
    lat = HOME[0] + math.degrees(north_m / EARTH_RADIUS_METERS)
    lon = HOME[1] + math.degrees(east_m / (EARTH_RADIUS_METERS * math.cos(math.radians(HOME[0]))))
    return round(lat, 7), round(lon, 7)


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
        moment = walk + timedelta(minutes=k)
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


TABLES: dict[str, tuple[list[str], list[list[object]]]] = {
    "participants": (
        ["participant_id", "start_time", "end_time", "status", "_sdc_batched_at"],
        [
            [1, stamp(local("2025-03-01T00:00:00")), "", "active", LOADED],
            [
                2,
                stamp(local("2025-03-01T00:00:00")),
                stamp(local("2025-03-03T00:00:00")),
                "dropped",
                LOADED,
            ],
            [3, stamp(local("2025-03-01T00:00:00")), "", "active", LOADED],
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
        gps_rows(),
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
        accelerometer_rows(),
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
        battery_rows(),
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
        ema_rows(),
    ),
    "survey_weekly": (
        ["uuid", "participant_id", "record_time", "q7", "_sdc_batched_at"],
        weekly_rows(),
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
