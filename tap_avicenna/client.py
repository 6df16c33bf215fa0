"""AvicennaClient: the only module that speaks HTTP to Avicenna.

Auth, retries with backoff (429 honouring Retry-After, 5xx, connection errors) and
error translation live here. Nothing it logs or raises contains the API key, the
Authorization header or a download URL: downloads are named by export id only.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import re
import time
import typing as t
from urllib.parse import urlsplit

import requests

from tap_avicenna.errors import ApiError, AuthError, ColumnsRefused

LOGGER = logging.getLogger("tap-avicenna.client")

SENSOR_CREATE_PATH = "/api/study/export/create/"
FILTER_EXPORT_PATH = "/api/v1/filter/export/"
USER_AGENT = "tap-avicenna"
MAX_RETRY_AFTER_SECONDS = 600.0
_CHUNK = 1024 * 1024


class RetryableError(Exception):
    """A transient failure worth another try (never shown to the user as is)."""


class DownloadGone(Exception):
    """The export file answered 404/410: it expired and the export must be re-created."""


class BrokenDownload(RetryableError):
    """The body ended early or the connection dropped mid-download."""


def epoch_ms(value: dt.datetime) -> int:
    """The API's date form: milliseconds since the epoch, UTC."""
    return int(value.timestamp() * 1000)


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port)


class AvicennaClient:
    """Authenticated calls to the Data Export API with retries."""

    def __init__(
        self,
        *,
        api_url: str,
        username: str,
        api_key: str,
        request_timeout: float = 300.0,
        max_attempts: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.username = username
        self._auth = f"ApiKey {username}:{api_key}"
        self._origin = origin(self.api_url)
        self.request_timeout = request_timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        # urllib3 logs each request line (a download URL's secret path) at DEBUG.
        logging.getLogger("urllib3").setLevel(logging.WARNING)
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self.request_counts: dict[str, int] = {}

    def close(self) -> None:
        self._session.close()

    # --- API calls -------------------------------------------------------------------

    def create_sensor_export(
        self,
        *,
        study_id: int,
        data_source_id: int,
        start: dt.datetime,
        end: dt.datetime,
        participant_ids: t.Sequence[int],
    ) -> dict[str, t.Any]:
        """POST the documented multipart create call; returns the JSON object answered."""
        fields = {
            "study_id": str(study_id),
            "data_source": str(data_source_id),
            "start_date": str(epoch_ms(start)),
            "end_date": str(epoch_ms(end)),
            "participant_ids": ",".join(str(p) for p in participant_ids),
        }
        # (None, value) tuples make requests send multipart/form-data without files.
        files = {name: (None, value) for name, value in fields.items()}
        return self._created("create", SENSOR_CREATE_PATH, files=files, study_id=study_id)

    def create_filter_export(self, body: dict[str, t.Any]) -> dict[str, t.Any]:
        """POST a filter export (survey responses, participation) as JSON."""
        return self._created(
            "filter_create", FILTER_EXPORT_PATH, json=body, study_id=body["study_id"]
        )

    def list_exports(self, study_id: int) -> list[dict[str, t.Any]]:
        """GET the study's export list (a bare array; an envelope is accepted too)."""
        payload = self._json(
            "list", "GET", FILTER_EXPORT_PATH, params={"study_id": study_id}, study_id=study_id
        )
        if isinstance(payload, dict):
            for key in ("results", "exports", "data", "items"):
                if isinstance(payload.get(key), list):
                    payload = payload[key]
                    break
        if not isinstance(payload, list) or not all(isinstance(e, dict) for e in payload):
            raise ApiError(
                f"Avicenna answered the export list of study {study_id} with an unexpected "
                f"shape ({type(payload).__name__}); expected a list of exports"
            )
        return payload

    def download(self, url: str, dest: t.BinaryIO, *, label: str) -> int:
        """Stream the file at `url` into `dest`; return its size.

        Raises DownloadGone on 404/410 and BrokenDownload when the body is shorter than
        its Content-Length or the connection drops; `label` (e.g. "export #12") names
        the file in messages instead of its URL. The Authorization header is sent only
        to the api_url origin: a download URL elsewhere (a presigned link) gets none.
        """
        headers = {"Authorization": self._auth} if origin(url) == self._origin else {}
        self._count("download")
        try:
            with self._session.get(
                url, headers=headers, stream=True, timeout=self.request_timeout
            ) as response:
                status = response.status_code
                if status in (404, 410):
                    raise DownloadGone(f"{label}: file is gone (HTTP {status})")
                if status in (401, 403):
                    raise self._auth_error(status)
                if status == 429 or status >= 500:
                    raise RetryableError(f"{label}: HTTP {status}")
                if status >= 400:
                    raise ApiError(f"Download of {label} failed with HTTP {status}")
                expected = response.headers.get("Content-Length")
                size = 0
                for chunk in response.raw.stream(_CHUNK, decode_content=False):
                    dest.write(chunk)
                    size += len(chunk)
        except (requests.ConnectionError, requests.Timeout, OSError) as exc:
            # The exception text holds the URL: report its type only.
            raise BrokenDownload(f"{label}: connection failed ({type(exc).__name__})") from None
        except Exception as exc:  # urllib3 ProtocolError etc. carry the URL too
            if isinstance(exc, (DownloadGone, RetryableError, ApiError)):
                raise
            raise BrokenDownload(f"{label}: download failed ({type(exc).__name__})") from None
        if expected is not None and expected.isdigit() and int(expected) != size:
            raise BrokenDownload(f"{label}: got {size} of {expected} bytes")
        return size

    def download_with_retries(self, url: str, dest: t.BinaryIO, *, label: str) -> int:
        """`download` retried on transient failures (rewinding `dest` each time)."""
        for attempt in range(1, self.max_attempts + 1):
            dest.seek(0)
            dest.truncate()
            try:
                return self.download(url, dest, label=label)
            except RetryableError as exc:
                if attempt == self.max_attempts:
                    raise ApiError(
                        f"Download of {label} failed {attempt} times, last: {exc}"
                    ) from None
                delay = self._backoff(attempt)
                LOGGER.warning("%s; retrying in %.1fs", exc, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    # --- plumbing --------------------------------------------------------------------

    def _count(self, kind: str) -> None:
        self.request_counts[kind] = self.request_counts.get(kind, 0) + 1

    def _created(self, kind: str, path: str, *, study_id: int, **kwargs: t.Any) -> dict[str, t.Any]:
        """A create call's answer as an object, read liberally: the export may sit under
        `export`/`data`/`result`, or be a one-element list; a success answer that is not
        JSON at all (empty, text) gives {} -- the export is then found in the list."""
        response = self._request(kind, "POST", path, study_id=study_id, **kwargs)
        try:
            payload = response.json()
        except ValueError:
            LOGGER.info("POST %s answered HTTP %d without JSON", path, response.status_code)
            return {}
        if isinstance(payload, list) and len(payload) == 1:
            payload = payload[0]
        if not isinstance(payload, dict):
            return {}
        for key in ("export", "data", "result"):
            if isinstance(payload.get(key), dict):
                return {**payload, **payload[key]}
        return payload

    def _json(self, kind: str, method: str, path: str, *, study_id: int, **kwargs: t.Any) -> t.Any:
        response = self._request(kind, method, path, study_id=study_id, **kwargs)
        content_type = response.headers.get("Content-Type", "")
        try:
            return response.json()
        except ValueError:
            what = "HTML" if "html" in content_type.lower() else "non-JSON content"
            raise ApiError(
                f"Avicenna answered {method} {path} with {what} (HTTP {response.status_code}); "
                f"is api_url ({self.api_url}) the Avicenna API?"
            ) from None

    def _request(
        self, kind: str, method: str, path: str, *, study_id: int, **kwargs: t.Any
    ) -> requests.Response:
        url = self.api_url + path
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            self._count(kind)
            retry_after: float | None = None
            try:
                response = self._session.request(
                    method, url, headers=headers, timeout=self.request_timeout, **kwargs
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"connection failed ({type(exc).__name__})"
            else:
                status = response.status_code
                if status < 400:
                    return response
                if status in (401, 403):
                    raise self._auth_error(status)
                if status == 404:
                    raise ApiError(
                        f"Study {study_id} was not found at {self.api_url}{path} (HTTP 404), "
                        f"or user '{self.username}' has no access to it"
                    )
                if status != 429 and status < 500:
                    message = (
                        f"Avicenna refused {method} {path} with HTTP {status}: "
                        f"{_short_detail(response)}"
                    )
                    refused = _named_columns(response, kwargs.get("json")) if status == 400 else ()
                    if refused:
                        raise ColumnsRefused(message, refused)
                    raise ApiError(message)
                last = f"HTTP {status}"
                retry_after = _retry_after(response.headers.get("Retry-After"))
            if attempt == self.max_attempts:
                break
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            LOGGER.warning("%s %s: %s; retry %d in %.1fs", method, path, last, attempt, delay)
            self._sleep(delay)
        raise ApiError(f"Avicenna {method} {path} failed {self.max_attempts} times, last: {last}")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _auth_error(self, status: int) -> AuthError:
        return AuthError(
            f"Avicenna rejected the API key for user '{self.username}' (HTTP {status}): "
            "check the username and api_key settings"
        )


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = (when - dt.datetime.now(dt.timezone.utc)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _named_columns(response: requests.Response, body: t.Any) -> tuple[str, ...]:
    """The columns of a filter export body (`rule_set.columns`) that its error answer
    names, each as a whole name (not inside `session.uuid` or `Q20`)."""
    rule_set = body.get("rule_set") if isinstance(body, dict) else None
    columns = rule_set.get("columns") if isinstance(rule_set, dict) else None
    if not isinstance(columns, list) or not columns:
        return ()
    text = response.text[:20_000]
    return tuple(
        column
        for column in columns
        if isinstance(column, str) and re.search(rf"(?<![\w.]){re.escape(column)}(?!\w|\.\w)", text)
    )


def _short_detail(response: requests.Response) -> str:
    """A short, safe description of an error body (JSON `detail`, else its type)."""
    try:
        payload = response.json()
    except ValueError:
        return "non-JSON error body"
    if isinstance(payload, dict):
        for key in ("detail", "error", "message"):
            detail = payload.get(key)
            if isinstance(detail, str):
                return detail[:200]
    return str(payload)[:200]
