"""AvicennaClient with requests-mock: auth header, retries, error lines, no leaks."""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import socket
import typing as t

import pytest
import requests
import requests_mock as rm

from tap_avicenna.client import (
    FIRST_CONTACT_ATTEMPTS,
    AvicennaClient,
    BrokenDownload,
    DownloadGone,
    DownloadRefused,
    ServerBusy,
)
from tap_avicenna.errors import ApiError, AuthError
from tap_avicenna.exports.job import Created, ExportRequest, ListedExport
from tap_avicenna.exports.repository import AvicennaExportRepository
from tap_avicenna.exports.status import ExportStatus

API = "https://avicenna.test"
KEY = "k3y-S3CRET-value"
LIST_URL = f"{API}/api/v1/filter/export/?study_id=7"
UTC = dt.timezone.utc


def last(mocker: rm.Mocker) -> t.Any:
    assert mocker.last_request is not None
    return mocker.last_request


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps: list[float]) -> AvicennaClient:
    return AvicennaClient(
        api_url=API, username="r@example.com", api_key=KEY, max_attempts=4, sleep=sleeps.append
    )


def test_given_any_call_when_sent_then_it_carries_the_documented_auth_header(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(LIST_URL, json=[])
    client.list_exports(7)
    assert last(requests_mock).headers["Authorization"] == f"ApiKey r@example.com:{KEY}"


def test_given_sensor_create_when_sent_then_multipart_fields_are_epoch_ms(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.post(f"{API}/api/study/export/create/", json={"study_specific_id": 3})
    answer = client.create_sensor_export(
        study_id=7,
        data_source_id=99,
        start=dt.datetime(2025, 1, 1, tzinfo=UTC),
        end=dt.datetime(2025, 1, 8, tzinfo=UTC),
        participant_ids=[1, 2],
    )
    body = last(requests_mock).body
    assert answer == {"study_specific_id": 3}
    assert last(requests_mock).headers["Content-Type"].startswith("multipart/form-data")
    for field, value in [
        ("study_id", "7"),
        ("data_source", "99"),
        ("start_date", "1735689600000"),
        ("end_date", "1736294400000"),
        ("participant_ids", "1,2"),
    ]:
        assert f'name="{field}"\r\n\r\n{value}\r\n'.encode() in body


def test_given_429_with_retry_after_when_listing_then_waits_that_long_and_retries(
    client: AvicennaClient, requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    requests_mock.get(
        LIST_URL,
        [{"status_code": 429, "headers": {"Retry-After": "7"}}, {"json": [{"id": 1}]}],
    )
    assert client.list_exports(7) == ([{"id": 1}], 1)
    assert sleeps == [7.0]


def test_given_5xx_html_then_success_when_listing_then_retried_with_backoff(
    client: AvicennaClient, requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    requests_mock.get(
        LIST_URL,
        [
            {"status_code": 502, "text": "<html>Bad Gateway</html>"},
            {"status_code": 503, "text": "<html>down</html>"},
            {"json": []},
        ],
    )
    assert client.list_exports(7) == ([], 1)
    assert len(sleeps) == 2 and all(s > 0 for s in sleeps)


def test_given_persistent_5xx_when_listing_then_one_clear_error(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(LIST_URL, status_code=500, text="<html>oops</html>")
    with pytest.raises(ApiError, match="failed 4 times, last: HTTP 500"):
        client.list_exports(7)


def test_given_401_when_calling_then_auth_error_names_user_not_key(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(LIST_URL, status_code=401, json={"detail": "Invalid API key."})
    with pytest.raises(AuthError) as info:
        client.list_exports(7)
    assert "r@example.com" in str(info.value) and KEY not in str(info.value)


def test_given_404_when_listing_then_error_names_the_study(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(LIST_URL, status_code=404, json={"detail": "Not found."})
    with pytest.raises(ApiError, match="Study 7 was not found"):
        client.list_exports(7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"text": "<html><body>login</body></html>", "headers": {"Content-Type": "text/html"}},
            "HTML",
        ),
        ({"json": {"unexpected": True}}, "unexpected shape"),
    ],
)
def test_given_bad_list_answer_when_listing_then_one_clear_error(
    client: AvicennaClient, requests_mock: rm.Mocker, kwargs: dict[str, t.Any], message: str
) -> None:
    requests_mock.get(LIST_URL, **kwargs)
    with pytest.raises(ApiError, match=message):
        client.list_exports(7)


def test_given_enveloped_list_when_listing_then_results_are_used(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(LIST_URL, json={"count": 1, "results": [{"id": 5}]})
    assert client.list_exports(7) == ([{"id": 5}], 1)


def test_given_download_on_api_origin_when_fetched_then_auth_header_is_sent(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(f"{API}/media/x.zip", content=b"abc")
    out = io.BytesIO()
    assert client.download(f"{API}/media/x.zip", out, label="export #1") == 3
    assert "Authorization" in last(requests_mock).headers


def test_given_download_on_other_origin_when_fetched_then_no_auth_header(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get("https://files.other.test/x.zip?sig=abc", content=b"abc")
    client.download("https://files.other.test/x.zip?sig=abc", io.BytesIO(), label="export #1")
    assert "Authorization" not in last(requests_mock).headers


@pytest.mark.parametrize("status", [404, 410])
def test_given_expired_download_when_fetched_then_download_gone(
    client: AvicennaClient, requests_mock: rm.Mocker, status: int
) -> None:
    requests_mock.get(f"{API}/media/x.zip", status_code=status)
    with pytest.raises(DownloadGone):
        client.download(f"{API}/media/x.zip", io.BytesIO(), label="export #1")


def test_given_body_shorter_than_content_length_when_fetched_then_broken_download(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(f"{API}/media/x.zip", content=b"abc", headers={"Content-Length": "10"})
    with pytest.raises(BrokenDownload, match="3 of 10 bytes"):
        client.download(f"{API}/media/x.zip", io.BytesIO(), label="export #1")


def test_given_broken_then_good_download_when_retried_then_file_holds_only_good_bytes(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    url = f"{API}/media/secret-token/x.zip"
    requests_mock.get(
        url,
        [
            {"content": b"partial", "headers": {"Content-Length": "99"}},
            {"content": b"whole-file"},
        ],
    )
    out = io.BytesIO()
    client.download_with_retries(url, out, label="export #1")
    assert out.getvalue() == b"whole-file"


def test_given_failures_when_logged_then_no_key_and_no_url_in_logs(
    client: AvicennaClient, requests_mock: rm.Mocker, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{API}/media/secret-token/x.zip"
    requests_mock.get(LIST_URL, [{"status_code": 503}, {"json": []}])
    requests_mock.get(url, [{"status_code": 500}, {"content": b"ok"}])
    with caplog.at_level(logging.DEBUG):
        client.list_exports(7)
        client.download_with_retries(url, io.BytesIO(), label="export #1")
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "requests_mock.adapter")
    assert "retry" in ours
    assert KEY not in ours and "secret-token" not in ours


@pytest.mark.parametrize(
    ("kwargs", "answer"),
    [
        ({"json": {"export": {"study_specific_id": 4}}}, Created(export_id=4)),
        ({"json": [{"id": 5}]}, Created(ref=5)),
        ({"json": {"id": 9001, "study_specific_id": 6}}, Created(export_id=6)),
        ({"text": ""}, Created()),
        ({"text": "Export created"}, Created()),
        ({"json": {"detail": "queued"}}, Created()),
    ],
    ids=["nested", "id-only", "both", "empty", "text", "no-id"],
)
def test_given_liberal_create_answers_when_creating_then_key_ref_or_nothing(
    client: AvicennaClient, requests_mock: rm.Mocker, kwargs: dict[str, t.Any], answer: Created
) -> None:
    requests_mock.post(f"{API}/api/v1/filter/export/", status_code=201, **kwargs)
    repo = AvicennaExportRepository(client, 7)
    request = ExportRequest(key="k", label="l", body={"study_id": 7, "filter": "PARTICIPATION"})
    assert repo.create(request) == answer


def test_given_relative_content_url_when_downloading_then_joined_to_api_url(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(f"{API}/media/exports/7/file.zip", content=b"zipbytes")
    listed = ListedExport(1, "Success", ExportStatus.SUCCESS, "/media/exports/7/file.zip")
    out = io.BytesIO()
    AvicennaExportRepository(client, 7).download(listed, out, label="export #1")
    assert out.getvalue() == b"zipbytes"
    assert "Authorization" in last(requests_mock).headers  # same origin as api_url


# --- the export list's pages --------------------------------------------------------


def _page(ids: list[int], next_link: str | None) -> dict[str, t.Any]:
    return {
        "count": 99,
        "next": next_link,
        "previous": None,
        "results": [{"study_specific_id": i} for i in ids],
    }


@pytest.mark.parametrize(
    "second",
    [
        f"{API}/api/v1/filter/export/?study_id=7&page=2",  # absolute, page number
        "/api/v1/filter/export/?study_id=7&page=2",  # relative to the origin
        "?study_id=7&page=2",  # relative to the page
    ],
    ids=["absolute", "path", "query"],
)
def test_given_paged_list_when_listing_then_every_page_is_read_with_auth(
    client: AvicennaClient, requests_mock: rm.Mocker, second: str
) -> None:
    requests_mock.get(LIST_URL, json=_page([1, 2], second))
    requests_mock.get(f"{LIST_URL}&page=2", json=_page([3], None))
    entries, pages = client.list_exports(7)
    assert [e["study_specific_id"] for e in entries] == [1, 2, 3] and pages == 2
    assert all(
        r.headers["Authorization"].startswith("ApiKey ") for r in requests_mock.request_history
    )


def test_given_limit_offset_list_when_listing_then_followed_to_the_end(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    nxt = f"{API}/api/v1/filter/export/?limit=2&offset=2&study_id=7"
    last_page = f"{API}/api/v1/filter/export/?limit=2&offset=4&study_id=7"
    requests_mock.get(LIST_URL, json=_page([5, 4], nxt))
    requests_mock.get(nxt, json=_page([3, 2], last_page))
    requests_mock.get(last_page, json=_page([1], None))
    entries, pages = client.list_exports(7)
    assert [e["study_specific_id"] for e in entries] == [5, 4, 3, 2, 1] and pages == 3


def test_given_next_link_on_another_origin_when_listing_then_followed_on_api_origin(
    client: AvicennaClient, requests_mock: rm.Mocker, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy's internal host (or http for https) in `next`: the key never goes there."""
    requests_mock.get(LIST_URL, json=_page([2], "http://backend:8000/api/v1/filter/export/?p=2"))
    requests_mock.get(f"{API}/api/v1/filter/export/?p=2", json=_page([1], None))
    entries, _ = client.list_exports(7)
    assert [e["study_specific_id"] for e in entries] == [2, 1]
    assert {r.hostname for r in requests_mock.request_history} == {"avicenna.test"}
    assert "followed on api_url's origin" in caplog.text


def test_given_next_link_looping_when_listing_then_stops(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(LIST_URL, json=_page([1], LIST_URL))
    assert client.list_exports(7) == ([{"study_specific_id": 1}], 1)


def test_given_endless_pages_of_the_same_exports_when_listing_then_stops(
    client: AvicennaClient, requests_mock: rm.Mocker, caplog: pytest.LogCaptureFixture
) -> None:
    """No page cap: a list ends where its pages show nothing new."""
    requests_mock.get(
        re.compile(r".*/filter/export/.*"),
        json=lambda request, context: _page([1], f"{request.url}&more=1"),
    )
    _, pages = client.list_exports(7)
    assert pages == 2 and requests_mock.call_count == 2
    assert "leads back to exports already read" in caplog.text


def test_given_page_past_the_end_404_when_listing_then_list_ends_there(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(LIST_URL, json=_page([2], f"{LIST_URL}&page=2"))
    requests_mock.get(f"{LIST_URL}&page=2", status_code=404, json={"detail": "Invalid page."})
    assert client.list_exports(7) == ([{"study_specific_id": 2}], 1)
    assert requests_mock.call_count == 2


def _oldest_first(total: int, size: int, *, count: bool = True) -> t.Callable[..., t.Any]:
    """A DRF page-number list of `total` exports, oldest first, `size` a page."""

    def answer(request: t.Any, context: t.Any) -> t.Any:
        pages = max(1, -(-total // size))
        number = request.qs.get("page", ["1"])[-1]
        page = pages if number == "last" else int(number)
        if page > pages:
            context.status_code = 404
            return {"detail": "Invalid page."}
        ids = list(range((page - 1) * size + 1, min(page * size, total) + 1))
        body = _page(ids, f"{LIST_URL}&page={page + 1}" if page < pages else None)
        body["previous"] = f"{LIST_URL}&page={page - 1}" if page > 1 else None
        body["count"] = total
        if not count:
            del body["count"]
        return body

    return answer


def _wanting(*ids: int) -> t.Callable[[list[ListedExport]], bool]:
    return lambda exports: set(ids) <= {e.export_id for e in exports}


@pytest.mark.parametrize("count", [True, False], ids=["count", "page-last"])
def test_given_oldest_first_list_when_listing_then_read_back_from_its_end_until_enough(
    client: AvicennaClient, requests_mock: rm.Mocker, count: bool
) -> None:
    requests_mock.get(re.compile(r".*/filter/export/.*"), json=_oldest_first(30, 5, count=count))
    listing = AvicennaExportRepository(client, 7).list(_wanting(12))
    assert [e.export_id for e in listing.exports] == list(range(30, 10, -1))  # newest first
    pages = [r.qs.get("page", ["1"])[-1] for r in requests_mock.request_history]
    assert pages == ["1", "6" if count else "last", "5", "4", "3"] and listing.pages == 5


def test_given_oldest_first_list_without_its_end_when_listed_twice_then_once_in_full(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    """Neither `count` nor `page=last`: one full read, then from the page it ended on."""
    pages = _oldest_first(30, 5, count=False)

    def no_last(request: t.Any, context: t.Any) -> t.Any:
        if request.qs.get("page") == ["last"]:
            context.status_code = 404
            return {"detail": "Invalid page."}
        return pages(request, context)

    requests_mock.get(re.compile(r".*/filter/export/.*"), json=no_last)
    repo = AvicennaExportRepository(client, 7)
    assert repo.list(_wanting(0)).pages == 1 + 1 + 5  # page 1, page=last, pages 2 to 6
    requests_mock.reset_mock()
    again = repo.list(_wanting(27))
    assert [e.export_id for e in again.exports] == [30, 29, 28, 27, 26] and again.pages == 1
    assert requests_mock.request_history[0].qs["page"] == ["6"]


def test_given_an_id_not_in_the_list_when_listed_again_then_no_second_full_read(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    """Read from the end back to page 1 once; then the reading stops as soon as it gets
    back to exports read then (even they cannot satisfy it)."""
    requests_mock.get(re.compile(r".*/filter/export/.*"), json=_oldest_first(30, 5))
    repo = AvicennaExportRepository(client, 7)
    assert repo.list(_wanting(999)).pages == 1 + 6  # page 1, then pages 6 to 1
    requests_mock.reset_mock()
    again = repo.list(_wanting(999))
    assert [e.export_id for e in again.exports] == [30, 29, 28, 27, 26] and again.pages == 1
    assert repo.list(_wanting(12)).pages == 4  # an id that is there: read back to it


def test_given_html_200_list_then_json_when_listing_then_retried_like_a_5xx(
    client: AvicennaClient, requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    maintenance = {"text": "<html>maintenance</html>", "headers": {"Content-Type": "text/html"}}
    requests_mock.get(LIST_URL, [maintenance, {"json": []}])
    assert client.list_exports(7) == ([], 1)
    assert len(sleeps) == 1


def test_given_html_200_list_always_when_listing_then_one_line_naming_api_url(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(
        LIST_URL, text="<html>maintenance</html>", headers={"Content-Type": "text/html"}
    )
    with pytest.raises(ApiError) as info:
        client.list_exports(7)
    assert str(info.value) == (
        "Avicenna GET /api/v1/filter/export/ failed 4 times, last: an HTML page (HTTP 200); "
        f"is api_url ({API}) the Avicenna API?"
    )


def test_given_html_200_create_then_json_when_creating_then_retried(
    client: AvicennaClient, requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    requests_mock.post(
        f"{API}/api/v1/filter/export/",
        [{"text": "<!DOCTYPE html><p>wait</p>"}, {"json": {"study_specific_id": 8}}],
    )
    request = ExportRequest(key="k", label="l", body={"study_id": 7, "filter": "PARTICIPATION"})
    assert AvicennaExportRepository(client, 7).create(request) == Created(export_id=8)
    assert len(sleeps) == 1


@pytest.mark.parametrize("header", ["0", "Wed, 21 Oct 2015 07:28:00 GMT"], ids=["zero", "past"])
def test_given_retry_after_zero_or_past_when_retrying_then_waits_the_normal_backoff(
    client: AvicennaClient, requests_mock: rm.Mocker, sleeps: list[float], header: str
) -> None:
    requests_mock.get(
        LIST_URL, [{"status_code": 429, "headers": {"Retry-After": header}}] * 3 + [{"json": []}]
    )
    client.list_exports(7)
    # backoff_base 0.5 doubling, full jitter: each wait at least half its ceiling
    assert [s >= 0.25 * 2**i for i, s in enumerate(sleeps)] == [True, True, True]


@pytest.mark.parametrize("status", [401, 403, 404, 405])
def test_given_html_4xx_when_listing_then_api_url_is_blamed_not_study_or_key(
    client: AvicennaClient, requests_mock: rm.Mocker, status: int
) -> None:
    requests_mock.get(
        LIST_URL,
        status_code=status,
        text="<html>login</html>",
        headers={"Content-Type": "text/html"},
    )
    with pytest.raises(ApiError) as info:
        client.list_exports(7)
    assert not isinstance(info.value, AuthError)
    assert str(info.value) == (
        f"api_url ({API}) does not point at the Avicenna API: GET /api/v1/filter/export/ "
        f"answered HTTP {status} with an HTML page; check api_url"
    )


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (409, {"detail": "Conflict"}),
        (429, {"detail": "Request was throttled."}),
        (400, {"detail": "Too many exports are running; try again later."}),
        (400, ["You have reached the limit of concurrent exports."]),
    ],
    ids=["409", "429", "400-detail", "400-list"],
)
def test_given_create_refused_for_load_when_creating_then_server_busy_at_once(
    client: AvicennaClient, requests_mock: rm.Mocker, status: int, body: t.Any
) -> None:
    requests_mock.post(
        f"{API}/api/v1/filter/export/",
        status_code=status,
        json=body,
        headers={"Retry-After": "12"},
    )
    with pytest.raises(ServerBusy) as info:
        client.create_filter_export({"study_id": 7})
    assert info.value.retry_after == 12.0 and requests_mock.call_count == 1


def test_given_create_refused_for_a_bad_request_when_creating_then_api_error(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.post(
        f"{API}/api/study/export/create/", status_code=400, json={"detail": "Unknown data source."}
    )
    with pytest.raises(ApiError, match="HTTP 400: Unknown data source") as info:
        client.create_sensor_export(
            study_id=7,
            data_source_id=1,
            start=dt.datetime(2025, 1, 1, tzinfo=UTC),
            end=dt.datetime(2025, 1, 2, tzinfo=UTC),
            participant_ids=[1],
        )
    assert not isinstance(info.value, ServerBusy)


# --- first contact ------------------------------------------------------------------


REFUSED = requests.exceptions.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
NO_HOST = requests.exceptions.ConnectionError(socket.gaierror(-2, "Name or service not known"))


@pytest.mark.parametrize(
    ("exc", "why"), [(REFUSED, "connection refused"), (NO_HOST, "host name not found")]
)
def test_given_unreachable_api_on_first_contact_when_listing_then_fails_after_quick_tries(
    client: AvicennaClient,
    requests_mock: rm.Mocker,
    sleeps: list[float],
    exc: Exception,
    why: str,
) -> None:
    requests_mock.get(LIST_URL, exc=exc)
    with pytest.raises(ApiError) as info:
        client.list_exports(7)
    assert str(info.value) == (
        f"Cannot connect to {API} ({why}): check api_url, and that the Avicenna API "
        "(or the simulator, tap-avicenna-simulator) is running there"
    )
    assert requests_mock.call_count == FIRST_CONTACT_ATTEMPTS and sum(sleeps) < 2


def test_given_tls_error_on_first_contact_when_listing_then_fails_at_once(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    tls = requests.exceptions.SSLError("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c)")
    requests_mock.get(LIST_URL, exc=tls)
    with pytest.raises(ApiError, match=r"TLS handshake failed \(\[SSL: WRONG_VERSION_NUMBER\]"):
        client.list_exports(7)
    assert requests_mock.call_count == 1


def test_given_refused_connections_after_first_contact_when_listing_then_usual_retries(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(LIST_URL, json=[])
    client.list_exports(7)
    requests_mock.get(LIST_URL, [{"exc": REFUSED}] * 3 + [{"json": [{"id": 1}]}])
    assert client.list_exports(7) == ([{"id": 1}], 1)


# --- downloads refused --------------------------------------------------------------

EXPIRED_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
    "<Message>Request has expired</Message><X-Amz-Expires>60</X-Amz-Expires>"
    "<RequestId>R1</RequestId></Error>"
)


def test_given_403_from_another_host_when_downloading_then_refused_not_auth_error(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    url = "https://bucket.s3.test/exports/f.zip?X-Amz-Signature=abc&X-Amz-Expires=60"
    requests_mock.get(url, status_code=403, text=EXPIRED_XML)
    with pytest.raises(DownloadRefused) as info:
        client.download(url, io.BytesIO(), label="export #3")
    assert str(info.value) == (
        "export #3: the download host bucket.s3.test refused the file "
        "(HTTP 403: AccessDenied, Request has expired)"
    )


def test_given_403_from_the_api_origin_when_downloading_then_auth_error_naming_user(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(f"{API}/media/x.zip", status_code=403, json={"detail": "Forbidden"})
    with pytest.raises(AuthError, match=r"r@example\.com"):
        client.download(f"{API}/media/x.zip", io.BytesIO(), label="export #3")


@pytest.mark.parametrize("status", [401, 403])
def test_given_object_store_403_on_the_api_origin_when_downloading_then_refused_not_auth(
    client: AvicennaClient, requests_mock: rm.Mocker, status: int
) -> None:
    """An expired presigned link on the API's own host (its storage behind one origin)
    answers XML, not DRF's JSON: a refused link, not a rejected key."""
    url = f"{API}/media/exports/7/t/f.zip?X-Amz-Signature=abc&X-Amz-Expires=60"
    requests_mock.get(url, status_code=status, text=EXPIRED_XML)
    with pytest.raises(DownloadRefused) as info:
        client.download(url, io.BytesIO(), label="export #3")
    assert str(info.value) == (
        "export #3: the download host avicenna.test refused the file "
        f"(HTTP {status}: AccessDenied, Request has expired)"
    )
