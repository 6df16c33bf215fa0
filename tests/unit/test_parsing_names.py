"""Field names for header cells."""

from __future__ import annotations

import pytest

from tap_avicenna.parsing import normalize_header, normalize_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Record Time", "record_time"),
        ("user_id", "user_id"),
        ("device.id", "device_id"),
        ("heart_rate.average", "heart_rate_average"),
        ("X-Axis", "x_axis"),
        ("  Participant ID ", "participant_id"),
        ("[2_TXT] Q2", "c_2_txt_q2"),
        ("[24_IMG] Question 24 of Survey 14679", "c_24_img_question_24_of_survey_14679"),
        ("Température", "temperature"),
        ("Größe", "gro_e"),
        ("日本", "column"),
        ("", "column"),
        ("___", "column"),
        (
            "Duration (seconds) from scheduled to completion time",
            "duration_seconds_from_scheduled_to_completion_time",
        ),
        ("Record Time metadata", "record_time_metadata"),
    ],
)
def test_given_header_cell_when_normalized_then_snake_case(raw: str, expected: str) -> None:
    assert normalize_name(raw) == expected


def test_given_colliding_names_when_normalized_then_suffixed_in_order() -> None:
    assert normalize_header(["Record Time", "record_time", "RECORD-TIME", "x"]) == [
        "record_time",
        "record_time_2",
        "record_time_3",
        "x",
    ]


def test_given_suffix_taken_by_later_column_when_normalized_then_next_free_suffix() -> None:
    assert normalize_header(["a", "A", "a_2", "a.2"]) == ["a", "a_3", "a_2", "a_2_2"]


def test_given_empty_names_when_normalized_then_column_numbered() -> None:
    assert normalize_header(["", " ", "x"]) == ["column", "column_2", "x"]
