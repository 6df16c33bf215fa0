"""Lanes: each stream's exports still to create, and the order the run serves them in."""

from __future__ import annotations

import collections
import typing as t
from dataclasses import dataclass

from tap_avicenna.exports.budget import DiskBudget
from tap_avicenna.exports.handover import Lane
from tap_avicenna.exports.job import ExportJob, ExportRequest


@dataclass
class LaneWork:
    """One lane's exports still to create, and its ids from state still to adopt."""

    lane: Lane
    queue: collections.deque[tuple[ExportRequest, int]]  # (request, attempt) to create
    resume: dict[str, int]  # ids from state not adopted or dismissed yet


class Lanes:
    """The lanes of a run, served the turn's lane first, then by priority; a lane whose
    turn has not come only while the files waiting on disk are under the budget (its
    ready exports are held back meanwhile)."""

    def __init__(self, max_waiting_bytes: float) -> None:
        self.work: dict[int, LaneWork] = {}
        self.turn: int | None = None  # the lane whose files the consumer takes now
        self.budget = DiskBudget(max_waiting_bytes)
        self.held: list[ExportJob] = []  # ready, waiting for the budget

    def __contains__(self, lane: int) -> bool:
        return lane in self.work

    def add(self, lane: Lane) -> None:
        self.work[lane.key] = LaneWork(
            lane, collections.deque((request, 1) for request in lane.requests), dict(lane.resume)
        )

    def drop(self, lane: int) -> None:
        self.work.pop(lane, None)
        self.held = [job for job in self.held if job.lane != lane]

    def order(self, lane: int) -> tuple[bool, int, int]:
        """The sort key serving lanes: the turn's first, then by priority."""
        work = self.work.get(lane)
        priority = work.lane.priority if work is not None else 0
        return (lane != self.turn, priority, lane)

    def next_to_create(self, creatable: t.Callable[[int], bool]) -> LaneWork | None:
        """The lane to create an export for, among the `creatable`: the turn's, else by
        priority; a lane whose turn has not come only under the budget."""
        for key in sorted(self.work, key=self.order):
            work = self.work[key]
            if creatable(key) and work.queue and (key == self.turn or self.budget.under()):
                return work
        return None

    def queued(self) -> bool:
        """Whether any lane has exports still to create."""
        return any(work.queue for work in self.work.values())

    def requeue(self, job: ExportJob) -> None:
        """Create the job's request again (next in its lane), as the next attempt."""
        work = self.work.get(job.lane)
        if work is not None:
            work.queue.appendleft((job.request, job.attempt + 1))

    def resume_ids(self) -> set[int]:
        """The ids from state still to adopt or dismiss."""
        return {export_id for work in self.work.values() for export_id in work.resume.values()}

    def may_download(self, job: ExportJob) -> bool:
        return self.budget.may_download(job.lane, self.turn, job.guessed)

    def hold(self, job: ExportJob) -> None:
        self.held.append(job)

    def release(self) -> list[ExportJob]:
        """The held exports the budget (or a new turn) now allows, in serving order."""
        ordered = sorted(self.held, key=lambda job: self.order(job.lane))
        released = [job for job in ordered if self.may_download(job)]
        self.held = [job for job in self.held if not self.may_download(job)]
        return released
