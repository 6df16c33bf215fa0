"""Reading downloaded export files, one concept per module:

- `files`: the file containers (CSV, gzip, ZIP of CSVs) and their guards;
- `csvreader`: the CSV dialect, a table's header and rows;
- `names`: field names for header cells;
- `values`: typed values for cells.
"""

from __future__ import annotations

from tap_avicenna.parsing.csvreader import RaggedRowError, Table, fit, open_tables
from tap_avicenna.parsing.files import (
    DEFAULT_LIMITS,
    IncompleteFile,
    Limits,
    RawTable,
    check_complete,
    detect_format,
    open_raw_tables,
    other_members,
    unsafe_member,
)
from tap_avicenna.parsing.names import normalize_header, normalize_name
from tap_avicenna.parsing.values import (
    JSON_TYPES,
    NULL_WORDS,
    UNTYPED,
    ConversionError,
    Converter,
    RowConverter,
    converter_for,
    parse_timestamp,
)

__all__ = [
    "DEFAULT_LIMITS",
    "JSON_TYPES",
    "NULL_WORDS",
    "UNTYPED",
    "ConversionError",
    "Converter",
    "IncompleteFile",
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
    "other_members",
    "parse_timestamp",
    "unsafe_member",
]
