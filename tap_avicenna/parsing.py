"""Open downloaded export files (CSV, gzip, ZIP of CSVs) and turn CSV cells into typed values.

Everything streams: a file is read in chunks, never whole. Guards against hostile files:
unsafe ZIP member paths, decompression bombs (``Limits.max_expanded_bytes``), huge fields
and lines, corrupt or truncated compressed data. Every such problem is a ``FileFormatError``
naming the file (and the line when known).

Choices:
- Text is strict UTF-8 (a leading BOM is dropped); invalid UTF-8 fails with file and line.
- NUL characters are removed from the data (they cannot be stored in most targets).
- CSV is RFC 4180, parsed strictly: an unterminated quote at end of file, or text after a
  closing quote, is an error. Blank lines are skipped.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from tap_avicenna.errors import FileFormatError

__all__ = [
    "DEFAULT_LIMITS",
    "JSON_TYPES",
    "ConversionError",
    "Converter",
    "Limits",
    "RaggedRowError",
    "RawTable",
    "RowConverter",
    "Table",
    "check_complete",
    "converter_for",
    "detect_format",
    "fit",
    "normalize_header",
    "normalize_name",
    "open_raw_tables",
    "open_tables",
    "parse_timestamp",
]

FileKind = Literal["zip", "gzip", "csv"]
Converter = Callable[[str], Any]
JSON_TYPES = frozenset({"string", "integer", "number", "boolean", "date-time", "date", "object"})

# Errors that decompressors and zipfile raise for corrupt or truncated data.
_DATA_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, EOFError, zlib.error, OSError)
try:
    import lzma

    _DATA_ERRORS += (lzma.LZMAError,)
except ImportError:  # pragma: no cover - Python built without lzma
    pass

_CHUNK = 256 * 1024  # bytes read from the (decompressed) stream at a time
_ZIP_METHODS = {
    zipfile.ZIP_STORED,
    zipfile.ZIP_DEFLATED,
    zipfile.ZIP_BZIP2,
    zipfile.ZIP_LZMA,
}


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Limits:
    """Resource limits applied while reading one downloaded file."""

    max_expanded_bytes: int = 20 * 1024**3  # all decompressed CSV bytes of the file together
    max_field_bytes: int = 64 * 1024**2  # one CSV field (csv.field_size_limit, in characters)
    max_line_bytes: int = 128 * 1024**2  # one physical line (between line breaks)


DEFAULT_LIMITS = Limits()


# --------------------------------------------------------------------------- files


def detect_format(path: Path | str) -> FileKind:
    """Tell a ZIP, gzip or plain CSV file apart by its first bytes (not its name)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    return "csv"


class IncompleteFile(FileFormatError):
    """The file looks cut short (what an interrupted download leaves): worth fetching again,
    unlike a file that is whole but broken or hostile."""


def check_complete(
    path: Path | str, limits: Limits = DEFAULT_LIMITS, display_name: str = ""
) -> None:
    """Cheap checks before reading: ZIP directory readable, names safe, declared sizes in limit.

    For gzip only the header and a minimal length are checked: a gzip trailer holds the size
    modulo 2**32 and truncation inside the deflate stream shows only while decompressing, which
    ``open_tables`` reports as a ``FileFormatError``. Plain CSV is not checked.
    """
    name = display_name or Path(path).name
    kind = detect_format(path)
    if kind == "zip":
        with _open_zip(path, name) as zf:
            _csv_members(zf, name, limits)
    elif kind == "gzip":
        with open(path, "rb") as f:
            head = f.read(10)
            size = f.seek(0, io.SEEK_END)
        if size < 18 or head[2] != 8 or head[3] & 0xE0:
            raise IncompleteFile(f"{name}: not a valid gzip file (bad header or truncated)")


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


@dataclass
class RawTable:
    """One CSV inside a downloaded file, as guarded bytes (decompressed, NUL bytes dropped,
    size and line limits applied): what ``open_tables`` parses, or a columnar reader."""

    name: str  # member name inside the ZIP, or the display name for CSV/gzip
    label: str  # how messages name this table, e.g. "export.zip/survey.csv"
    stream: _GuardedStream


def open_raw_tables(
    path: Path | str, display_name: str = "export.csv", limits: Limits = DEFAULT_LIMITS
) -> Iterator[RawTable]:
    """Yield each CSV of a plain CSV, gzip'd CSV or ZIP file as a guarded byte stream,
    closed when the next one is requested (see ``open_tables`` for which members)."""
    budget = _Budget(display_name, limits.max_expanded_bytes)
    kind = detect_format(path)
    if kind == "zip":
        # Closing the ZipFile leaves open members readable (zipfile counts references).
        with _open_zip(path, display_name) as zf:
            for info in _csv_members(zf, display_name, limits):
                label = f"{display_name}/{info.filename}"
                inner = _open_member(zf, info, label)
                stream = _GuardedStream(inner, label, budget, limits.max_line_bytes)
                yield RawTable(info.filename, label, stream)
                stream.close()
    else:
        stream = _GuardedStream(_open_file(path, kind), display_name, budget, limits.max_line_bytes)
        yield RawTable(display_name, display_name, stream)
        stream.close()


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


def _open_file(path: Path | str, kind: FileKind) -> _Readable:
    """Open a plain or gzip file; the ``Table`` made from it owns and closes it."""
    if kind == "gzip":
        return gzip.open(path, "rb")
    return open(path, "rb", buffering=0)


class _Budget:
    """Counts decompressed bytes of one file against ``max_expanded_bytes``."""

    __slots__ = ("limit", "name", "used")

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self.used = 0

    def spend(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise FileFormatError(
                f"{self.name}: expands to more than {self.limit} bytes (max_uncompressed_file_mb); "
                "refusing to read further"
            )


class _GuardedStream(io.BufferedIOBase):
    """Binary stream over decompressed data: counts bytes, bounds lines, drops NUL bytes.

    In UTF-8 a 0x00 byte is always the NUL character, so removing it before decoding is exact.
    Decompression errors become ``FileFormatError``.
    """

    def __init__(self, inner: _Readable, label: str, budget: _Budget, max_line: int) -> None:
        super().__init__()
        self._inner = inner
        self._label = label
        self._budget = budget
        self._max_line = max_line
        self._run = 0  # bytes since the last line break

    @property
    def name(self) -> str:
        return self._label

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                super().close()

    def read1(self, size: int | None = -1) -> bytes:
        return self.read(size)

    def read(self, size: int | None = -1) -> bytes:
        want = size if size is not None and size > 0 else _CHUNK
        while True:
            try:
                data = self._inner.read(want)
            except _DATA_ERRORS as e:
                raise FileFormatError(f"{self._label}: corrupt or truncated data ({e})") from e
            if not data:
                return b""
            self._budget.spend(len(data))
            last_break = max(data.rfind(b"\n"), data.rfind(b"\r"))
            self._run = self._run + len(data) if last_break < 0 else len(data) - last_break - 1
            if self._run > self._max_line:
                raise FileFormatError(
                    f"{self._label}: a line is longer than {self._max_line} bytes (max_line_bytes)"
                )
            if b"\x00" in data:
                data = data.replace(b"\x00", b"")
                if not data:
                    continue
            return data


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


def _open_zip(path: Path | str, name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise IncompleteFile(f"{name}: not a readable ZIP file, truncated? ({e})") from e


def unsafe_member(name: str) -> bool:
    """A ZIP member path that could land outside the folder it is extracted into."""
    if not name or name.startswith(("/", "\\")) or "\x00" in name:
        return True
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        return True
    return ".." in re.split(r"[/\\]", name)


def _csv_members(zf: zipfile.ZipFile, name: str, limits: Limits) -> list[zipfile.ZipInfo]:
    """Validate every member, return the CSV members in archive order.

    The CSVs are the `*.csv` members; a ZIP without any is read liberally: its data
    files (not `response-files/...`, not directories) are taken as CSVs, so that a file
    named otherwise never makes an export look empty.
    """
    files: list[zipfile.ZipInfo] = []
    for info in zf.infolist():
        if unsafe_member(info.filename):
            raise FileFormatError(f"{name}: ZIP member '{info.filename}' has an unsafe path")
        if not (
            info.is_dir()
            or info.filename.startswith(("__MACOSX/", "response-files/"))
            or info.filename.rsplit("/", 1)[-1].startswith(".")
        ):
            files.append(info)
    members = [i for i in files if i.filename.lower().endswith(".csv")] or files
    for info in members:
        if info.flag_bits & 0x1:
            raise FileFormatError(f"{name}: ZIP member '{info.filename}' is encrypted")
        if info.compress_type not in _ZIP_METHODS:
            raise FileFormatError(
                f"{name}: ZIP member '{info.filename}' uses unsupported compression "
                f"method {info.compress_type}"
            )
    declared = sum(info.file_size for info in members)
    if declared > limits.max_expanded_bytes:
        raise FileFormatError(
            f"{name}: CSV members declare {declared} bytes, more than {limits.max_expanded_bytes}"
            " (max_uncompressed_file_mb)"
        )
    return members


def _open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> IO[bytes]:
    try:
        return zf.open(info)
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError, NotImplementedError) as e:
        raise FileFormatError(f"{label}: cannot open ZIP member ({e})") from e
    except RuntimeError as e:  # encrypted member
        raise FileFormatError(f"{label}: cannot open ZIP member ({e})") from e


# --------------------------------------------------------------------------- names

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize_name(raw: str) -> str:
    """Make a lower snake_case identifier of a CSV header cell.

    Accents are dropped (NFKD), every run of other characters becomes ``_``, ``_`` is trimmed
    at both ends, a leading digit gets a ``c_`` prefix, and an empty result is ``column``.
    """
    name = raw.lower()
    if not name.isascii():
        name = unicodedata.normalize("NFKD", name)
        name = "".join(ch for ch in name if not unicodedata.combining(ch))
    name = _NON_ALNUM.sub("_", name).strip("_")
    if not name:
        return "column"
    if name[0].isdigit():
        return "c_" + name
    return name


def normalize_header(
    raw: Sequence[str], name_of: Callable[[str], str] = normalize_name
) -> list[str]:
    """Normalize every header cell (with `name_of`); make names unique.

    The first column with a given name keeps it; later ones get ``_2``, ``_3``, ... skipping any
    name another column has (so ``a, a, a_2`` becomes ``a, a_3, a_2``).
    """
    bases = [name_of(cell) for cell in raw]
    taken = set(bases)
    seen: set[str] = set()
    names: list[str] = []
    for base in bases:
        name = base
        if name in seen:
            n = 2
            while f"{base}_{n}" in taken:
                n += 1
            name = f"{base}_{n}"
            taken.add(name)
        seen.add(name)
        names.append(name)
    return names


# --------------------------------------------------------------------------- values

_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_fromisoformat = datetime.fromisoformat
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,
)
_EPOCH_NUM = re.compile(r"(\d+)(?:\.(\d+))?", re.ASCII)


def parse_timestamp(value: str) -> str:
    """Parse a timestamp into fixed-width RFC 3339 UTC: ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``.

    Accepts ISO 8601 / RFC 3339 with ``T`` or space, optional fraction (digits beyond 6 are
    truncated), ``Z`` or ``±HH:MM`` offset (none means UTC), a bare date (midnight UTC), epoch
    seconds (10 integer digits) and epoch milliseconds (12-14 integer digits), optionally with a
    decimal part; on Python 3.11+ also the other forms ``datetime.fromisoformat`` accepts
    (e.g. ``20251214``). Raises ``ValueError`` otherwise.
    """
    if len(value) in (10, 12, 13, 14) and value.isdigit() and value.isascii():
        micros = int(value) * (1_000_000 if len(value) == 10 else 1_000)
        return (_EPOCH + timedelta(microseconds=micros)).isoformat(timespec="microseconds")
    try:
        dt = _fromisoformat(value)
    except ValueError:
        return _parse_timestamp_slow(value)
    if dt.tzinfo is None:
        return dt.replace(tzinfo=_UTC).isoformat(timespec="microseconds")
    if value[19:20] == "." and value[4:5] == "-" and value[7:8] == "-":
        # 'YYYY-MM-DD?HH:MM:SS.ffffff' (validated above) in UTC: only the separator and the
        # offset spelling can differ from the output, so skip the costly isoformat().
        if len(value) == 32 and value[26:] == "+00:00":
            return value if value[10] == "T" else value[:10] + "T" + value[11:]
        if len(value) == 27 and value[26] in "Zz":
            return value[:10] + "T" + value[11:26] + "+00:00"
    return dt.astimezone(_UTC).isoformat(timespec="microseconds")


def _from_epoch(value: str) -> str:
    match = _EPOCH_NUM.fullmatch(value)
    if match is None:
        raise ValueError(f"not a timestamp: {value!r}")
    whole, frac = match.group(1), match.group(2) or ""
    if len(whole) == 10:
        scale = 1_000_000
    elif 12 <= len(whole) <= 14:
        scale = 1_000
    else:
        raise ValueError(f"not a timestamp: {value!r} (epoch needs 10 or 12-14 digits)")
    micros = int(whole) * scale + int(Decimal("0." + (frac or "0")) * scale)
    try:
        dt = _EPOCH + timedelta(microseconds=micros)
    except OverflowError as e:
        raise ValueError(f"timestamp out of range: {value!r}") from e
    return dt.isoformat(timespec="microseconds")


def _parse_timestamp_slow(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    if text[0].isdigit() and _EPOCH_NUM.fullmatch(text):
        return _from_epoch(text)
    match = _ISO.fullmatch(text)
    if match is None:
        raise ValueError(f"not a timestamp: {value!r}")
    year, month, day, hour, minute, second, frac, offset = match.groups()
    try:
        tz = _UTC
        if offset and offset not in ("Z", "z"):
            digits = offset[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
            if minutes > 59:
                raise ValueError("offset minutes must be 0..59")
            delta = timedelta(hours=hours, minutes=minutes)
            tz = timezone(-delta if offset[0] == "-" else delta)
        dt = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0")[:6].ljust(6, "0")),
            tzinfo=tz,
        )
        return dt.astimezone(_UTC).isoformat(timespec="microseconds")
    except (ValueError, OverflowError) as e:
        raise ValueError(f"not a timestamp: {value!r} ({e})") from e


def _to_string(value: str) -> str | None:
    return value or None


def _to_integer(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        pass
    text = value.strip()
    if not text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not an integer: {value!r}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"not an integer: {value!r}")
    return int(number)


def _to_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        if not value.strip():
            return None
        raise ValueError(f"not a number: {value!r}") from None
    if number - number != 0:  # NaN or ±inf: JSON has no such numbers
        return None
    return number


_BOOLEANS = {
    "true": True,
    "false": False,
    "t": True,
    "f": False,
    "yes": True,
    "no": False,
    "y": True,
    "n": False,
    "1": True,
    "0": False,
}
# Exact spellings seen in practice, looked up before stripping/lowercasing.
_BOOLEANS_FAST = {
    **_BOOLEANS,
    **{k.upper(): v for k, v in _BOOLEANS.items()},
    **{k.capitalize(): v for k, v in _BOOLEANS.items()},
}


def _to_boolean(value: str) -> bool | None:
    result = _BOOLEANS_FAST.get(value)
    if result is not None:
        return result
    text = value.strip().lower()
    if not text:
        return None
    try:
        return _BOOLEANS[text]
    except KeyError:
        raise ValueError(f"not a boolean: {value!r}") from None


def _to_datetime(value: str) -> str | None:
    if not value or value.isspace():
        return None
    return parse_timestamp(value)


def _to_date(value: str) -> str | None:
    text = value.strip()
    if not text:
        return None
    if len(text) != 10:
        raise ValueError(f"not a date (YYYY-MM-DD): {value!r}")
    return date.fromisoformat(text).isoformat()


TEXT_KEY = "_text"
"""Key under which an `object` cell that is not a JSON object keeps its exact text."""


def _to_object(value: str) -> Any:
    """A JSON object cell as a dict; anything else (invalid JSON, an array, a scalar) as
    `{"_text": <the cell's exact text>}`, so the field is always an object (one JSON
    column type in every warehouse) and no text is ever dropped."""
    text = value.strip()
    if not text:
        return None
    if text[0] == "{":
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    return {TEXT_KEY: value}


_CONVERTERS: dict[str, Converter] = {
    "string": _to_string,
    "integer": _to_integer,
    "number": _to_number,
    "boolean": _to_boolean,
    "date-time": _to_datetime,
    "date": _to_date,
    "object": _to_object,
}


def converter_for(json_type: str) -> Converter:
    """The converter of one JSON schema type; ``""`` always becomes ``None``.

    Non-string types also map whitespace-only cells to ``None``; strings keep them. integer:
    ``int()`` syntax, or an integral decimal such as ``3.0``; number: ``float()``, NaN/inf become
    ``None``; boolean: true/false/t/f/yes/no/y/n/1/0 in any case; date-time: ``parse_timestamp``;
    date: ``YYYY-MM-DD``; object: a JSON object/array is parsed, any other text kept as is.
    Failures raise ``ValueError``.
    """
    try:
        return _CONVERTERS[json_type]
    except KeyError:
        raise ValueError(f"unknown JSON type {json_type!r}") from None


class ConversionError(ValueError):
    """A cell that does not convert to its column's type."""

    def __init__(self, column: str, value: str, json_type: str, reason: str) -> None:
        shown = value if len(value) <= 80 else value[:77] + "..."
        super().__init__(f"column '{column}': cannot read {shown!r} as {json_type} ({reason})")
        self.column = column
        self.value = value
        self.json_type = json_type


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


# Fast per-cell functions used before the exact converters; anything they reject or get wrong
# must raise, which sends the row through the exact converters. None means "string".
_FAST: dict[str, Converter | None] = {
    "string": None,
    "integer": int,
    "number": _to_number,
    "boolean": _BOOLEANS_FAST.__getitem__,
    "date-time": parse_timestamp,
    "date": _to_date,
    "object": _to_object,
}


class RowConverter:
    """Converts the raw cells of one table's rows to typed values, in column order."""

    def __init__(self, columns: Sequence[str], types: Mapping[str, str]) -> None:
        """``columns``: normalized header; ``types``: name -> JSON type (default string)."""
        self.columns = list(columns)
        self.width = len(self.columns)
        self.types = [types.get(name, "string") for name in self.columns]
        self._exact = [converter_for(t) for t in self.types]
        self._fast = [_FAST[t] for t in self.types]

    def convert(self, cells: list[str]) -> list[Any]:
        """Typed values of one row (fitted to the header width first, see ``fit``).

        Raises ``ConversionError`` (a ``ValueError``) naming the column of the first cell that
        does not convert, and ``RaggedRowError`` for extra non-empty cells.
        """
        if len(cells) != self.width:
            cells = fit(cells, self.width)
        try:
            return [
                (c if f is None else f(c)) if c else None
                for f, c in zip(self._fast, cells, strict=False)
            ]
        except Exception:
            return self._convert_exact(cells)

    def _convert_exact(self, cells: list[str]) -> list[Any]:
        values: list[Any] = []
        for name, json_type, conv, cell in zip(
            self.columns, self.types, self._exact, cells, strict=True
        ):
            try:
                values.append(conv(cell))
            except ValueError as e:
                raise ConversionError(name, cell, json_type, str(e)) from e
        return values

    def fit(self, cells: list[str]) -> list[str]:
        """``fit(cells, self.width)``."""
        return fit(cells, self.width)
