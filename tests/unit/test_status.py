import datetime as dt

import pytest

from tap_avicenna.exports.job import ExportRequest, ListedExport, Match
from tap_avicenna.exports.status import ExportStatus, classify, status_label


@pytest.mark.parametrize(
    "label", ["Success", "success", "SUCCESS", " Success ", "Completed", "Successful!"]
)
def test_given_success_label_in_any_case_when_classified_then_success(label: str) -> None:
    assert classify(label) is ExportStatus.SUCCESS


@pytest.mark.parametrize("label", ["Failed", "ERROR", "Cancelled", "canceled", "Expired"])
def test_given_failure_like_label_when_classified_then_failed(label: str) -> None:
    assert classify(label) is ExportStatus.FAILED


@pytest.mark.parametrize("label", ["Pending", "Processing", "Queued For Worker", "In progress"])
def test_given_pending_like_label_when_classified_then_pending(label: str) -> None:
    assert classify(label) is ExportStatus.PENDING


@pytest.mark.parametrize("label", ["Ready", "Available", "Exported", None, 3, ""])
def test_given_other_label_when_classified_then_unknown(label: object) -> None:
    """Unknown: ready once the list shows a file (the runner decides), pending before."""
    assert classify(label) is ExportStatus.UNKNOWN


@pytest.mark.parametrize(
    ("entry", "label"),
    [
        ({"status": {"id": 3, "label": "Success"}}, "Success"),
        ({"status": {"id": 3, "name": "Success"}}, "Success"),
        ({"status": {"id": 3}}, "3"),
        ({"status": 3}, "3"),
        ({"status": 3, "status_display": "Success"}, "Success"),
        ({"status": "Processing"}, "Processing"),
        ({"status_label": "Ready"}, "Ready"),
        ({}, ""),
    ],
)
def test_given_status_shapes_when_read_then_text_label_preferred(
    entry: dict[str, object], label: str
) -> None:
    assert status_label(entry) == label


def test_given_success_without_content_when_listed_then_success_without_file() -> None:
    listed = ListedExport.from_json({"study_specific_id": 4, "status": {"label": "Success"}})
    assert listed is not None and listed.status is ExportStatus.SUCCESS and not listed.content


def test_given_liberal_entry_shapes_when_listed_then_fields_are_read() -> None:
    listed = ListedExport.from_json(
        {
            "id": "7",
            "status": "success",
            "download_url": "https://x/y.zip",
            "data_source": {"id": 10},
            "participant_ids": "1,2",
            "export_type": "data_source",
        }
    )
    assert listed is not None
    assert (listed.export_id, listed.pk, listed.status, listed.data_source) == (
        7,
        7,
        ExportStatus.SUCCESS,
        10,
    )
    assert (listed.participant_ids, listed.kind) == ([1, 2], "DATA_SOURCE")


def test_given_both_ids_when_listed_then_study_specific_id_is_the_key() -> None:
    listed = ListedExport.from_json({"id": 9001, "study_specific_id": 12, "status": "Pending"})
    assert listed is not None and (listed.export_id, listed.pk) == (12, 9001)


def test_given_entry_without_id_when_listed_then_ignored() -> None:
    assert ListedExport.from_json({"status": {"label": "Success"}}) is None


# --- which export is the request's ----------------------------------------------------

SENSOR = ExportRequest(
    key="k",
    label="l",
    data_source_id=10,
    start=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
    end=dt.datetime(2025, 1, 8, tzinfo=dt.timezone.utc),
    participant_ids=(101, 102),
)
PARTICIPATION = ExportRequest(key="p", label="p", body={"filter": "PARTICIPATION"})
SURVEY = ExportRequest(
    key="s", label="s", body={"filter": "ACTIVITY_RESPONSE", "activity_id": 5678}
)


def listed(**fields: object) -> ListedExport:
    entry = ListedExport.from_json({"study_specific_id": 1, "status": "Pending", **fields})
    assert entry is not None
    return entry


@pytest.mark.parametrize(
    ("request_", "fields", "match"),
    [
        (SENSOR, {}, Match.UNKNOWN),
        (SENSOR, {"data_source": 10}, Match.YES),
        (SENSOR, {"data_source": 11}, Match.NO),
        (SENSOR, {"data_source": 10, "participant_ids": [102, 101]}, Match.YES),
        (SENSOR, {"data_source": 10, "participant_ids": [103]}, Match.NO),
        (SENSOR, {"start_date": 1735689600000, "end_date": 1736294400000}, Match.YES),
        (SENSOR, {"start_date": 1735689600000, "end_date": 1735776000000}, Match.NO),
        (SENSOR, {"activity_id": 5678}, Match.NO),
        (SENSOR, {"export_type": "PARTICIPATION"}, Match.NO),
        (SENSOR, {"export_type": "data_source"}, Match.UNKNOWN),
        (PARTICIPATION, {}, Match.UNKNOWN),
        (PARTICIPATION, {"export_type": "PARTICIPATION"}, Match.YES),
        (PARTICIPATION, {"export_type": "ACTIVITY_RESPONSE"}, Match.NO),
        (PARTICIPATION, {"data_source": 10}, Match.NO),
        (SURVEY, {"activity_id": 5678}, Match.YES),
        (SURVEY, {"activity_id": 5679}, Match.NO),
        (SURVEY, {"participant_ids": [101]}, Match.NO),
    ],
)
def test_given_listed_fields_when_matched_then_all_shown_agree_and_one_shown(
    request_: ExportRequest, fields: dict[str, object], match: Match
) -> None:
    assert request_.match(listed(**fields)) is match
