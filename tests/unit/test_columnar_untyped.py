"""Null words, untyped cells and local times: the columnar reader gives exactly the row
path's records, without falling back to it (a column with such cells is converted by
Arrow where it can, by Python cell by cell for the others)."""

from __future__ import annotations

import random
import typing as t
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest
from singer_sdk.helpers._batch import BatchConfig

from tap_avicenna.batch_files import BatchFiles
from tap_avicenna.columnar import Columns, NotColumnar, read_columns, read_header
from tap_avicenna.errors import FileFormatError
from tap_avicenna.parsing import RowConverter, normalize_header, open_raw_tables, open_tables
from tap_avicenna.parsing.values import UNTYPED
from tests.unit.test_columnar import (
    ACCEPTED,
    BIG,
    PLAIN,
    TYPES,
    columnar_path,
    read_back,
    row_path,
    write_csv,
)

NULL_WORDS = ["None", "none", "null", "NULL", "NA", "N/A", "n/a", "#N/A", "<NA>", "-", "NaT",
              "nat", "NaN", "nan", " NULL ", "\tN/A"]  # fmt: skip
ODD: dict[str, list[str]] = {
    "integer": ["high", "12 m", "#VALUE!", "3.5", "0x10", "1e3"],
    "number": ["abc", "1.2.3", "--1", "12 m/s", "0x10", "1e"],
    "string": [],
    "date-time": ["yesterday", "2025-02-30 00:00:00", "31/12/2025", "12345"],
    "boolean": ["maybe", "2", "truth"],
    "date": ["2025-13-01", "tomorrow", "20250101"],
}
LOCAL = ["2025-01-15 09:30:00", "2025-07-15T09:30:00.250", "2025-01-15", "2025-11-02 01:30:00"]


def dirty_table(
    seed: int, nulls: float, odd: float, local: float = 0.0
) -> tuple[list[str], dict[str, str], list[list[str]]]:
    """Columns of every type; cells drawn from plain, readable-tricky, null-word, untyped
    and (date-time) local-time cells at the given rates."""
    rng = random.Random(seed)
    names = [f"{kind.replace('-', '_')}_{i}" for i, kind in enumerate(TYPES * 2)]
    types = dict(zip(names, TYPES * 2, strict=True))
    rows = []
    for _ in range(rng.randint(200, 3000)):
        row = []
        for name in names:
            kind, roll = types[name], rng.random()
            if roll < nulls:
                pool = NULL_WORDS
            elif roll < nulls + odd and ODD[kind]:
                pool = ODD[kind]
            elif roll < nulls + odd + local and kind == "date-time":
                pool = LOCAL
            else:
                pool = ACCEPTED[kind] if rng.random() < 0.05 else PLAIN[kind]
            row.append(rng.choice([c for c in pool if c != BIG]))
        rows.append(row)
    return names, types, rows


@pytest.mark.parametrize("seed", range(8))
def test_given_null_words_and_untyped_cells_when_read_columnar_then_the_row_paths_records(
    tmp_path: Path, seed: int
) -> None:
    names, types, rows = dirty_table(seed, nulls=0.05, odd=0.01 if seed % 2 else 0.1)
    path = write_csv(tmp_path / "t.csv", names, rows)
    expected = row_path(path, types)
    assert columnar_path(path, types) == expected
    records = [msgspec.json.decode(line) for line in expected]
    assert any(UNTYPED in r for r in records) and any(UNTYPED not in r for r in records)


def test_given_untyped_cells_when_read_columnar_then_counted_per_column_as_the_row_path_does(
    tmp_path: Path,
) -> None:
    names, types, rows = dirty_table(3, nulls=0.05, odd=0.02)
    path = write_csv(tmp_path / "t.csv", names, rows)
    converter = RowConverter(normalize_header(names), types)
    for table in open_tables(path):
        for cells in table.rows:
            converter.convert(cells)
    counted: dict[str, int] = {}
    for batch in batches(path, types):
        for name, count in batch.untyped.items():
            counted[name] = counted.get(name, 0) + count
    assert counted == dict(converter.untyped) and sum(counted.values()) > 20


def test_given_a_column_of_null_words_only_when_read_columnar_then_nulls_and_no_untyped(
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path / "t.csv", ["a", "b"], [["1", w] for w in NULL_WORDS])
    for json_type in ("integer", "number", "boolean", "date-time", "date"):
        types = {"a": "integer", "b": json_type}
        lines = columnar_path(path, types)
        assert lines == row_path(path, types)
        assert all(msgspec.json.decode(line)["b"] is None for line in lines)
        assert not any(UNTYPED.encode() in line for line in lines)


@pytest.mark.parametrize("json_type", ["integer", "number", "date-time", "boolean", "date"])
def test_given_strict_types_when_a_cell_is_untyped_then_columnar_refuses_and_row_path_fails(
    tmp_path: Path, json_type: str
) -> None:
    rows = [["1", PLAIN[json_type][0]], ["2", "None"], ["3", ODD[json_type][0]]]
    path = write_csv(tmp_path / "t.csv", ["a", "b"], rows)
    types = {"a": "integer", "b": json_type}
    with pytest.raises(NotColumnar):
        columnar_path(path, types, strict=True)
    with pytest.raises((ValueError, FileFormatError), match="column 'b'"):
        row_path(path, types, strict=True)


@pytest.mark.parametrize("seed", range(3))
def test_given_local_times_and_a_zone_when_read_columnar_then_the_row_paths_records(
    tmp_path: Path, seed: int
) -> None:
    names, types, rows = dirty_table(seed, nulls=0.02, odd=0.01, local=0.3)
    path = write_csv(tmp_path / "t.csv", names, rows)
    zone = ZoneInfo("America/Toronto")
    assert local_columnar(path, types, zone) == local_rows(path, types, zone)
    assert local_columnar(path, types, zone) != local_columnar(path, types, None)


def local_rows(path: Path, types: dict[str, str], zone: tzinfo | None) -> list[dict[str, t.Any]]:
    out = []
    for table in open_tables(path):
        converter = RowConverter(normalize_header(table.header), types, zone=zone)
        for cells in table.rows:
            out.append(dict(zip(converter.fields, converter.convert(cells), strict=False)))
    return out


def local_columnar(
    path: Path, types: dict[str, str], zone: tzinfo | None
) -> list[dict[str, t.Any]]:
    out = []
    for raw in open_raw_tables(path):
        header, head = read_header(raw)
        for batch in read_columns(raw, normalize_header(header), types, head, zone=zone):
            columns = [a.to_pylist() for a in batch.arrays]
            for values in zip(*columns, strict=True):
                out.append(without_null_untyped(dict(zip(batch.names, values, strict=True))))
    return out


def batches(path: Path, types: dict[str, str]) -> t.Iterator[Columns]:
    for raw in open_raw_tables(path):
        header, head = read_header(raw)
        yield from read_columns(raw, normalize_header(header), types, head)


@pytest.mark.parametrize(("fmt", "compression"), [("parquet", "none"), ("jsonl", "gzip")])
def test_given_untyped_cells_in_some_batches_when_written_as_files_then_the_row_path_records(
    tmp_path: Path, fmt: str, compression: str
) -> None:
    """Parquet files carry `_untyped_cells` only while a batch has some: read back, every
    record is the RECORD path's, field for field (the field absent where it is null)."""
    names, types, clean = dirty_table(5, nulls=0.0, odd=0.0)
    _, _, dirty = dirty_table(6, nulls=0.05, odd=0.01)
    rows = (clean * 12)[:30_000] + dirty + (clean * 12)[:30_000]
    path = write_csv(tmp_path / "t.csv", names, rows)
    settings = BatchConfig.from_dict(
        {
            "encoding": {"format": fmt, "compression": compression},
            "storage": {"root": (tmp_path / "out").as_uri()},
            "batch_size": 50_000,
        }
    )
    urls, count = BatchFiles("tap-x", "s", settings).from_columns(batches(path, types), 1)
    written = [without_null_untyped(r) for url in urls for r in read_back(url)]
    assert count == len(rows) and len(urls) >= (3 if fmt == "parquet" else 2)
    assert written == [msgspec.json.decode(line) for line in row_path(path, types)]
    assert sum(UNTYPED in r for r in written) > 10


def without_null_untyped(record: dict[str, t.Any]) -> dict[str, t.Any]:
    """A Parquet file has the column in every row: null there is the field left out."""
    if UNTYPED in record and record[UNTYPED] is None:
        del record[UNTYPED]
    return record
