"""Lanes: the order creates and downloads serve the streams, without a runner."""

from __future__ import annotations

from tap_avicenna.exports.handover import Lane
from tap_avicenna.exports.job import ExportJob, ExportRequest
from tap_avicenna.exports.lanes import Lanes


def lane(key: int, priority: int, *keys: str, resume: dict[str, int] | None = None) -> Lane:
    requests = tuple(ExportRequest(key=k, label=k) for k in keys)
    return Lane(key, f"s{key}", priority, requests, resume or {})


def test_given_lanes_when_creating_then_the_turn_first_then_by_priority_under_the_budget() -> None:
    lanes = Lanes(max_waiting_bytes=100)
    lanes.add(lane(1, 0, "a"))
    lanes.add(lane(2, 1, "b", resume={"b": 7}))
    lanes.add(lane(3, 2, "c"))
    lanes.turn = 3
    assert sorted(lanes.work, key=lanes.order) == [3, 1, 2]
    assert lanes.resume_ids() == {7}
    anyone = lanes.next_to_create(lambda key: True)
    assert anyone is not None and anyone.lane.key == 3
    not_three = lanes.next_to_create(lambda key: key != 3)
    assert not_three is not None and not_three.lane.key == 1
    lanes.budget.handed(lane=1, size=100)  # over the budget: only the turn's lane creates
    assert lanes.next_to_create(lambda key: key != 3) is None
    lanes.drop(3)
    assert 3 not in lanes and 1 in lanes


def test_given_ready_exports_over_the_budget_when_released_then_only_what_it_allows() -> None:
    lanes = Lanes(max_waiting_bytes=100)
    for key in (1, 2):
        lanes.add(lane(key, key, "r"))
    lanes.turn = 1
    lanes.budget.handed(lane=2, size=150)
    later = ExportJob(ExportRequest("r", "r"), lane=2)
    turns = ExportJob(ExportRequest("r", "r"), lane=1)
    lanes.hold(later)
    lanes.hold(turns)
    assert lanes.release() == [turns]  # the turn's lane, budget or not
    assert lanes.held == [later]
    lanes.turn = 2  # the consumer moved on: its lane's next file
    assert lanes.release() == [later] and not lanes.held
    lanes.requeue(ExportJob(ExportRequest("x", "x"), attempt=2, lane=2))
    assert lanes.work[2].queue[0][1] == 3  # created again next, as its next attempt
