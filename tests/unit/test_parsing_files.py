"""File containers and their guards: format detection, gzip, ZIP members, bombs, NUL bytes."""

from __future__ import annotations

import gzip
import re
import struct
import zipfile
from pathlib import Path

import pytest

from tap_avicenna.errors import FileFormatError
from tap_avicenna.parsing import Limits, Table, check_complete, detect_format, open_tables
from tests.unit.parsing_helpers import (  # noqa: F401 (an autouse fixture)
    MB,
    field_size_limit_restored,
    make_zip,
    read_all,
    write,
)

ZIP_FIELDS = {"size": ("<I", 22, 24), "flags": ("<H", 6, 8), "method": ("<H", 8, 10)}


def patch_zip_headers(path: Path, field: str, value: int) -> None:
    """Overwrite one field of every local (PK\\3\\4) and central (PK\\1\\2) header."""
    fmt, local_at, central_at = ZIP_FIELDS[field]
    data = bytearray(path.read_bytes())
    for signature, at in ((b"PK\x03\x04", local_at), (b"PK\x01\x02", central_at)):
        start = data.find(signature)
        while start >= 0:
            struct.pack_into(fmt, data, start + at, value)
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))


def test_given_nul_bytes_when_parsed_then_they_are_removed(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"a,b\n1\x00,\x002\x00\n\x00\x00\n")

    assert read_all(path) == [("export.csv", ["a", "b"], [["1", "2"]])]


def test_given_line_over_limit_when_read_then_error(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"a,b\n" + b"1," * 1_000_000 + b"\n")

    with pytest.raises(FileFormatError, match=r"^x\.csv: a line is longer than 100000 bytes"):
        read_all(path, "x.csv", Limits(max_line_bytes=100_000))


def test_given_plain_csv_over_expansion_limit_when_read_then_error(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"a,b\n" + b"1,2\n" * 100_000)

    with pytest.raises(FileFormatError, match="max_uncompressed_file_mb"):
        read_all(path, "x.csv", Limits(max_expanded_bytes=10_000))


# --------------------------------------------------------------------------- detection, gzip


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"PK\x03\x04rest", "zip"),
        (b"PK\x05\x06" + b"\x00" * 18, "zip"),
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"a,b\n", "csv"),
        (b"", "csv"),
    ],
)
def test_given_magic_bytes_when_detecting_then_format_ignores_name(
    tmp_path: Path, data: bytes, expected: str
) -> None:
    assert detect_format(write(tmp_path / "named.csv", data)) == expected


def test_given_zip_named_csv_when_opened_then_read_as_zip(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.csv", [("inner.csv", b"a\n1\n")])

    assert read_all(path, "x.csv") == [("inner.csv", ["a"], [["1"]])]


def test_given_gzip_csv_when_opened_then_rows_stream(tmp_path: Path) -> None:
    path = write(tmp_path / "x.gz", gzip.compress(b"a,b\n1,2\n"))

    assert read_all(path, "x.csv.gz") == [("x.csv.gz", ["a", "b"], [["1", "2"]])]


def test_given_multi_member_gzip_when_opened_then_members_concatenate(tmp_path: Path) -> None:
    path = write(tmp_path / "x.gz", gzip.compress(b"a,b\n1,2\n") + gzip.compress(b"3,4\n"))

    assert read_all(path) == [("export.csv", ["a", "b"], [["1", "2"], ["3", "4"]])]


def test_given_gzip_bomb_when_streamed_then_expansion_limit_stops_it(tmp_path: Path) -> None:
    path = write(tmp_path / "x.gz", gzip.compress(b"a,b\n" + b"1,2\n" * (50 * MB // 4)))
    assert path.stat().st_size < 1 * MB
    check_complete(path, Limits(max_expanded_bytes=1 * MB))  # cannot know in advance

    with pytest.raises(FileFormatError, match=r"^bomb\.gz: expands to more than 1048576 bytes"):
        read_all(path, "bomb.gz", Limits(max_expanded_bytes=1 * MB))


def test_given_gzip_of_zeros_when_streamed_then_nul_stripping_still_counts(tmp_path: Path) -> None:
    path = write(tmp_path / "x.gz", gzip.compress(bytes(50 * MB)))

    with pytest.raises(FileFormatError, match="max_uncompressed_file_mb"):
        read_all(path, "bomb.gz", Limits(max_expanded_bytes=1 * MB))


def test_given_truncated_gzip_when_read_then_file_format_error(tmp_path: Path) -> None:
    data = gzip.compress(b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(100_000)))
    path = write(tmp_path / "x.gz", data[: len(data) // 2])
    check_complete(path)  # only streaming can tell

    with pytest.raises(FileFormatError, match=r"^cut\.gz: corrupt or truncated data"):
        read_all(path, "cut.gz")


def test_given_gzip_with_corrupt_crc_when_read_then_file_format_error(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(b"a,b\n1,2\n"))
    data[-8] ^= 0xFF  # CRC32 in the trailer
    path = write(tmp_path / "x.gz", bytes(data))

    with pytest.raises(FileFormatError, match="corrupt or truncated data"):
        read_all(path, "x.gz")


def test_given_tiny_gzip_when_checked_then_file_format_error(tmp_path: Path) -> None:
    path = write(tmp_path / "x.gz", gzip.compress(b"a,b\n")[:12])

    with pytest.raises(FileFormatError, match=r"^x\.gz: not a valid gzip file"):
        check_complete(path)


# --------------------------------------------------------------------------- ZIP


def test_given_zip_with_several_csvs_when_opened_then_archive_order_and_others_skipped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("survey-b.csv", "b\n2\n")
        zf.writestr("response-files/", "")
        zf.writestr("response-files/1/photo.jpg", b"\xff\xd8\xff\x00binary")
        zf.writestr("README.txt", "not csv")
        zf.writestr("sub/survey-a.CSV", "a\n1\n")
        zf.writestr("__MACOSX/._survey-b.csv", b"\x00\x05\x16\x07")
        zf.writestr("empty.csv", "")

    assert read_all(path, "x.zip") == [
        ("survey-b.csv", ["b"], [["2"]]),
        ("sub/survey-a.CSV", ["a"], [["1"]]),
        ("empty.csv", [], []),
    ]
    check_complete(path)


def test_given_zip_tables_when_read_lazily_then_labels_name_member(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", [("s.csv", b"a\n1\n")])

    [table] = list(open_tables(path, "x.zip"))

    assert isinstance(table, Table)
    assert table.label == "x.zip/s.csv"


def test_given_empty_zip_when_opened_then_no_tables(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", [])

    assert detect_format(path) == "zip"
    assert read_all(path) == []


@pytest.mark.parametrize(
    "member",
    ["../evil.csv", "/abs.csv", "a/../../evil.csv", "..\\evil.csv", "\\abs.csv", "C:/x.csv"],
)
def test_given_hostile_member_name_when_opened_then_rejected(tmp_path: Path, member: str) -> None:
    path = make_zip(tmp_path / "x.zip", [("ok.csv", b"a\n1\n"), (member, b"a\n1\n")])

    expected = rf"^x\.zip: ZIP member '{re.escape(member)}' has an unsafe path$"
    with pytest.raises(FileFormatError, match=expected):
        read_all(path, "x.zip")
    with pytest.raises(FileFormatError, match="unsafe path"):
        check_complete(path, display_name="x.zip")


def test_given_hostile_non_csv_member_when_opened_then_still_rejected(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", [("ok.csv", b"a\n1\n"), ("../../etc/cron.d/x", b"x")])

    with pytest.raises(FileFormatError, match="unsafe path"):
        next(open_tables(path, "x.zip"))


def test_given_zip_bomb_when_checked_then_declared_size_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", [("bomb.csv", bytes(50 * MB))])
    assert path.stat().st_size < 1 * MB
    limits = Limits(max_expanded_bytes=1 * MB)

    with pytest.raises(FileFormatError, match="max_uncompressed_file_mb"):
        check_complete(path, limits)
    with pytest.raises(FileFormatError, match="max_uncompressed_file_mb"):
        read_all(path, "x.zip", limits)


def test_given_zip_header_lying_about_size_when_streamed_then_file_format_error(
    tmp_path: Path,
) -> None:
    path = make_zip(tmp_path / "x.zip", [("bomb.csv", b"a,b\n" + b"1,2\n" * (50 * MB // 4))])
    patch_zip_headers(path, "size", 1000)  # declared uncompressed size: 1000 bytes
    limits = Limits(max_expanded_bytes=1 * MB)
    check_complete(path, limits)  # the lie passes the cheap check

    with pytest.raises(FileFormatError, match=r"^x\.zip/bomb\.csv: corrupt or truncated data"):
        read_all(path, "x.zip", limits)


def test_given_several_zip_members_when_streamed_then_expansion_counts_all(tmp_path: Path) -> None:
    member = b"a\n" + b"1\n" * 300_000
    path = make_zip(tmp_path / "x.zip", [("a.csv", member), ("b.csv", member)])
    tables = open_tables(path, "x.zip", Limits(max_expanded_bytes=len(member) * 2))
    # Read within the declared total; counting continues across members.
    assert sum(len(list(t.rows)) for t in tables) == 600_000


def test_given_truncated_zip_when_checked_then_file_format_error(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", [("a.csv", b"a,b\n" + b"1,2\n" * 10_000)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(FileFormatError, match=r"^cut\.zip: not a readable ZIP file"):
        check_complete(path, display_name="cut.zip")
    with pytest.raises(FileFormatError, match=r"^cut\.zip: not a readable ZIP file"):
        read_all(path, "cut.zip")


def test_given_crc_corrupted_member_when_read_then_file_format_error(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", [("a.csv", b"a,b\n1,2\n3,4\n")], zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    at = data.find(b"3,4")
    data[at] = ord("5")
    path.write_bytes(bytes(data))
    check_complete(path)

    with pytest.raises(FileFormatError, match=r"^x\.zip/a\.csv: corrupt or truncated data.*CRC"):
        read_all(path, "x.zip")


def test_given_corrupt_deflate_member_when_read_then_file_format_error(tmp_path: Path) -> None:
    payload = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * 7) for i in range(50_000))
    path = make_zip(tmp_path / "x.zip", [("a.csv", payload)])
    data = bytearray(path.read_bytes())
    start = 30 + len("a.csv")
    for i in range(start + 100, start + 400):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))

    with pytest.raises(FileFormatError, match=r"^x\.zip/a\.csv: "):
        read_all(path, "x.zip")


def test_given_encrypted_member_flag_when_opened_then_file_format_error(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", [("a.csv", b"a\n1\n")])
    patch_zip_headers(path, "flags", 0x1)

    with pytest.raises(FileFormatError, match="encrypted"):
        check_complete(path)


def test_given_unsupported_compression_when_opened_then_file_format_error(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", [("a.csv", b"a\n1\n")])
    patch_zip_headers(path, "method", 9)  # Deflate64

    with pytest.raises(FileFormatError, match="unsupported compression method 9"):
        read_all(path, "x.zip")


def test_given_zip_without_csv_names_when_read_then_its_data_files_are_the_tables(
    tmp_path: Path,
) -> None:
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("export-1.txt", "a,b\r\n1,2\r\n")
        zf.writestr("response-files/x/1.jpg", b"\xff\xd8")
        zf.writestr(".DS_Store", b"junk")
    tables = [(t.name, t.header, list(t.rows)) for t in open_tables(path)]
    assert tables == [("export-1.txt", ["a", "b"], [["1", "2"]])]
