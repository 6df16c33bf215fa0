"""PollTiming: when the next status poll is due, without a runner."""

from __future__ import annotations

from tap_avicenna.exports.timing import PollTiming


def test_given_nothing_changes_when_polling_then_backs_off_to_three_intervals() -> None:
    timing = PollTiming(2.0)
    ticks = []
    for _ in range(5):
        timing.settle(changed=False)
        ticks.append(timing.tick)
    assert ticks == [3.0, 4.5, 6.0, 6.0, 6.0]
    timing.settle(changed=True)
    assert timing.tick == 2.0


def test_given_an_export_near_the_quickest_age_when_scheduled_then_due_at_that_age() -> None:
    timing = PollTiming(1.0)
    timing.durations.append(5.0)  # the quickest export was still pending at 5 s
    timing.tick = 3.0
    timing.schedule(100.0, oldest=3.5)
    assert timing.next_poll == 101.5  # when the oldest export reaches 5 s
    timing.schedule(100.0, oldest=6.0)
    assert timing.next_poll == 101.0  # past it: the configured interval
    timing.schedule(100.0, oldest=None)
    assert timing.next_poll == 103.0  # nothing pending: the tick
