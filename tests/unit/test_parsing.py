"""Tests of file opening, CSV parsing, header normalisation and value conversion."""

from __future__ import annotations

import csv
import gzip
import re
import struct
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tap_avicenna.errors import FileFormatError
from tap_avicenna.parsing import (
    ConversionError,
    Limits,
    RaggedRowError,
    RowConverter,
    Table,
    _parse_timestamp_slow,
    check_complete,
    converter_for,
    detect_format,
    fit,
    normalize_header,
    normalize_name,
    open_tables,
    parse_timestamp,
)

MB = 1024 * 1024


@pytest.fixture(autouse=True)
def _restore_field_size_limit() -> Iterator[None]:
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


# --------------------------------------------------------------------------- plain CSV


def test_given_plain_csv_when_opened_then_one_table_with_header_and_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"user_id,device_id\n1,a\n2,b\n")

    assert read_all(path, "x.csv") == [
        ("x.csv", ["user_id", "device_id"], [["1", "a"], ["2", "b"]])
    ]


def test_given_bom_crlf_and_quoted_cells_when_parsed_then_cells_are_exact(tmp_path: Path) -> None:
    text = (
        "\ufeffRecord Time,Answer,Note\r\n"
        '2025-12-14 15:07:05.385000+00:00,"line one\r\nline two","say ""hi"", ok"\r\n'
        '2025-12-14 15:07:06.000000+00:00,"{""a"": [1,\n2]}",😀 café\r\n'
    )
    path = write(tmp_path / "x.csv", text.encode("utf-8"))

    [(_, header, rows)] = read_all(path)

    assert header == ["Record Time", "Answer", "Note"]
    assert rows == [
        ["2025-12-14 15:07:05.385000+00:00", "line one\r\nline two", 'say "hi", ok'],
        ["2025-12-14 15:07:06.000000+00:00", '{"a": [1,\n2]}', "😀 café"],
    ]


def test_given_padded_header_cells_when_opened_then_whitespace_is_stripped(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"  Participant ID , x\n1,2\n")

    [(_, header, _)] = read_all(path)

    assert header == ["Participant ID", "x"]


def test_given_blank_lines_when_parsed_then_they_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"\na,b\n\n1,2\n\n3,4\n\n")

    assert read_all(path) == [("export.csv", ["a", "b"], [["1", "2"], ["3", "4"]])]


def test_given_rows_when_iterated_then_line_num_is_physical_line(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b'a,b\n1,"x\ny"\n3,4\n')
    table = next(open_tables(path, "x.csv"))

    rows = iter(table.rows)
    next(rows)
    assert table.line_num == 3
    next(rows)
    assert table.line_num == 4
    assert str(table.error("bad")) == "x.csv line 4: bad"


def test_given_empty_file_when_opened_then_table_has_no_header_and_no_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"")

    assert read_all(path) == [("export.csv", [], [])]


def test_given_header_only_file_when_opened_then_rows_are_empty(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"\xef\xbb\xbfa,b\r\n")

    assert read_all(path) == [("export.csv", ["a", "b"], [])]


def test_given_ragged_rows_when_parsed_then_cells_are_yielded_as_they_are(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"a,b,c\n1\n1,2,3,4\n")

    [(_, _, rows)] = read_all(path)

    assert rows == [["1"], ["1", "2", "3", "4"]]


def test_given_nul_bytes_when_parsed_then_they_are_removed(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"a,b\n1\x00,\x002\x00\n\x00\x00\n")

    assert read_all(path) == [("export.csv", ["a", "b"], [["1", "2"]])]


def test_given_invalid_utf8_far_in_file_when_read_then_error_names_file_and_line(
    tmp_path: Path,
) -> None:
    lines = [b"a,b\n"] + [b"%d,xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n" % i for i in range(2, 20001)]
    lines[14999] = b"15000,bad \xff byte\n"  # physical line 15000
    path = write(tmp_path / "x.csv", b"".join(lines))

    with pytest.raises(FileFormatError, match=r"^bad\.csv line 15000: invalid UTF-8"):
        read_all(path, "bad.csv")


def test_given_invalid_utf8_in_header_when_opened_then_error_names_line_1(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"a,\xc3(\n1,2\n")

    with pytest.raises(FileFormatError, match=r"^x\.csv line 1: invalid UTF-8"):
        read_all(path, "x.csv")


def test_given_truncated_multibyte_at_end_when_read_then_invalid_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"a,b\n1,2\n3,\xe2\x82")

    with pytest.raises(FileFormatError, match=r"line 3: invalid UTF-8"):
        read_all(path, "x.csv")


def test_given_field_over_limit_when_read_then_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b'a,b\n1,2\n3,"' + b"x\n" * 1000 + b'"\n')

    with pytest.raises(FileFormatError, match=r"^x\.csv line \d+: field larger than field limit"):
        read_all(path, "x.csv", Limits(max_field_bytes=1000))


def test_given_field_over_csv_default_limit_when_read_then_accepted(tmp_path: Path) -> None:
    big = "é" * (2 * MB)
    path = write(tmp_path / "x.csv", f'a,b\n1,"{big}"\n'.encode())

    assert read_all(path) == [("export.csv", ["a", "b"], [["1", big]])]


def test_given_line_over_limit_when_read_then_error(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"a,b\n" + b"1," * 1_000_000 + b"\n")

    with pytest.raises(FileFormatError, match=r"^x\.csv: a line is longer than 100000 bytes"):
        read_all(path, "x.csv", Limits(max_line_bytes=100_000))


def test_given_unterminated_quote_when_read_then_error_with_line(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b'a,b\n1,2\n3,"unterminated\nmore\n')

    with pytest.raises(FileFormatError, match=r"^x\.csv line 4: unexpected end of data"):
        read_all(path, "x.csv")


def test_given_text_after_closing_quote_when_read_then_error_with_line(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b'a,b\n1,"x"y\n')

    with pytest.raises(FileFormatError, match=r"^x\.csv line 2: "):
        read_all(path, "x.csv")


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


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Record Time", "record_time"),
        ("user_id", "user_id"),
        ("device.id", "device_id"),
        ("heart_rate.average", "heart_rate_average"),
        ("X-Axis", "x_axis"),
        ("  Participant ID ", "participant_id"),
        ("[2_TXT] Q2", "c_2_txt_q2"),
        ("[24_IMG] Question 24 of Survey 14679", "c_24_img_question_24_of_survey_14679"),
        ("Température", "temperature"),
        ("Größe", "gro_e"),
        ("日本", "column"),
        ("", "column"),
        ("___", "column"),
        (
            "Duration (seconds) from scheduled to completion time",
            "duration_seconds_from_scheduled_to_completion_time",
        ),
        ("Record Time metadata", "record_time_metadata"),
    ],
)
def test_given_header_cell_when_normalized_then_snake_case(raw: str, expected: str) -> None:
    assert normalize_name(raw) == expected


def test_given_colliding_names_when_normalized_then_suffixed_in_order() -> None:
    assert normalize_header(["Record Time", "record_time", "RECORD-TIME", "x"]) == [
        "record_time",
        "record_time_2",
        "record_time_3",
        "x",
    ]


def test_given_suffix_taken_by_later_column_when_normalized_then_next_free_suffix() -> None:
    assert normalize_header(["a", "A", "a_2", "a.2"]) == ["a", "a_3", "a_2", "a_2_2"]


def test_given_empty_names_when_normalized_then_column_numbered() -> None:
    assert normalize_header(["", " ", "x"]) == ["column", "column_2", "x"]


# --------------------------------------------------------------------------- converters


@pytest.mark.parametrize(
    "json_type", ["string", "integer", "number", "boolean", "date-time", "date", "object"]
)
def test_given_empty_cell_when_converted_then_none(json_type: str) -> None:
    assert converter_for(json_type)("") is None


@pytest.mark.parametrize(
    "json_type", ["integer", "number", "boolean", "date-time", "date", "object"]
)
def test_given_whitespace_cell_when_converted_then_none(json_type: str) -> None:
    assert converter_for(json_type)("  \t") is None


def test_given_whitespace_string_when_converted_then_text_is_kept() -> None:
    assert converter_for("string")(" ") == " "
    assert converter_for("string")("abc") == "abc"


def test_given_unknown_type_when_asking_converter_then_value_error() -> None:
    with pytest.raises(ValueError, match="unknown JSON type"):
        converter_for("array")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("42", 42), ("-7", -7), (" 5 ", 5), ("+3", 3), ("3.0", 3), ("1e3", 1000), ("-0.0", 0)],
)
def test_given_integer_text_when_converted_then_int(value: str, expected: int) -> None:
    result = converter_for("integer")(value)
    assert result == expected
    assert type(result) is int


def test_given_huge_integral_decimal_when_converted_then_exact_int() -> None:
    assert converter_for("integer")("12345678901234567890.0") == 12345678901234567890


@pytest.mark.parametrize("value", ["3.5", "abc", "NaN", "inf", "1,000", "0x10"])
def test_given_non_integer_when_converted_then_value_error(value: str) -> None:
    with pytest.raises(ValueError):
        converter_for("integer")(value)


@pytest.mark.parametrize(
    ("value", "expected"), [("3.14", 3.14), ("-1e3", -1000.0), ("7", 7.0), (" 0.5 ", 0.5)]
)
def test_given_number_text_when_converted_then_float(value: str, expected: float) -> None:
    assert converter_for("number")(value) == expected


@pytest.mark.parametrize("value", ["NaN", "nan", "inf", "-Infinity", "1e400"])
def test_given_non_finite_number_when_converted_then_none(value: str) -> None:
    assert converter_for("number")(value) is None


@pytest.mark.parametrize("value", ["abc", "1,5", "--1"])
def test_given_garbage_number_when_converted_then_value_error(value: str) -> None:
    with pytest.raises(ValueError):
        converter_for("number")(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("No", False),
        ("t", True),
        ("F", False),
        (" tRuE ", True),
    ],
)
def test_given_boolean_text_when_converted_then_bool(value: str, expected: bool) -> None:
    assert converter_for("boolean")(value) is expected


@pytest.mark.parametrize("value", ["2", "maybe", "truth"])
def test_given_garbage_boolean_when_converted_then_value_error(value: str) -> None:
    with pytest.raises(ValueError):
        converter_for("boolean")(value)


def test_given_date_when_converted_then_validated_iso_date() -> None:
    assert converter_for("date")("2025-12-14") == "2025-12-14"
    assert converter_for("date")(" 2025-01-02 ") == "2025-01-02"


@pytest.mark.parametrize("value", ["2025-13-01", "2025-12", "20251214", "2025-12-14T00:00:00"])
def test_given_bad_date_when_converted_then_value_error(value: str) -> None:
    with pytest.raises(ValueError):
        converter_for("date")(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"a": 1, "b": [true, null]}', {"a": 1, "b": [True, None]}),
        ("[1, 2]", {"_text": "[1, 2]"}),
        ("plain text", {"_text": "plain text"}),
        ("{not json", {"_text": "{not json"}),
        ("42", {"_text": "42"}),
        ('"quoted"', {"_text": '"quoted"'}),
        (" padded, text ", {"_text": " padded, text "}),
    ],
)
def test_given_object_text_when_converted_then_object_or_exact_text_kept(
    value: str, expected: Any
) -> None:
    assert converter_for("object")(value) == expected


def test_given_datetime_cell_when_converted_then_rfc3339_utc() -> None:
    assert converter_for("date-time")("2025-12-14 15:07:05.385000+00:00") == (
        "2025-12-14T15:07:05.385000+00:00"
    )


# --------------------------------------------------------------------------- timestamps

TIMESTAMPS = [
    ("2025-12-14 15:07:05.385000+00:00", "2025-12-14T15:07:05.385000+00:00"),
    ("2025-12-14T15:07:05.385000+00:00", "2025-12-14T15:07:05.385000+00:00"),
    ("2025-12-14T15:07:05Z", "2025-12-14T15:07:05.000000+00:00"),
    ("2025-12-14T15:07:05.385000Z", "2025-12-14T15:07:05.385000+00:00"),
    ("2025-12-14 15:07:05.385000z", "2025-12-14T15:07:05.385000+00:00"),
    ("2025-12-14 15:07:05.385000-00:00", "2025-12-14T15:07:05.385000+00:00"),
    ("2025-12-14T15:07:05z", "2025-12-14T15:07:05.000000+00:00"),
    ("2025-12-14T15:07:05+02:00", "2025-12-14T13:07:05.000000+00:00"),
    ("2025-12-14 15:07:05.385000-05:00", "2025-12-14T20:07:05.385000+00:00"),
    ("2025-12-14T01:07:05.5+0200", "2025-12-13T23:07:05.500000+00:00"),
    ("2025-12-14T15:07:05.123456789Z", "2025-12-14T15:07:05.123456+00:00"),
    ("2025-12-14T15:07:05.999999999+00:00", "2025-12-14T15:07:05.999999+00:00"),
    ("2025-12-14T15:07:05.1", "2025-12-14T15:07:05.100000+00:00"),
    ("2025-12-14 15:07:05", "2025-12-14T15:07:05.000000+00:00"),
    ("2025-12-14T15:07", "2025-12-14T15:07:00.000000+00:00"),
    ("2025-12-14", "2025-12-14T00:00:00.000000+00:00"),
    (" 2025-12-14T15:07:05Z ", "2025-12-14T15:07:05.000000+00:00"),
    ("2025-12-14 15:07:05 +02:00", "2025-12-14T13:07:05.000000+00:00"),
    ("1606939056", "2020-12-02T19:57:36.000000+00:00"),
    ("1606939056.25", "2020-12-02T19:57:36.250000+00:00"),
    ("1606939056984", "2020-12-02T19:57:36.984000+00:00"),
    ("1606939056984.5", "2020-12-02T19:57:36.984500+00:00"),
    ("160693905698", "1975-02-03T21:11:45.698000+00:00"),
    ("16069390569841", "2479-03-21T07:36:09.841000+00:00"),
]


@pytest.mark.parametrize(("value", "expected"), TIMESTAMPS)
def test_given_timestamp_form_when_parsed_then_fixed_width_utc(value: str, expected: str) -> None:
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize(("value", "expected"), TIMESTAMPS)
def test_given_timestamp_form_when_parsed_by_fallback_then_same_result(
    value: str, expected: str
) -> None:
    """The fallback (used on Python 3.10 or odd input) agrees with the fast path."""
    assert _parse_timestamp_slow(value) == expected


def test_given_epoch_examples_when_parsed_then_match_datetime_arithmetic() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    expected = (epoch + timedelta(milliseconds=160693905698)).isoformat(timespec="microseconds")
    assert parse_timestamp("160693905698") == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        "2025-13-01",
        "2025-12-14T25:00:00",
        "2025-02-30 15:07:05.385000+00:00",
        "2025-12-14 15:07:65.385000+00:00",
        "2025-12-14 15:07:05.38500x+00:00",
        "2025-12-14 15:07:05.385000Q",
        "12345",
        "16069390569",  # 11 digits: neither seconds nor milliseconds
        "160693905698412",
        "2025-12-14T15:07:05+25:00",
        "1606939056.5.5",
        "-1606939056",
    ],
)
def test_given_garbage_timestamp_when_parsed_then_value_error(value: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


def test_given_mixed_offsets_when_parsed_then_strings_sort_chronologically() -> None:
    values = [
        "2025-12-14T15:07:05+02:00",
        "2025-12-14 12:07:05.5+00:00",
        "1765724825000",
        "2025-12-14T13:07:04.999999Z",
        "2025-12-14",
    ]
    parsed = [parse_timestamp(v) for v in values]
    chrono = sorted(values, key=lambda v: datetime.fromisoformat(parse_timestamp(v)))

    assert sorted(parsed) == [parse_timestamp(v) for v in chrono]
    assert {len(p) for p in parsed} == {32}


# --------------------------------------------------------------------------- rows


TYPES = {
    "id": "integer",
    "value": "number",
    "ok": "boolean",
    "record_time": "date-time",
    "day": "date",
    "meta": "object",
}
COLUMNS = ["id", "name", "value", "ok", "record_time", "day", "meta"]


def test_given_typed_row_when_converted_then_values_in_column_order() -> None:
    converter = RowConverter(COLUMNS, TYPES)

    row = ["7", "Ann", "1.5", "true", "2025-12-14 15:07:05.385000+00:00", "2025-12-14", "{}"]

    assert converter.convert(row) == [
        7,
        "Ann",
        1.5,
        True,
        "2025-12-14T15:07:05.385000+00:00",
        "2025-12-14",
        {},
    ]


def test_given_empty_and_unusual_cells_when_converted_then_exact_converters_apply() -> None:
    converter = RowConverter(COLUMNS, TYPES)

    row = ["3.0", "", " ", " Yes ", "2025-12-14T15:07:05Z", "", "text"]

    assert converter.convert(row) == [
        3,
        None,
        None,
        True,
        "2025-12-14T15:07:05.000000+00:00",
        None,
        {"_text": "text"},
    ]


def test_given_bad_cell_when_converted_then_error_carries_column_and_value() -> None:
    converter = RowConverter(COLUMNS, TYPES)

    with pytest.raises(ConversionError) as info:
        converter.convert(["1", "x", "1.5", "perhaps", "", "", ""])

    assert info.value.column == "ok"
    assert info.value.value == "perhaps"
    assert info.value.json_type == "boolean"
    assert isinstance(info.value, ValueError)
    assert "column 'ok'" in str(info.value)


def test_given_bad_timestamp_when_converted_then_error_names_column() -> None:
    converter = RowConverter(COLUMNS, TYPES)

    with pytest.raises(ConversionError, match="column 'record_time'"):
        converter.convert(["1", "x", "1.5", "1", "yesterday", "", ""])


def test_given_unknown_columns_when_converted_then_strings() -> None:
    converter = RowConverter(["a", "b"], {})

    assert converter.types == ["string", "string"]
    assert converter.convert(["1", ""]) == ["1", None]


def test_given_short_row_when_converted_then_missing_cells_are_null() -> None:
    converter = RowConverter(COLUMNS, TYPES)

    assert converter.convert(["1", "x"]) == [1, "x", None, None, None, None, None]


def test_given_long_row_when_converted_then_ragged_row_error() -> None:
    converter = RowConverter(["a"], {})

    with pytest.raises(RaggedRowError, match=r"row has 3 cells but the header has 1 \(2 extra\)"):
        converter.convert(["1", "2", "3"])


def test_given_rows_of_other_width_when_fitted_then_padded_trimmed_or_rejected() -> None:
    assert fit(["1"], 3) == ["1", "", ""]
    assert fit(["1", "2", "3"], 3) == ["1", "2", "3"]
    assert fit(["1", "2", "", ""], 2) == ["1", "2"]
    with pytest.raises(RaggedRowError) as info:
        fit(["1", "2", "", "x"], 2)
    assert info.value.extra == 2
    assert isinstance(info.value, FileFormatError)
    assert RowConverter(["a", "b"], {}).fit(["1"]) == ["1", ""]


def test_given_table_when_converted_end_to_end_then_records(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.csv",
        b"User ID,Record Time,X-Axis\r\n1,2025-12-14 15:07:05.385000+00:00,0.5\r\n2,,\r\n",
    )
    table = next(open_tables(path, "x.csv"))
    names = normalize_header(table.header)
    converter = RowConverter(names, {"user_id": "integer", "record_time": "date-time"})

    records = [dict(zip(names, converter.convert(row), strict=True)) for row in table.rows]

    assert records == [
        {"user_id": 1, "record_time": "2025-12-14T15:07:05.385000+00:00", "x_axis": "0.5"},
        {"user_id": 2, "record_time": None, "x_axis": None},
    ]


@pytest.mark.parametrize("chunk", [7, 37, 4096])
@pytest.mark.parametrize("index", [0, 1, 4, 6, 7, 12, 28])
def test_given_invalid_utf8_on_any_line_when_read_in_small_chunks_then_line_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, index: int
) -> None:
    monkeypatch.setattr("tap_avicenna.parsing._CHUNK", chunk)
    records = [b"a,b\r\n"] + [b'%d,"v\xc3\xa9 %d"\r\n' % (i, i) for i in range(2, 31)]
    records[6] = b'7,"two\r\nlines"\r\n'  # one record on physical lines 7-8
    records[index] = records[index].replace(b",", b",\xfe", 1)
    bad_line = index + 1 if index <= 6 else index + 2
    path = write(tmp_path / "x.csv", b"".join(records))

    with pytest.raises(FileFormatError, match=rf"^x\.csv line {bad_line}: invalid UTF-8"):
        read_all(path, "x.csv")


@pytest.mark.parametrize("kind", ["csv", "gzip", "zip"])
def test_given_generator_dropped_when_table_kept_then_rows_still_readable(
    tmp_path: Path, kind: str
) -> None:
    data = b"a,b\n" + b"1,2\n" * 100_000
    path = tmp_path / "x"
    if kind == "zip":
        make_zip(path, [("x.csv", data)])
    else:
        write(path, gzip.compress(data) if kind == "gzip" else data)

    table = next(open_tables(path, "x"))

    assert sum(1 for _ in table.rows) == 100_000
    table.close()


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
