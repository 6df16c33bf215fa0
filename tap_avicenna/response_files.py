"""Extract survey answer files (`response-files/...` members of a ZIP export)."""

from __future__ import annotations

import logging
import shutil
import zipfile
import zlib
from pathlib import Path

from tap_avicenna.errors import FileFormatError
from tap_avicenna.parsing import Limits, detect_format, unsafe_member

LOGGER = logging.getLogger("tap-avicenna.response_files")
PREFIX = "response-files/"
MAX_FILE_BYTES = 256 * 1024**2


def extract_response_files(path: Path, directory: str, limits: Limits, label: str) -> int:
    """Copy the export's `response-files/...` members under `directory`; return how many.

    Records keep the member path (`response-files/<uuid>/<qid>.jpg`), which is where
    the file lands relative to `directory`. Members with absolute or `..` paths are
    refused, and so is a member or a total larger than the limits.
    """
    if detect_format(path) != "zip":
        return 0
    root = Path(directory).resolve()
    count = total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename
            if not name.startswith(PREFIX) or info.is_dir():
                continue
            target = (root / name).resolve()
            if unsafe_member(name) or not target.is_relative_to(root):
                raise FileFormatError(f"{label}: ZIP member '{name}' has an unsafe path")
            total += info.file_size
            if info.file_size > MAX_FILE_BYTES or total > limits.max_expanded_bytes:
                raise FileFormatError(f"{label}: response file '{name}' is too large")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink, 1024 * 1024)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise FileFormatError(f"{label}: response file '{name}' is broken: {exc}") from None
            count += 1
    if count:
        LOGGER.info("%s: %d response file(s) extracted", label, count)
    return count
