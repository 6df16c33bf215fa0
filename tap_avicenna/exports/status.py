"""Export status labels mapped to what the engine does with them."""

from __future__ import annotations

import enum


class ExportStatus(enum.Enum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"


_SUCCESS = {"success", "succeeded", "successful", "completed", "complete", "done", "finished"}
_FAILURE_WORDS = ("fail", "error", "cancel", "expire", "abort", "reject", "delete")


def classify(label: object) -> ExportStatus:
    """`Success` in any case is ready; failure-like labels fail; anything else is pending.

    Unknown labels (`Queued For Worker`, a number, None) are pending: the export
    timeout, not a guess, decides when to give up on them.
    """
    text = str(label or "").strip().lower()
    if text in _SUCCESS or text.startswith("success"):
        return ExportStatus.SUCCESS
    if any(word in text for word in _FAILURE_WORDS):
        return ExportStatus.FAILED
    return ExportStatus.PENDING
