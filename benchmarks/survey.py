"""Survey path: the raw lower bound on a survey-response file, and the tap's survey
stream on the same file once the tap has one."""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import (
    STUDY_ID,
    RunFailed,
    TapRun,
    base_tap_config,
    catalog_selecting,
    require_rows,
    require_success,
    run_tap,
)
from benchmarks.raw import SURVEY_TYPES, RawResult, raw_records
from benchmarks.report import Section
from benchmarks.sensor import RAW_RATIO_GOAL
from benchmarks.simulation import (
    SURVEY_ACTIVITY,
    WarmSimulator,
    extract_csv,
    fetch_survey_file,
    participants,
    survey_body,
    survey_config,
)
from tap_avicenna.simulator.exports import ACTIVITY_RESPONSE

STREAM_PREFIX = "survey_"
SURVEY_NAME = "daily_checkin"


@dataclass(frozen=True)
class SurveySizes:
    participants: int
    sessions_per_day: int


FULL_SIZES = SurveySizes(participants=10, sessions_per_day=320)  # 99,200 rows
QUICK_SIZES = SurveySizes(participants=10, sessions_per_day=64)  # 19,840 rows


def survey_setting() -> list[dict[str, t.Any]]:
    """The `surveys` setting the tap is expected to take (its shape is a guess until the
    tap has survey streams; discovery tells whether it is understood)."""
    return [{"activity_id": SURVEY_ACTIVITY, "name": SURVEY_NAME}]


@dataclass
class SurveyResults:
    rows: int = 0
    file_bytes: int = 0
    render_seconds: float = 0.0
    raw: RawResult | None = None
    streams: tuple[str, ...] = ()
    unavailable: str = ""
    run: TapRun | None = None
    rendered_in_run: float = 0.0
    bodies: list[dict[str, t.Any]] = field(default_factory=list)


def _tap_config(url: str, count: int) -> dict[str, t.Any]:
    return base_tap_config(
        url,
        end_date="2025-02-01T00:00:00Z",
        export_window_days=31,
        participant_ids=[p.id for p in participants(count)],
        surveys=survey_setting(),
    )


def _survey_streams(workdir: Path, config: dict[str, t.Any]) -> tuple[tuple[str, ...], str]:
    """The tap's survey_* streams with this config, or () and why not."""
    catalog_path = workdir / "survey-catalog.json"
    run = run_tap(workdir, "survey-discover", config, "--discover", stdout_path=catalog_path)
    if run.returncode != 0:
        last = run.stderr.strip().splitlines()[-1:] or ["no message"]
        return (), f"discover exited {run.returncode}: {last[0][-200:]}"
    catalog = json.loads(catalog_path.read_text() or "{}")
    streams = tuple(
        str(s.get("tap_stream_id") or s.get("stream"))
        for s in catalog.get("streams", [])
        if str(s.get("tap_stream_id") or s.get("stream")).startswith(STREAM_PREFIX)
    )
    return streams, "" if streams else "no survey_* stream in the catalog"


def _survey_bodies(sim: WarmSimulator) -> list[dict[str, t.Any]]:
    """The ACTIVITY_RESPONSE bodies the simulator received, in order."""
    bodies = [json.loads(raw) for raw in sim.filter_bodies]
    return [b for b in bodies if str(b.get("filter", "")).upper() == "ACTIVITY_RESPONSE"]


def run_survey(workdir: Path, sizes: SurveySizes, results: SurveyResults) -> None:
    """Raw loop on the file(s) the tap asks for, then the measured tap run on them.

    Without a survey stream the raw loop reads a v2 export of the default columns. With
    one, an unmeasured tap run first renders the files and shows the bodies it sends.
    """
    config = survey_config(
        participant_count=sizes.participants, sessions_per_day=sizes.sessions_per_day
    )
    with WarmSimulator(config) as sim:
        tap_config = _tap_config(sim.url, sizes.participants)
        results.streams, results.unavailable = _survey_streams(workdir, tap_config)
        bodies = [survey_body()]
        catalog: list[str] = []
        if results.streams:
            catalog = catalog_selecting(workdir, "survey-sync", tap_config, STREAM_PREFIX)
            warm_up = run_tap(workdir, "survey-warm-up", tap_config, *catalog)
            require_success(warm_up, "survey warm-up sync")
            bodies = _survey_bodies(sim)
            if not bodies:
                raise RunFailed("survey warm-up sync created no ACTIVITY_RESPONSE export")
        results.bodies = bodies
        results.render_seconds = sim.render_seconds(ACTIVITY_RESPONSE)
        raws: list[RawResult] = []
        for index, body in enumerate(bodies):
            activity = int(body.get("activity_id", SURVEY_ACTIVITY))
            results.rows += len(sim.expected_survey_rows(STUDY_ID, activity, body))
            path = fetch_survey_file(sim, workdir / f"survey-{index}.download", body)
            results.file_bytes += path.stat().st_size
            csv_path = extract_csv(path, workdir / f"survey-{index}.csv")
            raws.append(raw_records(csv_path, f"{STREAM_PREFIX}{SURVEY_NAME}", SURVEY_TYPES))
            for leftover in {path, csv_path}:
                leftover.unlink(missing_ok=True)
        results.raw = RawResult(
            rows=sum(r.rows for r in raws),
            seconds=sum(r.seconds for r in raws),
            bytes_written=sum(r.bytes_written for r in raws),
        )
        if results.raw.rows != results.rows:
            raise RunFailed(
                f"survey raw loop read {results.raw.rows:,} rows, expected {results.rows:,}"
            )
        if results.streams:
            before = len(sim.renders)
            run = run_tap(workdir, "survey-record", tap_config, *catalog)
            results.rendered_in_run = sim.render_seconds(ACTIVITY_RESPONSE, since=before)
            results.run = run
            require_success(run, "survey sync")
            require_rows(run, "survey sync", results.rows, prefix=STREAM_PREFIX)


def survey_section(results: SurveyResults) -> Section:
    section = Section(
        "survey",
        f"3. Survey path: {len(results.bodies)} ready survey-response export(s), "
        f"{results.rows:,} rows (activity {SURVEY_ACTIVITY})",
    )
    raw = results.raw
    if raw is None:
        return section
    section.add("export file (CSV)", results.file_bytes / 1e6, "MB", digits=1, key="file_mb")
    section.add(
        "simulator render time (before the run)",
        results.render_seconds,
        "s",
        digits=2,
        key="render_seconds",
    )
    section.add(
        "raw loop rows/s (csv + envelope + orjson)",
        raw.rows_per_second,
        "rows/s",
        key="raw_rows_per_second",
    )
    run = results.run
    if run is None or run.returncode != 0:
        section.add("tap survey path", "not available yet", key="tap_survey_path")
        if results.unavailable:
            section.notes.append(f"tap survey path: {results.unavailable}")
        return section
    rate = results.rows / run.wall_seconds
    section.add("tap wall time", run.wall_seconds, "s", digits=2, key="tap_wall_seconds")
    section.add("tap records/s (rows / wall)", rate, "rec/s", key="tap_records_per_second")
    stream = run.stream_seconds()
    section.add(
        "tap records/s, file on disk -> last record",
        results.rows / stream if stream else None,
        "rec/s",
        key="tap_stream_records_per_second",
    )
    section.add("tap peak RSS", run.max_rss_mb, "MB", digits=1, key="tap_peak_rss_mb")
    section.add_raw_ratio(rate, raw.rows_per_second, RAW_RATIO_GOAL)
    if results.rendered_in_run:
        section.notes.append(
            f"the simulator rendered a file during the tap run ({results.rendered_in_run:.1f}s "
            "in the tap's wall time): its request differed from the warm-up run's"
        )
    return section
