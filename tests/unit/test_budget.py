"""DiskBudget: what may be downloaded while files wait on disk."""

from __future__ import annotations

from tap_avicenna.exports.budget import DiskBudget


def test_given_files_over_the_budget_when_asked_then_only_the_turn_and_a_guess_download() -> None:
    budget = DiskBudget(max_bytes=100)
    budget.handed(lane=2, size=150)  # a later lane's file waits: over the budget
    assert not budget.under()
    assert not budget.may_download(lane=3, turn=1, guessed=False)
    assert budget.may_download(lane=3, turn=1, guessed=True)  # to be proven at once
    assert budget.may_download(lane=1, turn=1, guessed=False)
    budget.handed(lane=1, size=10)
    budget.handed(lane=1, size=10)
    assert not budget.may_download(lane=1, turn=1, guessed=False)  # read one, the next
    budget.consumed(lane=2, size=150)
    assert budget.under() and (budget.files, budget.bytes) == (2, 20)
    assert (budget.peak_files, budget.peak_bytes) == (3, 170)
