"""DiskBudget: the files handed over and not consumed yet, against the disk budget."""

from __future__ import annotations

import collections
import math

TURN_FILES_OVER_BUDGET = 2
"""Files the lane whose turn it is may have handed over and not consumed when the
budget is reached: the one being read and the next."""


class DiskBudget:
    """Counts the files waiting on disk (per lane) and says what may be downloaded."""

    def __init__(self, max_bytes: float = math.inf) -> None:
        self.max_bytes = max_bytes
        self.files = 0
        self.bytes = 0
        self.peak_files = 0
        self.peak_bytes = 0
        self._per_lane: collections.Counter[int] = collections.Counter()

    def under(self) -> bool:
        return self.bytes < self.max_bytes

    def may_download(self, lane: int, turn: int | None, guessed: bool) -> bool:
        """Under the budget; over it, the turn's lane its next file, and an export
        taken by creation order (its file must be proven at once: it holds creates)."""
        if self.under() or guessed:
            return True
        return lane == turn and self._per_lane[lane] < TURN_FILES_OVER_BUDGET

    def handed(self, lane: int, size: int) -> None:
        self.files += 1
        self.bytes += size
        self._per_lane[lane] += 1
        self.peak_files = max(self.peak_files, self.files)
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def consumed(self, lane: int, size: int) -> None:
        self.files -= 1
        self.bytes -= size
        self._per_lane[lane] -= 1
