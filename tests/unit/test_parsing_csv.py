"""The CSV reader: dialect, header, rows, line numbers and UTF-8 errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tap_avicenna.errors import FileFormatError
from tap_avicenna.parsing import Limits, open_tables
from tests.unit.parsing_helpers import (  # noqa: F401 (an autouse fixture)
    MB,
    field_size_limit_restored,
    make_zip,
    read_all,
    write,
)


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


def test_given_unterminated_quote_when_read_then_error_with_line(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b'a,b\n1,2\n3,"unterminated\nmore\n')

    with pytest.raises(FileFormatError, match=r"^x\.csv line 4: unexpected end of data"):
        read_all(path, "x.csv")


def test_given_text_after_closing_quote_when_read_then_error_with_line(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b'a,b\n1,"x"y\n')

    with pytest.raises(FileFormatError, match=r"^x\.csv line 2: "):
        read_all(path, "x.csv")


@pytest.mark.parametrize("chunk", [7, 37, 4096])
@pytest.mark.parametrize("index", [0, 1, 4, 6, 7, 12, 28])
def test_given_invalid_utf8_on_any_line_when_read_in_small_chunks_then_line_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, index: int
) -> None:
    monkeypatch.setattr("tap_avicenna.parsing.csvreader._CHUNK", chunk)
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
