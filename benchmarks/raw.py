"""The raw lower bound: csv.reader + a Singer RECORD envelope per row, orjson, /dev/null.

No schema, no state, no checks: what any tap has to do at least to turn a CSV into
RECORD messages in Python, so tap time / raw time is the tap's own overhead.
"""

from __future__ import annotations

import csv
import os
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

import orjson

SENSOR_TYPES: dict[str, type] = {
    "user_id": int,
    "study_id": int,
    "accu": int,
    "x_axis": float,
    "y_axis": float,
    "z_axis": float,
}
SURVEY_TYPES: dict[str, type] = {
    "participant_id": int,
    "status_id": int,
    "participant.status_id": int,
    "Q2": int,  # single answer (SA): a choice number
    "Q5": int,  # numeric (NUM)
}


@dataclass
class RawResult:
    rows: int
    seconds: float
    bytes_written: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _identity(cell: str) -> str:
    return cell


def raw_records(csv_path: Path, stream: str, types: t.Mapping[str, type]) -> RawResult:
    """Time the plain loop over `csv_path`; numbers become int/float, empty cells null."""
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    written = 0
    rows = 0
    started = time.perf_counter()
    with (
        open(csv_path, encoding="utf-8", newline="") as source,
        open(os.devnull, "wb") as sink,
    ):
        reader = csv.reader(source)
        header = next(reader)
        converters: list[t.Callable[[str], t.Any]] = [types.get(c, _identity) for c in header]
        columns = list(zip(header, converters, strict=True))
        write = sink.write
        for cells in reader:
            record = {
                name: convert(cell) if cell else None
                for (name, convert), cell in zip(columns, cells, strict=True)
            }
            written += write(
                dumps({"type": "RECORD", "stream": stream, "record": record}, option=newline)
            )
            rows += 1
    return RawResult(rows, time.perf_counter() - started, written)
