"""The simulator set up for each scenario, files fetched ahead of the measured runs,
and the row counts the simulator serves."""

from __future__ import annotations

import datetime as dt
import time
import typing as t
import zipfile
from pathlib import Path

import requests

from benchmarks.common import STUDY_ID, auth_header
from tap_avicenna.simulator import (
    DataSourceConfig,
    ParticipantConfig,
    Simulator,
    SimulatorConfig,
    default_config,
)
from tap_avicenna.simulator.clock import to_ms
from tap_avicenna.simulator.data import SensorRequest, sensor_table
from tap_avicenna.simulator.exports import ACTIVITY_RESPONSE, Export, render

UTC = dt.timezone.utc
JAN1 = dt.datetime(2025, 1, 1, tzinfo=UTC)
JAN8 = dt.datetime(2025, 1, 8, tzinfo=UTC)
WEEK_SECONDS = 7 * 86_400
CREATE_PATH = "/api/study/export/create/"
FILTER_PATH = "/api/v1/filter/export/"
SURVEY_ACTIVITY = 5678  # "Daily Check-in": plain texts, a bare CSV file


class WarmSimulator(Simulator):
    """The simulator, but a file rendered once is served again to any later export of the
    same request and cutoff (what it renders is a function of exactly those), so a tap
    run measured after a warm-up download does not wait for the rendering.

    `renders` holds (export kind, seconds) of every rendering, in order;
    `filter_bodies` the raw body of every filter-export create call.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        super().__init__(config)
        self._files: dict[tuple[str, str, str, int], bytes] = {}
        self.renders: list[tuple[str, float]] = []
        self.filter_bodies: list[bytes] = []

    def __enter__(self) -> WarmSimulator:
        super().__enter__()
        return self

    def handle_filter_create(self, user: str, ctype: str | None, body: bytes) -> tuple[int, t.Any]:
        self.filter_bodies.append(body)
        return super().handle_filter_create(user, ctype, body)

    def render_seconds(self, kind: str, since: int = 0) -> float:
        """Seconds spent rendering files of this kind, from render number `since` on."""
        return sum(seconds for k, seconds in self.renders[since:] if k == kind)

    def body_of(self, export: Export) -> bytes:
        # A survey ZIP names its CSV after the export number: never shared.
        shareable = not (export.kind == ACTIVITY_RESPONSE and export.filename.endswith(".zip"))
        key = (export.kind, repr(export.sensor), repr(export.survey), export.cutoff_ms)
        with export.render_lock:
            if export.content is None:
                content = self._files.get(key) if shareable else None
                if content is None:
                    started = time.perf_counter()
                    content = render(self.config.studies[export.study_id], export, self.config.seed)
                    self.renders.append((export.kind, time.perf_counter() - started))
                    if shareable:
                        self._files[key] = content
                export.content = content
            return export.content


def participants(count: int, first: int = 101) -> list[ParticipantConfig]:
    return [ParticipantConfig(id=first + i, start=JAN1) for i in range(count)]


def sensor_config(
    *,
    interval_seconds: float,
    participant_count: int = 1,
    kind: str = "accelerometer",
    source_id: int = 20,
    frozen: bool = True,
) -> SimulatorConfig:
    """One study, one data source, participants from 2025-01-01.

    `frozen` stops the simulated clock (exports are ready at once and the data never
    grows while the benchmark runs); the concurrency scenario needs it running.
    """
    config = default_config()
    config.port = 0
    study = config.studies[STUDY_ID]
    study.participants = participants(participant_count)
    study.data_sources = {
        source_id: DataSourceConfig(name=kind, interval_seconds=interval_seconds, kind=kind)
    }
    if frozen:
        config.time_scale = 0.0
        config.pending_seconds = 0.0
        config.processing_delay = 0.0
    return config


def survey_config(*, participant_count: int, sessions_per_day: int) -> SimulatorConfig:
    """Survey 5678 answered `sessions_per_day` times a day by each participant in January."""
    config = default_config()
    config.port = 0
    config.time_scale = 0.0
    config.pending_seconds = 0.0
    config.processing_delay = 0.0
    study = config.studies[STUDY_ID]
    study.participants = participants(participant_count)
    study.surveys[SURVEY_ACTIVITY].sessions_per_day = sessions_per_day
    return config


def survey_body(activity_id: int = SURVEY_ACTIVITY) -> dict[str, t.Any]:
    return {
        "study_id": STUDY_ID,
        "activity_id": activity_id,
        "filter": "ACTIVITY_RESPONSE",
        "site_ssid": None,
        "export_version": "v2",
        "rule_set": {"columns": [], "query": {}, "sort_by": []},
    }


def expected_sensor_rows(
    sim: Simulator,
    source_id: int,
    participant_ids: t.Sequence[int],
    start: dt.datetime = JAN1,
    end: dt.datetime = JAN8,
) -> int:
    """How many rows the simulator serves for this request now (counted, not kept)."""
    request = SensorRequest(STUDY_ID, source_id, to_ms(start), to_ms(end), tuple(participant_ids))
    _, rows = sensor_table(
        sim.config.studies[STUDY_ID], request, sim.clock.now_ms(), sim.config.seed
    )
    return sum(1 for _ in rows)


def _wait_for_file(sim: Simulator, export_id: int, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = requests.get(
            sim.url + FILTER_PATH, params={"study_id": STUDY_ID}, headers=auth_header(), timeout=60
        ).json()
        entry = next(e for e in listing if e["study_specific_id"] == export_id)
        if entry["status"]["label"] == "Success":
            return str(entry["content"])
        time.sleep(0.05)
    raise TimeoutError(f"export #{export_id} not ready after {timeout:.0f}s")


def _download(sim: Simulator, url: str, dest: Path) -> None:
    with requests.get(url, headers=auth_header(), stream=True, timeout=600) as response:
        response.raise_for_status()
        with open(dest, "wb") as out:
            for chunk in response.iter_content(1024 * 1024):
                out.write(chunk)


def fetch_sensor_file(
    sim: Simulator,
    dest: Path,
    *,
    source_id: int,
    participant_ids: t.Sequence[int],
    start: dt.datetime = JAN1,
    end: dt.datetime = JAN8,
) -> Path:
    """Create the export the tap will create, wait for it and download it to `dest`."""
    fields = {
        "study_id": str(STUDY_ID),
        "data_source": str(source_id),
        "start_date": str(to_ms(start)),
        "end_date": str(to_ms(end)),
        "participant_ids": ",".join(map(str, participant_ids)),
    }
    answer = requests.post(
        sim.url + CREATE_PATH,
        files={name: (None, value) for name, value in fields.items()},
        headers=auth_header(),
        timeout=60,
    )
    answer.raise_for_status()
    _download(sim, _wait_for_file(sim, int(answer.json()["study_specific_id"])), dest)
    return dest


def fetch_survey_file(sim: Simulator, dest: Path, body: dict[str, t.Any]) -> Path:
    answer = requests.post(sim.url + FILTER_PATH, json=body, headers=auth_header(), timeout=60)
    answer.raise_for_status()
    _download(sim, _wait_for_file(sim, int(answer.json()["study_specific_id"])), dest)
    return dest


def extract_csv(path: Path, dest: Path) -> Path:
    """The (single) CSV of a ZIP, or the file itself when it is a plain CSV."""
    if not zipfile.is_zipfile(path):
        return path
    with zipfile.ZipFile(path) as archive:
        members = [i for i in archive.infolist() if i.filename.lower().endswith(".csv")]
        if len(members) != 1:
            raise ValueError(f"{path.name}: expected one CSV member, found {len(members)}")
        with archive.open(members[0]) as src, open(dest, "wb") as out:
            while chunk := src.read(1024 * 1024):
                out.write(chunk)
    return dest
