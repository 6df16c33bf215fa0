"""Decoding request bodies: multipart/form-data, urlencoded forms and JSON."""

from __future__ import annotations

import json
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs


class BodyError(ValueError):
    """The body cannot be decoded (answered with HTTP 400)."""


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_multipart(content_type: str, body: bytes) -> dict[str, str]:
    """Text fields of a multipart/form-data body (file parts are read as UTF-8 text)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise BodyError("Multipart form parse error - invalid boundary or body.")
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        if not isinstance(part, EmailMessage):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        try:
            fields[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyError(f"Field {name} is not UTF-8 text.") from None
    return fields


def parse_urlencoded(body: bytes) -> dict[str, str]:
    """Fields of an application/x-www-form-urlencoded body (last value wins)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("Form body is not UTF-8.") from None
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def parse_form(content_type: str | None, body: bytes) -> dict[str, Any]:
    """Form fields from multipart, urlencoded or (leniently) JSON bodies."""
    media = _media_type(content_type)
    if media == "multipart/form-data":
        return parse_multipart(content_type or "", body)
    if media == "application/json" or body.lstrip().startswith(b"{"):
        data = parse_json_object(body)
        return {k: "" if v is None else v for k, v in data.items()}
    return parse_urlencoded(body)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A JSON object body, whatever the Content-Type said (curl's default is urlencoded)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyError(f"JSON parse error - {exc}") from None
    if not isinstance(data, dict):
        raise BodyError("JSON parse error - expected an object.")
    return data


def parse_filter_body(content_type: str | None, body: bytes) -> dict[str, Any]:
    """The filter-export body: raw JSON under any Content-Type, else form fields.

    In the form fallback a ``rule_set`` field holding JSON text is decoded.
    """
    try:
        return parse_json_object(body)
    except BodyError:
        if _media_type(content_type) not in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            raise
    fields: dict[str, Any] = dict(parse_form(content_type, body))
    if isinstance(fields.get("rule_set"), str):
        fields["rule_set"] = parse_json_object(fields["rule_set"].encode("utf-8"))
    if not fields:
        raise BodyError("JSON parse error - empty body.")
    return fields
