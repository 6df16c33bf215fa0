"""A filter export refused with HTTP 400 naming columns it asked for: `ColumnsRefused`
carries those names (whole names only), any other refusal stays an `ApiError`."""

from __future__ import annotations

import typing as t

import pytest
import requests_mock as rm

from tap_avicenna.client import AvicennaClient
from tap_avicenna.errors import ApiError, ColumnsRefused

API = "https://avicenna.test"
FILTER_URL = f"{API}/api/v1/filter/export/"
COLUMNS = ["uuid", "record_time", "participant_id", "Q2", "participant.status_id"]


def body(columns: list[str]) -> dict[str, t.Any]:
    return {"study_id": 7, "filter": "ACTIVITY_RESPONSE", "rule_set": {"columns": columns}}


@pytest.fixture
def client() -> AvicennaClient:
    return AvicennaClient(api_url=API, username="r@example.com", api_key="k", max_attempts=2)


@pytest.mark.parametrize(
    ("answer", "named"),
    [
        ({"detail": "Unknown column(s): participant_id."}, ("participant_id",)),
        (
            {"rule_set": {"columns": {"2": ['"participant_id" is not a valid choice.']}}},
            ("participant_id",),
        ),
        ({"detail": "Unknown columns: Q2, record_time"}, ("record_time", "Q2")),
        ({"detail": "Unknown column: session.uuid (did you mean Q20?)"}, ()),
        ({"detail": "participant.status_id is not allowed"}, ("participant.status_id",)),
    ],
)
def test_given_a_400_naming_columns_when_creating_then_columns_refused_names_them(
    client: AvicennaClient, requests_mock: rm.Mocker, answer: t.Any, named: tuple[str, ...]
) -> None:
    requests_mock.post(FILTER_URL, status_code=400, json=answer)
    with pytest.raises(ApiError) as raised:
        client.create_filter_export(body(COLUMNS))
    assert isinstance(raised.value, ColumnsRefused) == bool(named)
    assert getattr(raised.value, "columns", ()) == named
    assert str(raised.value).startswith(
        "Avicenna refused POST /api/v1/filter/export/ with HTTP 400"
    )


def test_given_another_refusal_when_creating_then_a_plain_api_error(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.post(FILTER_URL, status_code=422, json={"detail": "uuid"})
    with pytest.raises(ApiError) as raised:
        client.create_filter_export(body(COLUMNS))
    assert not isinstance(raised.value, ColumnsRefused)
    requests_mock.post(FILTER_URL, status_code=400, json={"detail": "Unknown activity."})
    with pytest.raises(ApiError) as raised:
        client.create_filter_export(body(COLUMNS))
    assert not isinstance(raised.value, ColumnsRefused)
