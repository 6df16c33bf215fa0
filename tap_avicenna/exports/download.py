"""Download an export's file to a temporary file and check it is whole before use."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path

from tap_avicenna.exports.job import ExportJob, ListedExport
from tap_avicenna.exports.repository import ExportRepository
from tap_avicenna.parsing import IncompleteFile, Limits, check_complete

LOGGER = logging.getLogger("tap-avicenna.exports")

INCOMPLETE_FILE_ATTEMPTS = 3


def download_export(
    repo: ExportRepository,
    job: ExportJob,
    listed: ListedExport,
    *,
    limits: Limits,
    directory: str | None = None,
) -> Path:
    """Fetch the file into a new temporary file; the caller deletes it.

    A file that arrives incomplete (a ZIP without its central directory, a gzip
    without its trailer: what a cut connection without Content-Length leaves) is
    fetched again, up to INCOMPLETE_FILE_ATTEMPTS times.
    """
    fd, name = tempfile.mkstemp(prefix=f"tap-avicenna-{job.export_id}-", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(fd, "w+b") as handle:
            for attempt in range(1, INCOMPLETE_FILE_ATTEMPTS + 1):
                started = time.monotonic()
                handle.seek(0)
                handle.truncate()
                size = repo.download(listed, handle, label=job.name)
                handle.flush()
                try:
                    check_complete(path, limits, display_name=job.name)
                except IncompleteFile as exc:
                    if attempt == INCOMPLETE_FILE_ATTEMPTS:
                        raise
                    LOGGER.warning("%s; downloading it again", exc)
                    continue
                LOGGER.info(
                    "Downloaded %s: %s bytes in %.1fs",
                    job.name,
                    f"{size:,}",
                    time.monotonic() - started,
                )
                return path
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    raise AssertionError("unreachable")


def empty_export(job: ExportJob, directory: str | None = None) -> Path:
    """An empty file standing for an export without data (`Success` without a file)."""
    fd, name = tempfile.mkstemp(prefix=f"tap-avicenna-{job.export_id}-", dir=directory)
    os.close(fd)
    return Path(name)
