import datetime as dt
import typing as t

from tap_avicenna.bookmarks import CoverageBookmarks
from tap_avicenna.exports.planner import PlannedExport, plan_exports

UTC = dt.timezone.utc
ORIGIN = dt.datetime(2025, 1, 1, tzinfo=UTC)
WEEK = dt.timedelta(days=7)


def day(n: float) -> dt.datetime:
    return ORIGIN + dt.timedelta(days=n)


def plans_for(*participants: int, end: float = 21) -> list[PlannedExport]:
    return plan_exports(
        {p: ORIGIN for p in participants}, day(end), origin=ORIGIN, window=WEEK, batch_size=1
    )


def test_given_windows_completed_in_order_when_completed_then_bookmark_follows() -> None:
    state: dict[str, t.Any] = {}
    marks = CoverageBookmarks(state)
    plans = plans_for(1)
    marks.expect(plans)
    marks.complete(plans[0])
    assert state["participants"] == {"1": "2025-01-08T00:00:00.000000+00:00"}


def test_given_later_window_completed_first_when_completed_then_bookmark_waits_for_gap() -> None:
    state: dict[str, t.Any] = {}
    marks = CoverageBookmarks(state)
    plans = plans_for(1)
    marks.expect(plans)
    marks.complete(plans[1])
    assert "1" not in state.get("participants", {})
    marks.complete(plans[0])
    assert state["participants"]["1"] == "2025-01-15T00:00:00.000000+00:00"


def test_given_one_participant_done_when_other_pending_then_only_its_bookmark_moves() -> None:
    state: dict[str, t.Any] = {}
    marks = CoverageBookmarks(state)
    plans = plans_for(1, 2)
    marks.expect(plans)
    marks.complete(next(p for p in plans if p.participant_ids == (2,)))
    assert list(state["participants"]) == ["2"]


def test_given_bookmark_when_starting_then_start_is_bookmark_minus_lookback() -> None:
    marks = CoverageBookmarks({"participants": {"1": "2025-01-10T00:00:00+00:00"}})
    assert marks.start_for(1, ORIGIN, dt.timedelta(days=2)) == day(7)
    assert marks.start_for(2, ORIGIN, dt.timedelta(days=2)) == ORIGIN  # new participant
    assert marks.start_for(1, day(8.5), dt.timedelta(days=2)) == day(8.5)


def test_given_old_style_state_when_starting_then_stream_bookmark_applies_to_all() -> None:
    marks = CoverageBookmarks({"replication_key_value": "2025-01-10T00:00:00+00:00"})
    assert marks.start_for(5, ORIGIN, dt.timedelta(0)) == day(9)


def test_given_bookmark_beyond_window_when_completed_then_never_moves_back() -> None:
    state = {"participants": {"1": "2025-01-10T00:00:00.000000+00:00"}}
    marks = CoverageBookmarks(state)
    plan = PlannedExport(day(6), day(7), (1,))
    marks.expect([plan])
    marks.complete(plan)
    assert state["participants"]["1"] == "2025-01-10T00:00:00.000000+00:00"


def test_given_pending_exports_when_forgetting_unplanned_then_only_planned_kept() -> None:
    state = {"pending_exports": {"a": 1, "b": 2}}
    marks = CoverageBookmarks(state)
    marks.forget_pending_except({"b"})
    marks.add_pending("c", 3)
    marks.remove_pending("b")
    assert marks.resume_map() == {"c": 3}


def test_given_same_or_first_source_id_when_bound_then_state_kept() -> None:
    state: dict[str, t.Any] = {"participants": {"1": "2025-01-10T00:00:00+00:00"}}
    marks = CoverageBookmarks(state)
    assert marks.bind("data_source_id", 10) is None  # a state from before ids were kept
    assert marks.bind("data_source_id", 10) is None
    assert state["data_source_id"] == 10 and marks.bookmark(1) == day(9)


def test_given_changed_source_id_when_bound_then_coverage_and_exports_dropped() -> None:
    state: dict[str, t.Any] = {
        "data_source_id": 10,
        "participants": {"1": "2025-01-10T00:00:00+00:00"},
        "pending_exports": {"k": 4},
        "replication_key": "record_time",
        "replication_key_value": "2025-01-10T00:00:00+00:00",
    }
    marks = CoverageBookmarks(state)
    assert marks.bind("data_source_id", 99) == 10
    assert state == {"data_source_id": 99, "replication_key": "record_time"}
    assert marks.bookmark(1) is None and marks.resume_map() == {}
    assert marks.start_for(1, ORIGIN, dt.timedelta(days=2)) == ORIGIN
