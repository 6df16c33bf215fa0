"""Downloaded export files (CSV, gzip, ZIP of CSVs) opened as guarded byte streams.

Everything streams: a file is read in chunks, never whole. Guards against hostile files:
unsafe ZIP member paths, decompression bombs (``Limits.max_expanded_bytes``), huge lines,
corrupt or truncated compressed data. Every such problem is a ``FileFormatError`` naming
the file. NUL bytes are removed from the data (they cannot be stored in most targets).
"""

from __future__ import annotations

import gzip
import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol

from tap_avicenna.errors import FileFormatError

FileKind = Literal["zip", "gzip", "csv"]

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
    """Validate every member, return the CSV members in archive order (`_split_members`)."""
    members, _ = _split_members(zf, name)
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


def _split_members(
    zf: zipfile.ZipFile, name: str
) -> tuple[list[zipfile.ZipInfo], list[zipfile.ZipInfo]]:
    """The CSV members and the other files, in archive order; an unsafe path fails.

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
    return members, [i for i in files if i not in members]


def other_members(path: Path | str, display_name: str = "export.zip") -> list[str]:
    """The files of a ZIP that are not read as tables (a `README.txt` beside the CSVs);
    none for a CSV or gzip file. Directories, `response-files/...`, `__MACOSX/` and hidden
    files are not counted."""
    if detect_format(path) != "zip":
        return []
    with _open_zip(path, display_name) as zf:
        return [info.filename for info in _split_members(zf, display_name)[1]]


def _open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> IO[bytes]:
    try:
        return zf.open(info)
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError, NotImplementedError) as e:
        raise FileFormatError(f"{label}: cannot open ZIP member ({e})") from e
    except RuntimeError as e:  # encrypted member
        raise FileFormatError(f"{label}: cannot open ZIP member ({e})") from e
