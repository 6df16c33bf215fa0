"""A local write error while downloading: one clear error naming the folder, no retry."""

from __future__ import annotations

import errno
import io
import os
import typing as t
from pathlib import Path

import pytest
import requests_mock as rm

from tap_avicenna.client import AvicennaClient
from tap_avicenna.errors import AvicennaError
from tap_avicenna.exports.download import download_export
from tap_avicenna.exports.job import ExportJob, ExportRequest, ListedExport
from tap_avicenna.exports.repository import ExportRepository
from tap_avicenna.exports.status import ExportStatus
from tap_avicenna.parsing import Limits

API = "https://avicenna.test"
FILE = f"{API}/media/exports/7/t/f.csv"


class FullDisk(io.BytesIO):
    """A file on a disk that fills up after `room` bytes."""

    def __init__(self, room: int, code: int = errno.ENOSPC) -> None:
        super().__init__()
        self.room, self.code = room, code

    def write(self, data: t.Any) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(self.code, "No space left on device")
        return super().write(data)


@pytest.fixture
def client() -> AvicennaClient:
    return AvicennaClient(
        api_url=API, username="r@example.com", api_key="k", max_attempts=4, sleep=lambda _: None
    )


def test_given_disk_full_while_downloading_when_downloaded_then_os_error_not_retried(
    client: AvicennaClient, requests_mock: rm.Mocker
) -> None:
    """Was: "connection failed (OSError)", retried 8 times."""
    requests_mock.get(FILE, content=b"x" * 10_000)
    with pytest.raises(OSError) as info:
        client.download_with_retries(FILE, FullDisk(100), label="export #3")
    assert info.value.errno == errno.ENOSPC
    assert requests_mock.call_count == 1


class FillingRepository:
    """Writes part of the file, then the disk refuses with `code` (as the client passes
    a local write error on)."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.downloads = 0

    def download(self, listed: ListedExport, dest: t.BinaryIO, *, label: str) -> int:
        self.downloads += 1
        dest.write(b"participant_id,record_time\n")
        raise OSError(self.code, os.strerror(self.code))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_given_write_error_when_export_downloaded_then_one_error_naming_folder_and_reason(
    tmp_path: Path, code: int
) -> None:
    job = ExportJob(ExportRequest(key="k", label="sensor_gps"), export_id=12)
    listed = ListedExport(12, "Success", ExportStatus.SUCCESS, content=FILE)
    repo = FillingRepository(code)
    with pytest.raises(AvicennaError) as info:
        download_export(
            t.cast(ExportRepository, repo), job, listed, limits=Limits(), directory=str(tmp_path)
        )
    assert str(info.value) == (
        f"Cannot write the file of export #12 [sensor_gps] in {tmp_path}: "
        f"{os.strerror(code)} ({errno.errorcode[code]})"
    )
    assert repo.downloads == 1
    assert list(tmp_path.iterdir()) == []  # the partial file is gone
