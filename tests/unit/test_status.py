import pytest

from tap_avicenna.exports.job import ListedExport
from tap_avicenna.exports.status import ExportStatus, classify


@pytest.mark.parametrize(
    "label", ["Success", "success", "SUCCESS", " Success ", "Completed", "Successful!"]
)
def test_given_success_label_in_any_case_when_classified_then_success(label: str) -> None:
    assert classify(label) is ExportStatus.SUCCESS


@pytest.mark.parametrize("label", ["Failed", "ERROR", "Cancelled", "canceled", "Expired"])
def test_given_failure_like_label_when_classified_then_failed(label: str) -> None:
    assert classify(label) is ExportStatus.FAILED


@pytest.mark.parametrize("label", ["Pending", "Processing", "Queued For Worker", None, 3, ""])
def test_given_other_label_when_classified_then_pending(label: object) -> None:
    assert classify(label) is ExportStatus.PENDING


def test_given_success_without_content_when_listed_then_still_pending() -> None:
    listed = ListedExport.from_json({"study_specific_id": 4, "status": {"label": "Success"}})
    assert listed is not None and listed.status is ExportStatus.PENDING


def test_given_liberal_entry_shapes_when_listed_then_fields_are_read() -> None:
    listed = ListedExport.from_json(
        {
            "id": "7",
            "status": "success",
            "download_url": "https://x/y.zip",
            "data_source": {"id": 10},
            "participant_ids": "1,2",
        }
    )
    assert listed is not None
    assert (listed.export_id, listed.status, listed.data_source, listed.participant_ids) == (
        7,
        ExportStatus.SUCCESS,
        10,
        [1, 2],
    )


def test_given_entry_without_id_when_listed_then_ignored() -> None:
    assert ListedExport.from_json({"status": {"label": "Success"}}) is None
