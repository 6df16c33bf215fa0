"""AvicennaClient: the only module that speaks HTTP to Avicenna.

Auth, retries with backoff (429 honouring Retry-After, 5xx, connection errors, HTML
or other non-JSON answers), the export list's pages and error translation live here.
Nothing it logs or raises contains the API key, the Authorization header or a
download URL: downloads are named by export id only (and their host).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import errno
import logging
import random
import re
import socket
import time
import typing as t
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests

from tap_avicenna.errors import ApiError, AuthError, ColumnsRefused

LOGGER = logging.getLogger("tap-avicenna.client")

SENSOR_CREATE_PATH = "/api/study/export/create/"
FILTER_EXPORT_PATH = "/api/v1/filter/export/"
USER_AGENT = "tap-avicenna"
MAX_RETRY_AFTER_SECONDS = 600.0
FIRST_CONTACT_ATTEMPTS = 3
"""Tries of the very first request when the host refuses connections or has no address."""
FIRST_CONTACT_BACKOFF = 0.5
_CHUNK = 1024 * 1024
_BUSY_WORDS = re.compile(
    r"too many|concurren|already running|in progress|limit|busy|try again later", re.I
)
_XML_FIELD = re.compile(r"<(Code|Message)>([^<]{1,200})</\1>")
_SAFE_TEXT = re.compile(r"[^A-Za-z0-9 .,;:'()-]")
_NOT_JSON = object()


@dataclass(frozen=True)
class ListPage:
    """One page of the export list: its entries, its address and its links (absolute,
    on api_url's origin), and the list's `count` when the page gives it."""

    entries: list[dict[str, t.Any]]
    url: str
    next: str | None
    previous: str | None
    count: int | None = None


class RetryableError(Exception):
    """A transient failure worth another try (never shown to the user as is)."""


class DownloadGone(Exception):
    """The export file answered 404/410: it expired and the export must be re-created."""


class DownloadRefused(Exception):
    """The file's storage refused it (401/403 from a host other than the API's, or an
    object store's XML error on any host): a presigned link that expired, or a file the
    storage deleted. Not an authentication failure: a fresh link from the list, or a new
    export, is the cure."""

    def __init__(self, label: str, detail: str) -> None:
        super().__init__(f"{label}: {detail}")
        self.detail = detail


class _LocalError(Exception):
    """Carries an OSError of writing a download's bytes past the network's handlers."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


class BrokenDownload(RetryableError):
    """The body ended early or the connection dropped mid-download."""


class ServerBusy(ApiError):
    """A create refused because too many exports are running (409, 429, or a 400 saying
    so); `retry_after` is the server's Retry-After in seconds, if it sent one."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
        self.contacted = False  # an HTTP answer came back from api_url at least once
        self._warned: set[str] = set()

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

    def list_page(self, study_id: int, url: str | None = None) -> ListPage | None:
        """One page of the study's export list: the first (`url` None), or the one at
        `url` (a link of a page read before); None when that page is past the end (a 404:
        the list shrank while being read).

        A bare array is one page; an envelope (`{"count", "next", "previous",
        "results"}`, or `exports`/`data`/`items`) gives its links, absolute or relative,
        whatever the paging style (page numbers, limit/offset, cursors). A link on
        another origin (a proxy's internal host, http for https) is taken on api_url's
        origin: the API key is never sent anywhere else.
        """
        params = {"study_id": study_id} if url is None else None
        response, payload = self._call(
            "list",
            "GET",
            url or self.api_url + FILTER_EXPORT_PATH,
            study_id=study_id,
            params=params,
            last_page_ok=url is not None,
        )
        if response is None:
            return None
        entries, (after, before), count = _page(payload, study_id)
        here = response.url
        return ListPage(
            entries,
            here,
            next=self._on_origin(here, after) if after else None,
            previous=self._on_origin(here, before) if before else None,
            count=count,
        )

    def export_pages(self, study_id: int) -> t.Iterator[ListPage]:
        """The study's export list from its first page to its last."""
        first = self.list_page(study_id)
        assert first is not None  # a first page past the end is an error, not None
        return self.follow(study_id, first, "next")

    def follow(
        self, study_id: int, page: ListPage, link: t.Literal["next", "previous"]
    ) -> t.Iterator[ListPage]:
        """`page`, then the pages its `link` links lead to, however many, until one has
        none or is past the end. A link back to a page already read, or a page of
        nothing new, ends them (WARNING once)."""
        fetched: set[str] = set()
        ids: set[tuple[t.Any, t.Any]] = set()
        current: ListPage | None = page
        while current is not None:
            yield current
            fetched.add(current.url)
            shown = {(e.get("study_specific_id"), e.get("id")) for e in current.entries}
            target = getattr(current, link)
            if target is None:
                return
            if target in fetched or shown <= ids:
                self._warn_once(
                    "loop",
                    f"The export list's {link} link leads back to exports already read; "
                    "the list ends there",
                )
                return
            ids |= shown
            current = self.list_page(study_id, target)

    def last_page_url(self, first: ListPage) -> str | None:
        """The address of the list's last page, from its first page: the page number
        `count` gives (DRF's `page=last` without a `count`), or the offset of the last
        `limit` entries; None when the paging style says nothing of it (a cursor, an
        offset without `count`) or the list has one page."""
        if first.next is None or not first.entries:
            return None
        parts = urlsplit(first.next)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        size = len(first.entries)
        if "page" in query:
            pages = -(-first.count // size) if first.count is not None else None
            query["page"] = "last" if pages is None else str(max(1, pages))
        elif "offset" in query and first.count is not None:
            limit = int(query["limit"]) if query.get("limit", "").isdigit() else size
            query["offset"] = str(max(0, (first.count - 1) // max(limit, 1) * limit))
        else:
            return None
        return urlunsplit((*parts[:3], urlencode(query), ""))

    def list_exports(self, study_id: int) -> tuple[list[dict[str, t.Any]], int]:
        """Every entry of the study's export list, and the number of pages read."""
        entries: list[dict[str, t.Any]] = []
        pages = 0
        for page in self.export_pages(study_id):
            entries.extend(page.entries)
            pages += 1
        return entries, pages

    def download(self, url: str, dest: t.BinaryIO, *, label: str) -> int:
        """Stream the file at `url` into `dest`; return its size.

        Raises DownloadGone on 404/410, DownloadRefused on 401/403 from a host other
        than api_url's or with an object store's XML error (an expired presigned link on
        the API's own host), and BrokenDownload when the body is shorter than its
        Content-Length or the connection drops; `label` (e.g. "export #12") names the
        file in messages instead of its URL. The Authorization header is sent only to
        the api_url origin: a download URL elsewhere (a presigned link) gets none. An
        OSError writing to `dest` (a full disk) is raised as it is, not retried.
        """
        ours = origin(url) == self._origin
        headers = {"Authorization": self._auth} if ours else {}
        self._count("download")
        try:
            with self._session.get(
                url, headers=headers, stream=True, timeout=self.request_timeout
            ) as response:
                status = response.status_code
                if status in (404, 410):
                    raise DownloadGone(f"{label}: file is gone (HTTP {status})")
                if status in (401, 403):
                    reason = _storage_reason(response)
                    if ours and not reason:  # the API's own refusal (JSON), not its storage's
                        raise self._auth_error(status)
                    raise DownloadRefused(
                        label,
                        f"the download host {origin(url)[1]} refused the file "
                        f"(HTTP {status}{reason})",
                    )
                if status == 429 or status >= 500:
                    raise RetryableError(f"{label}: HTTP {status}")
                if status >= 400:
                    raise ApiError(f"Download of {label} failed with HTTP {status}")
                expected = response.headers.get("Content-Length")
                size = 0
                for chunk in response.raw.stream(_CHUNK, decode_content=False):
                    try:
                        dest.write(chunk)
                    except OSError as exc:
                        raise _LocalError(exc) from None
                    size += len(chunk)
        except _LocalError as exc:
            raise exc.error from None  # the disk's fault, not the connection's: no retry
        except (requests.ConnectionError, requests.Timeout, OSError) as exc:
            # The exception text holds the URL: report its type only.
            raise BrokenDownload(f"{label}: connection failed ({type(exc).__name__})") from None
        except Exception as exc:  # urllib3 ProtocolError etc. carry the URL too
            if isinstance(exc, (DownloadGone, DownloadRefused, RetryableError, ApiError)):
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

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            LOGGER.warning("%s", message)

    def _on_origin(self, current: str, link: str) -> str:
        """The absolute URL of a list page's link, on api_url's origin."""
        target = urljoin(current, link)
        if origin(target) == self._origin:
            return target
        scheme, host, port = origin(target)
        self._warn_once(
            "origin",
            f"The export list's links point at {scheme}://{host}:{port}, not at api_url's "
            "origin; they are followed on api_url's origin",
        )
        base, parts = urlsplit(self.api_url), urlsplit(target)
        return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))

    def _created(self, kind: str, path: str, *, study_id: int, **kwargs: t.Any) -> dict[str, t.Any]:
        """A create call's answer as an object, read liberally: the export may sit under
        `export`/`data`/`result`, or be a one-element list; a success answer that is
        empty or plain text gives {} -- the export is then found in the list. An HTML
        page (a maintenance or login page) is retried like a 5xx."""
        response, payload = self._call(
            kind, "POST", self.api_url + path, study_id=study_id, creating=True, **kwargs
        )
        if payload is _NOT_JSON:
            assert response is not None
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

    def _call(
        self,
        kind: str,
        method: str,
        url: str,
        *,
        study_id: int,
        creating: bool = False,
        last_page_ok: bool = False,
        **kwargs: t.Any,
    ) -> tuple[requests.Response | None, t.Any]:
        """One API request with retries: (the response, its JSON or _NOT_JSON).

        Retried: connection errors, 429, 5xx, and 2xx answers that are HTML (or, for
        a list, anything but JSON). A create refused because too many exports are
        running raises ServerBusy at once (the runner waits and keeps fewer pending).
        With `last_page_ok`, a 404 gives (None, None): a list page past the end.
        """
        path = urlsplit(url).path
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            self._count(kind)
            retry_after: float | None = None
            quick: float | None = None
            try:
                response = self._session.request(
                    method, url, headers=headers, timeout=self.request_timeout, **kwargs
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"connection failed ({type(exc).__name__})"
                quick = self._first_contact(exc, attempt)
            else:
                self.contacted = True
                status = response.status_code
                payload = _json(response)
                if status < 400:
                    if payload is not _NOT_JSON:
                        return response, payload
                    if creating and not _is_html(response):
                        return response, payload
                    last = f"{_what(response)} (HTTP {status})"
                elif status == 404 and last_page_ok and payload is not _NOT_JSON:
                    return None, None
                elif payload is _NOT_JSON and status != 429 and status < 500:
                    raise ApiError(
                        f"api_url ({self.api_url}) does not point at the Avicenna API: "
                        f"{method} {path} answered HTTP {status} with {_what(response)}; "
                        "check api_url"
                    )
                elif status in (401, 403):
                    raise self._auth_error(status)
                elif status == 404:
                    raise ApiError(
                        f"Study {study_id} was not found at {self.api_url}{path} (HTTP 404), "
                        f"or user '{self.username}' has no access to it"
                    )
                elif creating and _busy(status, payload):
                    raise ServerBusy(
                        f"HTTP {status}: {_short_detail(payload)}",
                        _retry_after(response.headers.get("Retry-After")),
                    )
                elif status != 429 and status < 500:
                    message = (
                        f"Avicenna refused {method} {path} with HTTP {status}: "
                        f"{_short_detail(payload)}"
                    )
                    refused = _named_columns(response, kwargs.get("json")) if status == 400 else ()
                    if refused:
                        raise ColumnsRefused(message, refused)
                    raise ApiError(message)
                else:
                    last = f"HTTP {status}"
                    retry_after = _retry_after(response.headers.get("Retry-After"))
            if attempt == self.max_attempts:
                break
            delay = quick if quick is not None else max(retry_after or 0.0, self._backoff(attempt))
            LOGGER.warning("%s %s: %s; retry %d in %.1fs", method, path, last, attempt, delay)
            self._sleep(delay)
        hint = ""
        if not last.startswith(("HTTP", "connection")):  # HTML or other non-JSON answers
            hint = f"; is api_url ({self.api_url}) the Avicenna API?"
        raise ApiError(
            f"Avicenna {method} {path} failed {self.max_attempts} times, last: {last}{hint}"
        )

    def _first_contact(self, exc: Exception, attempt: int) -> float | None:
        """Before anything came back from api_url, fail fast on what retrying cannot fix:
        a TLS failure at once, a refused connection or an unknown host name after
        FIRST_CONTACT_ATTEMPTS quick tries (returns the short wait before the next one).
        Later in a run, the usual retries apply (returns None)."""
        if self.contacted:
            return None
        if isinstance(exc, requests.exceptions.SSLError):
            raise ApiError(
                f"Cannot connect to {self.api_url}: the TLS handshake failed "
                f"({_tls_reason(exc)}); check api_url (https:// for a server that speaks "
                "plain http, or the other way round?)"
            ) from None
        why = _unreachable(exc)
        if why is None:
            return None
        if attempt >= FIRST_CONTACT_ATTEMPTS:
            raise ApiError(
                f"Cannot connect to {self.api_url} ({why}): check api_url, and that the "
                "Avicenna API (or the simulator, tap-avicenna-simulator) is running there"
            ) from None
        return FIRST_CONTACT_BACKOFF * attempt

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _auth_error(self, status: int) -> AuthError:
        return AuthError(
            f"Avicenna rejected the API key for user '{self.username}' (HTTP {status}): "
            "check the username and api_key settings"
        )


def _json(response: requests.Response) -> t.Any:
    try:
        return response.json()
    except ValueError:
        return _NOT_JSON


def _is_html(response: requests.Response) -> bool:
    if "html" in response.headers.get("Content-Type", "").lower():
        return True
    return response.content[:512].lstrip().lower().startswith((b"<!doctype", b"<html", b"<?xml"))


def _what(response: requests.Response) -> str:
    if _is_html(response):
        return "an HTML page"
    return "an empty answer" if not response.content.strip() else "non-JSON content"


def _page(
    payload: t.Any, study_id: int
) -> tuple[list[dict[str, t.Any]], tuple[str | None, str | None], int | None]:
    """A list page's entries, its `next` and `previous` links and the list's `count`."""
    links: list[t.Any] = [None, None]
    count: t.Any = None
    if isinstance(payload, dict):
        nested = payload["links"] if isinstance(payload.get("links"), dict) else {}
        links = [payload.get(name) or nested.get(name) for name in ("next", "previous")]
        count = payload.get("count")
        for key in ("results", "exports", "data", "items"):
            if isinstance(payload.get(key), list):
                payload = payload[key]
                break
    if not isinstance(payload, list) or not all(isinstance(e, dict) for e in payload):
        raise ApiError(
            f"Avicenna answered the export list of study {study_id} with an unexpected "
            f"shape ({type(payload).__name__}); expected a list of exports"
        )
    shown = [link if isinstance(link, str) and link.strip() else None for link in links]
    known = count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None
    return payload, (shown[0], shown[1]), known


def _busy(status: int, payload: t.Any) -> bool:
    """Is this create refusal "too many exports running"?"""
    if status in (409, 429):
        return True
    return status == 400 and bool(_BUSY_WORDS.search(_short_detail(payload)))


def _unreachable(exc: Exception) -> str | None:
    """ "connection refused" or "host name not found" when that is what `exc` is."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, socket.gaierror):
            return "host name not found"
        if isinstance(item, ConnectionRefusedError) or (
            isinstance(item, OSError) and item.errno == errno.ECONNREFUSED
        ):
            return "connection refused"
        stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None)])
        stack.extend(a for a in item.args if isinstance(a, BaseException))
    return None


def _tls_reason(exc: Exception) -> str:
    match = re.search(r"\[SSL: [A-Z_]+\][^')\]]*", str(exc))
    return match.group(0).strip() if match else type(exc).__name__


def _storage_reason(response: requests.Response) -> str:
    """`: AccessDenied, Request has expired` from an object store's XML error body."""
    try:
        text = next(response.iter_content(4096), b"").decode("utf-8", "replace")
    except (requests.RequestException, OSError):  # an unreadable body adds nothing
        return ""
    fields = dict(_XML_FIELD.findall(text))
    parts = [_SAFE_TEXT.sub("", fields.get(k, "")).strip()[:120] for k in ("Code", "Message")]
    shown = [p for p in parts if p]
    return ": " + ", ".join(shown) if shown else ""


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


def _short_detail(payload: t.Any) -> str:
    """A short, safe description of an error body (JSON `detail`, else its type)."""
    if payload is _NOT_JSON:
        return "non-JSON error body"
    if isinstance(payload, dict):
        for key in ("detail", "error", "message", "non_field_errors"):
            detail = payload.get(key)
            if isinstance(detail, list) and detail and isinstance(detail[0], str):
                detail = detail[0]
            if isinstance(detail, str):
                return detail[:200]
    return str(payload)[:200]
