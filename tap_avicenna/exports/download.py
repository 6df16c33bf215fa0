"""Download an export's file to a temporary file and check it is whole before use."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import tempfile
import time
import typing as t
from pathlib import Path

from tap_avicenna.errors import LocalWriteError
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
    fetched again, up to INCOMPLETE_FILE_ATTEMPTS times. A local write error (a full
    disk) is a LocalWriteError naming the folder.
    """
    with _local_writes(job, directory):
        fd, name = tempfile.mkstemp(prefix=f"tap-avicenna-{job.export_id}-", dir=directory)
    path = Path(name)
    try:
        with _local_writes(job, directory), os.fdopen(fd, "w+b") as handle:
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
    with _local_writes(job, directory):
        fd, name = tempfile.mkstemp(prefix=f"tap-avicenna-{job.export_id}-", dir=directory)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def _local_writes(job: ExportJob, directory: str | None) -> t.Iterator[None]:
    """An OSError inside becomes one LocalWriteError naming the folder and the error."""
    try:
        yield
    except OSError as exc:
        folder = directory or tempfile.gettempdir()
        code = errno.errorcode.get(exc.errno or 0)
        reason = f"{exc.strerror} ({code})" if exc.strerror and code else str(exc)
        raise LocalWriteError(
            f"Cannot write the file of {job.name} in {folder}: {reason}"
        ) from None
