"""The simulator's knobs for data that does not fit: null words and odd cells, extra ZIP
members, window boundaries, local times, upload-time filtering, status labels, default
and refused survey columns."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tap_avicenna.simulator import DataSourceConfig, Simulator
from tap_avicenna.simulator.clock import to_ms
from tap_avicenna.simulator.data import NULL_WORDS, ODD_CELLS, upload_ms
from tap_avicenna.simulator.surveys import SESSION_STATUSES
from tests.simulator.test_simulator import (
    JAN1,
    JAN2,
    STUDY,
    UTC,
    V2_COLUMNS,
    Client,
    csv_dicts,
    frozen,
    survey_rows,
    zip_csv_dicts,
)

VALUES = ("x_axis", "y_axis", "z_axis", "accu")
DAILY = 40  # a data source with one reading a day, exactly at midnight


def daily() -> DataSourceConfig:
    return DataSourceConfig("steps", 86_400, "generic", columns=["steps"], jitter_seconds=0)


def test_given_dirt_rates_when_exporting_then_value_cells_hold_null_words_and_odd_cells() -> None:
    config = frozen()
    study = config.studies[STUDY]
    study.null_word_rate, study.odd_cell_rate = 0.05, 0.01
    with Simulator(config) as sim:
        rows = sim.expected_rows(STUDY, 20, [101, 102], JAN1, JAN1 + timedelta(days=3))
        cells = [row[c] for row in rows for c in VALUES]
        nulls = sum(c in NULL_WORDS for c in cells) / len(cells)
        odd = sum(c in ODD_CELLS for c in cells) / len(cells)
        assert 0.04 < nulls < 0.06 and 0.005 < odd < 0.015, (nulls, odd)
        assert {c for c in cells if c in NULL_WORDS} == set(NULL_WORDS)
        assert all(row["user_id"] in ("101", "102") and row["record_time"] for row in rows)
        again = sim.expected_rows(STUDY, 20, [101, 102], JAN2, JAN1 + timedelta(days=3))
        assert again and again == [r for r in rows if r["record_time"] >= "2025-01-02"]


def test_given_extra_zip_members_when_downloading_then_codebook_and_readme_beside_the_data() -> (
    None
):
    config = frozen()
    config.studies[STUDY].extra_zip_members = True
    with Simulator(config) as sim:
        client = Client(sim)
        data = client.download(client.created_id(client.create(20)))
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            codebook = csv_dicts(archive.read("codebook.csv"))
        assert names == ["codebook.csv", "study-1234-data-source-20.csv", "README.txt"]
        assert [r["column"] for r in codebook][:4] == [
            "user_id",
            "device_id",
            "study_id",
            "record_time",
        ]
        data_rows = [r for r in zip_csv_dicts(data) if "user_id" in r]
        assert data_rows == sim.expected_rows(STUDY, 20, None, JAN1, JAN2)


def test_given_window_includes_end_when_exporting_then_start_excluded_and_end_included() -> None:
    config = frozen()
    config.studies[STUDY].data_sources[DAILY] = daily()
    end = JAN1 + timedelta(days=7)
    with Simulator(config) as sim:
        start_inclusive = [
            r["record_time"][:10] for r in sim.expected_rows(STUDY, DAILY, [101], JAN1, end)
        ]
        config.studies[STUDY].window_includes = "end"
        end_inclusive = [
            r["record_time"][:10] for r in sim.expected_rows(STUDY, DAILY, [101], JAN1, end)
        ]
    days = [f"2025-01-{d:02d}" for d in range(1, 9)]
    assert start_inclusive == days[:7]
    assert end_inclusive == days[1:]


def test_given_local_time_style_when_exporting_then_wall_times_without_offset() -> None:
    config = frozen()
    study = config.studies[STUDY]
    study.timestamp_style, study.local_time_zone = "local", "America/Toronto"
    study.data_sources[DAILY] = daily()
    with Simulator(config) as sim:
        rows = sim.expected_rows(STUDY, DAILY, [101], JAN1, JAN1 + timedelta(days=2))
    assert [r["record_time"] for r in rows] == [
        "2024-12-31 19:00:00.000000",
        "2025-01-01 19:00:00.000000",
    ]
    zone = ZoneInfo("America/Toronto")
    wall = datetime.fromisoformat(rows[0]["record_time"]).replace(tzinfo=zone)
    assert wall.astimezone(UTC) == JAN1


def test_given_upload_delay_when_exporting_then_rows_selected_by_upload_time() -> None:
    config = frozen()
    config.studies[STUDY].upload_delay_seconds = 6 * 3600
    with Simulator(config) as sim:
        first = sim.expected_rows(STUDY, 30, [101], JAN1, JAN2)
        second = sim.expected_rows(STUDY, 30, [101], JAN2, JAN2 + timedelta(days=1))
        config.studies[STUDY].upload_delay_seconds = 0
        by_record_time = sim.expected_rows(STUDY, 30, [101], JAN1, JAN2)

    def ms(row: dict[str, str]) -> int:
        return to_ms(datetime.fromisoformat(row["record_time"]))

    assert all(to_ms(JAN1) <= upload_ms(ms(r), 101, 6 * 3_600_000) < to_ms(JAN2) for r in first)
    late = [r for r in second if ms(r) < to_ms(JAN2)]
    assert late and len(first) < len(by_record_time)
    assert sorted(first + late, key=ms) == sorted(by_record_time, key=ms)


def test_given_dashboard_status_labels_when_downloading_then_status_labels() -> None:
    config = frozen()
    study = config.studies[STUDY]
    study.survey_header_style, study.dashboard_status_labels = "dashboard", True
    study.participant(102).status = "dropped"  # type: ignore[union-attr]
    with Simulator(config) as sim:
        client = Client(sim)
        rows = survey_rows(client, client.survey(5678, "v2"))
    assert {r["Status"] for r in rows} <= set(SESSION_STATUSES.values())
    assert {"Completed", "Canceled"} <= {r["Status"] for r in rows}
    assert {r["Participant Status"] for r in rows} == {"Active", "Dropped"}


def test_given_participation_knobs_when_downloading_then_status_column_and_open_end_text() -> None:
    expected = {
        "status": ("status", {"active"}),
        "status_id": ("status_id", {"1"}),
        "status_id_labels": ("status_id", {"Active"}),
    }
    for style, (column, values) in expected.items():
        config = frozen()
        study = config.studies[STUDY]
        study.participation_status, study.participation_open_end = style, "N/A"
        with Simulator(config) as sim:
            client = Client(sim)
            body = {"study_id": STUDY, "filter": "PARTICIPATION"}
            rows = csv_dicts(client.download(client.created_id(client.filter(body))))
        assert list(rows[0]) == ["participant_id", "start_time", "end_time", column]
        assert {r[column] for r in rows} == values
        assert {r["end_time"] for r in rows} == {"N/A"}


def test_given_survey_default_columns_when_none_asked_then_those() -> None:
    config = frozen()
    config.studies[STUDY].survey_default_columns = ["uuid", "record_time", "Q2"]
    with Simulator(config) as sim:
        client = Client(sim)
        rows = survey_rows(client, client.survey(5678, "v2", columns=[]))
        assert list(rows[0]) == ["uuid", "record_time", "Q2", "mQ2_metadata"]
    with Simulator(frozen()) as sim:
        client = Client(sim)
        rows = survey_rows(client, client.survey(5678, "v2"))
        assert list(rows[0])[: len(V2_COLUMNS)] == V2_COLUMNS
        assert {"Q2", "Q3", "Q4", "Q5"} <= set(rows[0])


def test_given_refused_columns_when_asked_for_then_400_naming_them() -> None:
    config = frozen()
    config.studies[STUDY].refused_columns = ["participant_id", "status_id"]
    with Simulator(config) as sim:
        client = Client(sim)
        survey = {
            "study_id": STUDY,
            "activity_id": 5678,
            "filter": "ACTIVITY_RESPONSE",
            "export_version": "v2",
            "rule_set": {"columns": ["uuid", "participant_id"]},
        }
        refused = client.filter(survey)
        assert (refused.status_code, refused.json()) == (
            400,
            {"detail": "Unknown column(s): participant_id."},
        )
        participation = {
            "study_id": STUDY,
            "filter": "PARTICIPATION",
            "rule_set": {"columns": ["participant_id", "start_time", "status_id"]},
        }
        refused = client.filter(participation)
        assert refused.status_code == 400
        assert refused.json()["detail"] == "Unknown column(s): participant_id, status_id."
        participation["rule_set"] = {"columns": ["start_time"]}
        assert client.filter(participation).status_code == 201
