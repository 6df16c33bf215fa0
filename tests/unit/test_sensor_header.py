"""Which headers prove a guessed file is another data source's (`header_misfit`)."""

from __future__ import annotations

import pytest

from tap_avicenna.catalogue import known_fields, others_fields
from tap_avicenna.streams.sensor import header_misfit

GPS_KNOWN = {"participant_id", "record_time", "device_id", *known_fields("gps")}


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["participant_id", "record_time", "lat", "lon", "accu"], None),
        # a column the partial catalogue documents for no data source: the schema grows
        (["participant_id", "record_time", "lat", "lon", "hdop"], None),
        (
            ["participant_id", "record_time", "level", "scale", "plugged"],
            "has none of the columns of sensor_gps",
        ),
        (
            ["participant_id", "record_time", "lat", "lon", "plugged"],
            "has column(s) plugged of another data source, not of sensor_gps",
        ),
    ],
)
def test_given_a_header_when_checked_for_gps_then_only_evidence_rejects_it(
    columns: list[str], expected: str | None
) -> None:
    why = header_misfit(
        "sensor_gps", GPS_KNOWN, set(known_fields("gps")), others_fields("gps"), columns
    )
    if expected is None:
        assert why is None
    else:
        assert why is not None and why.startswith(expected)


def test_given_a_data_source_when_others_fields_then_its_own_columns_are_not_among_them() -> None:
    assert "level" in others_fields("gps") and "lat" not in others_fields("gps")
    assert "lat" in others_fields("battery") and "level" not in others_fields("battery")
