"""AvicennaClient with requests-mock: auth header, retries, error lines, no leaks."""

from __future__ import annotations

import datetime as dt
import io
import logging
import typing as t

import pytest
import requests_mock as rm

from tap_avicenna.client import AvicennaClient, BrokenDownload, DownloadGone
from tap_avicenna.errors import ApiError, AuthError
from tap_avicenna.exports.job import ExportRequest, ListedExport
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
    assert client.list_exports(7) == [{"id": 1}]
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
    assert client.list_exports(7) == []
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
    assert client.list_exports(7) == [{"id": 5}]


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
        ({"json": {"export": {"study_specific_id": 4}}}, 4),
        ({"json": [{"id": 5}]}, 5),
        ({"text": ""}, None),
        ({"text": "Export created"}, None),
        ({"json": {"detail": "queued"}}, None),
    ],
    ids=["nested", "list", "empty", "text", "no-id"],
)
def test_given_liberal_create_answers_when_creating_then_id_or_none(
    client: AvicennaClient, requests_mock: rm.Mocker, kwargs: dict[str, t.Any], answer: int | None
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
