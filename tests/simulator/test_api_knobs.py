"""The simulator's knobs for what a real Django REST framework backend does: pages,
long histories, presigned links, storage refusals, create answers, list entries without
metadata, a cap on running exports, numeric statuses, exports without a file."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from urllib.parse import urljoin

import pytest
import requests

from tap_avicenna.simulator import Simulator, default_config
from tap_avicenna.simulator.clock import to_ms

UTC = timezone.utc
JAN1 = datetime(2025, 1, 1, tzinfo=UTC)
STUDY = 1234
CREATE = "/api/study/export/create/"
FILTER = "/api/v1/filter/export/"
PARTICIPATION = {"study_id": STUDY, "filter": "PARTICIPATION", "rule_set": {}}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = default_config()
    config.time_scale = 0.0  # the clock moves only when advanced
    with Simulator(config) as simulator:
        yield simulator


def create(sim: Simulator, participants: str = "101", days: int = 1) -> requests.Response:
    fields = {
        "study_id": str(STUDY),
        "data_source": "10",
        "start_date": str(to_ms(JAN1)),
        "end_date": str(to_ms(JAN1 + timedelta(days=days))),
        "participant_ids": participants,
    }
    return requests.post(
        sim.url + CREATE, files={k: (None, v) for k, v in fields.items()}, headers=sim.auth_header()
    )


def listing(sim: Simulator, url: str | None = None) -> t.Any:
    response = requests.get(
        url or sim.url + FILTER,
        params=None if url else {"study_id": STUDY},
        headers=sim.auth_header(),
    )
    assert response.status_code == 200, response.text
    return response.json()


def all_pages(sim: Simulator) -> tuple[list[int], int]:
    """Every id of the paged list, following `next`; and the number of pages."""
    ids: list[int] = []
    url: str | None = None
    pages = 0
    while True:
        page = listing(sim, url)
        pages += 1
        ids += [e["study_specific_id"] for e in page["results"]]
        if not page["next"]:
            return ids, pages
        url = urljoin(sim.url + FILTER, page["next"])


@pytest.mark.parametrize("pagination", ["page", "limit_offset"])
@pytest.mark.parametrize("next_links", ["absolute", "relative"])
@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_given_page_size_when_listing_then_drf_pages_in_every_style(
    sim: Simulator, pagination: str, next_links: str, order: str
) -> None:
    sim.configure(
        page_size=25, pagination=pagination, next_links=next_links, list_order=order,
        history_exports=60,
    )  # fmt: skip
    first = listing(sim)
    assert first["count"] == 60 and len(first["results"]) == 25 and first["previous"] is None
    assert first["next"].startswith("/" if next_links == "relative" else sim.url)
    assert ("offset=25" in first["next"]) == (pagination == "limit_offset")
    ids, pages = all_pages(sim)
    assert pages == 3
    assert ids == (list(range(60, 0, -1)) if order == "newest" else list(range(1, 61)))


def test_given_page_past_the_end_when_listing_then_404_like_drf(sim: Simulator) -> None:
    sim.configure(page_size=25)
    response = requests.get(
        sim.url + FILTER, params={"study_id": STUDY, "page": 2}, headers=sim.auth_header()
    )
    assert response.status_code == 404 and response.json() == {"detail": "Invalid page."}


@pytest.mark.parametrize("page_last", [True, False])
def test_given_page_last_when_listing_then_the_last_page_or_404_like_drf(
    sim: Simulator, page_last: bool
) -> None:
    sim.configure(page_size=25, list_order="oldest", history_exports=60, page_last=page_last)
    response = requests.get(
        sim.url + FILTER, params={"study_id": str(STUDY), "page": "last"}, headers=sim.auth_header()
    )
    if not page_last:
        assert response.status_code == 404 and response.json() == {"detail": "Invalid page."}
        return
    page = response.json()
    assert [e["study_specific_id"] for e in page["results"]] == list(range(51, 61))
    assert page["next"] is None and "page=2" in page["previous"]


def test_given_no_list_count_when_listing_then_pages_without_count(sim: Simulator) -> None:
    sim.configure(page_size=25, history_exports=30, list_count=False)
    first = listing(sim)
    assert "count" not in first and len(first["results"]) == 25 and first["next"]


def test_given_history_exports_when_listing_then_older_exports_of_other_users(
    sim: Simulator,
) -> None:
    sim.configure(history_exports=20)
    entries = listing(sim)
    assert len(entries) == 20
    assert {e["status"]["label"] for e in entries} == {"Expired", "Failed"}
    assert {e["data_source"] for e in entries} == {10, 20, 30}
    assert all(e["content"] is None for e in entries)
    assert create(sim).json()["study_specific_id"] == 21


def test_given_presigned_urls_when_downloading_then_no_auth_needed_and_expiry_enforced(
    sim: Simulator,
) -> None:
    sim.configure(
        presigned_urls=True, presign_ttl_seconds=60, download_origin="http://localhost:{port}"
    )
    number = create(sim).json()["study_specific_id"]
    sim.clock.advance(2)
    url = next(e for e in listing(sim) if e["study_specific_id"] == number)["content"]
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    assert url.startswith(f"http://localhost:{sim.port}/")
    assert requests.get(url).status_code == 200  # no Authorization header
    altered = requests.get(url.replace("X-Amz-Expires=60", "X-Amz-Expires=6000"))
    assert altered.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in altered.text
    sim.clock.advance(61)
    expired = requests.get(url)
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code><Message>Request has expired</Message>" in expired.text
    fresh = next(e for e in listing(sim) if e["study_specific_id"] == number)["content"]
    assert requests.get(fresh).status_code == 200


def test_given_expire_next_links_when_downloading_then_403_expired_once(sim: Simulator) -> None:
    sim.configure(presigned_urls=True)
    sim.faults.expire_next_links = 1
    create(sim)
    sim.clock.advance(2)
    url = listing(sim)[0]["content"]
    assert requests.get(url).status_code == 403
    assert requests.get(url).status_code == 200


def test_given_expired_status_403_when_file_deleted_then_storage_access_denied(
    sim: Simulator,
) -> None:
    sim.configure(expired_status=403)
    sim.faults.expire_next_downloads = 1
    create(sim)
    sim.clock.advance(2)
    response = requests.get(listing(sim)[0]["content"], headers=sim.auth_header())
    assert response.status_code == 403 and "<Code>AccessDenied</Code>" in response.text


def test_given_html_faults_when_creating_or_listing_then_200_html_and_nothing_created(
    sim: Simulator,
) -> None:
    sim.faults.html_next_creates = 1
    sim.faults.html_next_lists = 1
    answer = create(sim)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/html")
    answer = requests.get(sim.url + FILTER, params={"study_id": STUDY}, headers=sim.auth_header())
    assert answer.status_code == 200 and "<html>" in answer.text
    assert listing(sim) == []


@pytest.mark.parametrize(
    ("answer", "keys"),
    [("full", {"study_specific_id", "status"}), ("id_only", {"id"}), ("none", {"detail"})],
)
def test_given_create_answer_when_creating_then_that_shape(
    sim: Simulator, answer: str, keys: set[str]
) -> None:
    sim.configure(create_answer=answer)
    body = create(sim).json()
    assert keys <= set(body)
    if answer == "id_only":
        assert set(body) == {"id"}
        entry = listing(sim)[0]
        assert entry["id"] == body["id"] != entry["study_specific_id"]


def test_given_list_metadata_none_when_listing_then_only_id_status_content(sim: Simulator) -> None:
    sim.configure(list_metadata="none")
    create(sim)
    assert list(listing(sim)[0]) == ["study_specific_id", "status", "content"]


@pytest.mark.parametrize("status", [409, 429, 400])
def test_given_running_export_cap_when_creating_past_it_then_refused(
    sim: Simulator, status: int
) -> None:
    sim.configure(max_running_exports=2, busy_status=status)
    sim.faults.retry_after = 0
    assert [create(sim).status_code for _ in range(2)] == [201, 201]
    refused = create(sim)
    assert refused.status_code == status
    assert "Too many exports are running" in refused.json()["detail"]
    assert (refused.headers.get("Retry-After") == "0") == (status == 429)
    sim.clock.advance(2)  # the two finish
    assert create(sim).status_code == 201


@pytest.mark.parametrize(
    ("status_format", "status"),
    [("object", {"id": 3, "label": "Ready"}), ("label", "Ready"), ("number", 3)],
)
def test_given_status_format_when_listing_then_status_in_that_shape(
    sim: Simulator, status_format: str, status: t.Any
) -> None:
    sim.configure(status_format=status_format, success_label="Ready")
    create(sim)
    sim.clock.advance(2)
    assert listing(sim)[0]["status"] == status


def test_given_empty_success_when_export_has_no_rows_then_success_without_content(
    sim: Simulator,
) -> None:
    sim.configure(empty_success=True)
    create(sim)
    fields = {  # a window after the simulated now: no data
        "study_id": str(STUDY),
        "data_source": "10",
        "start_date": str(to_ms(datetime(2025, 3, 1, tzinfo=UTC))),
        "end_date": str(to_ms(datetime(2025, 3, 2, tzinfo=UTC))),
        "participant_ids": "101",
    }
    requests.post(
        sim.url + CREATE, files={k: (None, v) for k, v in fields.items()}, headers=sim.auth_header()
    )
    sim.clock.advance(2)
    empty, full = listing(sim)
    assert empty["status"]["label"] == full["status"]["label"] == "Success"
    assert empty["content"] is None and full["content"]


def test_given_impostor_when_creating_then_another_export_and_ours_hidden_once(
    sim: Simulator,
) -> None:
    sim.faults.impostor_next_creates = 2
    number = create(sim, participants="101,102").json()["study_specific_id"]
    first = listing(sim)
    assert [e["study_specific_id"] for e in first] == [number + 1]
    assert first[0]["participant_ids"] == [103, 104, 105]
    assert [e["study_specific_id"] for e in listing(sim)] == [number + 1, number]
    answer = requests.post(sim.url + FILTER, json=PARTICIPATION, headers=sim.auth_header())
    impostor = listing(sim)[0]
    assert impostor["study_specific_id"] == answer.json()["study_specific_id"] + 1
    assert impostor["export_type"] == "data_source"


def test_given_new_knobs_when_print_config_then_listed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tap_avicenna.simulator", "--print-config"],
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(done.stdout)
    for name in (
        "page_size", "list_order", "pagination", "next_links", "history_exports",
        "presigned_urls", "presign_ttl_seconds", "create_answer", "list_metadata",
        "max_running_exports", "busy_status", "status_format", "success_label",
        "empty_success",
    ):  # fmt: skip
        assert name in config, name
    for name in ("html_next_creates", "html_next_lists", "expire_next_links",
                 "impostor_next_creates"):  # fmt: skip
        assert name in config["faults"], name
