import datetime as dt

from tap_avicenna.exports.planner import grid_windows, plan_exports

UTC = dt.timezone.utc
ORIGIN = dt.datetime(2025, 1, 1, tzinfo=UTC)
WEEK = dt.timedelta(days=7)


def day(n: float) -> dt.datetime:
    return ORIGIN + dt.timedelta(days=n)


def test_given_range_on_grid_when_cut_then_windows_are_grid_aligned_and_contiguous() -> None:
    windows = grid_windows(day(0), day(30), ORIGIN, WEEK)
    assert windows == [
        (day(0), day(7)),
        (day(7), day(14)),
        (day(14), day(21)),
        (day(21), day(28)),
        (day(28), day(30)),
    ]


def test_given_start_off_grid_when_cut_then_first_window_ends_on_next_grid_point() -> None:
    assert grid_windows(day(9.5), day(20), ORIGIN, WEEK) == [
        (day(9.5), day(14)),
        (day(14), day(20)),
    ]


def test_given_start_before_origin_when_cut_then_grid_extends_backwards() -> None:
    assert grid_windows(day(-2), day(3), ORIGIN, WEEK) == [(day(-2), day(0)), (day(0), day(3))]


def test_given_empty_range_when_cut_then_no_windows() -> None:
    assert grid_windows(day(5), day(5), ORIGIN, WEEK) == []


def test_given_5_participants_30_days_when_planned_then_5_windows_times_3_batches() -> None:
    plans = plan_exports(
        {p: day(0) for p in range(101, 106)}, day(30), origin=ORIGIN, window=WEEK, batch_size=2
    )
    assert len(plans) == 15
    assert {p.participant_ids for p in plans} == {(101, 102), (103, 104), (105,)}
    assert [p.start for p in plans] == sorted(p.start for p in plans)


def test_given_new_participant_when_planned_then_only_it_goes_back_to_start_date() -> None:
    starts = {101: day(26), 102: day(26), 103: day(0)}
    plans = plan_exports(starts, day(30), origin=ORIGIN, window=WEEK, batch_size=50)
    assert {(p.start, p.participant_ids) for p in plans if 103 in p.participant_ids} == {
        (day(0), (103,)),
        (day(7), (103,)),
        (day(14), (103,)),
        (day(21), (103,)),
        (day(28), (103,)),
    }
    assert [(p.start, p.end) for p in plans if 101 in p.participant_ids] == [
        (day(26), day(28)),
        (day(28), day(30)),
    ]


def test_given_starts_in_same_grid_window_when_planned_then_they_share_exports() -> None:
    plans = plan_exports(
        {1: day(8), 2: day(10)}, day(20), origin=ORIGIN, window=WEEK, batch_size=50
    )
    assert [(p.start, p.end, p.participant_ids) for p in plans] == [
        (day(8), day(14), (1, 2)),
        (day(14), day(20), (1, 2)),
    ]


def test_given_participant_up_to_date_when_planned_then_nothing_planned() -> None:
    assert plan_exports({1: day(30)}, day(30), origin=ORIGIN, window=WEEK, batch_size=5) == []


def test_given_participation_periods_when_planned_then_windows_hold_only_overlapping() -> None:
    periods = {1: (day(0), None), 2: (day(10), None), 3: (day(0), day(5))}
    plans = plan_exports(
        {1: day(0), 2: day(0), 3: day(0)},
        day(21),
        origin=ORIGIN,
        window=WEEK,
        batch_size=50,
        periods=periods,
    )
    assert [(p.start, p.participant_ids) for p in plans] == [
        (day(0), (1, 3)),
        (day(7), (1, 2)),
        (day(14), (1, 2)),
    ]
