"""Columnar reading of export CSVs with pyarrow, for BATCH files written without one
Python dict per row.

The values, the JSON text and the row ids are exactly those of the row-by-row path
(`parsing.RowConverter` and `rowids.row_id`), untyped cells (`UNTYPED`) included.
Arrow converts a cell only where its result is known to be the Python converter's;
the column's other cells of that batch (null words, odd cells, ...) go through the
Python converter one by one. A table this module cannot read exactly (a quote
character, a ragged row, a leading blank line, an object column, with `strict` an
untyped cell...) raises `NotColumnar`, and the caller reads the export row by row
instead: that path names the file and line of a real error.
"""

from __future__ import annotations

import functools
import os
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from datetime import tzinfo

import msgspec

# Arrow's default allocator (mimalloc) keeps memory once several threads allocate: peak
# RSS of a 1M-row BATCH sync measured 216 MB with it, 160 MB with the system allocator
# (1 MB pieces), at the same speed. The variable only counts before pyarrow's first
# import.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from tap_avicenna.parsing import RawTable, converter_for
from tap_avicenna.parsing.values import NULL_WORDS, UNTYPED

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "date-time": pa.string(),
    "date": pa.string(),
}
_BLOCK = 512 << 10  # bytes of CSV per Arrow batch (1 MB: +25 MB peak RSS for ~3% speed)
_HEAD = 1 << 20  # a header line longer than this is left to the row-by-row path
_ENCODE = msgspec.json.Encoder().encode
# The fixed-width UTC form `parse_timestamp` returns as is (with `T`), or with `Z` for +00:00.
_UTC_STAMP = r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\.\d{6}(\+00:00|Z)$"
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
_NULL_TEXT = pa.scalar(None, pa.string())
_NULL_WORDS = pa.array(sorted(NULL_WORDS), pa.string())


class NotColumnar(Exception):
    """The table needs the row-by-row path (the message says why)."""


@dataclass
class Columns:
    """Typed columns of one Arrow batch of a table, in file order, then `UNTYPED`."""

    names: list[str]
    types: list[str]
    arrays: list[pa.Array]
    untyped: Counter[str] = field(default_factory=Counter)  # untyped cells per column

    def __len__(self) -> int:
        return len(self.arrays[0]) if self.arrays else 0

    def column(self, name: str) -> pa.Array:
        return self.arrays[self.names.index(name)]

    def filter(self, keep: pa.BooleanArray) -> Columns:
        arrays = [pc.filter(a, keep) for a in self.arrays]
        return Columns(self.names, self.types, arrays, self.untyped)


def read_header(raw: RawTable) -> tuple[list[str], bytes]:
    """The header cells of a table (as `open_tables` strips them) and the bytes read past it.

    Raises `NotColumnar` when the first line is not a plain header line.
    """
    data = b""
    while True:
        end = min((i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0), default=-1)
        if end >= 0 or len(data) > _HEAD:
            break
        chunk = raw.stream.read(_BLOCK)
        if not chunk:
            end = len(data)
            break
        data += chunk
    line = data[:end] if end >= 0 else b""
    if not line.strip() or b'"' in line:
        raise NotColumnar("the first line is not a plain header line")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotColumnar("the header is not UTF-8") from None
    return [cell.strip().lstrip("\ufeff").strip() for cell in text.split(",")], data[end:]


def _chunks(head: bytes, stream: t.Any) -> t.Iterator[memoryview]:
    """The table's bytes after the header in pieces of about `_BLOCK` bytes cut at line
    ends, so each piece parses on its own and memory stays bounded. A quote character
    (quoted fields, which Python's strict csv reader and Arrow's parser treat
    differently) stops the columnar reading."""
    carry = head
    while True:
        data = stream.read(_BLOCK)
        chunk = carry + data if carry else data
        if b'"' in chunk:
            raise NotColumnar("quoted fields")
        if not data:
            if chunk:
                yield memoryview(chunk)
            return
        cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r")) + 1
        if cut:
            yield memoryview(chunk)[:cut]  # no copy
        carry = chunk[cut:]


def read_columns(
    raw: RawTable,
    columns: list[str],
    types: t.Mapping[str, str],
    head: bytes,
    *,
    zone: tzinfo | None = None,
    strict: bool = False,
) -> t.Iterator[Columns]:
    """Typed batches of a table whose header `read_header` read (`head`: the bytes after it).

    `columns`: the field name of each header cell; `types`: field -> JSON type; `zone` and
    `strict` as in `RowConverter`.
    """
    json_types = [types.get(name, "string") for name in columns]
    unsupported = sorted({j for j in json_types if j not in ARROW_TYPES})
    if unsupported:
        raise NotColumnar(f"{', '.join(unsupported)} columns")
    labels = [f"c{i}" for i in range(len(columns))]
    options = {
        "read_options": pcsv.ReadOptions(column_names=labels, block_size=_BLOCK, use_threads=False),
        "parse_options": pcsv.ParseOptions(quote_char=False, ignore_empty_lines=True),
        "convert_options": pcsv.ConvertOptions(
            column_types=dict.fromkeys(labels, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    }
    try:
        for chunk in _chunks(head, raw.stream):
            table = pcsv.read_csv(pa.py_buffer(chunk), **options)
            if table.num_rows:
                yield _typed(columns, json_types, table, zone, strict)
    except (pa.ArrowException, UnicodeDecodeError) as e:
        raise NotColumnar(f"{type(e).__name__}: {str(e)[:120]}") from None


def _typed(
    columns: list[str],
    json_types: list[str],
    table: pa.Table,
    zone: tzinfo | None,
    strict: bool,
) -> Columns:
    arrays: list[pa.Array] = []
    odd: list[tuple[str, pa.Array, pa.Array]] = []  # (column, cells, untyped mask)
    for i, json_type in enumerate(json_types):
        cells = table.column(i).combine_chunks()
        values, untyped = convert(cells, json_type, zone, strict)
        arrays.append(values)
        if untyped is not None:
            odd.append((columns[i], cells, untyped))
    counts: Counter[str] = Counter()
    if odd:
        text = untyped_text(odd)
        counts.update({name: pc.sum(mask).as_py() for name, _, mask in odd})
    else:
        text = pa.nulls(table.num_rows, pa.string())
    return Columns([*columns, UNTYPED], [*json_types, "string"], [*arrays, text], counts)


# --- conversion --------------------------------------------------------------------------

# Cells whose Arrow cast is known to be Python's (`int()`, `float()` when finite); the
# others of a column Arrow cannot convert whole go through the Python converter.
_PLAIN = {
    "integer": r"^-?[0-9]{1,18}$",
    "number": r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$",
    "date-time": _UTC_STAMP,
}


def convert(
    cells: pa.Array, json_type: str, zone: tzinfo | None = None, strict: bool = False
) -> tuple[pa.Array, pa.Array | None]:
    """Typed values of one column's cells (`""` is null, as in `RowConverter`) and the mask
    of its untyped cells (None when there is none; those values are null).

    A column Arrow converts whole is converted at once; otherwise Arrow converts the cells
    it is known to read as Python does and `converter_for` the others (null words, odd
    cells). `strict`: an untyped cell raises `NotColumnar`.
    """
    empty = pc.equal(cells, "")
    if pc.any(empty).as_py():
        cells = pc.if_else(empty, _NULL_TEXT, cells)
    if json_type == "string":
        return cells, None
    whole = _whole(cells, json_type)
    if whole is not None:
        return whole, None
    size = len(cells)
    done, values = _plain(cells, json_type) or (_none(size), pa.nulls(size, ARROW_TYPES[json_type]))
    rest = pc.invert(pc.or_(done, _null_words(cells)))  # null words are null: not Python's
    if not pc.any(rest).as_py():
        return values, None
    python_values, untyped = _python(pc.filter(cells, rest), json_type, zone, strict)
    merged = pc.replace_with_mask(values, rest, python_values)
    if untyped is not None:
        untyped = pc.replace_with_mask(_none(size), rest, untyped)
    return merged, untyped


def _null_words(cells: pa.Array) -> pa.Array:
    """Which cells are null, or a null word with ASCII spaces around and in any ASCII case
    (all of them null words to Python's `is_null_word` too; the others it checks itself)."""
    words = pc.is_in(pc.ascii_lower(pc.ascii_trim_whitespace(cells)), value_set=_NULL_WORDS)
    return pc.fill_null(words, True)


def _whole(cells: pa.Array, json_type: str) -> pa.Array | None:
    """The column converted by Arrow at once, when every cell allows it."""
    try:
        if json_type == "integer":
            return pc.cast(cells, pa.int64())
        if json_type == "number":
            numbers = pc.cast(cells, pa.float64())
            if pc.all(pc.is_finite(numbers)).as_py() is not False:
                return numbers
        elif json_type == "date-time" and pc.all(_utc_stamps(cells)).as_py():
            return plain_values(cells, None, json_type)
    except pa.ArrowInvalid:
        pass
    return None


def _utc_stamps(cells: pa.Array) -> pa.Array:
    """Which cells are `YYYY-MM-DD HH:MM:SS.ffffff+00:00` (or `T`, or `Z`), null ones too."""
    return pc.fill_null(pc.match_substring_regex(cells, _UTC_STAMP), True)


def _plain(cells: pa.Array, json_type: str) -> tuple[pa.Array, pa.Array] | None:
    """The cells (null ones included) whose Arrow conversion is Python's and their values
    (null elsewhere), or None when Arrow converts no cell of this column (its type, or a
    cell out of the calendar)."""
    pattern = _PLAIN.get(json_type)
    if pattern is None:
        return None
    plain = pc.fill_null(pc.match_substring_regex(cells, pattern), True)
    try:
        values = plain_values(cells, plain, json_type)
    except pa.ArrowInvalid:
        return None
    if json_type == "number":
        finite = pc.fill_null(pc.is_finite(values), True)
        if not pc.all(finite).as_py():
            plain = pc.and_(plain, finite)
            values = pc.if_else(finite, values, pa.scalar(None, pa.float64()))
    return plain, values


def plain_values(cells: pa.Array, plain: pa.Array | None, json_type: str) -> pa.Array:
    """Arrow's values of the `plain` cells (all when None), null elsewhere."""
    if plain is not None:
        cells = pc.if_else(plain, cells, _NULL_TEXT)
    if json_type == "integer":
        return pc.cast(cells, pa.int64())
    if json_type == "number":
        return pc.cast(cells, pa.float64())
    stamps = _utc_text(cells)
    instants = pc.cast(stamps, pa.timestamp("us", tz="UTC"))  # calendar check
    first = pc.min(pc.year(instants)).as_py()
    if first is not None and first < 1:
        raise pa.ArrowInvalid("year 0")
    return stamps


def _utc_text(cells: pa.Array) -> pa.Array:
    """`YYYY-MM-DDTHH:MM:SS.ffffff+00:00`, the text `parse_timestamp` returns."""
    stamp = pc.binary_replace_slice(cells, 10, 11, "T")
    if pc.any(pc.ends_with(stamp, "Z")).as_py():
        stamp = pc.replace_substring(stamp, "Z", "+00:00")
    return stamp.cast(pa.string())


def _none(size: int) -> pa.Array:
    return pc.fill_null(pa.nulls(size, pa.bool_()), False)


def _python(
    cells: pa.Array, json_type: str, zone: tzinfo | None, strict: bool
) -> tuple[pa.Array, pa.Array | None]:
    """`converter_for`'s values of the cells, and the mask of those it does not read."""
    convert_one = converter_for(json_type, zone)
    values: list[t.Any] = []
    untyped: list[bool] = []
    for cell in cells.to_pylist():
        try:
            values.append(None if cell is None else convert_one(cell))
            untyped.append(False)
        except ValueError as e:
            if strict:
                raise NotColumnar(f"a {json_type} cell: {str(e)[:120]}") from None
            values.append(None)
            untyped.append(True)
    try:
        array = pa.array(values, ARROW_TYPES[json_type])
    except (OverflowError, pa.ArrowException) as e:
        raise NotColumnar(f"a {json_type} cell: {str(e)[:120]}") from None
    return array, (pa.array(untyped, pa.bool_()) if any(untyped) else None)


def untyped_text(odd: list[tuple[str, pa.Array, pa.Array]]) -> pa.Array:
    """Each row's untyped cells as the JSON object text `RowConverter` keeps in `UNTYPED`
    (column -> cell, in file order), null where the row has none. `odd`: (column, its
    cells, the mask of its untyped cells) of each column with some, in file order."""
    size = len(odd[0][1])
    members = []
    for name, cells, mask in odd:
        text = json_text(pc.filter(cells, mask), "string")  # the few untyped cells only
        member = pc.binary_join_element_wise("," + _key(name), text, "")
        members.append(pc.replace_with_mask(pa.nulls(size, pa.string()), mask, member))
    joined = pc.binary_join_element_wise(*(pc.fill_null(m, "") for m in members), "")
    text = pc.binary_join_element_wise(pc.utf8_replace_slice(joined, 0, 1, "{"), "}", "")
    return pc.if_else(functools.reduce(pc.or_, (mask for _, _, mask in odd)), text, _NULL_TEXT)


# --- JSON text and row ids -----------------------------------------------------------------


def json_text(values: pa.Array, json_type: str) -> pa.Array:
    """Each non-null value as msgspec writes it in JSON (null stays null)."""
    if values.null_count == len(values):
        return pa.nulls(len(values), pa.string())
    if json_type == "integer":
        return pc.cast(values, pa.string())
    if json_type == "number":
        return _float_text(values)
    if json_type == "boolean":
        return pc.if_else(values, "true", "false")
    quoted = pc.binary_join_element_wise('"', values, '"', "")
    if json_type in ("date-time", "date"):
        return quoted  # ISO digits and separators: nothing to escape
    escape = pc.match_substring_regex(values, _NEEDS_ESCAPE)
    if pc.any(escape).as_py():
        exact = pa.array([_ENCODE(v).decode() for v in pc.filter(values, escape).to_pylist()])
        quoted = pc.replace_with_mask(quoted, pc.fill_null(escape, False), exact)
    return quoted


def _float_text(values: pa.Array) -> pa.Array:
    """msgspec's text of floats. Arrow writes the same shortest digits; in [1e-5, 1e10)
    only an integral value's missing `.0` differs (checked in the tests over every
    magnitude). Values outside that range are written by msgspec one by one."""
    text = pc.cast(values, pa.string())
    bare = pc.invert(pc.match_substring(text, "."))
    if pc.any(bare).as_py():
        text = pc.if_else(bare, pc.binary_join_element_wise(text, ".0", ""), text)
    size = pc.abs(values)
    odd = pc.and_(
        pc.not_equal(values, 0.0), pc.or_(pc.less(size, 1e-5), pc.greater_equal(size, 1e10))
    )
    if pc.any(odd).as_py():
        exact = pa.array([_ENCODE(v).decode() for v in pc.filter(values, odd).to_pylist()])
        text = pc.replace_with_mask(text, pc.fill_null(odd, False), exact)
    return text


def json_texts(columns: Columns) -> dict[str, pa.Array]:
    """field -> the JSON text of each row's value (null where the value is null)."""
    return {
        name: json_text(values, j)
        for name, j, values in zip(columns.names, columns.types, columns.arrays, strict=True)
    }


def _key(name: str) -> str:
    return _ENCODE(name).decode() + ":"


def canonical_json(texts: t.Mapping[str, pa.Array]) -> pa.Array:
    """Each row's non-null fields as JSON with sorted keys, the text `row_id` hashes."""
    names = sorted(name for name, text in texts.items() if text.null_count < len(text))
    if not names:
        return pa.array(["{}"] * len(next(iter(texts.values()))), pa.string())
    if all(texts[name].null_count == 0 for name in names):  # one pass
        parts: list[t.Any] = []
        for i, name in enumerate(names):
            parts += [("{" if i == 0 else ",") + _key(name), texts[name]]
        return pc.binary_join_element_wise(*parts, "}", "")
    members = pc.binary_join_element_wise(
        *(pc.binary_join_element_wise(_key(name), texts[name], "") for name in names),
        ",",
        null_handling="skip",
    )
    return pc.binary_join_element_wise("{", members, "}", "")


def json_lines(texts: t.Mapping[str, pa.Array], ids: pa.Array, tail: str = "") -> bytes:
    """One JSON object per row and line, keys in file order with nulls written as null
    (`UNTYPED` only where it is not null), then `_row_id`, then the members of `tail`
    (`,"key":value...`, the same in every row): what the row-by-row writer writes."""
    if not len(ids):
        return b""
    parts: list[t.Any] = []
    for i, (name, text) in enumerate(texts.items()):
        key = ("{" if i == 0 else ",") + _key(name)
        if name != UNTYPED:
            parts += [key, pc.fill_null(text, "null")]
        elif text.null_count < len(text):
            parts.append(pc.fill_null(pc.binary_join_element_wise(key, text, ""), ""))
    parts += [("{" if not parts else ",") + '"_row_id":"', ids, '"' + tail + "}\n"]
    lines = pc.binary_join_element_wise(*parts, "").cast(pa.binary())
    _, offsets, data = lines.buffers()
    assert offsets is not None and data is not None
    ends = memoryview(offsets).cast("i")  # int32 offsets of the binary array
    return bytes(data.to_pybytes()[ends[lines.offset] : ends[lines.offset + len(lines)]])
