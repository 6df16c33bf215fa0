"""Typed values: the converter of each JSON type, timestamps, and whole rows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tap_avicenna.errors import FileFormatError
from tap_avicenna.parsing import (
    ConversionError,
    RaggedRowError,
    RowConverter,
    converter_for,
    fit,
    normalize_header,
    open_tables,
    parse_timestamp,
)
from tap_avicenna.parsing.values import JSON_TYPES, UNTYPED, _parse_timestamp_slow
from tests.unit.parsing_helpers import write


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


NULL_SPELLINGS = ["None", "none", "null", "NULL", "NA", "na", "N/A", "n/a", "#N/A", "<NA>", "-",
                  "NaT", "nat", "NaN", "nan", " NULL ", "\tN/A"]  # fmt: skip


@pytest.mark.parametrize("json_type", sorted(JSON_TYPES - {"string"}))
@pytest.mark.parametrize("word", NULL_SPELLINGS)
def test_given_a_null_word_in_a_typed_column_when_converted_then_none(
    json_type: str, word: str
) -> None:
    assert converter_for(json_type)(word) is None
    assert converter_for(json_type, ZoneInfo("Europe/Paris"))(word) is None


@pytest.mark.parametrize("word", NULL_SPELLINGS)
def test_given_a_null_word_in_a_string_column_when_converted_then_text_is_kept(word: str) -> None:
    assert converter_for("string")(word) == word


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


@pytest.mark.parametrize("value", ["3.5", "abc", "inf", "1,000", "0x10"])
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


TORONTO = ZoneInfo("America/Toronto")
LOCAL_TIMESTAMPS = [
    ("2025-01-15 09:30:00", "2025-01-15T14:30:00.000000+00:00"),  # EST, -05:00
    ("2025-07-15T09:30:00.250", "2025-07-15T13:30:00.250000+00:00"),  # EDT, -04:00
    ("2025-01-15", "2025-01-15T05:00:00.000000+00:00"),  # local midnight
    ("2025-11-02 01:30:00", "2025-11-02T05:30:00.000000+00:00"),  # twice that night: the first
    ("2025-01-15T09:30:00Z", "2025-01-15T09:30:00.000000+00:00"),  # an offset wins
    ("2025-01-15 09:30:00+01:00", "2025-01-15T08:30:00.000000+00:00"),
    ("1606939056984", "2020-12-02T19:57:36.984000+00:00"),  # epoch: UTC by definition
]


@pytest.mark.parametrize(("value", "expected"), LOCAL_TIMESTAMPS)
def test_given_a_zone_when_parsing_then_only_timestamps_without_offset_are_read_in_it(
    value: str, expected: str
) -> None:
    assert parse_timestamp(value, TORONTO) == expected
    assert _parse_timestamp_slow(value, TORONTO) == expected
    assert converter_for("date-time", TORONTO)(value) == expected
    converter = RowConverter(["t"], {"t": "date-time"}, zone=TORONTO)
    assert converter.convert([value]) == [expected]


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


def test_given_bad_cell_when_converted_strictly_then_error_carries_column_and_value() -> None:
    converter = RowConverter(COLUMNS, TYPES, strict=True)

    with pytest.raises(ConversionError) as info:
        converter.convert(["1", "x", "1.5", "perhaps", "", "", ""])

    assert info.value.column == "ok"
    assert info.value.value == "perhaps"
    assert info.value.json_type == "boolean"
    assert isinstance(info.value, ValueError)
    assert "column 'ok'" in str(info.value)


def test_given_bad_timestamp_when_converted_strictly_then_error_names_column() -> None:
    converter = RowConverter(COLUMNS, TYPES, strict=True)

    with pytest.raises(ConversionError, match="column 'record_time'"):
        converter.convert(["1", "x", "1.5", "1", "yesterday", "", ""])


def test_given_untyped_cells_when_converted_then_null_and_their_text_kept_in_file_order() -> None:
    converter = RowConverter(COLUMNS, TYPES)
    fields = [*COLUMNS, UNTYPED]

    values = converter.convert(["1", "x", 'say "hi"', "perhaps", "yesterday", "None", "null"])

    assert converter.fields == fields
    assert dict(zip(fields, values, strict=True)) == {
        "id": 1,
        "name": "x",
        "value": None,
        "ok": None,
        "record_time": None,
        "day": None,
        "meta": None,
        UNTYPED: '{"value":"say \\"hi\\"","ok":"perhaps","record_time":"yesterday"}',
    }
    assert json.loads(values[-1]) == {
        "value": 'say "hi"',
        "ok": "perhaps",
        "record_time": "yesterday",
    }
    converter.convert(["2", "y", "1.5", "maybe", "", "", ""])
    assert converter.untyped == {"ok": 2, "value": 1, "record_time": 1}


def test_given_rows_that_fit_when_converted_then_only_the_columns_values() -> None:
    """The fields after the columns are left out (null) when every cell fits."""
    converter = RowConverter(COLUMNS, TYPES, labels={"id": "id_label"})

    assert converter.fields == [*COLUMNS, "id_label", UNTYPED]
    assert len(converter.convert(["3.0", "x", "NaN", "", "", "", ""])) == len(COLUMNS)
    assert not converter.untyped


def test_given_label_cells_in_an_id_column_when_converted_then_they_go_to_the_label_field() -> None:
    converter = RowConverter(["status_id", "n"], {"status_id": "integer", "n": "integer"},
                             labels={"status_id": "status"}, strict=True)  # fmt: skip
    fields = converter.fields

    assert fields == ["status_id", "n", "status", UNTYPED]
    assert converter.convert(["2", "1"]) == [2, 1]
    assert dict(zip(fields, converter.convert(["Completed", "1"]), strict=False)) == {
        "status_id": None,
        "n": 1,
        "status": "Completed",
    }
    assert converter.convert(["N/A", "1"]) == [None, 1]
    with pytest.raises(ConversionError, match="column 'n'"):
        converter.convert(["Canceled", "x"])
    assert not converter.untyped


def test_given_the_label_field_is_a_column_of_the_file_when_converted_then_no_routing() -> None:
    types = {"status_id": "integer"}
    converter = RowConverter(["status_id", "status"], types, labels={"status_id": "status"})

    values = converter.convert(["Completed", "Completed"])

    assert converter.fields == ["status_id", "status", UNTYPED]
    assert values == [None, "Completed", '{"status_id":"Completed"}']


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
