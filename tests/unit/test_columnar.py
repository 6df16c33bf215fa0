"""The columnar reader gives exactly the row-by-row path's values, JSON and row ids, or
refuses the table (NotColumnar): it never gives something else."""

from __future__ import annotations

import gzip
import random
import struct
import typing as t
import zipfile
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from singer_sdk.helpers._batch import BatchConfig

from tap_avicenna import hashing
from tap_avicenna.batch_files import BatchFiles
from tap_avicenna.columnar import (
    Columns,
    NotColumnar,
    canonical_json,
    json_lines,
    json_text,
    json_texts,
    read_columns,
    read_header,
)
from tap_avicenna.errors import FileFormatError
from tap_avicenna.hashing import RowIdHasher, hash_here
from tap_avicenna.parsing import (
    RowConverter,
    converter_for,
    normalize_header,
    open_raw_tables,
    open_tables,
)
from tap_avicenna.streams.base import ENCODER, ROW_ID, ExportStream

TYPES = ["integer", "number", "string", "date-time", "boolean", "date"]

# Cells each type's column draws from: plain ones, and ones only Python's converters read
# the right way (or reject), which the columnar path must convert cell by cell or refuse.
PLAIN: dict[str, list[str]] = {
    "integer": ["12", "-3", "0", "42", "", "1234567890123"],
    "number": ["1.5", "-0.25", "0.0", "9.81", "", "123.456", "0.0001", "-7.0"],
    "string": ["abc", "", "device-1", "x y", "é", "日本"],
    "date-time": [
        "2025-01-01 00:00:00.509000+00:00",
        "2025-01-01T12:30:00.000001+00:00",
        "2024-02-29 23:59:59.999999+00:00",
        "",
    ],
    "boolean": ["true", "false", "", "1", "0"],
    "date": ["2025-01-01", "", "2024-02-29"],
}
TRICKY: dict[str, list[str]] = {
    "integer": ["007", "+5", " 5", "3.0", "-0", "1_000", "99999999999999999999", "x", "1e3"],
    "number": [
        "nan",
        "inf",
        "-inf",
        "1e400",
        "1_000.5",
        " 2.5",
        "5e-324",
        "1e-7",
        "12345678901.5",
        "1e16",
        "100",
        ".5",
        "1.",
        "0x10",
        "abc",
        "1e",
        "+3.5",
        "-0",
    ],
    "string": ["a\\b", "tab\there", "\x01x", "  padded ", "\x7f", "\u2028", "back\\\\slash"],
    "date-time": [
        "2025-01-01T00:00:00.509000Z",
        "1735689600000",
        "1735689600",
        "2025-01-01",
        "2025-01-01T01:00:00+01:00",
        "2025-02-30 00:00:00.000000+00:00",
        "0000-01-01 00:00:00.000000+00:00",
        "2025-01-01 24:00:00.000000+00:00",
        "2025-01-01 00:00:00.5+00:00",
        "not a time",
    ],
    "boolean": ["yes", "No", "T", "maybe", " true"],
    "date": ["2025-13-01", "20250101", " 2025-01-01"],
}


def write_csv(path: Path, header: list[str], rows: list[list[str]], newline: str = "\n") -> Path:
    text = newline.join(",".join(cells) for cells in [header, *rows]) + newline
    path.write_bytes(text.encode())
    return path


def row_path(path: Path, types: dict[str, str], strict: bool = False) -> list[bytes]:
    """JSON lines of the row-by-row path: RowConverter, row_id, msgspec."""
    lines: list[bytes] = []
    for table in open_tables(path):
        columns = normalize_header(table.header)
        converter = RowConverter(columns, types, strict=strict)
        for cells in table.rows:
            record = dict(zip(converter.fields, converter.convert(cells), strict=False))
            record[ROW_ID] = ExportStream.row_id(record)
            lines.append(ENCODER.encode(record) + b"\n")
    return lines


def columnar_path(path: Path, types: dict[str, str], strict: bool = False) -> list[bytes]:
    """JSON lines of the columnar path (the same order and content, or NotColumnar)."""
    out: list[bytes] = []
    for raw in open_raw_tables(path):
        header, head = read_header(raw)
        for batch in read_columns(raw, normalize_header(header), types, head, strict=strict):
            texts = json_texts(batch)
            out.append(json_lines(texts, hash_here(canonical_json(texts))))
    return b"".join(out).splitlines(keepends=True)


def test_given_floats_of_every_magnitude_when_written_then_text_is_msgspecs() -> None:
    rng = random.Random(7)
    values = [0.0, -0.0, 1.0, 1e15, 1e16, 9.999999999999999e15, 1e-5, 9.99999e-6, 5e-324]
    for exponent in range(-330, 309):
        for _ in range(40):
            values.append(float(f"{rng.random() * 10:.{rng.randint(1, 17)}f}e{exponent}"))
    for _ in range(50_000):
        bits = struct.unpack("d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        values.append(bits)
    finite = [v for v in values if v - v == 0]
    texts = json_text(pa.array(finite, pa.float64()), "number").to_pylist()
    wrong = [
        (v, x) for v, x in zip(finite, texts, strict=True) if x != msgspec.json.encode(v).decode()
    ]
    assert not wrong[:5] and len(finite) > 70_000


def accepted(json_type: str, cell: str) -> bool:
    try:
        converter_for(json_type)(cell)
    except ValueError:
        return False
    return True


# Cells Python reads, and the (type, cell) pairs it rejects.
ACCEPTED = {k: [c for c in cells if accepted(k, c)] for k, cells in TRICKY.items()}
REJECTED = [(k, c) for k, cells in TRICKY.items() for c in cells if not accepted(k, c)]
BIG = "99999999999999999999"  # a valid integer beyond int64: Parquet has no column for it


def random_table(
    rng: random.Random, tricky: float
) -> tuple[list[str], dict[str, str], list[list[str]]]:
    names = [f"{kind.replace('-', '_')}_{i}" for i, kind in enumerate(TYPES * 2)]
    types = dict(zip(names, TYPES * 2, strict=True))
    rows = []
    for _ in range(rng.randint(1, 3000)):
        row = []
        for name in names:
            pool = ACCEPTED[types[name]] if rng.random() < tricky else PLAIN[types[name]]
            row.append(rng.choice([c for c in pool if c != BIG]))
        rows.append(row)
    return names, types, rows


@pytest.mark.parametrize("seed", range(12))
def test_given_random_tables_of_readable_cells_when_read_columnar_then_same_lines_as_row_path(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    names, types, rows = random_table(rng, tricky=0.0 if seed % 3 == 0 else 0.05)
    path = write_csv(tmp_path / "t.csv", names, rows, newline=rng.choice(["\n", "\r\n"]))
    assert columnar_path(path, types) == row_path(path, types)


@pytest.mark.parametrize(("json_type", "cell"), REJECTED)
def test_given_a_cell_python_rejects_when_read_columnar_then_refused_never_read(
    tmp_path: Path, json_type: str, cell: str
) -> None:
    names, types, rows = random_table(random.Random(cell), tricky=0.0)
    column = names.index(next(n for n in names if types[n] == json_type))
    rows[len(rows) // 2][column] = cell
    path = write_csv(tmp_path / "t.csv", names, rows)
    with pytest.raises((ValueError, FileFormatError)):
        row_path(path, types, strict=True)
    with pytest.raises(NotColumnar):
        columnar_path(path, types, strict=True)


def test_given_an_integer_beyond_int64_when_read_columnar_then_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["a"], [["1"], [BIG]])
    assert msgspec.json.decode(row_path(path, {"a": "integer"})[1])["a"] == int(BIG)
    with pytest.raises(NotColumnar):
        columnar_path(path, {"a": "integer"})


def test_given_cells_only_python_reads_when_no_error_then_columnar_converts_them_cell_by_cell(
    tmp_path: Path,
) -> None:
    """Cells Arrow does not convert, which Python does, still go the columnar way."""
    header = ["i", "n", "s", "d"]
    types = {"i": "integer", "n": "number", "s": "string", "d": "date-time"}
    rows = [
        ["3.0", "nan", "a\\b", "1735689600000"],
        ["-0", "inf", "", "1735689600"],
        ["+5", "1e400", "tab\there", "2025-01-01T01:00:00+01:00"],
        ["007", "1_000.5", "\x01", "2025-01-01"],
        ["1", "12345678901.5", "plain", "2025-01-01T00:00:00.509000Z"],
    ]
    path = write_csv(tmp_path / "t.csv", header, rows)
    assert columnar_path(path, types) == row_path(path, types)


@pytest.mark.parametrize(
    ("json_type", "cells"),
    [
        ("number", ["1.5", "nan", "inf", "-inf", "1e400", "NaN", "", "2e-9"]),
        ("integer", ["-0", "+5", "007", "", "9223372036854775807"]),
        ("date-time", ["2025-01-01T00:00:00.509000Z", "2025-01-01 00:00:00.100000+00:00", ""]),
        ("string", ["", " ", "a\\b", "\x1f", "plain"]),
    ],
)
def test_given_a_column_arrow_converts_when_read_then_same_values_as_python(
    tmp_path: Path, json_type: str, cells: list[str]
) -> None:
    """Columns with no cell Arrow rejects: Arrow's own conversion must agree with Python."""
    path = write_csv(tmp_path / "t.csv", ["a", "b"], [["1", cell] for cell in cells])
    types = {"a": "integer", "b": json_type}
    assert columnar_path(path, types) == row_path(path, types)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('a,b\n1,"2"\n', "quoted"),
        ("a,b\n1,2\n3\n", "ArrowInvalid"),
        ("a,b\n1,2,3\n", "ArrowInvalid"),
        ("\na,b\n1,2\n", "header"),
        ('"a",b\n1,2\n', "header"),
        ("a,b\n1,\xff\n", "invalid UTF8"),
    ],
)
def test_given_what_only_the_row_path_reads_exactly_when_read_then_refused(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(NotColumnar) as refused:
        columnar_path(path, {"a": "string", "b": "string"})
    assert reason.lower() in str(refused.value).lower()


@pytest.mark.parametrize(
    "text",
    [
        "\ufeffa,b\r\n1,x\r\n\r\n2,y\r\n",  # BOM, CRLF, a blank line
        "a,b\r1,x\r2,y",  # CR line ends, no final line end
        " a , b \n1, x \n\n\n2,\n",  # spaces kept in cells, stripped in the header
    ],
)
def test_given_line_ends_bom_and_blank_lines_when_read_then_same_as_row_path(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    types = {"a": "integer", "b": "string"}
    assert columnar_path(path, types) == row_path(path, types)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_given_a_table_of_several_pieces_when_read_then_rows_cut_nowhere(
    tmp_path: Path, newline: str
) -> None:
    """Tables are read in pieces cut at line ends: a line split across two reads, or a
    CRLF split between them, still gives each row once and whole."""
    path, types = sample(tmp_path, 40_000)  # about 2 MB: several pieces
    path.write_bytes(path.read_bytes().replace(b"\n", newline.encode()))
    got = columnar_path(path, types)
    assert len(got) == 40_000 and got == row_path(path, types)
    assert sum(1 for _ in batches(path, types)) > 2


def test_given_zip_and_gzip_when_read_then_each_table_in_order(tmp_path: Path) -> None:
    types = {"a": "integer", "b": "string"}
    archive = tmp_path / "t.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("one.csv", "a,b\n1,x\n")
        zf.writestr("two.csv", "a,b\n2,y\n3,z\n")
    assert columnar_path(archive, types) == row_path(archive, types)
    assert len(columnar_path(archive, types)) == 3
    packed = tmp_path / "t.csv.gz"
    packed.write_bytes(gzip.compress(b"a,b\n1,x\n"))
    assert columnar_path(packed, types) == row_path(packed, types)


def test_given_an_object_column_when_read_then_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["a"], [["{}"]])
    with pytest.raises(NotColumnar, match="object"):
        columnar_path(path, {"a": "object"})


# --- the file writer ---------------------------------------------------------------------


def batches(path: Path, types: dict[str, str]) -> t.Iterator[Columns]:
    for raw in open_raw_tables(path):
        header, head = read_header(raw)
        yield from read_columns(raw, normalize_header(header), types, head)


def sample(tmp_path: Path, rows: int) -> tuple[Path, dict[str, str]]:
    types = {"pid": "integer", "when": "date-time", "x": "number", "label": "string"}
    cells = [
        [str(i % 7), f"2025-01-01 00:00:{i % 60:02d}.000000+00:00", f"{i / 8}", ["", "a"][i % 2]]
        for i in range(rows)
    ]
    return write_csv(tmp_path / "in.csv", list(types), cells), types


def config(tmp_path: Path, fmt: str, compression: str, size: int) -> BatchConfig:
    return BatchConfig.from_dict(
        {
            "encoding": {"format": fmt, "compression": compression},
            "storage": {"root": (tmp_path / "out").as_uri(), "prefix": "p-"},
            "batch_size": size,
        }
    )


def read_back(url: str) -> list[dict[str, t.Any]]:
    path = Path(url.removeprefix("file://"))
    if ".parquet" in path.name:
        return t.cast(list[dict[str, t.Any]], pq.read_table(path).to_pylist())
    data = path.read_bytes()
    data = gzip.decompress(data) if path.name.endswith(".gz") else data
    return [msgspec.json.decode(line) for line in data.splitlines()]


@pytest.mark.parametrize(
    ("fmt", "compression"),
    [("jsonl", "gzip"), ("jsonl", "none"), ("parquet", "none"), ("parquet", "gzip")],
)
def test_given_rows_when_written_as_files_then_batch_size_rows_each_and_the_row_path_records(
    tmp_path: Path, fmt: str, compression: str
) -> None:
    path, types = sample(tmp_path, 2500)
    files = BatchFiles("tap-x", "s", config(tmp_path, fmt, compression, 1000))
    urls, count = files.from_columns(batches(path, types), export_no=3, dropped=["label"])
    assert count == 2500
    extension = (".json" if fmt == "jsonl" else ".parquet") + (
        ".gz" if compression == "gzip" else ""
    )
    assert [u.rsplit("-", 2)[-2:] for u in urls] == [["3", f"{n}{extension}"] for n in (1, 2, 3)]
    written = [read_back(url) for url in urls]
    assert [len(rows) for rows in written] == [1000, 1000, 500]
    expected = [msgspec.json.decode(line) for line in row_path(path, types)]
    for record in expected:
        del record["label"]  # deselected: out of the files, still part of the row id
    assert [r for rows in written for r in rows] == expected


def test_given_a_failure_midway_when_writing_then_files_written_so_far_are_deleted(
    tmp_path: Path,
) -> None:
    path, types = sample(tmp_path, 3000)

    def failing() -> t.Iterator[Columns]:
        yield from batches(path, types)
        raise NotColumnar("quoted fields")

    settings = config(tmp_path, "parquet", "none", 1000)
    settings.storage.prefix = "sub/p-"  # a prefix may name a folder
    files = BatchFiles("tap-x", "s", settings)
    with pytest.raises(NotColumnar):
        files.from_columns(failing(), export_no=1)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


# --- row ids in a helper process ------------------------------------------------------------


def test_given_batches_when_hashed_by_the_helper_then_the_ids_hashed_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = pa.array([f'{{"a":{i},"s":"é{i}"}}' for i in range(5000)] + ["{}"])
    parts = (values, values.slice(7, 100), values.slice(0, 0))
    wanted = [hash_here(part) for part in parts]

    def not_here(canonical: pa.Array) -> pa.Array:
        assert len(canonical) == 0, "hashed in this process, not by the helper"
        return wanted[2]

    monkeypatch.setattr(hashing, "hash_here", not_here)
    with RowIdHasher() as hasher:
        assert [hasher.hex_ids(part) for part in parts] == wanted
        assert hasher._proc is not None and hasher._proc.poll() is None  # still running
    assert wanted[0][-1].as_py() == ExportStream.row_id({})


def test_given_the_helper_dies_when_hashing_then_ids_are_hashed_here() -> None:
    values = pa.array([f'{{"a":{i}}}' for i in range(100)])
    with RowIdHasher() as hasher:
        assert hasher._proc is not None
        hasher._proc.kill()
        hasher._proc.wait()
        assert hasher.hex_ids(values).to_pylist() == hash_here(values).to_pylist()
        assert hasher._proc is None  # and from then on
