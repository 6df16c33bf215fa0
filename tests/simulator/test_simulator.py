"""Real HTTP tests of the Avicenna API simulator."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from tap_avicenna.simulator import (
    DataSourceConfig,
    ParticipantConfig,
    QuestionConfig,
    Simulator,
    SimulatorConfig,
    StudyConfig,
    SurveyConfig,
    churn_config,
    default_config,
)
from tap_avicenna.simulator.clock import parse_instant, to_ms
from tap_avicenna.simulator.data import make_time_formatter

UTC = timezone.utc
JAN1 = datetime(2025, 1, 1, tzinfo=UTC)
JAN2 = datetime(2025, 1, 2, tzinfo=UTC)
STUDY = 1234
CREATE = "/api/study/export/create/"
FILTER = "/api/v1/filter/export/"
V2_COLUMNS = [
    "participant_id",
    "uuid",
    "prompt_time",
    "record_time",
    "status_id",
    "device.id",
    "device.model",
    "participant.start_time",
    "participant.status_id",
]


def frozen(config: SimulatorConfig | None = None) -> SimulatorConfig:
    """A config whose clock only moves when advanced."""
    config = config or default_config()
    config.time_scale = 0.0
    return config


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(frozen()) as simulator:
        yield simulator


class Client:
    """A tiny authenticated client of the simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.headers = sim.auth_header()

    def create(
        self,
        data_source: int = 10,
        start: datetime = JAN1,
        end: datetime = JAN2,
        participant_ids: str = "",
        study_id: int = STUDY,
    ) -> requests.Response:
        fields = {
            "study_id": str(study_id),
            "data_source": str(data_source),
            "start_date": str(to_ms(start)),
            "end_date": str(to_ms(end)),
            "participant_ids": participant_ids,
        }
        multipart = {k: (None, v) for k, v in fields.items()}
        return requests.post(self.sim.url + CREATE, files=multipart, headers=self.headers)

    def filter(self, body: dict[str, Any]) -> requests.Response:
        return requests.post(self.sim.url + FILTER, json=body, headers=self.headers)

    def survey(self, activity_id: int = 5678, version: str | None = "v2", **rule_set: Any) -> int:
        body = {
            "study_id": STUDY,
            "activity_id": activity_id,
            "filter": "ACTIVITY_RESPONSE",
            "site_ssid": None,
            "export_version": version,
            "rule_set": rule_set,
        }
        response = self.filter(body)
        assert response.status_code == 201, response.text
        return int(response.json()["study_specific_id"])

    def listing(self, study_id: int = STUDY) -> list[dict[str, Any]]:
        response = requests.get(
            self.sim.url + FILTER, params={"study_id": study_id}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        data = response.json()
        assert isinstance(data, list)
        return data

    def entry(self, number: int, study_id: int = STUDY) -> dict[str, Any]:
        return next(e for e in self.listing(study_id) if e["study_specific_id"] == number)

    def finished(self, number: int, study_id: int = STUDY) -> dict[str, Any]:
        self.sim.clock.advance(2)
        return self.entry(number, study_id)

    def download(self, number: int, study_id: int = STUDY) -> bytes:
        entry = self.finished(number, study_id)
        assert entry["status"]["label"] == "Success"
        response = requests.get(entry["content"], headers=self.headers)
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) == len(response.content)
        return response.content

    def created_id(self, response: requests.Response) -> int:
        assert response.status_code == 201, response.text
        return int(response.json()["study_specific_id"])


def csv_dicts(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def zip_csv_dicts(data: bytes) -> list[dict[str, str]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = [n for n in archive.namelist() if n.endswith(".csv")]
        return [row for n in names for row in csv_dicts(archive.read(n))]


def survey_rows(client: Client, number: int) -> list[dict[str, str]]:
    data = client.download(number)
    return zip_csv_dicts(data) if data[:2] == b"PK" else csv_dicts(data)


# -- authentication ---------------------------------------------------------------------------


def test_given_valid_key_with_any_scheme_case_when_listing_then_200(sim: Simulator) -> None:
    user, key = next(iter(sim.config.users.items()))
    for scheme in ("ApiKey", "apikey", "APIKEY"):
        response = requests.get(
            sim.url + FILTER,
            params={"study_id": STUDY},
            headers={"Authorization": f"{scheme} {user}:{key}"},
        )
        assert response.status_code == 200
        assert response.json() == []


@pytest.mark.parametrize(
    "header",
    [
        None,
        "ApiKey researcher@example.com:wrong",
        "ApiKey someone@example.com:sim-secret-key-0123456789",
        "Bearer researcher@example.com:sim-secret-key-0123456789",
        "ApiKey sim-secret-key-0123456789",
    ],
)
def test_given_bad_credentials_when_calling_api_then_401_invalid_api_key(
    sim: Simulator, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    for response in (
        requests.get(sim.url + FILTER, params={"study_id": STUDY}, headers=headers),
        requests.post(sim.url + CREATE, data={"study_id": STUDY}, headers=headers),
        requests.post(sim.url + FILTER, json={"study_id": STUDY}, headers=headers),
    ):
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid API key."}
    assert sim.stats()["auth_failures"] == 3


def test_given_unknown_study_or_no_access_when_listing_then_404() -> None:
    config = frozen()
    config.users["other@example.com"] = "other-key"
    config.studies[STUDY].users = ["researcher@example.com"]
    with Simulator(config) as sim:
        client = Client(sim)
        assert requests.get(
            sim.url + FILTER, params={"study_id": 999}, headers=client.headers
        ).json() == {"detail": "Not found."}
        other = sim.auth_header("other@example.com")
        response = requests.get(sim.url + FILTER, params={"study_id": STUDY}, headers=other)
        assert response.status_code == 404
        assert client.create(study_id=999).status_code == 404


def test_given_success_when_downloading_without_auth_then_401(sim: Simulator) -> None:
    client = Client(sim)
    number = client.created_id(client.create())
    url = client.finished(number)["content"]
    assert requests.get(url).status_code == 401
    assert requests.get(url, headers=client.headers).status_code == 200


# -- export lifecycle ---------------------------------------------------------------------------


def test_given_running_clock_when_polling_then_pending_processing_success() -> None:
    config = default_config()
    config.pending_seconds = 0.3
    config.processing_delay = 1.0
    with Simulator(config) as sim:
        client = Client(sim)
        created = client.create()
        assert created.status_code == 201
        body = created.json()
        assert body["status"] == {"id": 1, "label": "Pending"}
        assert body["content"] is None
        assert body["export_type"] == "data_source"
        seen: list[str] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            label = client.entry(body["study_specific_id"])["status"]["label"]
            if not seen or seen[-1] != label:
                seen.append(label)
            if label == "Success":
                break
            time.sleep(0.03)
        assert seen == ["Pending", "Processing", "Success"]


def test_given_success_when_downloading_zip_then_csv_equals_expected_rows(sim: Simulator) -> None:
    client = Client(sim)
    number = client.created_id(client.create(20, participant_ids="101,103"))
    entry = client.finished(number)
    assert entry["content"].startswith(sim.url + f"/media/exports/{STUDY}/")
    assert entry["content"].endswith(f"/study-{STUDY}-export-{number}-data-source-20.zip")
    assert entry["participant_ids"] == [101, 103]
    assert entry["start_date"] == to_ms(JAN1)
    response = requests.get(entry["content"], headers=client.headers)
    assert response.headers["Content-Type"] == "application/zip"
    rows = zip_csv_dicts(response.content)
    expected = sim.expected_rows(STUDY, 20, [101, 103], JAN1, JAN2)
    assert rows == expected
    assert len(rows) == 2 * 288
    assert list(rows[0]) == [
        "user_id",
        "device_id",
        "study_id",
        "record_time",
        "x_axis",
        "y_axis",
        "z_axis",
        "accu",
    ]
    assert {r["user_id"] for r in rows} == {"101", "103"}


def test_given_two_studies_when_creating_exports_then_ids_increment_per_study() -> None:
    config = frozen()
    config.studies[42] = StudyConfig()
    with Simulator(config) as sim:
        client = Client(sim)
        ids = [client.created_id(client.create(study_id=s)) for s in (STUDY, STUDY, 42, STUDY)]
        assert ids == [1, 2, 1, 3]
        survey_id = client.survey()
        assert survey_id == 4
        listed = [e["study_specific_id"] for e in client.listing()]
        assert listed == [4, 3, 2, 1]


def test_given_multipart_and_urlencoded_when_creating_then_same_export(sim: Simulator) -> None:
    client = Client(sim)
    fields = {
        "study_id": str(STUDY),
        "data_source": "30",
        "start_date": str(to_ms(JAN1)),
        "end_date": str(to_ms(JAN2)),
        "participant_ids": "102, 104",
    }
    multipart = requests.post(
        sim.url + CREATE, files={k: (None, v) for k, v in fields.items()}, headers=client.headers
    )
    urlencoded = requests.post(sim.url + CREATE, data=fields, headers=client.headers)
    assert multipart.request.headers["Content-Type"].startswith("multipart/form-data")
    assert urlencoded.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    first, second = multipart.json(), urlencoded.json()
    for key in ("data_source", "start_date", "end_date", "participant_ids"):
        assert first[key] == second[key]
    assert first["participant_ids"] == [102, 104]
    assert client.download(1) == client.download(2)


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"data_source": ""}, "data_source is required."),
        ({"data_source": "99"}, "Unknown data source: 99."),
        ({"start_date": "yesterday"}, "start_date must be an integer."),
        ({"start_date": "1735776000001"}, "start_date must not be after end_date."),
        ({"participant_ids": "101,999"}, "Unknown participant id(s): 999."),
        ({"participant_ids": "101;102"}, "participant_ids must be comma-separated integers."),
        ({"study_id": "abc"}, "study_id must be an integer."),
    ],
)
def test_given_bad_fields_when_creating_then_400(
    sim: Simulator, change: dict[str, str], detail: str
) -> None:
    fields = {
        "study_id": str(STUDY),
        "data_source": "10",
        "start_date": str(to_ms(JAN1)),
        "end_date": str(to_ms(JAN2)),
        **change,
    }
    response = requests.post(sim.url + CREATE, data=fields, headers=sim.auth_header())
    assert response.status_code == 400
    assert response.json() == {"detail": detail}
    assert sim.stats()["exports_created"] == 0


def test_given_no_participant_ids_when_creating_then_all_participants(sim: Simulator) -> None:
    client = Client(sim)
    number = client.created_id(client.create(30, participant_ids=""))
    assert client.entry(number)["participant_ids"] is None
    rows = zip_csv_dicts(client.download(number))
    assert {r["user_id"] for r in rows} == {"101", "102", "103", "104", "105"}


# -- filter exports -----------------------------------------------------------------------------


def test_given_raw_json_without_content_type_when_filter_export_then_parsed() -> None:
    with Simulator(frozen(churn_config())) as sim:
        client = Client(sim)
        body = (
            b'{"study_id": 1234, "site_ssid": null, "filter": "PARTICIPATION", "rule_set": '
            b'{"query": {}, "sort_by": [], "columns": ["participant_id", "start_time", '
            b'"end_time", "status_id"]}}'
        )
        bare = requests.post(sim.url + FILTER, data=body, headers=client.headers)
        assert "Content-Type" not in bare.request.headers
        curl_style = requests.post(
            sim.url + FILTER,
            data=body,
            headers={**client.headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert client.created_id(bare) == 1
        assert client.created_id(curl_style) == 2
        assert bare.json()["export_type"] == "PARTICIPATION"
        data = client.download(1)
        assert client.entry(1)["content"].endswith("study-1234-export-1-participation.csv")
        assert csv_dicts(data) == [
            {
                "participant_id": "101",
                "start_time": "2025-01-01 00:00:00.000000+00:00",
                "end_time": "",
                "status": "active",
            },
            {
                "participant_id": "102",
                "start_time": "2025-01-01 00:00:00.000000+00:00",
                "end_time": "",
                "status": "active",
            },
            {
                "participant_id": "103",
                "start_time": "2025-01-01 00:00:00.000000+00:00",
                "end_time": "",
                "status": "active",
            },
            {
                "participant_id": "104",
                "start_time": "2025-01-15 00:00:00.000000+00:00",
                "end_time": "",
                "status": "active",
            },
            {
                "participant_id": "105",
                "start_time": "2025-01-01 00:00:00.000000+00:00",
                "end_time": "2025-01-20 00:00:00.000000+00:00",
                "status": "dropped",
            },
        ]
        assert csv_dicts(data) == sim.expected_participation_rows(STUDY)


def test_given_bad_filter_bodies_when_creating_then_400(sim: Simulator) -> None:
    client = Client(sim)
    bad = requests.post(sim.url + FILTER, data=b"{not json", headers=client.headers)
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("JSON parse error")
    assert client.filter({"study_id": STUDY, "filter": "NOPE"}).status_code == 400
    unknown_activity = client.filter(
        {"study_id": STUDY, "filter": "ACTIVITY_RESPONSE", "activity_id": 1}
    )
    assert unknown_activity.json() == {"detail": "Unknown activity: 1."}
    for rule_set, detail in (
        ({"columns": ["Q2", "nope"]}, "Unknown column: nope."),
        ({"columns": ["Q99"]}, "Unknown column: Q99."),
        ({"query": {"field_name": "nope", "op": "=", "value": 1}}, "Unknown field: nope."),
        ({"query": {"field_name": "status_id", "op": "~", "value": 1}}, "Unknown op: ~."),
        ({"sort_by": [{"field_name": "uuid", "sort_order": "up"}]}, None),
    ):
        response = client.filter(
            {
                "study_id": STUDY,
                "filter": "ACTIVITY_RESPONSE",
                "activity_id": 5678,
                "export_version": "v2",
                "rule_set": rule_set,
            }
        )
        assert response.status_code == 400
        if detail:
            assert response.json() == {"detail": detail}


def test_given_v2_and_dashboard_requests_when_downloading_then_same_values(
    sim: Simulator,
) -> None:
    client = Client(sim)
    v2 = survey_rows(client, client.survey(5678, "v2", columns=[*V2_COLUMNS, "Q2", "Q3", "Q4"]))
    dash = survey_rows(client, client.survey(5678, "v1", columns=["ignored"]))
    assert list(v2[0]) == [
        *V2_COLUMNS,
        "Q2",
        "mQ2_metadata",
        "Q3",
        "mQ3_metadata",
        "Q4",
        "mQ4_metadata",
    ]
    assert list(dash[0])[:10] == [
        "Participant ID",
        "Participant Label",
        "Device ID",
        "Device Model",
        "UUID",
        "Prompt Time",
        "Record Time",
        "Status",
        "Participant Start Time",
        "Participant Status",
    ]
    assert list(dash[0])[10:14] == [
        "[2_SA] mood",
        "[2_SA metadata] mood",
        "[3_TXT] Question 3 of Survey 5678",
        "[3_TXT metadata] Question 3 of Survey 5678",
    ]
    mapping = {
        "participant_id": "Participant ID",
        "uuid": "UUID",
        "prompt_time": "Prompt Time",
        "record_time": "Record Time",
        "status_id": "Status",
        "device.id": "Device ID",
        "device.model": "Device Model",
        "participant.start_time": "Participant Start Time",
        "participant.status_id": "Participant Status",
        "Q2": "[2_SA] mood",
        "mQ2_metadata": "[2_SA metadata] mood",
        "Q4": "[4_MA] activities",
    }
    assert len(v2) == len(dash) == 5 * 31 * 2
    for a, b in zip(v2, dash, strict=True):
        for v2_name, dash_name in mapping.items():
            assert a[v2_name] == b[dash_name]
    assert {r["status_id"] for r in v2} <= {"0", "1", "2", "3", "4"}
    completed = [r for r in v2 if r["status_id"] == "1"]
    assert completed and all(r["Q2"] and json.loads(r["mQ2_metadata"]) for r in completed)
    assert all(r["Q2"] == "" for r in v2 if r["status_id"] in ("0", "3", "4"))
    assert v2 == sim.expected_survey_rows(
        STUDY,
        5678,
        {"export_version": "v2", "rule_set": {"columns": [*V2_COLUMNS, "Q2", "Q3", "Q4"]}},
    )


def test_given_query_and_sort_when_survey_export_then_rows_filtered_and_ordered() -> None:
    with Simulator(frozen(churn_config())) as sim:
        client = Client(sim)
        query = {
            "AND": [
                {"field_name": "participant.status_id", "op": "=", "value": 1},
                {
                    "OR": [
                        {"field_name": "status_id", "op": "in", "value": [1, 2]},
                        {"field_name": "Q3", "op": "contains", "value": "walk"},
                    ]
                },
                {"field_name": "record_time", "op": ">=", "value": "2025-01-10T00:00:00Z"},
                {"field_name": "prompt_time", "op": "<", "value": to_ms(JAN1) + 20 * 86_400_000},
            ]
        }
        sort_by = [
            {"field_name": "participant_id", "sort_order": "desc"},
            {"field_name": "session.record_time", "sort_order": "asc"},
        ]
        number = client.survey(
            5678, "v2", columns=[*V2_COLUMNS, "Q3"], query=query, sort_by=sort_by
        )
        rows = survey_rows(client, number)
        assert rows
        assert {r["participant.status_id"] for r in rows} == {"1"}
        assert "105" not in {r["participant_id"] for r in rows}
        assert all(r["status_id"] in ("1", "2") or "walk" in r["Q3"] for r in rows)
        assert all(r["record_time"] >= "2025-01-10" for r in rows)
        assert all(r["prompt_time"] < "2025-01-21" for r in rows)
        keys = [(-int(r["participant_id"]), r["record_time"]) for r in rows]
        assert keys == sorted(keys)
        body = {
            "export_version": "v2",
            "rule_set": {"columns": [*V2_COLUMNS, "Q3"], "query": query, "sort_by": sort_by},
        }
        assert rows == sim.expected_survey_rows(STUDY, 5678, body)


def test_given_tricky_survey_when_downloading_then_zip_round_trips_with_images(
    sim: Simulator,
) -> None:
    client = Client(sim)
    number = client.survey(5679, "v2", columns=["participant_id", "uuid", "Q1", "Q2", "Q3"])
    entry = client.finished(number)
    assert entry["content"].endswith(
        f"/study-{STUDY}-export-{number}-survey-responses-5679-2025-02-01-00-00-00.zip"
    )
    data = requests.get(entry["content"], headers=client.headers).content
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        csv_name = names[0]
        assert csv_name.endswith(".csv")
        rows = csv_dicts(archive.read(csv_name))
        images = {n for n in names if n.startswith("response-files/")}
        answers = {r["Q2"] for r in rows if r["Q2"]}
        assert answers and answers == images
        first = sorted(images)[0]
        assert archive.read(first).startswith(b"\xff\xd8")
    texts = {r["Q1"] for r in rows}
    assert any("\r\n" in t for t in texts)
    assert any("\n" in t and "\r" not in t for t in texts)
    assert any('"' in t for t in texts)
    assert any("," in t for t in texts)
    assert any(t != t.strip() and t for t in texts)
    assert any(ord(c) > 0xFFFF for t in texts for c in t)
    metas = [r["mQ1_metadata"] for r in rows if r["mQ1_metadata"]]
    parsed = 0
    for meta in metas:
        try:
            json.loads(meta)
            parsed += 1
        except ValueError:
            assert meta == "not-json: legacy metadata"
    assert 0 < parsed < len(metas)
    assert rows == sim.expected_survey_rows(
        STUDY,
        5679,
        {
            "export_version": "v2",
            "rule_set": {"columns": ["participant_id", "uuid", "Q1", "Q2", "Q3"]},
        },
    )


def test_given_question_added_later_when_clock_passes_added_at_then_column_appears(
    sim: Simulator,
) -> None:
    client = Client(sim)
    before = survey_rows(client, client.survey(5679, "v1"))
    assert not any("follow_up" in h for h in before[0])
    refused = client.filter(
        {
            "study_id": STUDY,
            "filter": "ACTIVITY_RESPONSE",
            "activity_id": 5679,
            "export_version": "v2",
            "rule_set": {"columns": ["uuid", "Q7"]},
        }
    )
    assert refused.json() == {"detail": "Unknown column: Q7."}
    sim.clock.set(datetime(2025, 2, 3, tzinfo=UTC))
    after = survey_rows(client, client.survey(5679, "v1"))
    assert "[7_TXT] follow_up" in after[0]
    answered = [r for r in after if r["[7_TXT] follow_up"]]
    assert answered
    assert all(r["Prompt Time"] >= "2025-02-02" for r in answered)


# -- expiry -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [410, 404])
def test_given_seven_days_when_listing_and_downloading_then_expired(status: int) -> None:
    config = frozen()
    config.expired_status = status
    with Simulator(config) as sim:
        client = Client(sim)
        number = client.created_id(client.create())
        url = client.finished(number)["content"]
        sim.clock.advance(7 * 86_400 - 10)
        assert client.entry(number)["status"]["label"] == "Success"
        sim.clock.advance(20)
        entry = client.entry(number)
        assert entry["status"] == {"id": 5, "label": "Expired"}
        assert entry["content"] is None
        assert requests.get(url, headers=client.headers).status_code == status


# -- faults -----------------------------------------------------------------------------------


def test_given_error_rate_one_when_requesting_then_429_or_5xx(sim: Simulator) -> None:
    client = Client(sim)
    number = client.created_id(client.create())
    url = client.finished(number)["content"]
    sim.faults.error_rate = 1.0
    statuses = set()
    for _ in range(30):
        response = requests.get(
            sim.url + FILTER, params={"study_id": STUDY}, headers=client.headers
        )
        statuses.add(response.status_code)
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "1"
        else:
            assert response.text == (
                f"<html><body><h1>Server Error ({response.status_code})</h1></body></html>"
            )
    assert statuses == {429, 500, 502, 503}
    assert requests.get(url, headers=client.headers).status_code in (429, 500, 502, 503)
    assert client.create().status_code in (429, 500, 502, 503)
    sim.faults.error_statuses = [429]
    sim.faults.retry_after = 0
    response = requests.get(sim.url + FILTER, params={"study_id": STUDY}, headers=client.headers)
    assert response.headers["Retry-After"] == "0"
    sim.faults.error_rate = 0.0
    assert requests.get(url, headers=client.headers).status_code == 200
    assert sim.stats()["faults_injected"] == 33
    assert sim.stats()["exports_created"] == 1


def test_given_partial_error_rate_when_requesting_then_seeded_fraction_fails(
    sim: Simulator,
) -> None:
    sim.faults.error_rate = 0.3
    codes = [
        requests.get(
            sim.url + FILTER, params={"study_id": STUDY}, headers=sim.auth_header()
        ).status_code
        for _ in range(100)
    ]
    assert 15 <= sum(c != 200 for c in codes) <= 45


def test_given_fail_knobs_when_processing_done_then_failed(sim: Simulator) -> None:
    client = Client(sim)
    sim.faults.fail_next_exports = 1
    sim.faults.fail_data_sources = {30}
    failed = client.created_id(client.create(10))
    ok = client.created_id(client.create(10))
    by_source = client.created_id(client.create(30))
    assert client.entry(failed)["status"]["label"] in ("Pending", "Processing")
    sim.clock.advance(2)
    assert client.entry(failed)["status"] == {"id": 4, "label": "Failed"}
    assert client.entry(failed)["content"] is None
    assert client.entry(ok)["status"]["label"] == "Success"
    assert client.entry(by_source)["status"]["label"] == "Failed"


def test_given_never_finish_when_time_passes_then_processing_forever(sim: Simulator) -> None:
    client = Client(sim)
    sim.faults.never_finish_next_exports = 1
    stuck = client.created_id(client.create())
    normal = client.created_id(client.create())
    sim.clock.advance(30 * 86_400)
    assert client.entry(stuck)["status"]["label"] == "Processing"
    assert client.entry(normal)["status"]["label"] == "Expired"


def test_given_truncate_next_download_when_downloading_then_body_incomplete(
    sim: Simulator,
) -> None:
    client = Client(sim)
    url = client.finished(client.created_id(client.create()))["content"]
    full = requests.get(url, headers=client.headers).content
    sim.faults.truncate_next_downloads = 1
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, headers=client.headers)
    raw = requests.get(url, headers=client.headers, stream=True)
    assert raw.content == full


def test_given_reset_next_download_when_downloading_then_connection_error(
    sim: Simulator,
) -> None:
    client = Client(sim)
    url = client.finished(client.created_id(client.create()))["content"]
    sim.faults.reset_next_downloads = 1
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url, headers=client.headers)
    assert requests.get(url, headers=client.headers).status_code == 200
    assert sim.faults.reset_next_downloads == 0


def test_given_omit_id_next_create_when_creating_then_no_id_but_listed(sim: Simulator) -> None:
    client = Client(sim)
    sim.faults.omit_id_next_creates = 1
    response = client.create()
    assert response.status_code == 201
    assert response.json() == {"detail": "Export is being created."}
    assert [e["study_specific_id"] for e in client.listing()] == [1]
    assert client.created_id(client.create()) == 2


def test_given_hide_next_list_entries_when_listing_then_newest_unfinished_omitted(
    sim: Simulator,
) -> None:
    client = Client(sim)
    client.created_id(client.create())
    sim.clock.advance(2)
    client.created_id(client.create())
    sim.faults.hide_next_list_entries = 1
    assert [e["study_specific_id"] for e in client.listing()] == [1]
    assert [e["study_specific_id"] for e in client.listing()] == [2, 1]


def test_given_unknown_label_when_listing_then_made_up_label_before_success(
    sim: Simulator,
) -> None:
    client = Client(sim)
    sim.faults.unknown_label_next_exports = 1
    number = client.created_id(client.create())
    assert client.entry(number)["status"]["label"] == "Queued For Worker"
    sim.clock.advance(0.5)
    assert client.entry(number)["status"]["label"] == "Queued For Worker"
    assert client.finished(number)["status"]["label"] == "Success"


@pytest.mark.parametrize(("case", "label"), [("lower", "success"), ("upper", "SUCCESS")])
def test_given_status_label_case_when_listing_then_label_case_changed(
    sim: Simulator, case: str, label: str
) -> None:
    client = Client(sim)
    sim.faults.status_label_case = case
    number = client.created_id(client.create())
    assert client.finished(number)["status"]["label"] == label


def test_given_download_origin_when_auth_sent_there_then_400(sim: Simulator) -> None:
    client = Client(sim)
    sim.configure(
        download_origin="http://localhost:{port}",
        download_requires_auth=False,
        reject_auth_on_download_origin=True,
    )
    number = client.created_id(client.create())
    url = client.finished(number)["content"]
    assert url.startswith(f"http://localhost:{sim.port}/media/exports/")
    assert requests.get(url, headers=client.headers).status_code == 400
    plain = requests.get(url)
    assert plain.status_code == 200
    assert zip_csv_dicts(plain.content) == sim.expected_rows(STUDY, 10, None, JAN1, JAN2)


# -- data -------------------------------------------------------------------------------------


def test_given_same_request_twice_when_downloading_then_identical_bytes(sim: Simulator) -> None:
    client = Client(sim)
    first = client.created_id(client.create(10, participant_ids="101,102"))
    second = client.created_id(client.create(10, participant_ids="102,101"))
    assert client.download(first) == client.download(second)
    with Simulator(frozen()) as other:
        other_client = Client(other)
        again = other_client.created_id(other_client.create(10, participant_ids="101,102"))
        assert other_client.download(again) == client.download(first)


def test_given_clock_when_advanced_then_only_rows_before_now_and_new_rows_appear(
    sim: Simulator,
) -> None:
    client = Client(sim)
    now = sim.clock.now()
    start, end = now - timedelta(hours=6), now + timedelta(days=1)
    before = zip_csv_dicts(client.download(client.created_id(client.create(30, start, end))))
    fmt = make_time_formatter("space")
    assert before and all(r["record_time"] < fmt(to_ms(now)) for r in before)
    sim.clock.advance(6 * 3600)
    after = zip_csv_dicts(client.download(client.created_id(client.create(30, start, end))))
    assert len(after) > len(before)
    assert {tuple(r.items()) for r in before} <= {tuple(r.items()) for r in after}


def test_given_gps_when_exported_then_duplicate_timestamps_are_distinct_rows(
    sim: Simulator,
) -> None:
    rows = sim.expected_rows(STUDY, 10, [101], JAN1, JAN2)
    stamps = [r["record_time"] for r in rows]
    duplicated = {s for s in stamps if stamps.count(s) > 1}
    assert duplicated
    for stamp in duplicated:
        pair = [r for r in rows if r["record_time"] == stamp]
        assert {r["provider"] for r in pair} >= {"network"}
        assert pair[0] != pair[1]
    assert any(not s.endswith(".000000+00:00") for s in stamps)
    assert all(len(r["device_id"]) == 16 for r in rows)


def test_given_periods_when_exporting_then_rows_only_inside_participation() -> None:
    with Simulator(frozen(churn_config())) as sim:
        rows = sim.expected_rows(STUDY, 30, None, JAN1, sim.clock.now())
        by_user: dict[str, list[str]] = {}
        for r in rows:
            by_user.setdefault(r["user_id"], []).append(r["record_time"])
        assert min(by_user["104"]) >= "2025-01-15"
        assert max(by_user["105"]) < "2025-01-20"
        assert max(by_user["101"]) >= "2025-01-31"


def test_given_file_knobs_when_downloading_then_formats_follow() -> None:
    config = frozen()
    study = config.studies[STUDY]
    study.data_sources[11] = DataSourceConfig(
        "gps", 600, "gps", file_format="csv", bom=True, header_style="title"
    )
    study.data_sources[12] = DataSourceConfig(
        "battery", 900, "battery", file_format="gzip", timestamp_style="iso_z"
    )
    study.data_sources[13] = DataSourceConfig("accelerometer", 300, "accelerometer", zip_members=3)
    study.data_sources[14] = DataSourceConfig(
        "light", 60, "generic", columns=["lux"], timestamp_style="epoch_ms"
    )
    with Simulator(config) as sim:
        client = Client(sim)
        plain = client.download(client.created_id(client.create(11)))
        assert plain.startswith("\ufeffUser ID,Device ID,Study ID,Record Time,Lat".encode())
        assert b"\r\n" in plain
        assert client.entry(1)["content"].endswith(".csv")
        assert csv_dicts(plain) == sim.expected_rows(STUDY, 11, None, JAN1, JAN2)
        gz = client.download(client.created_id(client.create(12)))
        assert client.entry(2)["content"].endswith(".csv.gz")
        battery = csv_dicts(gzip.decompress(gz))
        assert battery[0]["record_time"].endswith("Z") and "T" in battery[0]["record_time"]
        parts = client.download(client.created_id(client.create(13)))
        with zipfile.ZipFile(io.BytesIO(parts)) as archive:
            assert len(archive.namelist()) == 3
        assert zip_csv_dicts(parts) == sim.expected_rows(STUDY, 13, None, JAN1, JAN2)
        light = zip_csv_dicts(client.download(client.created_id(client.create(14))))
        assert list(light[0]) == ["user_id", "device_id", "study_id", "record_time", "lux"]
        assert light[0]["record_time"].isdigit()


def test_given_timestamp_styles_when_formatting_then_same_instant() -> None:
    ms = to_ms(datetime(2025, 1, 2, 3, 4, 5, 123000, tzinfo=UTC))
    texts = {style: make_time_formatter(style)(ms) for style in ("space", "iso_z", "offset")}
    assert texts == {
        "space": "2025-01-02 03:04:05.123000+00:00",
        "iso_z": "2025-01-02T03:04:05.123Z",
        "offset": "2025-01-02 05:04:05.123000+02:00",
    }
    assert make_time_formatter("epoch_ms")(ms) == str(ms)
    assert {to_ms(parse_instant(t)) for t in texts.values()} == {ms}


def test_given_title_header_style_when_participation_then_dashboard_headers() -> None:
    config = frozen()
    config.studies[STUDY].header_style = "title"
    with Simulator(config) as sim:
        client = Client(sim)
        number = client.created_id(client.filter({"study_id": STUDY, "filter": "PARTICIPATION"}))
        rows = csv_dicts(client.download(number))
        assert list(rows[0]) == ["Avicenna ID", "Start Time", "End Time", "Status"]


def test_given_row_order_time_when_exporting_then_rows_sorted_by_record_time() -> None:
    config = frozen()
    config.studies[STUDY].row_order = "time"
    with Simulator(config) as sim:
        rows = sim.expected_rows(STUDY, 30, None, JAN1, JAN2)
        stamps = [r["record_time"] for r in rows]
        assert stamps == sorted(stamps)
        assert len({r["user_id"] for r in rows[:10]}) > 1


def test_given_dashboard_study_knob_when_v2_requested_then_dashboard_headers() -> None:
    config = frozen()
    config.studies[STUDY].survey_header_style = "dashboard"
    with Simulator(config) as sim:
        client = Client(sim)
        rows = survey_rows(client, client.survey(5678, "v2", columns=["uuid", "Q2"]))
        assert next(iter(rows[0])) == "Participant ID"


def test_given_log_requests_when_downloading_then_token_and_key_not_logged(
    sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    client = Client(sim)
    number = client.created_id(client.create())
    url = client.finished(number)["content"]
    assert capsys.readouterr().err == ""
    sim.configure(log_requests=True)
    requests.get(url, headers=client.headers)
    logged = capsys.readouterr().err
    token = url.split("/")[-2]
    assert "/media/exports/1234/***/" in logged
    assert token not in logged
    assert sim.config.users["researcher@example.com"] not in logged


def test_given_download_auth_not_required_when_downloading_without_header_then_200(
    sim: Simulator,
) -> None:
    client = Client(sim)
    url = client.finished(client.created_id(client.create()))["content"]
    sim.configure(download_requires_auth=False)
    assert requests.get(url).status_code == 200
    assert requests.get(url.replace(url.split("/")[-2], "wrong-token")).status_code == 404


# -- admin, config, cli -----------------------------------------------------------------------


def test_given_admin_endpoints_when_used_then_control_the_simulator(sim: Simulator) -> None:
    client = Client(sim)
    response = requests.post(sim.url + "/_sim/clock", json={"advance_seconds": 3600})
    assert response.json() == {"now": "2025-02-01T01:00:00.000000Z"}
    response = requests.post(sim.url + "/_sim/clock", json={"now": "2025-01-20T00:00:00Z"})
    assert response.json()["now"] == "2025-01-20T00:00:00.000000Z"
    faults = requests.post(
        sim.url + "/_sim/faults", json={"fail_next_exports": 2, "fail_data_sources": [20]}
    ).json()
    assert faults["fail_next_exports"] == 2 and faults["fail_data_sources"] == [20]
    assert sim.faults.fail_next_exports == 2
    assert requests.post(sim.url + "/_sim/faults", json={"nope": 1}).status_code == 400
    requests.post(sim.url + "/_sim/faults", json={"fail_next_exports": 0})
    settings = requests.post(sim.url + "/_sim/settings", json={"processing_delay": 5}).json()
    assert settings["processing_delay"] == 5.0
    expected = requests.get(
        sim.url + "/_sim/expected",
        params={
            "study_id": str(STUDY),
            "data_source": "30",
            "participant_ids": "101,102",
            "start_ms": str(to_ms(JAN1)),
            "end_ms": str(to_ms(JAN2)),
        },
    ).json()
    assert expected == sim.expected_rows(STUDY, 30, [101, 102], JAN1, JAN2)
    body = {"study_id": STUDY, "activity_id": 5678, "export_version": "v2"}
    survey = requests.post(sim.url + "/_sim/expected_survey", json=body).json()
    assert survey == sim.expected_survey_rows(STUDY, 5678, body)
    client.create()
    client.create()
    stats = requests.get(sim.url + "/_sim/stats").json()
    assert stats["create"] == 2
    assert stats["exports_created"] == 2
    assert stats["max_concurrent_pending"] == 2
    assert any(kind == "create" for _, kind in stats["events"])
    sim.clock.advance(10)
    client.download(1)
    assert requests.get(sim.url + "/_sim/stats").json()["downloads_completed"] == 1
    assert requests.post(sim.url + "/_sim/reset_stats").status_code == 200
    assert requests.get(sim.url + "/_sim/stats").json()["create"] == 0
    assert requests.get(sim.url + "/_sim/nope").status_code == 404


def test_given_max_concurrent_pending_when_downloads_complete_then_counts_open_exports(
    sim: Simulator,
) -> None:
    client = Client(sim)
    client.create()
    client.download(1)
    client.create()
    sim.faults.fail_next_exports = 1
    client.create()
    sim.clock.advance(2)
    client.create()
    assert sim.stats()["max_concurrent_pending"] == 2


def test_given_config_json_when_loaded_then_round_trips(tmp_path: Path) -> None:
    config = churn_config()
    config.studies[STUDY].surveys[1] = SurveyConfig(
        "x", [QuestionConfig(1, "IMG", "pic", added_at=JAN2)], sessions_per_day=3
    )
    config.studies[7] = StudyConfig(
        participants=[ParticipantConfig(1, JAN1, JAN2, "dropped", "lbl", "Pixel")],
        users=["researcher@example.com"],
        timestamp_style="offset",
    )
    config.faults.fail_data_sources = {10}
    path = tmp_path / "sim.json"
    path.write_text(json.dumps(config.to_dict()))
    loaded = SimulatorConfig.from_json(path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.studies[STUDY].participant(105) == config.studies[STUDY].participant(105)
    path.write_text(json.dumps({"preset": "churn", "processing_delay": 0.1, "port": 1}))
    small = SimulatorConfig.from_json(path)
    assert small.processing_delay == 0.1 and small.port == 1
    assert small.studies[STUDY].participant(105) == config.studies[STUDY].participant(105)
    path.write_text(json.dumps({"studies": {"1": {"timestamp_style": "bogus"}}}))
    with pytest.raises(ValueError, match="timestamp_style"):
        SimulatorConfig.from_json(path)


def test_given_cli_when_started_then_prints_url_and_exits_zero_on_sigterm() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tap_avicenna.simulator", "--port", "0", "--processing-delay", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline().strip()
        prefix = "Avicenna simulator listening on "
        assert line.startswith(prefix + "http://127.0.0.1:")
        url = line[len(prefix) :]
        headers = {"Authorization": "ApiKey researcher@example.com:sim-secret-key-0123456789"}
        response = requests.get(url + FILTER, params={"study_id": STUDY}, headers=headers)
        assert response.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stderr.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
