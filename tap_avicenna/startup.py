"""Checks made before the first export: whatever would otherwise fail only after
exports were created and downloaded (a state file, folders the tap writes to)."""

from __future__ import annotations

import json
import tempfile
import typing as t
from pathlib import Path

from tap_avicenna.bookmarks import PENDING
from tap_avicenna.errors import AvicennaError, ConfigError
from tap_avicenna.parsing import parse_timestamp

BOOKMARK_MAPS = ("participants", "covered_until")
"""The per-member bookmark maps of sensor and survey stream states (`CoverageBookmarks`)."""


class StateFileError(AvicennaError):
    """The `--state` file cannot be used; the message names it."""


def read_state_file(path: str) -> dict[str, t.Any]:
    """The Singer state in `path`, checked: readable JSON, an object, bookmarks the
    streams can parse. A Singer STATE message or Meltano's `{"singer_state": ...}`
    (what `meltano state get` prints) is unwrapped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StateFileError(f"Cannot read state file '{path}': {reason}") from None
    if not text.strip():
        raise StateFileError(
            f"State file '{path}' is empty: leave --state out for a first run, or pass "
            "the last state the target wrote"
        )
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise StateFileError(f"State file '{path}' is not valid JSON (truncated?): {exc}") from None
    if isinstance(state, dict) and "bookmarks" not in state:
        if state.get("type") == "STATE" and "value" in state:
            state = state["value"]
        elif "singer_state" in state:
            state = state["singer_state"]
    if not isinstance(state, dict):
        raise StateFileError(
            f"State file '{path}' must hold a JSON object (Singer state), "
            f"not {type(state).__name__}"
        )
    _check_bookmarks(path, state.get("bookmarks", {}))
    return state


def _check_bookmarks(path: str, bookmarks: t.Any) -> None:
    if not isinstance(bookmarks, dict):
        raise StateFileError(f"State file '{path}': 'bookmarks' must be an object")
    for stream, stream_state in bookmarks.items():
        where = f"bookmarks.{stream}"
        if not isinstance(stream_state, dict):
            raise StateFileError(f"State file '{path}': '{where}' must be an object")
        if "replication_key_value" in stream_state:
            _check_time(
                path, f"{where}.replication_key_value", stream_state["replication_key_value"]
            )
        for key in BOOKMARK_MAPS:
            for member, value in _entries(path, f"{where}.{key}", stream_state.get(key)):
                _check_time(path, f"{where}.{key}.{member}", value)
        for key, value in _entries(path, f"{where}.{PENDING}", stream_state.get(PENDING)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise StateFileError(
                    f"State file '{path}': '{where}.{PENDING}.{key}' must be an export "
                    f"id (an integer), got {value!r}"
                )


def _entries(path: str, where: str, value: t.Any) -> t.Iterable[tuple[str, t.Any]]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise StateFileError(f"State file '{path}': '{where}' must be an object")
    return value.items()


def _check_time(path: str, where: str, value: t.Any) -> None:
    try:
        parse_timestamp(str(value))
    except ValueError:
        raise StateFileError(
            f"State file '{path}': bookmark '{where}' is not a date-time: {value!r}"
        ) from None


def check_writable_folder(setting: str, shown: str, folder: str) -> None:
    """Create `folder` if needed and write (and delete) a file in it, or raise a
    ConfigError naming the setting."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tap-avicenna-check-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"Setting '{setting}' ({shown}): cannot write there: {exc.strerror or exc}"
        ) from None


def check_batch_storage(batch_config: t.Any) -> None:
    """A local `batch_config.storage.root` must be writable; any root must be one
    fsspec can open (`s3://` needs s3fs)."""
    storage = (batch_config or {}).get("storage") or {}
    root = storage.get("root")
    if not root:
        return
    from fsspec.core import url_to_fs
    from fsspec.implementations.local import LocalFileSystem

    try:
        fs, folder = url_to_fs(root, **(storage.get("params") or {}))
    except (ImportError, ValueError) as exc:
        raise ConfigError(
            f"Setting 'batch_config.storage.root' ({root}) cannot be used: {exc}"
        ) from None
    if isinstance(fs, LocalFileSystem):
        check_writable_folder("batch_config.storage.root", root, folder)
