"""The GPS marts (avicenna__gps_daily, avicenna__gps_home) against a recomputation in
plain Python of every column from the integration seeds, in two builds: the project's
zone (America/New_York) and Australia/Sydney, so that the seeds' daylight-saving days
of both hemispheres (generate_seeds.py, participants 4, 5 and 21) are 23 and 25 h days in
one build or the other. Also the places seed (participant 6): three places with ±30 m
noise, and a still day that travels under 1 km.

Needs the dbt-duckdb utility (one dbt session for the module, tests/unit/dbt_session.py).
The same checks run in PostgreSQL in tests/e2e/test_dbt_postgres.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
import typing as t
from collections import defaultdict
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.unit.mart_truth import close, same_value
from tests.unit.test_dbt_package import (
    DUCKDB_VENV,
    ROOT,
    DuckDBProject,
    Rows,
    assert_same_tables,
    by_day,
    load_generator,
    seed_rows,
)

NEW_YORK = ZoneInfo("America/New_York")
SYDNEY = ZoneInfo("Australia/Sydney")
GPS_MODELS = ("stg_avicenna__gps", "avicenna__gps_home", "avicenna__gps_daily")
EARTH_RADIUS_METERS = 6_371_008.8  # the haversine macro's
METERS_PER_DEGREE = 111195.0  # the home grid's (macros/gps.sql)
TOLERANCE = 0.01  # known geometry (a city-to-city distance): 1%
SAME_POINT_VARIANCE = 1e-14  # degrees², below which the location variance is 0
Key = tuple[int, dt.date]
FEATURES = (  # avicenna__gps_daily's columns that are null on a day without a valid fix
    *("distance_meters", "location_variance", "log_location_variance"),
    *("radius_of_gyration_meters", "max_distance_from_home_meters", "minutes_at_home"),
    *("minutes_covered", "minutes_moving", "covered_ratio", "places"),
    *("home_latitude", "home_longitude"),
)


def package_vars() -> dict[str, t.Any]:
    """The package's var defaults (transform/dbt_project.yml): one source for them."""
    project = yaml.safe_load((ROOT / "transform" / "dbt_project.yml").read_text())
    return t.cast(dict[str, t.Any], project["vars"])


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    a = (
        math.sin(math.radians(lat2 - lat1) / 2) ** 2
        + math.cos(math.radians(lat1))
        * math.cos(math.radians(lat2))
        * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_METERS * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Fix:
    row_id: str
    participant: int
    moment: dt.datetime  # aware, UTC
    local_date: dt.date
    local_hour: int
    latitude: float
    longitude: float
    accuracy: float | None


def seed_fixes(zone: ZoneInfo) -> list[Fix]:
    out = []
    for row in seed_rows("sensor_gps"):
        moment = dt.datetime.fromisoformat(row["record_time"]).replace(tzinfo=dt.timezone.utc)
        local = moment.astimezone(zone)
        out.append(
            Fix(
                row["_row_id"],
                int(row["participant_id"]),
                moment,
                local.date(),
                local.hour,
                float(row["lat"]),
                float(row["lon"]),
                float(row["accu"]) if row["accu"] else None,
            )
        )
    return out


def home_cell(fix: Fix, cell_meters: float) -> tuple[int, int]:
    """The grid cell of macros/gps.sql: latitude rows, longitude step widened by
    1 / cos(the row's centre)."""
    step = cell_meters / METERS_PER_DEGREE
    row = math.floor(fix.latitude / step)
    return row, math.floor(fix.longitude * math.cos(math.radians((row + 0.5) * step)) / step)


def expected_homes(fixes: list[Fix], config: dict[str, t.Any]) -> dict[int, tuple[float, float]]:
    start, end = config["avicenna_home_night_start_hour"], config["avicenna_home_night_end_hour"]
    cells: dict[int, dict[tuple[int, int], list[Fix]]] = defaultdict(lambda: defaultdict(list))
    for fix in fixes:
        hour = fix.local_hour
        night = start <= hour < end if start < end else hour >= start or hour < end
        if night:
            cells[fix.participant][home_cell(fix, config["avicenna_place_cell_meters"])].append(fix)
    homes = {}
    for participant, by_cell in cells.items():
        _, members = min(by_cell.items(), key=lambda item: (-len(item[1]), item[0]))
        homes[participant] = (
            round(statistics.fmean(f.latitude for f in members), 6),
            round(statistics.fmean(f.longitude for f in members), 6),
        )
    return homes


def day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants of the day's local midnight and the next one."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)


def weighted_mean(values: list[float], weights: list[float]) -> float:
    return sum(w * v for v, w in zip(values, weights, strict=True)) / sum(weights)


def count_places(pauses: list[tuple[float, int, float, float]], radius: float) -> int:
    """Pauses (seconds, run, latitude, longitude): those with no longer pause (ties: the
    earlier run) within `radius` of them."""
    return sum(
        not any(
            (other[0] > pause[0] or (other[0] == pause[0] and other[1] < pause[1]))
            and haversine(pause[2], pause[3], other[2], other[3]) <= radius
            for other in pauses
        )
        for pause in pauses
    )


def day_features(
    valid: list[Fix], bounds: tuple[dt.datetime, dt.datetime], config: dict[str, t.Any]
) -> dict[str, t.Any]:
    """The mobility features of one participant-day's valid fixes (README "Formulas")."""
    max_gap = config["avicenna_gps_max_gap_minutes"] * 60
    static = config["avicenna_gps_static_speed_kmh"] / 3.6
    valid = sorted(valid, key=lambda f: (f.moment, f.row_id))
    durations, steps, moving = [], [], []
    for fix, after in zip(valid, [*valid[1:], None], strict=True):
        gap = ((after.moment if after else bounds[1]) - fix.moment).total_seconds()
        step = (
            haversine(fix.latitude, fix.longitude, after.latitude, after.longitude) if after else 0
        )
        durations.append(gap if gap <= max_gap else 0.0)
        steps.append(step)
        moving.append(after is not None and 0 < gap <= max_gap and step >= static * gap)
    pauses: list[tuple[float, int, float, float]] = []
    runs: dict[int, list[int]] = defaultdict(list)
    run = 0
    for index, is_moving in enumerate(moving):
        run += is_moving
        if not is_moving:
            runs[run].append(index)
    for number, members in runs.items():
        seconds = sum(durations[i] for i in members)
        if seconds >= config["avicenna_place_min_minutes"] * 60 and seconds > 0:
            weights = [durations[i] for i in members]
            pauses.append(
                (
                    seconds,
                    number,
                    weighted_mean([valid[i].latitude for i in members], weights),
                    weighted_mean([valid[i].longitude for i in members], weights),
                )
            )
    covered = sum(durations)
    rog = None
    if covered > 0:
        centre = (
            weighted_mean([f.latitude for f in valid], durations),
            weighted_mean([f.longitude for f in valid], durations),
        )
        squares = [haversine(f.latitude, f.longitude, *centre) ** 2 for f in valid]
        rog = math.sqrt(weighted_mean(squares, durations))
    variance = statistics.pvariance([f.latitude for f in valid]) + statistics.pvariance(
        [f.longitude for f in valid]
    )
    variance = variance if variance >= SAME_POINT_VARIANCE else 0.0
    return {
        "valid_fixes": len(valid),
        "distance_meters": sum(s for s, m in zip(steps, moving, strict=True) if m),
        "location_variance": variance,
        "log_location_variance": math.log(variance) if variance > 0 else None,
        "radius_of_gyration_meters": rog,
        "minutes_covered": covered / 60,
        "minutes_moving": sum(d for d, m in zip(durations, moving, strict=True) if m) / 60,
        "covered_ratio": covered / (bounds[1] - bounds[0]).total_seconds(),
        "places": count_places(pauses, config["avicenna_place_radius_meters"]),
        "durations": durations,
    }


def expected_gps_daily(zone: ZoneInfo) -> dict[Key, dict[str, t.Any]]:
    """Every column of avicenna__gps_daily (but `_loaded_at`) from the seeds."""
    config = package_vars()
    fixes = seed_fixes(zone)
    homes = expected_homes(
        [f for f in fixes if is_valid(f, config["avicenna_gps_max_accuracy_meters"])], config
    )
    days: dict[Key, list[Fix]] = defaultdict(list)
    for fix in fixes:
        days[(fix.participant, fix.local_date)].append(fix)
    out = {}
    for (participant, day), members in days.items():
        bounds = day_bounds(day, zone)
        valid = [f for f in members if is_valid(f, config["avicenna_gps_max_accuracy_meters"])]
        row: dict[str, t.Any] = {
            "participant_id": participant,
            "local_date": day,
            "fixes": len(members),
            "valid_fixes": 0,
            "day_minutes": (bounds[1] - bounds[0]).total_seconds() / 60,
        }
        row.update(dict.fromkeys(FEATURES))
        if valid:
            features = day_features(valid, bounds, config)
            durations = features.pop("durations")
            row.update(features)
            home = homes.get(participant)
            if home is not None:
                distances = [haversine(f.latitude, f.longitude, *home) for f in valid]
                radius = config["avicenna_home_radius_meters"]
                row["max_distance_from_home_meters"] = max(distances)
                row["minutes_at_home"] = (
                    sum(d for d, far in zip(durations, distances, strict=True) if far <= radius)
                    / 60
                )
                row["home_latitude"], row["home_longitude"] = home
        out[(participant, day)] = row
    return out


def is_valid(fix: Fix, max_accuracy: float) -> bool:
    return (fix.accuracy or 0) <= max_accuracy


def check_gps_daily(mart: Rows, zone: ZoneInfo) -> None:
    """avicenna__gps_daily's rows, built in `zone`, equal the recomputation on every row
    and column; the daylight-saving days, the places day and the still day hold their
    known values."""
    rows = by_day(mart)
    want = expected_gps_daily(zone)
    assert set(rows) == set(want)
    for key, values in want.items():
        got = {**rows[key], "local_date": key[1]}
        assert set(got) - {"_loaded_at"} == set(values), key
        differ = {k: (got[k], v) for k, v in values.items() if not same_value(got[k], v)}
        assert not differ, (key, differ)

    seeds = load_generator()
    if zone == NEW_YORK:
        # one 59 km move across the repeated hour of a 25 h day, not a zigzag
        move = rows[(21, dt.date(2025, 11, 2))]
        assert move["day_minutes"] == 1500 and move["minutes_covered"] == 299, move
        assert math.isclose(
            move["distance_meters"], haversine(*seeds.TORONTO, *seeds.HAMILTON), rel_tol=TOLERANCE
        ), move
        spring = rows[(4, dt.date(2025, 3, 9))]
        assert spring["day_minutes"] == 1380 and spring["minutes_covered"] == 1380, spring
        assert close(spring["covered_ratio"], 1.0), spring
    else:
        move = rows[(5, dt.date(2025, 4, 6))]
        assert move["day_minutes"] == 1500 and close(move["minutes_covered"], 1500), move
        assert math.isclose(
            move["distance_meters"],
            haversine(*seeds.SYDNEY_CBD, *seeds.PARRAMATTA),
            rel_tol=TOLERANCE,
        ), move
        spring = rows[(5, dt.date(2025, 10, 5))]
        assert spring["day_minutes"] == 1380 and close(spring["covered_ratio"], 1.0), spring
    # the places seed's days are local days of New York (in Sydney each spans two)
    if zone == NEW_YORK:
        assert rows[(6, dt.date(2025, 6, 10))]["places"] == 3
        still = rows[(6, dt.date(2025, 6, 11))]
        assert still["distance_meters"] < 1000 and still["places"] == 1, still


# --- DuckDB ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Builds:
    """The GPS marts of the two builds (zone -> avicenna__gps_daily's rows), and the
    project, left built in Sydney's zone."""

    marts: dict[ZoneInfo, Rows]
    project: DuckDBProject


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Builds]:
    """The GPS models built on the GPS seed in the project's zone, then rebuilt (full
    refresh) in Sydney's; each build's rows kept."""
    if not (DUCKDB_VENV / "dbt").exists():
        pytest.fail("the dbt-duckdb utility is missing: run `bash scripts/setup.sh`", pytrace=False)
    work = tmp_path_factory.mktemp("dbt-gps")
    project = DuckDBProject(work / "warehouse.duckdb", work, schema="gps")
    marts: dict[ZoneInfo, Rows] = {}
    try:
        project.session.dbt("deps")
        project.session.dbt("seed", "--select", "sensor_gps")
        for zone in (NEW_YORK, SYDNEY):
            vars_ = f"{{avicenna_timezone: {zone.key}}}"
            project.build("--select", *GPS_MODELS, "--full-refresh", "--vars", vars_)
            marts[zone] = project.query(f"select * from {project.schema}.avicenna__gps_daily")
        yield Builds(marts, project)
    finally:
        project.session.close()


@pytest.mark.parametrize("zone", [NEW_YORK, SYDNEY], ids=lambda zone: zone.key)
def test_given_gps_seeds_when_built_in_a_zone_then_every_column_is_the_recomputation(
    builds: Builds, zone: ZoneInfo
) -> None:
    check_gps_daily(builds.marts[zone], zone)


def test_given_recomputation_when_compared_with_the_old_definitions_then_they_differ() -> None:
    """The seeds tell the definitions apart: summing every step would give the still day
    kilometres of noise and the repeated hour's move its length twice over."""
    config = package_vars()
    valid = [f for f in seed_fixes(NEW_YORK) if f.participant == 6]
    still = sorted(
        (f for f in valid if f.local_date == dt.date(2025, 6, 11)), key=lambda f: f.moment
    )
    every_step = sum(
        haversine(a.latitude, a.longitude, b.latitude, b.longitude)
        for a, b in itertools.pairwise(still)
    )
    features = day_features(still, day_bounds(dt.date(2025, 6, 11), NEW_YORK), config)
    assert every_step > 5000 and features["distance_meters"] < 1000, every_step


def test_given_late_fixes_when_built_incrementally_then_same_gps_marts_as_a_full_refresh(
    builds: Builds,
) -> None:
    """Late fixes of participant 6: its still day again a day later (a new day), and a
    fix 1 km off at work on an already built day. The incremental build recomputes the
    built day and adds the new one, and equals a full refresh."""
    project, schema = builds.project, builds.project.schema
    late = "2030-01-01 00:00:00"
    project.execute(
        f"insert into {schema}.sensor_gps select md5(_row_id || 'late'), participant_id, "
        f"record_time + interval 1 day, lat, lon, accu, provider, timestamp '{late}' "
        f"from {schema}.sensor_gps where participant_id = 6 "
        f"and record_time >= timestamp '2025-06-11 04:00:00'",
        mode="write",
    )
    project.execute(
        f"insert into {schema}.sensor_gps select md5(_row_id || 'noon'), participant_id, "
        f"record_time + interval 2 minute, lat + 0.01, lon, accu, provider, timestamp '{late}' "
        f"from {schema}.sensor_gps where participant_id = 6 "
        f"and record_time = timestamp '2025-06-10 16:00:00'",
        mode="write",
    )
    sydney = ("--vars", f"{{avicenna_timezone: {SYDNEY.key}}}")
    mart = f"select * exclude (_loaded_at) from {schema}.avicenna__gps_daily order by all"
    before = project.query(mart)
    output = project.build("--select", *GPS_MODELS, *sydney)
    assert "incremental" in output.lower(), output[-2000:]
    incremental = project.query(mart)
    changed = [row for row in before if row not in incremental]
    assert len(incremental) > len(before) and changed, changed
    project.build("--select", *GPS_MODELS, "--full-refresh", *sydney)
    assert_same_tables({"gps": project.query(mart)}, {"gps": incremental})
