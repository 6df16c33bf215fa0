"""skip_unchanged_days: the lookback's rows sent before and unchanged are not sent again
(digests per participant and period in state); a late row re-sends its period. The tap
as a process of its own against the real simulator, RECORD and Parquet BATCH."""

from __future__ import annotations

import datetime as dt
import typing as t
from collections import Counter
from pathlib import Path

import pytest

from tap_avicenna.day_digests import STATE_KEY
from tap_avicenna.simulator import Simulator, default_config
from tests.conftest import TapRun, make_simulator, multiset, run_tap, tap_config
from tests.integration.test_batch import batch_config
from tests.integration.test_resilience import SKIPPED, skipped

STREAM = "sensor_accelerometer"
SOURCE = 20
PARTICIPANTS = [101, 102, 103]
FIRST_END = "2025-01-20T02:00:00Z"  # not a midnight: the next lookback starts mid-day
SECOND_END = "2025-01-21T02:00:00Z"


def config(sim: Simulator, mode: str, root: Path, **overrides: t.Any) -> dict[str, t.Any]:
    """3 participants of one source, 2 per export, 7-day windows, lookback 1 day."""
    settings: dict[str, t.Any] = {
        "participant_ids": PARTICIPANTS,
        "data_sources": [{"id": SOURCE, "name": "accelerometer"}],
        "lookback_days": 1,
        "end_date": FIRST_END,
    }
    if mode == "parquet":
        settings["batch_config"] = batch_config(root, "parquet", "none")
    return tap_config(sim, **{**settings, **overrides})


def expected(sim: Simulator, start: str, end: str) -> list[dict[str, str]]:
    def when(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

    return sim.expected_rows(1234, SOURCE, PARTICIPANTS, when(start), when(end))


def records(run: TapRun) -> list[dict[str, t.Any]]:
    assert run.returncode == 0, run.stderr[-3000:]
    return run.records(STREAM)


def assert_union_exact(runs: list[TapRun], rows: list[dict[str, str]]) -> None:
    """The runs' rows, one per `_row_id`, are exactly `rows`."""
    by_id = {r["_row_id"]: r for run in runs for r in records(run)}
    assert multiset(by_id.values()) == multiset(rows)
    assert len(by_id) == len(rows)


MODES = ["record", "parquet"]


@pytest.mark.parametrize("mode", MODES)
def test_given_a_second_night_when_synced_then_unchanged_lookback_rows_are_not_sent_again(
    simulator: Simulator, tmp_path: Path, mode: str
) -> None:
    first = run_tap(tmp_path, config(simulator, mode, tmp_path / "b"))
    second_config = config(simulator, mode, tmp_path / "b", end_date=SECOND_END)
    second = run_tap(tmp_path, second_config, first.last_state)
    lookback = expected(simulator, "2025-01-19T02:00:00Z", FIRST_END)
    assert lookback and skipped(second) == len(lookback)
    # only the new day's rows, each once
    assert multiset(records(second)) == multiset(expected(simulator, FIRST_END, SECOND_END))
    assert max(Counter(r["_row_id"] for r in records(second)).values()) == 1
    assert_union_exact([first, second], expected(simulator, "2025-01-01T00:00:00Z", SECOND_END))
    # digests kept: the lookback's two periods (to midnight, from midnight) per participant
    digests = second.last_state["bookmarks"][STREAM][STATE_KEY]
    assert sorted(digests) == ["101", "102", "103"]
    assert {len(segments) for segments in digests.values()} == {2}


@pytest.mark.parametrize("mode", MODES)
def test_given_rows_uploaded_late_into_a_lookback_day_when_synced_then_that_day_is_sent_again(
    simulator: Simulator, tmp_path: Path, mode: str
) -> None:
    """The first night, Avicenna holds data up to 23:00 only (its clock): the rows of
    23:00..02:00 reach it later, after the tap's end_date. Lookback 2 days: 01-18 02:00
    to midnight comes back unchanged (0 rows sent), 01-19 changed (all its rows sent)."""
    root = tmp_path / "b"
    simulator.clock.set(dt.datetime(2025, 1, 19, 23, tzinfo=dt.timezone.utc))
    first = run_tap(tmp_path, config(simulator, mode, root, lookback_days=2))
    simulator.clock.set(dt.datetime(2025, 2, 1, tzinfo=dt.timezone.utc))
    late = expected(simulator, "2025-01-19T23:00:00Z", FIRST_END)
    second_config = config(simulator, mode, root, lookback_days=2, end_date=SECOND_END)
    second = run_tap(tmp_path, second_config, first.last_state)
    sent = records(second)
    assert len(multiset(late) - multiset(records(first))) > 0, "no row came late"
    assert not multiset(late) - multiset(sent), "a late row was not sent"
    assert min(r["record_time"] for r in sent) >= "2025-01-19T00:00:00"  # 01-18: 0 rows
    assert multiset(sent) == multiset(expected(simulator, "2025-01-19T00:00:00Z", SECOND_END))
    unchanged = expected(simulator, "2025-01-18T02:00:00Z", "2025-01-19T00:00:00Z")
    assert skipped(second) == len(unchanged)
    assert_union_exact([first, second], expected(simulator, "2025-01-01T00:00:00Z", SECOND_END))


def test_given_skip_unchanged_days_false_when_synced_then_every_lookback_row_is_sent_again(
    simulator: Simulator, tmp_path: Path
) -> None:
    first = run_tap(tmp_path, config(simulator, "record", tmp_path, skip_unchanged_days=False))
    second_config = config(
        simulator, "record", tmp_path, skip_unchanged_days=False, end_date=SECOND_END
    )
    second = run_tap(tmp_path, second_config, first.last_state)
    assert multiset(records(second)) == multiset(
        expected(simulator, "2025-01-19T02:00:00Z", SECOND_END)
    )
    assert not SKIPPED.search(second.stderr)
    assert STATE_KEY not in second.last_state["bookmarks"][STREAM]


def test_given_readings_uploaded_up_to_6_hours_late_when_two_nights_synced_then_none_lost(
    tmp_path: Path,
) -> None:
    """The simulator's late-upload knob: exports select readings by upload time, so the
    second night brings readings of the first night's last hours. Lookback 2 days: the
    periods those fall in are sent again, 01-18 02:00..midnight (uploaded by 01-19 06:00)
    is not; the two nights hold every reading served."""
    study = default_config()
    study.studies[1234].upload_delay_seconds = 6 * 3600
    with make_simulator(study) as sim:
        first = run_tap(tmp_path, config(sim, "record", tmp_path, lookback_days=2))
        second_config = config(sim, "record", tmp_path, lookback_days=2, end_date=SECOND_END)
        second = run_tap(tmp_path, second_config, first.last_state)
        sent = records(second)
        before = {r["_row_id"] for r in records(first)}
        late = [r for r in sent if r["record_time"] < FIRST_END and r["_row_id"] not in before]
        assert late, "no reading came late"
        assert skipped(second) > 0
        assert not [r for r in sent if "2025-01-18T02:00" <= r["record_time"] < "2025-01-19"]
        assert_union_exact([first, second], expected(sim, "2025-01-01T00:00:00Z", SECOND_END))


def test_given_a_survey_when_a_second_night_synced_then_only_new_sessions_are_sent(
    simulator: Simulator, tmp_path: Path
) -> None:
    """Survey streams: one member ("all"), a session's digest from its content (its uuid
    stays when its answers change)."""
    surveys = [{"activity_id": 5678, "name": "daily", "columns": ["participant_id", "Q2"]}]
    settings = {"data_sources": [], "surveys": surveys}
    first = run_tap(tmp_path, config(simulator, "record", tmp_path, **settings))
    second_config = config(simulator, "record", tmp_path, end_date=SECOND_END, **settings)
    second = run_tap(tmp_path, second_config, first.last_state)
    (tmp_path / "whole").mkdir()
    whole = run_tap(tmp_path / "whole", second_config)  # one run, no state
    sessions = []
    for run in (first, second, whole):
        assert run.returncode == 0, run.stderr[-3000:]
        sessions.append({r["uuid"]: r["record_time"] for r in run.records("survey_daily")})
    one, two, every = sessions
    in_lookback = [u for u, at in one.items() if at >= "2025-01-19T02:00"]
    assert in_lookback and skipped(second) == len(in_lookback)
    assert sorted(two) == sorted(u for u, at in every.items() if at >= "2025-01-20T02:00")
    assert one.keys() | two.keys() == every.keys()
