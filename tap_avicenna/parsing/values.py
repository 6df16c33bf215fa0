"""CSV cells turned into typed values: one converter per JSON schema type, and a row
converter applying them column by column.

In every typed (non-string) column the null words (`NULL_WORDS`, any case, surrounding
spaces ignored) and empty cells are null. A cell no converter reads for its column's type
(an "untyped cell") is not an error by default: `RowConverter` leaves the field null and
keeps the cell's exact text in the row's `UNTYPED` field; with `strict` it raises.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from tap_avicenna.parsing.csvreader import fit

Converter = Callable[[str], Any]
JSON_TYPES = frozenset({"string", "integer", "number", "boolean", "date-time", "date", "object"})

NULL_WORDS = frozenset({"", "none", "null", "na", "n/a", "#n/a", "<na>", "nan", "nat", "-"})
"""Cells that are null in a typed column, compared stripped and lower-cased: what pandas,
R, Excel, Django and SQL dumps write for a missing value."""

UNTYPED = "_untyped_cells"
"""The field keeping the exact text of a row's untyped cells: a JSON object as text,
column name -> cell, in file order (a string, so that every target and Parquet load it
as it is)."""


def is_null_word(value: str) -> bool:
    """Whether a cell is null in a typed column (empty, blank or a null word)."""
    return value.strip().lower() in NULL_WORDS


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


def parse_timestamp(value: str, zone: tzinfo | None = None) -> str:
    """Parse a timestamp into fixed-width RFC 3339 UTC: ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``.

    Accepts ISO 8601 / RFC 3339 with ``T`` or space, optional fraction (digits beyond 6 are
    truncated), ``Z`` or ``±HH:MM`` offset (none means `zone`, default UTC), a bare date
    (midnight in `zone`), epoch seconds (10 integer digits) and epoch milliseconds (12-14
    integer digits), optionally with a decimal part; on Python 3.11+ also the other forms
    ``datetime.fromisoformat`` accepts (e.g. ``20251214``). A local time that occurs twice
    in `zone` (clocks going back) is read as the first. Raises ``ValueError`` otherwise.
    """
    if len(value) in (10, 12, 13, 14) and value.isdigit() and value.isascii():
        micros = int(value) * (1_000_000 if len(value) == 10 else 1_000)
        return (_EPOCH + timedelta(microseconds=micros)).isoformat(timespec="microseconds")
    try:
        dt = _fromisoformat(value)
    except ValueError:
        return _parse_timestamp_slow(value, zone)
    if dt.tzinfo is None:
        if zone is not None:
            return dt.replace(tzinfo=zone).astimezone(_UTC).isoformat(timespec="microseconds")
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


def _parse_timestamp_slow(value: str, zone: tzinfo | None = None) -> str:
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
        tz: tzinfo = _UTC if offset or zone is None else zone
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
    if is_null_word(value):
        return None
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"not an integer: {value!r}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"not an integer: {value!r}")
    return int(number)


def _to_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        if is_null_word(value):
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
    if text in NULL_WORDS:
        return None
    try:
        return _BOOLEANS[text]
    except KeyError:
        raise ValueError(f"not a boolean: {value!r}") from None


def _datetime_in(zone: tzinfo | None) -> Converter:
    def to_datetime(value: str) -> str | None:
        if is_null_word(value):
            return None
        return parse_timestamp(value, zone)

    return to_datetime


def _to_date(value: str) -> str | None:
    text = value.strip()
    if text.lower() in NULL_WORDS:
        return None
    if len(text) != 10:
        raise ValueError(f"not a date (YYYY-MM-DD): {value!r}")
    return date.fromisoformat(text).isoformat()


TEXT_KEY = "_text"
"""Key under which an `object` cell that is not a JSON object keeps its exact text."""


def _to_object(value: str) -> Any:
    """A JSON object cell as a dict; anything else (invalid JSON, an array, a scalar) but a
    null word as `{"_text": <the cell's exact text>}`, so the field is always an object (one
    JSON column type in every warehouse) and no text is ever dropped."""
    text = value.strip()
    if text.lower() in NULL_WORDS:
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
    "date-time": _datetime_in(None),
    "date": _to_date,
    "object": _to_object,
}


def converter_for(json_type: str, zone: tzinfo | None = None) -> Converter:
    """The converter of one JSON schema type; ``""`` always becomes ``None``.

    Non-string types also map blank cells and null words (`NULL_WORDS`) to ``None``; strings
    keep them as text. integer: ``int()`` syntax, or an integral decimal such as ``3.0``;
    number: ``float()``, NaN/inf become ``None``; boolean: true/false/t/f/yes/no/y/n/1/0 in
    any case; date-time: ``parse_timestamp`` (`zone`: of timestamps without an offset,
    default UTC); date: ``YYYY-MM-DD``; object: a JSON object is parsed, any other text kept
    as is. Failures raise ``ValueError``.
    """
    if json_type == "date-time" and zone is not None:
        return _datetime_in(zone)
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
_ENCODE = msgspec.json.Encoder().encode


class RowConverter:
    """Converts the raw cells of one table's rows to typed values.

    `fields` names the values `convert` returns: the columns, then a label field for each
    label column, then `UNTYPED`. A row whose cells all fit has only the columns' values
    (the fields after them are null).
    """

    def __init__(
        self,
        columns: Sequence[str],
        types: Mapping[str, str],
        *,
        labels: Mapping[str, str] | None = None,
        strict: bool = False,
        zone: tzinfo | None = None,
    ) -> None:
        """``columns``: normalized header; ``types``: name -> JSON type (default string).

        ``labels``: id column -> text field: a cell of the id column that is not an id (a
        status label such as ``Completed``) goes to the text field instead, unless the file
        has that field as a column of its own. ``strict``: an untyped cell raises
        ``ConversionError`` instead of being kept in ``UNTYPED``. ``zone``: of timestamps
        written without an offset (default UTC).
        """
        self.columns = list(columns)
        self.width = len(self.columns)
        self.types = [types.get(name, "string") for name in self.columns]
        self.strict = strict
        self._exact = [converter_for(t, zone) for t in self.types]
        fast = (
            {**_FAST, "date-time": functools.partial(parse_timestamp, zone=zone)} if zone else _FAST
        )
        self._fast = [fast[t] for t in self.types]
        wanted = labels or {}
        self._labels = {
            name: wanted[name]
            for name in self.columns
            if name in wanted and wanted[name] not in self.columns
        }
        self.fields = [*self.columns, *self._labels.values(), UNTYPED]
        self.untyped: Counter[str] = Counter()
        """Untyped cells per column, over every row converted so far."""

    def convert(self, cells: list[str]) -> list[Any]:
        """Typed values of one row (fitted to the header width first, see ``fit``).

        Raises ``RaggedRowError`` for extra non-empty cells, and with ``strict``
        ``ConversionError`` (a ``ValueError``) naming the column of the first untyped cell.
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
        untyped: dict[str, str] = {}
        for name, json_type, conv, cell in zip(
            self.columns, self.types, self._exact, cells, strict=True
        ):
            try:
                values.append(conv(cell))
            except ValueError as e:
                if self.strict and name not in self._labels:
                    raise ConversionError(name, cell, json_type, str(e)) from e
                values.append(None)
                untyped[name] = cell
        if not untyped:
            return values
        values.extend(untyped.pop(name, None) for name in self._labels)
        if untyped:
            self.untyped.update(untyped.keys())
            values.append(_ENCODE(untyped).decode())
        return values

    def fit(self, cells: list[str]) -> list[str]:
        """``fit(cells, self.width)``."""
        return fit(cells, self.width)
