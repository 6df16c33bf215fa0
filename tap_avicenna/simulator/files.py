"""Rendering export tables to bytes: RFC 4180 CSV, ZIP and gzip."""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Literal

Row = Sequence[str]

CONTENT_TYPES = {
    ".zip": "application/zip",
    ".csv": "text/csv; charset=utf-8",
    ".csv.gz": "application/gzip",
}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_CHUNK = 10_000


def encode_csv(
    header: Row,
    rows: Iterable[Row],
    *,
    bom: bool = False,
    plain: bool = False,
    quote_all: bool = False,
) -> bytes:
    """RFC 4180 CSV in UTF-8 with ``\\r\\n`` line ends; minimal quoting, or every cell
    quoted with ``quote_all``.

    ``plain=True`` promises no cell needs quoting (no comma, quote or line break) and
    takes a much faster path; the header is always written through the csv module.
    """
    out = io.BytesIO()
    if bom:
        out.write("\ufeff".encode())
    text = io.StringIO()
    quoting: Literal[0, 1] = csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    writer = csv.writer(text, lineterminator="\r\n", quoting=quoting)
    writer.writerow(header)
    if not plain or quote_all:
        writer.writerows(rows)
        out.write(text.getvalue().encode("utf-8"))
        return out.getvalue()
    out.write(text.getvalue().encode("utf-8"))
    iterator = iter(rows)
    while chunk := list(islice(iterator, _CHUNK)):
        out.write(("\r\n".join(map(",".join, chunk)) + "\r\n").encode("utf-8"))
    return out.getvalue()


def extra_members(header: Row) -> list[tuple[str, bytes]]:
    """A `codebook.csv` (column, description) and a `README.txt` shipped beside the data."""
    codebook = encode_csv(["column", "description"], [[c, f"the {c} column"] for c in header])
    return [("codebook.csv", codebook), ("README.txt", b"Exported by the Avicenna simulator.\r\n")]


def split_evenly(rows: Sequence[Row], parts: int) -> Iterator[Sequence[Row]]:
    """``parts`` consecutive slices of ``rows`` (sizes differ by at most one; may be empty)."""
    size, extra = divmod(len(rows), parts)
    start = 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        yield rows[start:end]
        start = end


def zip_bytes(members: Iterable[tuple[str, bytes]]) -> bytes:
    """A deflated ZIP with fixed timestamps (same members, same bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, compresslevel=1)
    return out.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    """gzip with mtime 0 (same input, same bytes)."""
    return gzip.compress(data, compresslevel=1, mtime=0)


def placeholder_jpeg(seed: str) -> bytes:
    """A small file with JPEG start/end markers standing in for a photo answer."""
    comment = f"avicenna simulator image {seed}".encode()
    return (
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + b"\xff\xfe"
        + (len(comment) + 2).to_bytes(2, "big")
        + comment
        + b"\xff\xd9"
    )


def content_type(filename: str) -> str:
    """Content-Type for an export file name."""
    for suffix, kind in CONTENT_TYPES.items():
        if filename.endswith(suffix):
            return kind
    return "application/octet-stream"
