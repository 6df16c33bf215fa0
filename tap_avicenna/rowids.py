"""Row ids: a stable id of each row's content, shared by the streams and BATCH writers."""

from __future__ import annotations

import hashlib
import typing as t

import msgspec

ROW_ID = "_row_id"
ENCODER = msgspec.json.Encoder()
_SORTED_ENCODER = msgspec.json.Encoder(order="sorted")


def content_id(content: bytes) -> str:
    """The row id of a row's canonical JSON: 16 bytes of BLAKE2, in hex."""
    return hashlib.blake2b(content, digest_size=16).hexdigest()


def row_id(record: t.Mapping[str, t.Any]) -> str:
    """A stable id of a row's content: BLAKE2 of its non-null fields as JSON with sorted
    keys (so column order and columns that are empty here do not matter)."""
    return content_id(_SORTED_ENCODER.encode({k: v for k, v in record.items() if v is not None}))
