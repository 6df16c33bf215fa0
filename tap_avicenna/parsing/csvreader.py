"""The CSV of an export file: its dialect, its header and its rows, read as they stream.

Choices:
- Text is strict UTF-8 (a leading BOM is dropped); invalid UTF-8 fails with file and line.
- CSV is RFC 4180, parsed strictly: an unterminated quote at end of file, or text after a
  closing quote, is an error. Blank lines are skipped. Fields up to
  ``Limits.max_field_bytes``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tap_avicenna.errors import FileFormatError
from tap_avicenna.parsing.files import _CHUNK, DEFAULT_LIMITS, Limits, RawTable, open_raw_tables


@dataclass
class Table:
    """One CSV inside a downloaded file.

    ``rows`` yields the raw cells of each non-blank data row; it stays readable until ``close``,
    which ``open_tables`` calls when the next table is requested. ``line_num`` is the physical
    line where the last row read ended (rows may span lines).
    """

    name: str  # member name inside the ZIP, or the display name for CSV/gzip
    header: list[str]  # header cells, BOM and surrounding whitespace stripped
    rows: Iterator[list[str]]
    label: str  # how messages name this table, e.g. "export.zip/survey.csv"
    _reader: Any = field(default=None, repr=False)
    _stream: io.TextIOBase | None = field(default=None, repr=False)

    @property
    def line_num(self) -> int:
        """Physical line (1-based) where the last row, or the header, read ended."""
        return int(self._reader.line_num) if self._reader is not None else 0

    def close(self) -> None:
        """Release the underlying file or ZIP member (``open_tables`` does this on moving on)."""
        if self._stream is not None:
            self._stream.close()

    def error(self, reason: str) -> FileFormatError:
        """A ``FileFormatError`` naming this table and the current line."""
        return FileFormatError(f"{self.label} line {self.line_num}: {reason}")


def open_tables(
    path: Path | str, display_name: str = "export.csv", limits: Limits = DEFAULT_LIMITS
) -> Iterator[Table]:
    """Yield each CSV table of a plain CSV, gzip'd CSV or ZIP file, streaming.

    ZIP: every ``*.csv`` member (case-insensitive) in archive order; other members and
    ``__MACOSX/`` entries are skipped; an unsafe member path anywhere rejects the whole file.
    An empty plain file yields one table with no header and no rows; an empty ZIP yields none.
    Sets ``csv.field_size_limit`` process-wide to ``limits.max_field_bytes``.
    """
    for raw in open_raw_tables(path, display_name, limits):
        table = _table(raw, limits)
        yield table
        table.close()


class _Dialect(csv.Dialect):
    delimiter = ","
    quotechar = '"'
    doublequote = True
    skipinitialspace = False
    lineterminator = "\r\n"
    quoting = csv.QUOTE_MINIMAL
    strict = True


def _table(raw: RawTable, limits: Limits) -> Table:
    """Read the header; the returned table owns the raw stream (closed with it)."""
    csv.field_size_limit(limits.max_field_bytes)
    name, label = raw.name, raw.label
    text = io.TextIOWrapper(raw.stream, encoding="utf-8-sig", errors="strict", newline="")
    try:
        text._CHUNK_SIZE = _CHUNK  # type: ignore[attr-defined]
        reader = csv.reader(text, _Dialect)
        header: list[str] = []
        with _ReaderErrors(reader, label):
            for row in reader:
                if row:
                    header = [cell.strip().lstrip("\ufeff").strip() for cell in row]
                    break
    except BaseException:
        text.close()
        raise
    return Table(name, header, _rows(reader, label), label, reader, text)


def _rows(reader: Any, label: str) -> Iterator[list[str]]:
    with _ReaderErrors(reader, label):
        yield from filter(None, reader)


class _ReaderErrors:
    """Turn csv and UTF-8 errors raised by a csv reader into ``FileFormatError``."""

    def __init__(self, reader: Any, label: str) -> None:
        self._reader = reader
        self._label = label

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if isinstance(exc, csv.Error):
            raise FileFormatError(f"{self._label} line {self._reader.line_num}: {exc}") from exc
        if isinstance(exc, UnicodeDecodeError):
            # The decoder failed on the chunk after the lines the reader has consumed; the text
            # wrapper had no complete line left, so count the line breaks before the bad byte.
            data = bytes(exc.object)
            line = self._reader.line_num + 1 + data[: exc.start].count(b"\n")
            bad = data[exc.start : exc.start + 1].hex() or "?"
            raise FileFormatError(
                f"{self._label} line {line}: invalid UTF-8 (byte 0x{bad}: {exc.reason})"
            ) from exc


class RaggedRowError(FileFormatError):
    """A row has more non-empty cells than the header; the caller adds file and line."""

    def __init__(self, cells: int, width: int) -> None:
        super().__init__(
            f"row has {cells} cells but the header has {width} ({cells - width} extra)"
        )
        self.cells = cells
        self.width = width
        self.extra = cells - width


def fit(cells: list[str], width: int) -> list[str]:
    """Make a row exactly ``width`` cells long.

    Missing cells are padded with ``""`` (null); extra cells that are all empty (trailing
    commas) are dropped; other extra cells raise ``RaggedRowError``.
    """
    count = len(cells)
    if count == width:
        return cells
    if count < width:
        return cells + [""] * (width - count)
    if any(cells[width:]):
        raise RaggedRowError(count, width)
    return cells[:width]
