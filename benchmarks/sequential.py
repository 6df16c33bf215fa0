"""The baseline for concurrency: a client written the simple way, one export at a time.

For each export: create it, poll the list every `poll_interval` seconds until it says
Success, download the file, parse the CSV and write each row as a JSON line to
/dev/null. Plain `requests`, no threads, no cleverness.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import time
import typing as t
import zipfile
from dataclasses import dataclass

import requests

CREATE_PATH = "/api/study/export/create/"
LIST_PATH = "/api/v1/filter/export/"


@dataclass
class SequentialResult:
    exports: int
    rows: int
    wall_seconds: float
    list_requests: int


def _epoch_ms(moment: dt.datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def _csv_texts(content: bytes) -> t.Iterator[str]:
    """The CSV text(s) of a downloaded file: a ZIP's CSV members, or the file itself."""
    if content[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            for name in archive.namelist():
                if name.lower().endswith(".csv"):
                    yield archive.read(name).decode("utf-8-sig")
    else:
        yield content.decode("utf-8-sig")


def run_sequential(
    api_url: str,
    headers: t.Mapping[str, str],
    *,
    study_id: int,
    data_source: int,
    participant_ids: t.Sequence[int],
    start: dt.datetime,
    end: dt.datetime,
    poll_interval: float,
) -> SequentialResult:
    """One export per participant, each run to the end before the next is created."""
    started = time.perf_counter()
    rows = 0
    list_requests = 0
    with open(os.devnull, "w") as sink:
        for participant in participant_ids:
            created = requests.post(
                api_url + CREATE_PATH,
                headers=dict(headers),
                files={
                    "study_id": (None, str(study_id)),
                    "data_source": (None, str(data_source)),
                    "start_date": (None, _epoch_ms(start)),
                    "end_date": (None, _epoch_ms(end)),
                    "participant_ids": (None, str(participant)),
                },
                timeout=60,
            )
            created.raise_for_status()
            export_id = created.json()["study_specific_id"]
            while True:
                time.sleep(poll_interval)
                listing = requests.get(
                    api_url + LIST_PATH,
                    params={"study_id": study_id},
                    headers=dict(headers),
                    timeout=60,
                )
                list_requests += 1
                listing.raise_for_status()
                export = next(e for e in listing.json() if e["study_specific_id"] == export_id)
                if export["status"]["label"] == "Success":
                    break
            download = requests.get(export["content"], headers=dict(headers), timeout=600)
            download.raise_for_status()
            for text in _csv_texts(download.content):
                for row in csv.DictReader(io.StringIO(text, newline="")):
                    sink.write(json.dumps(row) + "\n")
                    rows += 1
    return SequentialResult(
        exports=len(participant_ids),
        rows=rows,
        wall_seconds=time.perf_counter() - started,
        list_requests=list_requests,
    )
