"""RetryPolicy: every retry decision of the engine, without HTTP or a runner."""

from __future__ import annotations

import pytest

from tap_avicenna.exports.policy import RetryPolicy

POLICY = RetryPolicy(poll_interval=10.0, timeout=3600.0)


def test_given_attempts_when_an_export_fails_then_created_again_up_to_the_third() -> None:
    assert [POLICY.create_again(a) for a in (1, 2, 3)] == [True, True, False]


def test_given_refused_links_when_downloading_then_two_fresh_links_then_created_again() -> None:
    assert [POLICY.list_again(r) for r in (1, 2, 3)] == [True, True, False]


@pytest.mark.parametrize(
    ("refusals", "retry_after", "delay"),
    [(1, None, 10.0), (2, None, 20.0), (3, 60.0, 60.0), (9, None, 300.0), (9, 900.0, 900.0)],
)
def test_given_busy_answers_when_backing_off_then_doubling_capped_or_retry_after(
    refusals: int, retry_after: float | None, delay: float
) -> None:
    assert POLICY.busy_delay(refusals, retry_after) == delay


def test_given_busy_answers_when_nothing_of_ours_pending_past_the_timeout_then_gives_up() -> None:
    assert not POLICY.busy_gives_up(pending=1, busy_for=7200.0)
    assert not POLICY.busy_gives_up(pending=0, busy_for=3600.0)
    assert POLICY.busy_gives_up(pending=0, busy_for=3600.5)


def test_given_success_without_a_file_when_seen_then_empty_after_3_polls_and_a_minute() -> None:
    assert not POLICY.without_file(polls=3, seconds=59.0)
    assert not POLICY.without_file(polls=2, seconds=600.0)
    assert POLICY.without_file(polls=3, seconds=60.0)
    assert POLICY.timed_out(3600.5) and not POLICY.timed_out(3600.0)
