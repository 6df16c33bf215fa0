"""Hostile and broken export files, end to end: the tap as a subprocess against the simulator.

Each case serves its bytes instead of the sensor export's file (the simulator's
`replace_next_files`) in a one-export sync (participant 101, accelerometer, 2025-01-01 to
2025-01-03) and checks the rule: every file is handled deliberately, either the rows are
kept (exit 0, the expected records, the window completed in STATE) or the sync fails
(exit 1, one ERROR line naming the export, the line where there is one, and the reason; no
STATE claims the window), and never a traceback.

A broken file is served `served` times in a row (by default as many times as the tap may
download one export), as a server would whose file is broken; `downloads` is how many
times the tap fetches it (3 when the file looks cut short, as an interrupted download
leaves it; 1 when it is whole but broken or hostile).
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import re
import typing as t
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tap_avicenna.simulator import Simulator
from tests.conftest import (
    TapRun,
    catalog_file,
    expected_sensor_rows,
    make_simulator,
    multiset,
    run_tap,
    tap_config,
)

STREAM = "sensor_accelerometer"
WINDOW_END = "2025-01-03T00:00:00.000000+00:00"
EXPORT = (
    r"export #\d+ \[sensor_accelerometer 2025-01-01 00:00\.\.2025-01-03 00:00 participants 101\]"
)
COLUMNS = ("user_id", "device_id", "study_id", "record_time", "x_axis", "y_axis", "z_axis", "accu")
HEADER = ",".join(COLUMNS)
JAN1 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
BOMB_BYTES = 200 * 1024 * 1024
LIMIT_BYTES = 1024 * 1024  # max_uncompressed_file_mb: 1
BIG = "x" * 200_000  # more than the csv module's default field limit (131,072)
MISSING = object()  # a field the record does not have


# --- building files ------------------------------------------------------------------


def row(seconds: int, **cells: str) -> str:
    """One CSV line of participant 101, `seconds` after the window start."""
    when = JAN1 + dt.timedelta(seconds=seconds)
    values = {
        "user_id": "101",
        "device_id": "dev1",
        "study_id": "1234",
        "record_time": when.strftime("%Y-%m-%d %H:%M:%S.000000+00:00"),
        "x_axis": "0.1",
        "y_axis": "0.2",
        "z_axis": "9.8",
        "accu": "3",
        **cells,
    }
    return ",".join(values[c] for c in COLUMNS)


def lines(*text: str) -> bytes:
    return "".join(f"{line}\r\n" for line in text).encode()


def zipped(*members: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name, date_time=(2025, 1, 3, 0, 0, 0)), data)
    return buffer.getvalue()


def many_rows(count: int) -> list[str]:
    return [row(10 * i, x_axis=f"{i / 1000:.3f}") for i in range(count)]


def invalid_utf8_on_line(count: int, line: int) -> bytes:
    """`count` rows, an invalid UTF-8 byte in the device id on physical `line` (header: 1)."""
    text = lines(HEADER, *many_rows(count)).split(b"\r\n")
    text[line - 1] = text[line - 1].replace(b"dev1", b"d\xffv1")
    return b"\r\n".join(text)


def _bomb_chunks() -> t.Iterator[bytes]:
    """~200 MB of repeated in-window CSV rows, in chunks of ~640 KB."""
    chunk = lines(*[row(60)] * 10_000)
    yield lines(HEADER)
    written = 0
    while written < BOMB_BYTES:
        yield chunk
        written += len(chunk)


def build_bombs(folder: Path) -> None:
    with (
        zipfile.ZipFile(folder / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf,
        zf.open("data.csv", "w") as member,
    ):
        for chunk in _bomb_chunks():
            member.write(chunk)
    with gzip.open(folder / "bomb.csv.gz", "wb") as gz:
        for chunk in _bomb_chunks():
            gz.write(chunk)


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


# --- the cases -----------------------------------------------------------------------


@dataclass(frozen=True)
class Keeps:
    """Exit 0; these records (each a subset of fields, in file order); the window done."""

    rows: tuple[dict[str, t.Any], ...] = ()
    simulator_rows: bool = False  # the records are exactly the simulator's own file's rows
    log: str | None = None  # a regex stderr must match (how the tap says what it did)


@dataclass(frozen=True)
class Fails:
    """Exit 1; one ERROR line naming the export, then `reason` (a regex). A RECORD sync
    emits at most the `before` rows that come before the fault (0: the file is refused
    before a row is read); a BATCH sync announces none."""

    reason: str
    before: int = 0


@dataclass(frozen=True)
class HostileFile:
    id: str
    build: t.Callable[[Path], bytes]  # the file's bytes (the argument: where the bombs are)
    expect: Keeps | Fails
    outcome: str  # for the README
    served: int = 3
    downloads: int = 1
    settings: dict[str, t.Any] = field(default_factory=dict)


def kept(seconds: int, **values: t.Any) -> dict[str, t.Any]:
    when = (JAN1 + dt.timedelta(seconds=seconds)).isoformat(timespec="microseconds")
    return {"participant_id": 101, "record_time": when, **values}


GOOD_ZIP = zipped(("data.csv", lines(HEADER, *many_rows(200))))
GOOD_GZIP = gzip.compress(lines(HEADER, *many_rows(5000)))

CASES: list[HostileFile] = [
    HostileFile(
        "zip-member-absolute-path",
        lambda _: zipped(("data.csv", lines(HEADER, row(60))), ("/etc/evil.csv", lines(HEADER))),
        Fails(r": ZIP member '/etc/evil\.csv' has an unsafe path"),
        "sync fails: ZIP member '/etc/evil.csv' has an unsafe path (refused before reading)",
        downloads=1,
    ),
    HostileFile(
        "zip-member-parent-path",
        lambda _: zipped(("../evil.csv", lines(HEADER, row(60)))),
        Fails(r": ZIP member '\.\./evil\.csv' has an unsafe path"),
        "sync fails: ZIP member '../evil.csv' has an unsafe path (refused before reading)",
        downloads=1,
    ),
    HostileFile(
        "zip-bomb",
        lambda bombs: (bombs / "bomb.zip").read_bytes(),
        Fails(rf": CSV members declare 2\d{{8}} bytes, more than {LIMIT_BYTES} "),
        "sync fails: the members declare more than `max_uncompressed_file_mb` (refused before "
        "reading)",
        downloads=1,
        settings={"max_uncompressed_file_mb": 1},
    ),
    HostileFile(
        "gzip-bomb",
        lambda bombs: (bombs / "bomb.csv.gz").read_bytes(),
        Fails(
            rf": expands to more than {LIMIT_BYTES} bytes .*refusing to read further",
            LIMIT_BYTES // len(lines(row(60))),
        ),
        "sync fails once the data read expands beyond `max_uncompressed_file_mb`",
        settings={"max_uncompressed_file_mb": 1},
    ),
    HostileFile(
        "row-with-more-fields",
        lambda _: lines(HEADER, row(60), row(120) + ",surprise"),
        Fails(r" line 3: row has 9 cells but the header has 8 \(1 extra\)", 1),
        "sync fails: line 3: row has 9 cells but the header has 8",
    ),
    HostileFile(
        "row-with-extra-empty-fields",
        lambda _: lines(HEADER, row(60), row(120) + ",,"),
        Keeps((kept(60, accu=3), kept(120, x_axis=0.1, accu=3))),
        "row kept: extra cells that are all empty (trailing commas) are dropped",
    ),
    HostileFile(
        "row-with-fewer-fields",
        lambda _: lines(HEADER, "101,dev1,1234,2025-01-01 00:02:00.000000+00:00,0.5"),
        Keeps((kept(120, device_id="dev1", x_axis=0.5, y_axis=None, z_axis=None, accu=None),)),
        "row kept: the missing cells are null",
    ),
    HostileFile(
        "nul-bytes-in-cells",
        lambda _: lines(HEADER, row(120, device_id="de\x00v1\x00", x_axis="0.\x005")),
        Keeps((kept(120, device_id="dev1", x_axis=0.5),)),
        "row kept: NUL characters removed (`de\\0v1` -> `dev1`, `0.\\05` -> 0.5)",
    ),
    HostileFile(
        "invalid-utf8",
        lambda _: (
            lines(HEADER, row(60)) + b"101,d\xffv1,1234,2025-01-01 00:02:00+00:00,1,2,3,4\r\n"
        ),
        Fails(r" line 3: invalid UTF-8 \(byte 0xff", 1),
        "sync fails: line 3: invalid UTF-8 (byte 0xff ...)",
    ),
    HostileFile(
        "invalid-utf8-past-first-256kb",
        lambda _: invalid_utf8_on_line(10_000, 8_000),  # ~500 KB into the file
        Fails(r" line 8000: invalid UTF-8 \(byte 0xff", 7998),
        "sync fails: the line number is right deep in the file (line 8000, ~500 KB in)",
    ),
    HostileFile(
        "huge-field-in-unknown-column",
        lambda _: lines(f"{HEADER},note", f"{row(60)},{BIG}"),
        Keeps((kept(60, note=BIG),), log=r"brings column\(s\) the schema did not have: note"),
        "row kept: a 200,000-character cell (new string column) whole",
    ),
    HostileFile(
        "huge-field-in-fields-override",
        lambda _: lines(f"{HEADER},note", f"{row(60)},{BIG}"),
        Keeps((kept(60, note=BIG),)),
        "row kept: a 200,000-character cell (a `fields` string column) whole",
        settings={
            "data_sources": [{"id": 20, "name": "accelerometer", "fields": {"note": "string"}}]
        },
    ),
    HostileFile(
        "empty-file",
        lambda _: b"",
        Keeps(log=r"is empty"),
        "no records; the export counts as valid and empty: the window is completed in STATE",
    ),
    HostileFile(
        "header-only",
        lambda _: lines(HEADER),
        Keeps(),
        "no records; the window is completed in STATE",
    ),
    HostileFile(
        "truncated-zip-every-time",
        lambda _: _half(GOOD_ZIP),
        Fails(r": not a readable ZIP file, truncated\?"),
        "downloaded 3 times, then sync fails: not a readable ZIP file, truncated?",
        downloads=3,
    ),
    HostileFile(
        "truncated-zip-once",
        lambda _: _half(GOOD_ZIP),
        Keeps(simulator_rows=True, log=r"truncated\?.*; downloading it again"),
        "downloaded again; the whole file's rows are emitted",
        served=1,
        downloads=2,
    ),
    HostileFile(
        "truncated-gzip",
        lambda _: _half(GOOD_GZIP),
        Fails(r": corrupt or truncated data \(Compressed file ended", 4999),
        "sync fails: corrupt or truncated data",
    ),
    HostileFile(
        "value-not-of-its-type",
        lambda _: lines(HEADER, row(60), row(120, x_axis="abc")),
        Keeps(
            (
                kept(60, x_axis=0.1),
                kept(120, x_axis=None, y_axis=0.2, _untyped_cells='{"x_axis":"abc"}'),
            ),
            log=r"1 cell\(s\) did not fit their column's type.*\(x_axis: 1\)",
        ),
        "row kept: the field is null, the cell's text is kept in `_untyped_cells` "
        '(`{"x_axis":"abc"}`); one WARNING per export counts them per column',
    ),
    HostileFile(
        "value-not-of-its-type-strict",
        lambda _: lines(HEADER, row(60), row(120, x_axis="abc")),
        Fails(r" line 3: column 'x_axis': cannot read 'abc' as number", 1),
        "with `strict_types`: sync fails: line 3: column 'x_axis': cannot read 'abc' as number",
        settings={"strict_types": True},
    ),
    HostileFile(
        "value-not-of-its-type-in-zip-strict",
        lambda _: zipped(("accel.csv", lines(HEADER, row(60), row(120, accu="high")))),
        Fails(r" \(accel\.csv\) line 3: column 'accu': cannot read 'high' as integer", 1),
        "with `strict_types`: sync fails, naming the ZIP member, line, column and value",
        settings={"strict_types": True},
    ),
    HostileFile(
        "null-words-in-typed-columns",
        lambda _: lines(
            HEADER,
            row(60, x_axis="None", y_axis="NaN", z_axis="N/A", accu="-"),
            row(120, device_id="NULL", accu="NA"),
        ),
        Keeps(
            (
                kept(60, x_axis=None, y_axis=None, z_axis=None, accu=None),
                kept(120, device_id="NULL", accu=None, _untyped_cells=MISSING),
            )
        ),
        "row kept: `None`, `null`, `NA`, `N/A`, `#N/A`, `<NA>`, `-`, `NaN`, `NaT` (any case) "
        "are null in typed columns; string columns keep the text",
    ),
    HostileFile(
        "non-data-members-in-zip",
        lambda _: zipped(
            ("codebook.csv", lines("column,description", "x_axis,m/s2")),
            ("data.csv", lines(HEADER, row(60))),
            ("README.txt", b"Exported by Avicenna\r\n"),
        ),
        Keeps(
            (kept(60),),
            log=r"skipped ZIP member\(s\) without data: README\.txt \(not CSV\); codebook\.csv "
            r"\(no participant_id or record_time column among column, description\)",
        ),
        "rows of the data members kept; members without the participant or time column, "
        "or not CSV, skipped with one WARNING naming them",
    ),
    HostileFile(
        "zip-without-data-members",
        lambda _: zipped(("codebook.csv", lines("column,description", "x_axis,m/s2"))),
        Fails(r": no ZIP member holds data: codebook\.csv \(no participant_id or record_time"),
        "sync fails: no ZIP member holds data (nothing shows the file is the export asked for)",
    ),
    HostileFile(
        "csv-without-participant-column",
        lambda _: lines("a,b", "1,2"),
        Fails(r": no participant_id or record_time column among a, b"),
        "sync fails: no participant or record time column",
    ),
    HostileFile(
        "unterminated-quote",
        lambda _: lines(HEADER, row(60), '101,"dev1,1234'),
        Fails(r" line 3: unexpected end of data", 1),
        "sync fails: line 3: unexpected end of data",
    ),
    HostileFile(
        "rows-of-other-participants-and-times",
        lambda _: lines(
            HEADER, row(60), row(120, user_id="999"), row(3 * 86400), row(-60), row(180)
        ),
        Keeps(
            (kept(60), kept(180)),
            log=r": 3 row\(s\) of other participants or outside start_date\.\.end_date",
        ),
        "only the export's participants' rows from `start_date` to `end_date` are emitted; "
        "the others are counted in the log",
    ),
]


# --- running -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> t.Iterator[Simulator]:
    simulator = make_simulator(processing_delay=0.05)
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bombs")
    build_bombs(folder)
    return folder


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory: pytest.TempPathFactory) -> t.Callable[[dict[str, t.Any]], Path]:
    """A catalog selecting the sensor stream only (the participants stream runs an
    export whose download would take the replaced file), one per `data_sources`."""
    folder = tmp_path_factory.mktemp("catalogs")
    made: dict[str, Path] = {}

    def catalog_for(config: dict[str, t.Any]) -> Path:
        key = json.dumps(config["data_sources"], sort_keys=True)
        if key not in made:
            made[key] = catalog_file(folder / f"catalog-{len(made)}", config, STREAM)
        return made[key]

    return catalog_for


def hostile_config(sim: Simulator, settings: dict[str, t.Any]) -> dict[str, t.Any]:
    small = {
        "participant_ids": [101],
        "data_sources": [{"id": 20, "name": "accelerometer"}],
        "start_date": "2025-01-01T00:00:00Z",
        "end_date": "2025-01-03T00:00:00Z",
        "export_window_days": 7,
        "poll_interval_seconds": 0.05,
    }
    return tap_config(sim, **{**small, **settings})


def claimed(run: TapRun) -> list[dict[str, t.Any]]:
    """The participant bookmarks of every STATE the run wrote."""
    return [
        state.get("bookmarks", {}).get(STREAM, {}).get("participants") or {}
        for state in run.states()
    ]


@pytest.mark.parametrize("mode", ["records", "batch"])
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_given_hostile_export_file_when_synced_then_row_kept_or_sync_fails_with_line_and_reason(
    sim: Simulator,
    bombs: Path,
    catalogs: t.Callable[[dict[str, t.Any]], Path],
    tmp_path: Path,
    case: HostileFile,
    mode: str,
) -> None:
    """The same outcome with RECORD messages and with BATCH files (Parquet, written from
    Arrow columns when the file allows it, else row by row)."""
    config = hostile_config(sim, case.settings)
    if mode == "batch":
        (tmp_path / "files").mkdir()
        config["batch_config"] = {
            "encoding": {"format": "parquet", "compression": "none"},
            "storage": {"root": (tmp_path / "files").as_uri()},
        }
    catalog = catalogs(config)
    sim.faults.replace_next_files = [case.build(bombs)] * case.served
    downloads_before = sim.stats()["download"]

    run = run_tap(tmp_path, config, None, "--catalog", str(catalog), timeout=60)

    tail = run.stderr[-3000:]
    assert "Traceback" not in run.stderr, tail
    assert sim.stats()["download"] - downloads_before == case.downloads, tail
    if isinstance(case.expect, Fails):
        assert run.returncode == 1, tail
        errors = run.error_lines()
        assert len(errors) == 1, tail
        assert re.search(EXPORT + ".*" + case.expect.reason, errors[0]), errors[0]
        for marks in claimed(run):
            assert "101" not in marks, f"a STATE claims the failed window: {marks}"
        assert len(run.records(STREAM)) <= (case.expect.before if mode == "records" else 0)
        return

    assert run.returncode == 0, tail
    assert not run.error_lines(), tail
    records = run.records(STREAM)
    if case.expect.simulator_rows:
        assert records
        assert multiset(records) == multiset(expected_sensor_rows(sim, config, 20))
    else:
        assert len(records) == len(case.expect.rows), records
        for record, wanted in zip(records, case.expect.rows, strict=True):
            assert {name: record.get(name, MISSING) for name in wanted} == wanted
    if case.expect.log is not None:
        assert re.search(case.expect.log, run.stderr), tail
    assert claimed(run)[-1] == {"101": WINDOW_END}, run.states()[-1]
