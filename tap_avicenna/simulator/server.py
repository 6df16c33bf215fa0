"""The HTTP server standing in for the Avicenna Data Export API (plus ``/_sim`` admin routes)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import random
import secrets
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .clock import SimClock, from_ms, iso_z, parse_instant, to_ms
from .config import SETTINGS, SimulatorConfig, StudyConfig, default_config
from .data import SensorRequest, as_dicts, expected_rows, participation_table, refused
from .exports import (
    ACTIVITY_RESPONSE,
    DATA_SOURCE,
    EXPIRED,
    FAILED,
    FINAL,
    PARTICIPATION,
    SUCCESS,
    Export,
    has_rows,
    participation_filename,
    render,
    sensor_filename,
    survey_filename,
)
from .files import content_type
from .forms import BodyError, parse_filter_body, parse_form, parse_json_object
from .surveys import (
    SurveyRequestError,
    expected_survey_rows,
    parse_survey_request,
    survey_table,
)

CREATE_PATH = "/api/study/export/create/"
FILTER_PATH = "/api/v1/filter/export/"
MEDIA_PREFIX = "/media/exports/"
ADMIN_PREFIX = "/_sim/"
ERROR_HTML = "<html><body><h1>Server Error ({status})</h1></body></html>"
MAINTENANCE_HTML = "<!DOCTYPE html><html><body><h1>Down for maintenance</h1></body></html>"
S3_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
)
BUSY_DETAIL = "Too many exports are running for this study; try again later."
COUNTER_KINDS = ("create", "filter_create", "list", "download", "admin", "other")
MAX_BODY = 10 * 1024 * 1024


class HttpError(Exception):
    """Answer with ``status`` and ``{"detail": detail}`` (and ``headers``)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class RawAnswer(Exception):
    """Answer with ``status`` and a non-JSON body (an HTML page, an S3 XML error)."""

    def __init__(self, status: int, body: str, ctype: str) -> None:
        super().__init__(status)
        self.status = status
        self.body = body.encode("utf-8")
        self.ctype = ctype


@dataclass
class Stats:
    """Request and export counters (``/_sim/stats``)."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_KINDS, 0))
    auth_failures: int = 0
    faults_injected: int = 0
    exports_created: int = 0
    max_concurrent_pending: int = 0
    downloads_completed: int = 0
    bytes_downloaded: int = 0
    events: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=10_000))


class Simulator:
    """A running (after ``start()``) Avicenna API stand-in on 127.0.0.1.

    >>> with Simulator(default_config()) as sim:  # doctest: +SKIP
    ...     requests.get(sim.url + "/api/v1/filter/export/?study_id=1234", headers=...)
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or default_config()
        self.config.validate()
        self._lock = threading.RLock()
        self.clock = SimClock(self.config.now, self.config.time_scale)
        self.faults = self.config.faults
        self.faults.bind_lock(self._lock)
        self._random = random.Random(self.config.seed)
        self._exports: dict[int, list[Export]] = {}
        self._by_token: dict[str, Export] = {}
        self._hide_once: set[tuple[int, int]] = set()  # (study, number) left out of a list
        self._sign_key = secrets.token_bytes(16)
        self._next_pk = 7001
        self._seed_history(self.config.history_exports)
        self._stats = Stats()
        self._t0 = time.monotonic()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Called with each request's kind (see COUNTER_KINDS) as it arrives, before it is
        # answered: lets a test act while the client waits for that answer.
        self.on_request: Callable[[str], None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind ``config.host:config.port`` (0 = ephemeral) and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        server = _Server((self.config.host, self.config.port), _Handler)
        server.simulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="avicenna-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Simulator:
        return self.start() if self._server is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (only after ``start()``)."""
        if self._server is None:
            raise RuntimeError("simulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.config.host}:{self.port}"

    @property
    def download_base(self) -> str:
        """Origin used in ``content`` URLs (``download_origin`` or ``url``)."""
        origin = self.config.download_origin
        if origin:
            return origin.replace("{port}", str(self.port)).rstrip("/")
        return self.url

    def auth_header(self, email: str | None = None) -> dict[str, str]:
        """``{"Authorization": "ApiKey <email>:<key>"}`` for a configured user."""
        user = email or next(iter(self.config.users))
        return {"Authorization": f"ApiKey {user}:{self.config.users[user]}"}

    # -- runtime control -------------------------------------------------------------------

    def configure(self, **settings: Any) -> None:
        """Change runtime settings (``processing_delay``, ``download_origin``, ...)."""
        unknown = sorted(set(settings) - set(SETTINGS) - {"time_scale"})
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        with self._lock:
            before = {name: getattr(self.config, name) for name in settings}
            for name, value in settings.items():
                setattr(self.config, name, self.config.coerce(name, value))
            try:
                self.config.validate()
            except ValueError:
                for name, value in before.items():
                    setattr(self.config, name, value)
                raise
            self.clock.time_scale = self.config.time_scale
            added = self.config.history_exports - before.get("history_exports", 0)
            if "history_exports" in settings and added > 0:
                self._seed_history(added)

    def settings(self) -> dict[str, Any]:
        """Current runtime settings."""
        with self._lock:
            out = {name: getattr(self.config, name) for name in SETTINGS}
            out["time_scale"] = self.clock.time_scale
            return out

    def stats(self) -> dict[str, Any]:
        """Counters: create/filter_create/list/download/admin/other requests, auth_failures,
        faults_injected, exports_created, max_concurrent_pending, downloads_completed,
        bytes_downloaded and ``events`` ([seconds since start, kind], newest last)."""
        with self._lock:
            s = self._stats
            return {
                **s.counts,
                "auth_failures": s.auth_failures,
                "faults_injected": s.faults_injected,
                "exports_created": s.exports_created,
                "max_concurrent_pending": s.max_concurrent_pending,
                "downloads_completed": s.downloads_completed,
                "bytes_downloaded": s.bytes_downloaded,
                "events": [[round(t, 4), kind] for t, kind in s.events],
            }

    def reset_stats(self) -> None:
        """Zero all counters (exports are kept)."""
        with self._lock:
            self._stats = Stats()

    def exports(self, study_id: int) -> list[dict[str, Any]]:
        """The study's exports as the list endpoint shows them (without faults)."""
        with self._lock:
            now = self.clock.now()
            return [
                e.to_json(now, self.download_base + e.path if e.state(now) == SUCCESS else None)
                for e in reversed(self._exports.get(study_id, []))
            ]

    # -- expected data ---------------------------------------------------------------------

    def _study(self, study_id: int) -> StudyConfig:
        study = self.config.studies.get(study_id)
        if study is None:
            raise KeyError(f"unknown study {study_id}")
        return study

    def expected_rows(
        self,
        study_id: int,
        data_source_id: int,
        participant_ids: list[int] | tuple[int, ...] | None,
        start: datetime,
        end: datetime,
    ) -> list[dict[str, str]]:
        """Rows (header -> cell text) of a sensor export created now for this request."""
        request = SensorRequest(
            study_id,
            data_source_id,
            to_ms(start),
            to_ms(end),
            tuple(participant_ids) if participant_ids else None,
        )
        study = self._study(study_id)
        return expected_rows(study, request, self.clock.now_ms(), self.config.seed)

    def expected_survey_rows(
        self, study_id: int, activity_id: int, body: dict[str, Any] | None = None
    ) -> list[dict[str, str]]:
        """Rows of an ACTIVITY_RESPONSE export created now with this filter body."""
        merged = {**(body or {}), "study_id": study_id, "activity_id": activity_id}
        request = parse_survey_request(merged)
        now = self.clock.now()
        return expected_survey_rows(
            self._study(study_id), request, to_ms(now), now, self.config.seed
        )

    def expected_participation_rows(self, study_id: int) -> list[dict[str, str]]:
        """Rows of a PARTICIPATION export created now."""
        header, rows = participation_table(self._study(study_id), self.clock.now_ms())
        return as_dicts(header, rows)

    # -- request handling (called from handler threads) --------------------------------------

    def _event(self, kind: str) -> None:
        self._stats.events.append((time.monotonic() - self._t0, kind))

    def _count(self, kind: str) -> None:
        with self._lock:
            self._stats.counts[kind] = self._stats.counts.get(kind, 0) + 1
            self._event(kind)
        if self.on_request is not None:
            self.on_request(kind)

    def _draw_fault(self) -> tuple[int, int | str | None] | None:
        """(status, retry_after) of an injected error, or None."""
        with self._lock:
            rate = self.faults.error_rate
            if rate <= 0 or self._random.random() >= rate or not self.faults.error_statuses:
                return None
            status = self._random.choice(self.faults.error_statuses)
            self._stats.faults_injected += 1
            self._event(f"fault_{status}")
            return status, self.faults.retry_after

    def _authenticate(self, header: str | None) -> str | None:
        if not header:
            return None
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "apikey":
            return None
        user, sep, key = credentials.strip().partition(":")
        expected = self.config.users.get(user)
        if not sep or expected is None:
            return None
        if not hmac.compare_digest(expected.encode(), key.encode()):
            return None
        return user

    def _require_user(self, header: str | None) -> str:
        user = self._authenticate(header)
        if user is None:
            with self._lock:
                self._stats.auth_failures += 1
                self._event("auth_failure")
            raise HttpError(401, "Invalid API key.")
        return user

    def _study_for(self, user: str, raw_study_id: Any) -> tuple[int, StudyConfig]:
        if raw_study_id in (None, ""):
            raise HttpError(400, "study_id is required.")
        try:
            study_id = int(raw_study_id)
        except (TypeError, ValueError):
            raise HttpError(400, "study_id must be an integer.") from None
        study = self.config.studies.get(study_id)
        if study is None or (study.users is not None and user not in study.users):
            raise HttpError(404, "Not found.")
        return study_id, study

    def _new_export(
        self, study_id: int, kind: str, build: Callable[[int, datetime], Export]
    ) -> Export:
        """Create, register and count an export; ``build(number, created)`` makes it."""
        with self._lock:
            number = len(self._exports.get(study_id, [])) + 1
            created = self.clock.now()
            export = build(number, created)
            export.pk, self._next_pk = self._next_pk, self._next_pk + 1
            export.pending_seconds = self.config.pending_seconds
            export.processing_delay = self.config.processing_delay
            export.expiry_seconds = self.config.expiry_seconds
            failing_source = export.sensor is not None and (
                export.sensor.data_source in self.faults.fail_data_sources
            )
            if self.faults.take("never_finish_next_exports"):
                export.outcome = "never"
            elif self.faults.take("fail_next_exports") or failing_source:
                export.outcome = "failed"
            if self.faults.take("unknown_label_next_exports"):
                export.unknown_label = self.faults.unknown_label
            self._exports.setdefault(study_id, []).append(export)
            self._by_token[export.token] = export
            self._stats.exports_created += 1
            self._event(f"export_created_{kind}")
            open_exports = sum(
                1
                for exports in self._exports.values()
                for e in exports
                if not e.downloaded and e.state(created) not in (FAILED, EXPIRED)
            )
            self._stats.max_concurrent_pending = max(
                self._stats.max_concurrent_pending, open_exports
            )
            return export

    def _created_response(self, export: Export) -> tuple[int, dict[str, Any]]:
        with self._lock:
            config = self.config
            endpoint = (
                config.sensor_create_answer
                if export.sensor is not None
                else config.filter_create_answer
            )
            answer = endpoint or config.create_answer
            if self.faults.take("omit_id_next_creates") or answer == "none":
                return 201, {"detail": "Export is being created."}
            if answer == "id_only":
                return 201, {"id": export.pk}
            return 201, self._entry(export, self.clock.now(), full=True)

    def _before_create(self, study_id: int) -> None:
        """The faults and limits a create meets before anything is created."""
        with self._lock:
            if self.faults.take("html_next_creates"):
                self._stats.faults_injected += 1
                raise RawAnswer(200, MAINTENANCE_HTML, "text/html; charset=utf-8")
            limit = self.config.max_running_exports
            now = self.clock.now()
            running = sum(1 for e in self._exports.get(study_id, []) if e.state(now) not in FINAL)
            if limit and running >= limit:
                self._event("busy")
                status = self.config.busy_status
                retry_after = self.faults.retry_after
                headers = {}
                if status == 429 and retry_after is not None:
                    headers["Retry-After"] = str(retry_after)
                raise HttpError(status, BUSY_DETAIL, headers)

    def _impostor(self, study_id: int, study: StudyConfig, export: Export) -> None:
        """With ``impostor_next_creates``: someone else's export created just after
        ``export``, which is left out of the next list answer."""
        with self._lock:
            if not self.faults.take("impostor_next_creates"):
                return
            self._stats.faults_injected += 1
            self._hide_once.add((study_id, export.number))
        ids = [p.id for p in study.participants]
        if export.sensor is not None:
            wanted = export.sensor.participant_ids
            others = [i for i in ids if wanted is not None and i not in wanted] or ids
            request = SensorRequest(
                study_id,
                export.sensor.data_source,
                export.sensor.start_ms,
                export.sensor.end_ms,
                tuple(others),
            )
        else:
            end = to_ms(self.clock.now())
            source = next(iter(study.data_sources))
            request = SensorRequest(study_id, source, end - 7 * 86_400_000, end, None)
        self._someone_elses(study, request)

    def _someone_elses(self, study: StudyConfig, request: SensorRequest) -> None:
        """Create another user's sensor export of ``request``."""
        study_id = request.study_id
        self._new_export(
            study_id,
            DATA_SOURCE,
            lambda number, created: Export(
                study_id,
                number,
                DATA_SOURCE,
                created,
                sensor_filename(study, study_id, number, request.data_source),
                sensor=request,
            ),
        )

    def _foreign_source(self, study: StudyConfig, ours: SensorRequest) -> bool:
        """With ``foreign_source_next_creates``: another user's export of the same
        participants and window but another data source, created just before ours (which
        the caller leaves out of the next list answer); True when it fired."""
        with self._lock:
            if not self.faults.take("foreign_source_next_creates"):
                return False
            self._stats.faults_injected += 1
        source = max(s for s in study.data_sources if s != ours.data_source)
        self._someone_elses(study, dataclasses.replace(ours, data_source=source))
        return True

    def _seed_history(self, count: int) -> None:
        """``count`` older exports in each study: other users' sensor exports of every
        data source, one participant and one week each, created weeks ago (expired),
        every tenth one failed."""
        if count <= 0:
            return
        with self._lock:
            now = self.clock.now()
            for study_id, study in self.config.studies.items():
                sources = list(study.data_sources) or [0]
                people = [p.id for p in study.participants] or [1]
                exports = self._exports.setdefault(study_id, [])
                for i in range(count):
                    created = now - timedelta(days=30, minutes=count - i)
                    end = to_ms(created) - i * 3_600_000
                    request = SensorRequest(
                        study_id,
                        sources[i % len(sources)],
                        end - 7 * 86_400_000,
                        end,
                        (people[i % len(people)],),
                    )
                    number = len(exports) + 1
                    export = Export(
                        study_id,
                        number,
                        DATA_SOURCE,
                        created,
                        f"study-{study_id}-export-{number}-history.zip",
                        sensor=request,
                        outcome="failed" if i % 10 == 9 else "success",
                        expiry_seconds=self.config.expiry_seconds,
                    )
                    export.pk, self._next_pk = self._next_pk, self._next_pk + 1
                    exports.append(export)

    def _entry(self, export: Export, now: datetime, full: bool = False) -> dict[str, Any]:
        """The list entry of ``export`` as the settings shape it (``full``: metadata
        whatever ``list_metadata`` says, for the create answer)."""
        config = self.config
        content = None
        if export.state(now) == SUCCESS:
            if config.empty_success and export.has_rows is None:
                export.has_rows = has_rows(self._study(export.study_id), export, config.seed)
            if not (config.empty_success and export.has_rows is False):
                content = self._content_url(export, now)
        return export.to_json(
            now,
            content,
            label_case=self.faults.status_label_case,
            status_format=config.status_format,
            success_label=config.success_label,
            metadata=full or config.list_metadata == "full",
            show_pk=config.create_answer == "id_only",
        )

    def _content_url(self, export: Export, now: datetime) -> str:
        """The download URL; presigned (date, expiry and signature in the query) with
        ``presigned_urls``."""
        url = self.download_base + export.path
        if not self.config.presigned_urls:
            return url
        date = now.strftime("%Y%m%dT%H%M%SZ")
        expires = str(max(1, round(self.config.presign_ttl_seconds)))
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Date": date,
            "X-Amz-Expires": expires,
            "X-Amz-Signature": self._signature(export.path, date, expires),
        }
        return f"{url}?{urlencode(query)}"

    def _signature(self, path: str, date: str, expires: str) -> str:
        message = f"{path}\n{date}\n{expires}".encode()
        return hmac.new(self._sign_key, message, hashlib.sha256).hexdigest()

    def check_presigned(self, export: Export, query: dict[str, list[str]]) -> None:
        """Raise the object store's 403 for a link that is altered or has expired."""

        def arg(name: str) -> str:
            values = query.get(name)
            return values[-1] if values else ""

        date, expires = arg("X-Amz-Date"), arg("X-Amz-Expires")
        good = self._signature(export.path, date, expires)
        if not hmac.compare_digest(good, arg("X-Amz-Signature")) or not expires.isdigit():
            raise _s3_error(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        signed = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=self.clock.now().tzinfo)
        expired = (self.clock.now() - signed).total_seconds() > int(expires)
        with self._lock:
            if self.faults.take("expire_next_links"):
                self._stats.faults_injected += 1
                expired = True
        if expired:
            raise _s3_error("AccessDenied", "Request has expired")

    def handle_create(self, user: str, ctype: str | None, body: bytes) -> tuple[int, Any]:
        """``POST /api/study/export/create/`` (sensor export)."""
        try:
            form = parse_form(ctype, body)
        except BodyError as exc:
            raise HttpError(400, str(exc)) from None
        study_id, study = self._study_for(user, form.get("study_id"))
        self._before_create(study_id)
        source_id = _int_field(form, "data_source")
        if source_id not in study.data_sources:
            raise HttpError(400, f"Unknown data source: {source_id}.")
        start_ms = _int_field(form, "start_date")
        end_ms = _int_field(form, "end_date")
        if start_ms < 0 or end_ms < 0:
            raise HttpError(400, "start_date and end_date must be epoch milliseconds >= 0.")
        if start_ms > end_ms:
            raise HttpError(400, "start_date must not be after end_date.")
        participant_ids = _participant_ids(form.get("participant_ids"), study)
        request = SensorRequest(study_id, source_id, start_ms, end_ms, participant_ids)
        foreign = self._foreign_source(study, request)

        def build(number: int, created: datetime) -> Export:
            name = sensor_filename(study, study_id, number, source_id)
            return Export(study_id, number, DATA_SOURCE, created, name, sensor=request)

        export = self._new_export(study_id, DATA_SOURCE, build)
        if foreign:
            with self._lock:
                self._hide_once.add((study_id, export.number))
        self._impostor(study_id, study, export)
        return self._created_response(export)

    def handle_filter_create(self, user: str, ctype: str | None, body: bytes) -> tuple[int, Any]:
        """``POST /api/v1/filter/export/`` (PARTICIPATION or ACTIVITY_RESPONSE)."""
        try:
            data = parse_filter_body(ctype, body)
        except BodyError as exc:
            raise HttpError(400, str(exc)) from None
        study_id, study = self._study_for(user, data.get("study_id"))
        self._before_create(study_id)
        kind = str(data.get("filter", "")).upper()
        if kind == PARTICIPATION:
            rule_set = data.get("rule_set")
            columns = rule_set.get("columns") if isinstance(rule_set, dict) else None
            refusal = refused(study, columns if isinstance(columns, list) else [])
            if refusal:
                raise HttpError(400, refusal)

            def build_participation(number: int, created: datetime) -> Export:
                name = participation_filename(study_id, number)
                return Export(study_id, number, PARTICIPATION, created, name)

            export = self._new_export(study_id, PARTICIPATION, build_participation)
            self._impostor(study_id, study, export)
            return self._created_response(export)
        if kind != ACTIVITY_RESPONSE:
            raise HttpError(400, "filter must be PARTICIPATION or ACTIVITY_RESPONSE.")
        try:
            request = parse_survey_request({**data, "study_id": study_id})
            probe = survey_table(study, request, 0, self.clock.now(), self.config.seed)
        except SurveyRequestError as exc:
            raise HttpError(400, str(exc)) from None
        survey = study.surveys[request.activity_id]
        as_zip = survey.file_format == "zip" or probe.has_image_column

        def build_survey(number: int, created: datetime) -> Export:
            name = survey_filename(study_id, number, request.activity_id, created, as_zip)
            return Export(study_id, number, ACTIVITY_RESPONSE, created, name, survey=request)

        export = self._new_export(study_id, ACTIVITY_RESPONSE, build_survey)
        self._impostor(study_id, study, export)
        return self._created_response(export)

    def handle_list(self, user: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """``GET /api/v1/filter/export/?study_id=`` -> bare array, newest first (or pages)."""
        values = query.get("study_id")
        study_id, _ = self._study_for(user, values[-1] if values else None)
        with self._lock:
            if self.faults.take("html_next_lists"):
                self._stats.faults_injected += 1
                raise RawAnswer(200, MAINTENANCE_HTML, "text/html; charset=utf-8")
            now = self.clock.now()
            exports = list(reversed(self._exports.get(study_id, [])))
            hidden = next((e for e in exports if e.state(now) not in FINAL), None)
            if hidden is not None and self.faults.take("hide_next_list_entries"):
                exports.remove(hidden)
                self._stats.faults_injected += 1
            hide_once, self._hide_once = self._hide_once, set()
            exports = [e for e in exports if (study_id, e.number) not in hide_once]
            if self.config.list_order == "oldest":
                exports.reverse()
            if not self.config.page_size:
                return 200, [self._entry(e, now) for e in exports]
            start, size, link = self._page_window(query, len(exports))
            entries = [self._entry(e, now) for e in exports[start : start + size]]
            answer = {
                "count": len(exports),
                "next": link(start + size) if start + size < len(exports) else None,
                "previous": link(start - size) if start > 0 else None,
                "results": entries,
            }
            if not self.config.list_count:
                del answer["count"]
            return 200, answer

    def _page_window(
        self, query: dict[str, list[str]], count: int
    ) -> tuple[int, int, Callable[[int], str]]:
        """(first index, page size, the link to the page at an index) of a list request,
        in the ``pagination`` style; raise 404 for a page past the end (as DRF does)."""

        def arg(name: str, default: int) -> int:
            values = query.get(name)
            try:
                return int(values[-1]) if values else default
            except ValueError:
                raise HttpError(404, "Invalid page.") from None

        config = self.config
        if config.pagination == "limit_offset":
            size = max(1, arg("limit", config.page_size))
            start = max(0, arg("offset", 0))
        else:
            size = config.page_size
            last = query.get("page") == ["last"] and config.page_last
            page = max(1, -(-count // size)) if last else arg("page", 1)
            if page < 1 or (page - 1) * size >= max(count, 1):
                raise HttpError(404, "Invalid page.")
            start = (page - 1) * size
        base = "" if config.next_links == "relative" else self.url
        study = query.get("study_id", [""])[-1]

        def link(index: int) -> str:
            index = max(0, index)
            if config.pagination == "limit_offset":
                params = {"limit": size, "offset": index, "study_id": study}
            else:
                params = {"page": index // size + 1, "study_id": study}
            return f"{base}{FILTER_PATH}?{urlencode(params)}"

        return start, size, link

    def find_download(self, path: str) -> Export | None:
        """The export whose file lives at ``path``."""
        parts = path[len(MEDIA_PREFIX) :].split("/")
        if len(parts) != 3:
            return None
        with self._lock:
            export = self._by_token.get(parts[1])
        if export is None or str(export.study_id) != parts[0] or export.filename != parts[2]:
            return None
        return export

    def body_of(self, export: Export) -> bytes:
        """Render (once) and return the export's bytes."""
        with export.render_lock:
            if export.content is None:
                export.content = render(self._study(export.study_id), export, self.config.seed)
            return export.content


def _s3_error(code: str, message: str) -> RawAnswer:
    body = S3_ERROR.format(code=code, message=message, request_id=secrets.token_hex(8).upper())
    return RawAnswer(403, body, "application/xml")


def _int_field(form: dict[str, Any], name: str) -> int:
    value = form.get(name)
    if value in (None, ""):
        raise HttpError(400, f"{name} is required.")
    try:
        return int(str(value).strip())
    except ValueError:
        raise HttpError(400, f"{name} must be an integer.") from None


def _participant_ids(raw: Any, study: StudyConfig) -> tuple[int, ...] | None:
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else str(raw).split(",")
    texts = [str(i).strip() for i in items if str(i).strip()]
    if not texts:
        return None
    try:
        ids = tuple(dict.fromkeys(int(t) for t in texts))
    except ValueError:
        raise HttpError(400, "participant_ids must be comma-separated integers.") from None
    known = {p.id for p in study.participants}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise HttpError(400, f"Unknown participant id(s): {', '.join(map(str, unknown))}.")
    return ids


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    simulator: Simulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients dropping connections is normal here; anything else gets one line."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        sys.stderr.write(f"simulator: connection error: {type(exc).__name__}: {exc}\n")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AvicennaSimulator/1.0"
    timeout = 60
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
    # and the client's delayed ACK add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server: _Server

    @property
    def sim(self) -> Simulator:
        return self.server.simulator

    # -- plumbing ----------------------------------------------------------------------------

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silent unless ``log_requests``; never logs headers or download tokens."""
        if self.sim.config.log_requests:
            sys.stderr.write(f"simulator: {format % args}\n")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.sim.config.log_requests:
            path = urlsplit(self.path).path
            if path.startswith(MEDIA_PREFIX):
                parts = path.split("/")
                if len(parts) > 4:
                    parts[4] = "***"
                path = "/".join(parts)
            sys.stderr.write(f"simulator: {self.command} {path} {code}\n")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise HttpError(413, "Request body too large.")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            raise HttpError(413, "Request body too large.")
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json", headers)

    def _send_fault(self, status: int, retry_after: int | str | None) -> None:
        if status == 429:
            wait = 1 if retry_after is None else retry_after
            headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
            detail = f"Request was throttled. Expected available in {wait} seconds."
            self._send_json(429, {"detail": detail}, headers)
        else:
            html = ERROR_HTML.format(status=status).encode()
            self._send(status, html, "text/html; charset=utf-8")

    # -- dispatch ----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        try:
            body = self._read_body()
            split = urlsplit(self.path)
            self._route(method, split.path, parse_qs(split.query), body)
        except HttpError as exc:
            self._send_json(exc.status, {"detail": exc.detail}, exc.headers)
        except RawAnswer as exc:
            self._send(exc.status, exc.body, exc.ctype)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # a simulator bug: answer 500 and keep serving
            self.close_connection = True
            sys.stderr.write(f"simulator: internal error: {type(exc).__name__}: {exc}\n")
            with contextlib.suppress(OSError):
                self._send(500, ERROR_HTML.format(status=500).encode(), "text/html")

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
        sim = self.sim
        if path.startswith(ADMIN_PREFIX):
            sim._count("admin")
            self._admin(method, path[len(ADMIN_PREFIX) :].strip("/"), query, body)
            return
        allowed: tuple[str, ...]
        if path == CREATE_PATH:
            kind, allowed = "create", ("POST",)
        elif path == FILTER_PATH:
            kind = "filter_create" if method == "POST" else "list"
            allowed = ("GET", "POST")
        elif path.startswith(MEDIA_PREFIX):
            kind, allowed = "download", ("GET", "HEAD")
        else:
            sim._count("other")
            raise HttpError(404, "Not found.")
        sim._count(kind)
        if method not in allowed:
            raise HttpError(405, f'Method "{method}" not allowed.')
        fault = sim._draw_fault()
        if fault is not None:
            self._send_fault(*fault)
            return
        if kind == "download":
            self._download(path, query)
            return
        user = sim._require_user(self.headers.get("Authorization"))
        ctype = self.headers.get("Content-Type")
        if kind == "create":
            self._send_json(*sim.handle_create(user, ctype, body))
        elif kind == "filter_create":
            self._send_json(*sim.handle_filter_create(user, ctype, body))
        else:
            self._send_json(*sim.handle_list(user, query))

    def _download(self, path: str, query: dict[str, list[str]]) -> None:
        sim = self.sim
        config = sim.config
        auth = self.headers.get("Authorization")
        origin = config.download_origin
        host = (self.headers.get("Host") or "").strip().lower()
        other_origin = bool(origin) and host == urlsplit(sim.download_base).netloc.lower()
        if other_origin and config.reject_auth_on_download_origin and auth is not None:
            raise HttpError(400, "Authorization header is not accepted on this origin.")
        export = sim.find_download(path)
        if config.presigned_urls and export is not None:
            sim.check_presigned(export, query)
        elif config.download_requires_auth:
            user = sim._require_user(auth)
            if export is not None:
                sim._study_for(user, export.study_id)
        if export is None:
            raise HttpError(404, "Not found.")
        state = export.state(sim.clock.now())
        with sim._lock:
            if state == SUCCESS and sim.faults.take("expire_next_downloads"):
                sim._stats.faults_injected += 1
                state = EXPIRED  # the file vanished although the list still shows Success
        if state == EXPIRED:
            export.content = None  # the file is gone; free the memory
            status = config.expired_status
            if status == 403:  # an object store without list permission hides the key
                raise _s3_error("AccessDenied", "Access Denied")
            raise HttpError(status, "Not found." if status == 404 else "This export has expired.")
        if state != SUCCESS:
            raise HttpError(404, "Not found.")
        data = sim.body_of(export)
        with sim._lock:
            if sim.faults.replace_next_files:
                data = sim.faults.replace_next_files.pop(0)
                sim._stats.faults_injected += 1
            truncate = sim.faults.take("truncate_next_downloads")
            reset = not truncate and sim.faults.take("reset_next_downloads")
            if truncate or reset:
                sim._stats.faults_injected += 1
                sim._event("fault_truncate" if truncate else "fault_reset")
        self.send_response(200)
        self.send_header("Content-Type", content_type(export.filename))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Disposition", f'attachment; filename="{export.filename}"')
        self.end_headers()
        if self.command == "HEAD":
            return
        if truncate:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if reset:
            self.wfile.write(data[: len(data) // 4])
            self.wfile.flush()
            time.sleep(0.05)  # let the headers and the first bytes reach the client
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        # Counted before the body is sent: a client that has read the whole file must
        # already see it in the stats.
        with sim._lock:
            export.downloaded = True
            sim._stats.downloads_completed += 1
            sim._stats.bytes_downloaded += len(data)
        self.wfile.write(data)

    # -- admin -------------------------------------------------------------------------------

    def _admin(self, method: str, name: str, query: dict[str, list[str]], body: bytes) -> None:
        sim = self.sim

        def arg(key: str) -> str | None:
            values = query.get(key)
            return values[-1] if values else None

        def json_body() -> dict[str, Any]:
            try:
                return parse_json_object(body or b"{}")
            except BodyError as exc:
                raise HttpError(400, str(exc)) from None

        try:
            if name == "stats" and method == "GET":
                self._send_json(200, sim.stats())
            elif name == "reset_stats" and method == "POST":
                sim.reset_stats()
                self._send_json(200, {"ok": True})
            elif name == "clock" and method in ("GET", "POST"):
                if method == "POST":
                    data = json_body()
                    if data.get("now") is not None:
                        sim.clock.set(parse_instant(data["now"]))
                    if data.get("advance_seconds") is not None:
                        sim.clock.advance(float(data["advance_seconds"]))
                self._send_json(200, {"now": iso_z(sim.clock.now())})
            elif name == "faults" and method in ("GET", "POST"):
                if method == "POST":
                    sim.faults.update(json_body())
                with sim._lock:
                    self._send_json(200, sim.faults.to_dict())
            elif name == "settings" and method in ("GET", "POST"):
                if method == "POST":
                    sim.configure(**json_body())
                self._send_json(200, sim.settings())
            elif name == "expected" and method == "GET":
                ids = [int(i) for i in (arg("participant_ids") or "").split(",") if i.strip()]
                rows = sim.expected_rows(
                    int(arg("study_id") or 0),
                    int(arg("data_source") or 0),
                    ids or None,
                    from_ms(int(arg("start_ms") or 0)),
                    from_ms(int(arg("end_ms") or 0)),
                )
                self._send_json(200, rows)
            elif name == "expected_survey" and method == "POST":
                data = json_body()
                rows = sim.expected_survey_rows(
                    int(data.get("study_id", 0)), int(data.get("activity_id", 0)), data
                )
                self._send_json(200, rows)
            elif name == "expected_participation" and method == "GET":
                self._send_json(200, sim.expected_participation_rows(int(arg("study_id") or 0)))
            elif name == "exports" and method == "GET":
                self._send_json(200, sim.exports(int(arg("study_id") or 0)))
            else:
                raise HttpError(404, "Not found.")
        except (KeyError, ValueError, TypeError) as exc:
            raise HttpError(400, str(exc).strip("'\"")) from None
