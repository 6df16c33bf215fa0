"""Export status labels mapped to what the engine does with them."""

from __future__ import annotations

import enum
import typing as t


class ExportStatus(enum.Enum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    UNKNOWN = "unknown"


_SUCCESS = {"success", "succeeded", "successful", "completed", "complete", "done", "finished"}
_FAILURE_WORDS = ("fail", "error", "cancel", "expire", "abort", "reject", "delete")
_PENDING_WORDS = (
    "pend", "process", "queue", "progress", "running", "start", "wait", "schedul",
    "creat", "prepar", "generat", "submit", "new", "init",
)  # fmt: skip

_LABEL_KEYS = ("label", "name", "display", "value", "status", "code", "id")
_TOP_LEVEL_LABELS = ("status_display", "status_label", "status_name")


def classify(label: object) -> ExportStatus:
    """`Success` in any case is ready; failure-like labels fail; pending-like labels
    (`Pending`, `Processing`, `Queued For Worker`, ...) are pending; anything else
    (`Ready`, `Exported`, a number, None) is UNKNOWN: the runner takes such an export
    as ready once the list shows its file, and as pending until then."""
    text = str("" if label is None else label).strip().lower()
    if text in _SUCCESS or text.startswith("success"):
        return ExportStatus.SUCCESS
    if any(word in text for word in _FAILURE_WORDS):
        return ExportStatus.FAILED
    if any(word in text for word in _PENDING_WORDS):
        return ExportStatus.PENDING
    return ExportStatus.UNKNOWN


def status_label(entry: t.Mapping[str, t.Any]) -> str:
    """The status of a list entry as text, read liberally: `{"id": 3, "label": "Success"}`,
    `"Success"`, `3`, `{"id": 3}`, or a top-level `status_display` beside a numeric
    `status` (Django REST framework's usual pair). A textual label wins over a number."""
    raw = entry.get("status")
    if isinstance(raw, dict):
        texts = [raw.get(k) for k in _LABEL_KEYS if isinstance(raw.get(k), str)]
        numbers = [raw.get(k) for k in _LABEL_KEYS if raw.get(k) is not None]
        raw = texts[0] if texts else (numbers[0] if numbers else None)
    if not isinstance(raw, str) or not raw.strip():
        top = next((entry[k] for k in _TOP_LEVEL_LABELS if isinstance(entry.get(k), str)), None)
        if top is not None:
            return str(top)
    return "" if raw is None else str(raw)
