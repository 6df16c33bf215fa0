"""Deterministic survey sessions and the ACTIVITY_RESPONSE export table (query, columns, sort).

Session ``status_id`` (the simulator's choice; only 0 is documented): 0 Unanswered,
1 Completed, 2 Canceled (first half of the answers), 3 Expired, 4 Blocked. Participant
``status_id``: 1 active, 2 dropped.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import iso_z, parse_instant, to_ms
from .config import ParticipantConfig, QuestionConfig, StudyConfig, SurveyConfig
from .data import DAY_MS, Row, as_dicts, device_id, make_time_formatter, refused, seed_of
from .files import placeholder_jpeg

SESSION_STATUSES = {0: "Unanswered", 1: "Completed", 2: "Canceled", 3: "Expired", 4: "Blocked"}
STATUS_LABELS = {
    "status_id": SESSION_STATUSES,
    "participant.status_id": {1: "Active", 2: "Dropped"},
}
"""What dashboard exports write with ``dashboard_status_labels``."""
_UUID_NAMESPACE = uuid.UUID("6f0c7d2e-5a3b-4c1d-9e8f-0a1b2c3d4e5f")

SESSION_COLUMNS = (
    "participant_id",
    "participant.id",
    "participant.label",
    "uuid",
    "prompt_time",
    "record_time",
    "status_id",
    "device.id",
    "device.model",
    "participant.start_time",
    "participant.status_id",
)
DEFAULT_V2_COLUMNS = tuple(
    c for c in SESSION_COLUMNS if c not in ("participant.id", "participant.label")
)
DASHBOARD_COLUMNS = (
    ("Participant ID", "participant_id"),
    ("Participant Label", "participant.label"),
    ("Device ID", "device.id"),
    ("Device Model", "device.model"),
    ("UUID", "uuid"),
    ("Prompt Time", "prompt_time"),
    ("Record Time", "record_time"),
    ("Status", "status_id"),
    ("Participant Start Time", "participant.start_time"),
    ("Participant Status", "participant.status_id"),
)
ALIASES = {
    "session.uuid": "uuid",
    "session.prompt_time": "prompt_time",
    "session.record_time": "record_time",
    "session.status_id": "status_id",
    "participant.id": "participant_id",
}
TIME_FIELDS = frozenset({"prompt_time", "record_time", "participant.start_time"})
INT_FIELDS = frozenset({"status_id", "participant_id", "participant.status_id"})
OPS = ("=", "!=", ">", ">=", "<", "<=", "in", "not_in", "contains", "starts_with")

PLAIN_TEXTS = ("Feeling fine", "Busy day at work", "Went for a walk", "Tired", "Slept well")
TRICKY_TEXTS = (
    "Hello, world",
    'She said "hi" and left',
    "line one\nline two",
    "first line\r\nsecond line",
    "\U0001f600 great day \U0001f389",
    "Café, naïve façade — 東京 — Привет",
    "  leading and trailing spaces  ",
    "it\u2019s \u201csmart\u201d quotes",
    '"quoted, whole"',
    "=SUM(A1:A2)",
    "tab\there",
    "multi\n\nblank line",
)


class SurveyRequestError(ValueError):
    """The filter body is invalid (answered with HTTP 400)."""


@dataclass
class SurveyRequest:
    """A parsed ACTIVITY_RESPONSE filter body."""

    study_id: int
    activity_id: int
    export_version: str | None = "v2"
    columns: list[str] = field(default_factory=list)
    query: dict[str, Any] = field(default_factory=dict)
    sort_by: list[dict[str, Any]] = field(default_factory=list)
    site_ssid: Any = None


@dataclass
class Session:
    """One prompting of a survey for a participant; ``fields`` are typed values by name."""

    fields: dict[str, Any]
    answers: dict[int, tuple[str, str]]


def parse_survey_request(body: dict[str, Any]) -> SurveyRequest:
    """Check the shape of an ACTIVITY_RESPONSE body (not yet against the study)."""
    try:
        study_id = int(body["study_id"])
    except (KeyError, TypeError, ValueError):
        raise SurveyRequestError("study_id must be an integer.") from None
    try:
        activity_id = int(body["activity_id"])
    except (KeyError, TypeError, ValueError):
        raise SurveyRequestError("activity_id must be an integer.") from None
    rule_set = body.get("rule_set") or {}
    if not isinstance(rule_set, dict):
        raise SurveyRequestError("rule_set must be an object.")
    columns = rule_set.get("columns") or []
    query = rule_set.get("query") or {}
    sort_by = rule_set.get("sort_by") or []
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise SurveyRequestError("rule_set.columns must be a list of strings.")
    if not isinstance(query, dict):
        raise SurveyRequestError("rule_set.query must be an object.")
    if not isinstance(sort_by, list) or not all(isinstance(s, dict) for s in sort_by):
        raise SurveyRequestError("rule_set.sort_by must be a list of objects.")
    version = body.get("export_version")
    return SurveyRequest(
        study_id=study_id,
        activity_id=activity_id,
        export_version=None if version is None else str(version),
        columns=list(columns),
        query=query,
        sort_by=list(sort_by),
        site_ssid=body.get("site_ssid"),
    )


def visible_questions(survey: SurveyConfig, created: datetime) -> list[QuestionConfig]:
    """Questions that exist for an export created at ``created``."""
    return [q for q in survey.questions if q.added_at is None or q.added_at <= created]


def _question_fields(questions: list[QuestionConfig]) -> set[str]:
    return {f"Q{q.id}" for q in questions}


def _canonical(name: str) -> str:
    return ALIASES.get(name, name)


def is_dashboard(study: StudyConfig, request: SurveyRequest) -> bool:
    """Dashboard headers unless the request asks for v2 (and the study does not override)."""
    return study.survey_header_style == "dashboard" or request.export_version != "v2"


def _columns(
    study: StudyConfig,
    survey: SurveyConfig,
    activity_id: int,
    request: SurveyRequest,
    created: datetime,
) -> list[tuple[str, str]]:
    """(header, field) pairs of the export; raises ``SurveyRequestError`` on unknown columns."""
    questions = visible_questions(survey, created)
    qnames = _question_fields(questions)
    refusal = refused(study, request.columns)
    if refusal:
        raise SurveyRequestError(refusal)
    if is_dashboard(study, request):
        cols = list(DASHBOARD_COLUMNS)
        for q in questions:
            var = q.variable or f"Question {q.id} of Survey {activity_id}"
            cols.append((f"[{q.id}_{q.type_code}] {var}", f"Q{q.id}"))
            cols.append((f"[{q.id}_{q.type_code} metadata] {var}", f"mQ{q.id}_metadata"))
        return cols
    requested = (
        request.columns
        or study.survey_default_columns
        or [*DEFAULT_V2_COLUMNS, *(f"Q{q.id}" for q in questions)]
    )
    cols = []
    for name in requested:
        if name in qnames:
            cols.append((name, name))
            cols.append((f"m{name}_metadata", f"m{name}_metadata"))
        elif _canonical(name) in SESSION_COLUMNS:
            cols.append((name, _canonical(name)))
        else:
            raise SurveyRequestError(f"Unknown column: {name}.")
    return cols


def _compile_query(query: dict[str, Any], known: set[str]) -> Callable[[dict[str, Any]], bool]:
    """Predicate over session fields for an ``{AND|OR: [...]}`` / condition tree."""
    if not query:
        return lambda _fields: True
    groups = {k.upper(): v for k, v in query.items() if k.upper() in ("AND", "OR")}
    if groups:
        if len(query) != 1:
            raise SurveyRequestError("A query group must have exactly one key, AND or OR.")
        ((kind, items),) = groups.items()
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise SurveyRequestError(f"{kind} must hold a list of objects.")
        parts = [_compile_query(i, known) for i in items]
        if kind == "AND":
            return lambda f: all(p(f) for p in parts)
        return lambda f: any(p(f) for p in parts)
    try:
        name, op, value = query["field_name"], query["op"], query.get("value")
    except KeyError:
        raise SurveyRequestError("A condition needs field_name, op and value.") from None
    name = _canonical(str(name))
    if name not in known:
        raise SurveyRequestError(f"Unknown field: {query['field_name']}.")
    if op not in OPS:
        raise SurveyRequestError(f"Unknown op: {op}.")
    return _condition(name, str(op), value)


def _coerce(name: str, value: Any) -> Any:
    try:
        if name in TIME_FIELDS:
            return to_ms(parse_instant(value))
        if name in INT_FIELDS:
            return int(value)
    except (TypeError, ValueError):
        raise SurveyRequestError(f"Bad value for {name}: {value!r}.") from None
    return "" if value is None else str(value)


def _condition(name: str, op: str, value: Any) -> Callable[[dict[str, Any]], bool]:
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            raise SurveyRequestError(f"The value of {op} must be a list.")
        members = {_coerce(name, v) for v in value}
        if op == "in":
            return lambda f: f[name] in members
        return lambda f: f[name] not in members
    if op in ("contains", "starts_with"):
        text = "" if value is None else str(value)
        if op == "contains":
            return lambda f: text in str(f[name])
        return lambda f: str(f[name]).startswith(text)
    target = _coerce(name, value)
    compare: dict[str, Callable[[Any], bool]] = {
        "=": lambda v: v == target,
        "!=": lambda v: v != target,
        ">": lambda v: v > target,
        ">=": lambda v: v >= target,
        "<": lambda v: v < target,
        "<=": lambda v: v <= target,
    }
    test = compare[op]
    return lambda f: test(f[name])


def _answer(q: QuestionConfig, tricky: bool, h: int, session_uuid: str) -> str:
    code = q.type_code
    if code == "SA":
        return str(1 + h % 5)
    if code == "MA":
        picked = [str(i + 1) for i in range(6) if (h >> i) & 1]
        return ",".join(picked or ["1"])
    if code == "NUM":
        return str(h % 11)
    if code == "IMG":
        return f"response-files/{session_uuid}/{q.id}.jpg"
    texts = TRICKY_TEXTS if tricky else PLAIN_TEXTS
    return texts[h % len(texts)]


def _metadata(q: QuestionConfig, tricky: bool, h: int, answered_ms: int) -> str:
    meta = {
        "question_id": q.id,
        "answered_at": iso_z(parse_instant(answered_ms)),
        "duration_ms": h % 60_000,
        "iteration": 1,
    }
    if not tricky:
        return json.dumps(meta)
    if (h >> 20) % 9 == 0:
        return "not-json: legacy metadata"
    meta["note"] = 'répondu \U0001f44d, "ok"'
    return json.dumps(meta, indent=2, ensure_ascii=False)


def generate_sessions(
    study_id: int,
    activity_id: int,
    survey: SurveyConfig,
    participant: ParticipantConfig,
    cutoff_ms: int,
    questions: list[QuestionConfig],
    seed: int = 0,
) -> list[Session]:
    """A participant's sessions with ``record_time`` before the cutoff, in time order.

    ``sessions_per_day`` prompts spread over 09:00-23:00 UTC of each day of the
    participant's period; questions added at ``added_at`` only have answers in sessions
    prompted after that instant.
    """
    start_ms = to_ms(participant.start)
    end_ms = min(cutoff_ms, to_ms(participant.end) if participant.end else cutoff_ms)
    per_day = max(0, survey.sessions_per_day)
    span = 14 * 3_600_000 // max(1, per_day)
    dev = device_id(study_id, participant.id)
    model = participant.device_model or "Pixel 7"
    out: list[Session] = []
    for day in range(start_ms // DAY_MS, end_ms // DAY_MS + 1):
        for j in range(per_day):
            h = seed_of(seed, study_id, activity_id, participant.id, day, j)
            prompt_ms = day * DAY_MS + 9 * 3_600_000 + j * span + h % min(span, 3_600_000)
            if prompt_ms < start_ms or prompt_ms >= end_ms:
                continue
            roll = (h >> 24) % 100
            status = (
                1 if roll < 70 else 2 if roll < 80 else 3 if roll < 90 else 0 if roll < 95 else 4
            )
            if status in (1, 2):
                record_ms = prompt_ms + 30_000 + (h >> 32) % 1_800_000
            elif status == 4:
                record_ms = prompt_ms
            else:
                record_ms = prompt_ms + 3_600_000
            if record_ms >= cutoff_ms:
                continue
            sid = str(
                uuid.uuid5(
                    _UUID_NAMESPACE, f"{seed}:{study_id}:{activity_id}:{participant.id}:{day}:{j}"
                )
            )
            answered = {1: len(questions), 2: (len(questions) + 1) // 2}.get(status, 0)
            answers: dict[int, tuple[str, str]] = {}
            for index, q in enumerate(questions):
                if index >= answered or (q.added_at is not None and prompt_ms < to_ms(q.added_at)):
                    continue
                hq = seed_of(h, q.id)
                answers[q.id] = (
                    _answer(q, survey.tricky, hq, sid),
                    _metadata(q, survey.tricky, hq, record_ms - (hq >> 8) % 20_000),
                )
            fields: dict[str, Any] = {
                "participant_id": participant.id,
                "participant.label": participant.label,
                "uuid": sid,
                "prompt_time": prompt_ms,
                "record_time": record_ms,
                "status_id": status,
                "device.id": dev,
                "device.model": model,
                "participant.start_time": start_ms,
                "participant.status_id": participant.status_id,
            }
            for q in questions:
                fields[f"Q{q.id}"] = answers.get(q.id, ("", ""))[0]
            out.append(Session(fields=fields, answers=answers))
    return out


@dataclass
class SurveyTable:
    """A rendered-to-cells survey export plus the image files its answers point to."""

    header: list[str]
    rows: list[Row]
    images: list[tuple[str, bytes]]
    has_image_column: bool


def survey_table(
    study: StudyConfig,
    request: SurveyRequest,
    cutoff_ms: int,
    created: datetime,
    seed: int = 0,
) -> SurveyTable:
    """The export table for an ACTIVITY_RESPONSE request (data before ``cutoff_ms``)."""
    survey = study.surveys.get(request.activity_id)
    if survey is None:
        raise SurveyRequestError(f"Unknown activity: {request.activity_id}.")
    questions = visible_questions(survey, created)
    columns = _columns(study, survey, request.activity_id, request, created)
    known = set(SESSION_COLUMNS) | _question_fields(questions)
    predicate = _compile_query(request.query, known)
    sort_keys: list[tuple[str, bool]] = []
    for item in request.sort_by:
        name = _canonical(str(item.get("field_name", "")))
        if name not in known:
            raise SurveyRequestError(f"Unknown sort field: {item.get('field_name')}.")
        order = str(item.get("sort_order", "asc")).lower()
        if order not in ("asc", "desc"):
            raise SurveyRequestError(f"sort_order must be asc or desc, not {order}.")
        sort_keys.append((name, order == "desc"))
    sessions = [
        s
        for p in study.participants
        for s in generate_sessions(
            request.study_id, request.activity_id, survey, p, cutoff_ms, questions, seed
        )
        if predicate(s.fields)
    ]
    sessions.sort(key=lambda s: (s.fields["record_time"], s.fields["uuid"]))
    for name, descending in reversed(sort_keys):
        sessions.sort(key=_field_getter(name), reverse=descending)
    fmt = make_time_formatter(study.timestamp_style, study.local_time_zone)
    labels = study.dashboard_status_labels and is_dashboard(study, request)
    image_ids = {q.id for q in questions if q.type_code == "IMG"}
    selected = {f for _, f in columns}
    has_image_column = any(f"Q{qid}" in selected for qid in image_ids)
    rows: list[Row] = []
    images: list[tuple[str, bytes]] = []
    for s in sessions:
        row: Row = []
        for _, name in columns:
            if name.startswith("mQ"):
                qid = int(name[2:].split("_", 1)[0])
                row.append(s.answers.get(qid, ("", ""))[1])
            elif name in TIME_FIELDS:
                row.append(fmt(s.fields[name]))
            elif labels and name in STATUS_LABELS:
                row.append(STATUS_LABELS[name][s.fields[name]])
            else:
                row.append(str(s.fields[name]))
        rows.append(row)
        for qid in sorted(image_ids):
            answer = s.answers.get(qid)
            if answer and f"Q{qid}" in selected:
                images.append((answer[0], placeholder_jpeg(f"{s.fields['uuid']}/{qid}")))
    return SurveyTable([h for h, _ in columns], rows, images, has_image_column)


def _field_getter(name: str) -> Callable[[Session], Any]:
    return lambda session: session.fields[name]


def expected_survey_rows(
    study: StudyConfig,
    request: SurveyRequest,
    cutoff_ms: int,
    created: datetime,
    seed: int = 0,
) -> list[dict[str, str]]:
    """Exactly the CSV rows (header -> cell text) of a survey export created at ``created``."""
    table = survey_table(study, request, cutoff_ms, created, seed)
    return as_dicts(table.header, table.rows)
