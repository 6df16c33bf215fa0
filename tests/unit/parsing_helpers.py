"""Helpers of the parsing tests: writing files and reading every table of one."""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tap_avicenna.parsing import Limits, open_tables

MB = 1024 * 1024


@pytest.fixture(autouse=True)
def field_size_limit_restored() -> Iterator[None]:
    """Autouse in the modules importing it: `open_tables` sets the limit process-wide."""
    saved = csv.field_size_limit()
    yield
    csv.field_size_limit(saved)


def read_all(path: Path, name: str = "export.csv", limits: Limits | None = None) -> list[Any]:
    """(name, header, rows) of every table, fully read."""
    tables = open_tables(path, name, limits) if limits else open_tables(path, name)
    return [(t.name, t.header, list(t.rows)) for t in tables]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_zip(
    path: Path, members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED
) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path
