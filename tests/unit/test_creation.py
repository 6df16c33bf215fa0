"""Creator: exports created or resumed, and creates without id found, without HTTP."""

from __future__ import annotations

import typing as t

from tap_avicenna.exports.creation import Creator
from tap_avicenna.exports.job import Created, ExportRequest, ListedExport
from tap_avicenna.exports.listing import ExportList
from tap_avicenna.exports.policy import RetryPolicy
from tap_avicenna.exports.repository import Enough, Listing
from tap_avicenna.exports.stats import RunnerStats
from tap_avicenna.exports.status import classify

GPS = ExportRequest(key="g", label="g", data_source_id=10, participant_ids=(101,))


class Answers:
    """A repository whose creates answer `answers` in turn, listing `listing`."""

    def __init__(self, answers: list[Created], listing: list[ListedExport]) -> None:
        self.answers = answers
        self.listing = listing

    def create(self, request: ExportRequest) -> Created:
        return self.answers.pop(0)

    def list(self, enough: Enough | None = None) -> Listing:
        return Listing(self.listing, 1)

    def download(self, listed: ListedExport, dest: t.BinaryIO, *, label: str) -> int:
        raise AssertionError("not downloaded here")


def entry(export_id: int, label: str = "Pending") -> ListedExport:
    return ListedExport(export_id, label, classify(label), None)


def creator(answers: list[Created], listing: list[ListedExport]) -> tuple[Creator, RunnerStats]:
    repo = Answers(answers, listing)
    exports = ExportList(repo)
    exports.poll(set())
    stats = RunnerStats()
    return Creator(repo, exports, RetryPolicy(1.0, 100.0), stats, lambda: 50.0), stats


def test_given_an_id_from_state_when_started_then_resumed_while_listed_else_created() -> None:
    make, stats = creator([Created(export_id=9)], [entry(4), entry(5, "Failed")])
    resumed = make.start(GPS, 1, lane=1, resume_id=4, pending=[])
    assert (resumed.export_id, resumed.resumed, resumed.label) == (4, True, "Pending")
    created = make.start(GPS, 1, lane=1, resume_id=5, pending=[resumed])  # failed: not resumed
    assert (created.export_id, created.resumed) == (9, False)
    assert (stats.resumed, stats.created) == (1, 1)
    assert make.claims.claimed == {4, 9}


def test_given_a_create_without_id_when_pending_then_only_lanes_answering_ids_may_create() -> None:
    make, _ = creator([Created(export_id=7), Created()], [entry(4)])
    with_id = make.start(GPS, 1, lane=1, resume_id=None, pending=[])
    without = make.start(GPS, 1, lane=2, resume_id=None, pending=[with_id])
    assert without.known_before == {4, 7}  # listed, and pending with its id
    creatable = make.creatable([with_id, without])
    assert (creatable(1), creatable(2)) == (True, False)
    listing = [entry(4), entry(7), entry(8)]
    taken = make.settle(listing, [with_id, without])
    assert make.find(without, listing, taken) == 8 and without.guessed  # creation order
    assert not make.creatable([with_id, without])(2)  # its file is still to be proven
    make.release(without)  # its file was not the request's: never taken again, and
    assert make.claims.rejected == {8}  # its own export, still to show, is no one else's
    assert make.claims.orphans == [frozenset({4, 7})]
