"""Deterministic sensor and participation data (pure functions, no server state)."""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from itertools import chain
from operator import itemgetter
from zoneinfo import ZoneInfo

from .clock import to_ms
from .config import DataSourceConfig, ParticipantConfig, StudyConfig

Row = list[str]
TimeFormatter = Callable[[int], str]

MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
DAY_MS = 86_400_000

COMMON_COLUMNS = ("user_id", "device_id", "study_id", "record_time")
KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    "gps": ("lat", "lon", "alt", "accu", "bearing", "speed", "provider", "satellite_time"),
    "accelerometer": ("x_axis", "y_axis", "z_axis", "accu"),
    "battery": ("level", "scale", "plugged"),
}
PARTICIPATION_COLUMNS = ("participant_id", "start_time", "end_time")
PARTICIPATION_TITLE = ("Avicenna ID", "Start Time", "End Time")
NULL_WORDS = ("None", "null", "NULL", "NA", "N/A", "#N/A", "-", "NaT", "NaN", "nan")
"""What pandas, R, Excel and SQL dumps write for a missing value (`null_word_rate`)."""
ODD_CELLS = ("high", "n.a.", "#VALUE!", "12 m/s", "?", "ERR:502", "1.2.3")
"""Cells of no type a hand-edited or foreign file holds (`odd_cell_rate`)."""
VALUE_AT = len(COMMON_COLUMNS)  # sensor cells from here on are the data source's values


def mix64(x: int) -> int:
    """SplitMix64 finaliser: a fast, well-spread 64-bit hash of an integer."""
    x = ((x ^ (x >> 30)) * _M1) & MASK64
    x = ((x ^ (x >> 27)) * _M2) & MASK64
    return x ^ (x >> 31)


def seed_of(*parts: int) -> int:
    """Hash a tuple of integers into 64 bits."""
    h = _GOLDEN
    for part in parts:
        h = mix64(((h ^ (part & MASK64)) + _GOLDEN) & MASK64)
    return h


def device_id(study_id: int, participant_id: int) -> str:
    """The participant's (single) device: 16 lower-case hex digits."""
    return f"{seed_of(study_id, participant_id, 0xDE71CE):016x}"


def title_header(column: str) -> str:
    """``user_id`` -> ``User ID``, ``x_axis`` -> ``X Axis``."""
    return " ".join("ID" if w == "id" else w.capitalize() for w in column.split("_"))


_HMS: list[str] = []


def _hms_table() -> list[str]:
    if not _HMS:
        _HMS.extend(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400))
    return _HMS


def make_time_formatter(style: str, local_zone: str = "UTC") -> TimeFormatter:
    """Formatter of epoch ms for a ``timestamp_style`` (space, iso_z, offset, epoch_ms, or
    local: wall time in ``local_zone`` without an offset)."""
    if style == "epoch_ms":
        return str
    if style == "local":
        zone = ZoneInfo(local_zone)
        epoch_dt = datetime(1970, 1, 1, tzinfo=timezone.utc)

        def local(ms: int) -> str:
            wall = (epoch_dt + timedelta(milliseconds=ms)).astimezone(zone)
            return f"{wall:%Y-%m-%d %H:%M:%S}.{ms % 1000:03d}000"

        return local
    shift, sep, suffix = 0, " ", "000+00:00"
    if style == "iso_z":
        sep, suffix = "T", "Z"
    elif style == "offset":
        shift, suffix = 7_200_000, "000+02:00"
    elif style != "space":
        raise ValueError(f"unknown timestamp style {style!r}")
    hms = _hms_table()
    millis = [f".{m:03d}{suffix}" for m in range(1000)]
    days: dict[int, str] = {}
    epoch = date(1970, 1, 1)

    def fmt(ms: int) -> str:
        day, rem = divmod(ms + shift, DAY_MS)
        sec, milli = divmod(rem, 1000)
        prefix = days.get(day)
        if prefix is None:
            prefix = days[day] = (epoch + timedelta(days=day)).isoformat() + sep
        return prefix + hms[sec] + millis[milli]

    return fmt


@dataclass(frozen=True)
class FileKnobs:
    """The effective file-shape knobs of one export."""

    timestamp_style: str = "space"
    header_style: str = "snake"
    file_format: str = "zip"
    zip_members: int = 1
    bom: bool = False


def sensor_knobs(study: StudyConfig, source: DataSourceConfig) -> FileKnobs:
    """Data-source knobs, falling back to the study's."""
    return FileKnobs(
        timestamp_style=source.timestamp_style or study.timestamp_style,
        header_style=source.header_style or study.header_style,
        file_format=source.file_format or study.file_format,
        zip_members=source.zip_members or study.zip_members,
        bom=study.bom if source.bom is None else source.bom,
    )


@dataclass(frozen=True)
class SensorRequest:
    """A sensor export request: ``[start_ms, end_ms)``; ``participant_ids`` None = all."""

    study_id: int
    data_source: int
    start_ms: int
    end_ms: int
    participant_ids: tuple[int, ...] | None = None


def sensor_columns(source: DataSourceConfig) -> list[str]:
    """Snake-case column names of a data source's CSV."""
    extra = KIND_COLUMNS.get(source.kind, tuple(source.columns))
    return [*COMMON_COLUMNS, *extra]


def select_participants(
    study: StudyConfig, participant_ids: tuple[int, ...] | None
) -> list[ParticipantConfig]:
    """Requested participants (all when None), sorted by id; unknown ids are skipped."""
    if participant_ids is None:
        return sorted(study.participants, key=lambda p: p.id)
    wanted = set(participant_ids)
    return sorted((p for p in study.participants if p.id in wanted), key=lambda p: p.id)


def _participant_rows(
    study_id: int,
    source_id: int,
    source: DataSourceConfig,
    participant: ParticipantConfig,
    lo: int,
    hi: int,
    fmt: TimeFormatter,
    seed: int,
) -> Iterator[tuple[int, Row]]:
    """(record ms, row) of one participant for record times in ``[lo, hi)``.

    Tick ``k`` of the source's grid records at ``k * interval + jitter(k)``; values come
    from a 64-bit hash of (seed, study, participant, source, k). Decimal values are built
    as integers and divided (``repr`` then gives the short form, like ``repr(round(v, 6))``).
    """
    interval = max(1, round(source.interval_seconds * 1000))
    jitter = min(interval, 30_000)
    if source.jitter_seconds is not None:
        jitter = max(1, round(source.jitter_seconds * 1000))
    kind = source.kind
    base = seed_of(seed, study_id, participant.id, source_id)
    uid, dev, sid = str(participant.id), device_id(study_id, participant.id), str(study_id)
    home = seed_of(seed, study_id, participant.id)
    lat0 = 45_000_000 + (home & 0xFFFFF) * 8
    lon0 = -75_000_000 - ((home >> 20) & 0xFFFFF) * 8
    n_generic = len(source.columns)
    for k in range(max(0, lo // interval), (hi - 1) // interval + 1):
        x = (base + k * _GOLDEN) & MASK64
        x = ((x ^ (x >> 30)) * _M1) & MASK64
        x = ((x ^ (x >> 27)) * _M2) & MASK64
        h = x ^ (x >> 31)
        t = ((h ^ _GOLDEN) * _M2) & MASK64
        t ^= t >> 29
        off = t % jitter
        if t & 7 == 0:
            off -= off % 1000
        ms = k * interval + off
        if ms < lo or ms >= hi:
            continue
        stamp = fmt(ms)
        if kind == "gps":
            provider = "fused" if (h >> 40) % 5 == 0 else "gps"
            yield (
                ms,
                [uid, dev, sid, stamp, *_gps(h, lat0, lon0), provider, fmt(ms - (h >> 50) % 5000)],
            )
            if k % 7 == 0:
                yield ms, [uid, dev, sid, stamp, *_gps(t, lat0, lon0), "network", fmt(ms - 1000)]
        elif kind == "accelerometer":
            yield (
                ms,
                [
                    uid,
                    dev,
                    sid,
                    stamp,
                    repr(((h & 0xFFFF) * 30 - 983_040) / 1_000_000),
                    repr((((h >> 16) & 0xFFFF) * 30 - 983_040) / 1_000_000),
                    repr((9_544_506 + ((h >> 32) & 0xFFFF) * 8) / 1_000_000),
                    str(1 + (h >> 60) % 3),
                ],
            )
        elif kind == "battery":
            yield ms, [uid, dev, sid, stamp, str(h % 101), "100", str((h >> 8) % 3)]
        else:
            cells = [repr((mix64(h + i) % 100_000_000) / 1_000_000) for i in range(n_generic)]
            yield ms, [uid, dev, sid, stamp, *cells]


def _gps(h: int, lat0: int, lon0: int) -> tuple[str, str, str, str, str, str]:
    """lat, lon, alt, accu, bearing, speed."""
    return (
        repr((lat0 + (h & 0xFFFF) - 32_768) / 1_000_000),
        repr((lon0 + ((h >> 16) & 0xFFFF) - 32_768) / 1_000_000),
        repr((48_000 + ((h >> 32) & 0xFFF)) / 100),
        repr((60 + ((h >> 44) & 0x3FF)) / 20),
        repr(((h >> 8) % 36_000) / 100),
        repr(((h >> 24) % 300) / 100),
    )


def sensor_table(
    study: StudyConfig,
    request: SensorRequest,
    cutoff_ms: int,
    seed: int = 0,
) -> tuple[list[str], Iterator[Row]]:
    """Header and rows of a sensor export whose data stops at ``cutoff_ms`` (the clock).

    Rows lie in ``[start_ms, end_ms)`` (``(start_ms, end_ms]`` with ``window_includes``
    "end"; by upload time with ``upload_delay_seconds``), inside each participant's period
    and before the cutoff; ordered by participant then time (``row_order`` "time": by time
    overall). Cells never need CSV quoting.
    """
    source = study.data_sources[request.data_source]
    knobs = sensor_knobs(study, source)
    columns = sensor_columns(source)
    header = [title_header(c) for c in columns] if knobs.header_style == "title" else columns
    fmt = make_time_formatter(knobs.timestamp_style, study.local_time_zone)
    shift = 1 if study.window_includes == "end" else 0
    start_ms, end_ms = request.start_ms + shift, request.end_ms + shift
    delay = round(study.upload_delay_seconds * 1000)
    streams: list[Iterator[tuple[int, Row]]] = []
    for p in select_participants(study, request.participant_ids):
        lo = max(start_ms - delay, to_ms(p.start))
        hi = min(end_ms, cutoff_ms, to_ms(p.end) if p.end else cutoff_ms)
        if lo < hi:
            rows = _participant_rows(
                request.study_id, request.data_source, source, p, lo, hi, fmt, seed
            )
            if delay:
                rows = _uploaded(rows, p.id, delay, start_ms, min(end_ms, cutoff_ms), seed)
            streams.append(rows)
    if study.row_order == "time":
        merged: Iterator[tuple[int, Row]] = heapq.merge(*streams, key=itemgetter(0))
    else:
        merged = chain.from_iterable(streams)
    rows_out: Iterator[Row] = map(itemgetter(1), merged)
    if study.null_word_rate or study.odd_cell_rate:
        rows_out = _with_dirt(rows_out, study.null_word_rate, study.odd_cell_rate, seed)
    return header, rows_out


def upload_ms(record_ms: int, participant_id: int, delay_ms: int, seed: int = 0) -> int:
    """When a reading reached the server: up to ``delay_ms`` after its record time."""
    return record_ms + seed_of(seed, participant_id, record_ms, 0x0B10AD) % (delay_ms + 1)


def _uploaded(
    rows: Iterator[tuple[int, Row]], participant_id: int, delay: int, lo: int, hi: int, seed: int
) -> Iterator[tuple[int, Row]]:
    """The rows uploaded in ``[lo, hi)``."""
    for ms, row in rows:
        if lo <= upload_ms(ms, participant_id, delay, seed) < hi:
            yield ms, row


def _with_dirt(rows: Iterator[Row], null_rate: float, odd_rate: float, seed: int) -> Iterator[Row]:
    """Value cells replaced by a null word or an odd cell at the given rates; the same row
    gets the same cells in every export (drawn from a hash of its text)."""
    null_below = int(null_rate * 2**32)
    odd_below = int((null_rate + odd_rate) * 2**32)
    for row in rows:
        h = seed_of(seed, zlib.crc32(",".join(row).encode()))
        for i in range(VALUE_AT, len(row)):
            h = mix64((h + _GOLDEN) & MASK64)
            roll = h & 0xFFFFFFFF
            if roll < null_below:
                row[i] = NULL_WORDS[(h >> 32) % len(NULL_WORDS)]
            elif roll < odd_below:
                row[i] = ODD_CELLS[(h >> 32) % len(ODD_CELLS)]
        yield row


def participation_table(study: StudyConfig, cutoff_ms: int) -> tuple[list[str], list[Row]]:
    """One row per participant who had joined before the cutoff: id, start, end and a
    status column (``participation_status``); an open end is ``participation_open_end``."""
    fmt = make_time_formatter(study.timestamp_style, study.local_time_zone)
    status_column = "status" if study.participation_status == "status" else "status_id"
    if study.header_style == "title":
        header = [*PARTICIPATION_TITLE, title_header(status_column)]
    else:
        header = [*PARTICIPATION_COLUMNS, status_column]
    rows = [
        [
            str(p.id),
            fmt(to_ms(p.start)),
            fmt(to_ms(p.end)) if p.end else study.participation_open_end,
            _participation_status(study, p),
        ]
        for p in sorted(study.participants, key=lambda p: p.id)
        if to_ms(p.start) < cutoff_ms
    ]
    return header, rows


def _participation_status(study: StudyConfig, participant: ParticipantConfig) -> str:
    if study.participation_status == "status_id":
        return str(participant.status_id)
    if study.participation_status == "status_id_labels":
        return participant.status.capitalize()
    return participant.status


def refused(study: StudyConfig, columns: list[str]) -> str | None:
    """The answer to a filter export asking for ``refused_columns``, if it does."""
    named = [c for c in columns if c in study.refused_columns]
    return f"Unknown column(s): {', '.join(named)}." if named else None


def as_dicts(header: list[str], rows: Iterator[Row] | list[Row]) -> list[dict[str, str]]:
    """Rows as ``{header: cell}`` dicts."""
    return [dict(zip(header, row, strict=True)) for row in rows]


def expected_rows(
    study: StudyConfig, request: SensorRequest, cutoff_ms: int, seed: int = 0
) -> list[dict[str, str]]:
    """Exactly the rows (header -> cell text) of a sensor export with this cutoff."""
    header, rows = sensor_table(study, request, cutoff_ms, seed)
    return as_dicts(header, rows)
