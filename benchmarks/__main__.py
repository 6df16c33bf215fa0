"""`python -m benchmarks [--quick] [--json PATH]`: run every scenario, print the report."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import typing as t
from importlib import metadata
from pathlib import Path

from benchmarks import concurrency, dbt_build, multistream, pipeline, sensor, survey
from benchmarks.common import RunFailed, set_workdir
from benchmarks.report import Section, render_text
from benchmarks.startup import startup_section

PARTS = ("sensor", "survey", "memory", "concurrency", "multistream", "startup", "pipeline", "dbt")
# Only when asked for (`--only dbt`): it needs a PostgreSQL (PGTEST_PORT).
OPTIONAL_PARTS = ("dbt",)


def _parse(argv: t.Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of tap-avicenna against the local simulator (measurements: "
        "missed goals are reported, only failed runs make the exit code non-zero).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (100k rows, 8 exports): under a minute"
    )
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the figures here")
    parser.add_argument(
        "--only",
        metavar="PARTS",
        help=f"comma-separated subset of {','.join(PARTS)} (default: all but "
        f"{','.join(OPTIONAL_PARTS)})",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the working directory (configs, tap logs)"
    )
    parser.add_argument(
        "--pipeline-repeats",
        metavar="N",
        type=int,
        help=f"rounds of the whole-pipeline runs (default {pipeline.FULL_REPEATS}, "
        f"{pipeline.QUICK_REPEATS} with --quick)",
    )
    args = parser.parse_args(argv)
    default = set(PARTS) - set(OPTIONAL_PARTS)
    parts = default if not args.only else {p.strip() for p in args.only.split(",")}
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    args.parts = parts
    return args


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def _commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


def _machine() -> dict[str, t.Any]:
    return {
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "singer_sdk": _version("singer-sdk"),
        "orjson": _version("orjson"),
        "commit": _commit(),
    }


class _Runner:
    """Runs scenario steps, turning their failures into report lines."""

    def __init__(self) -> None:
        self.failures: dict[str, list[str]] = {}

    def step(self, key: str, what: str, action: t.Callable[[], None]) -> None:
        started = time.perf_counter()
        print(f"... {what}", file=sys.stderr, flush=True)
        try:
            action()
        except RunFailed as exc:
            self.failures.setdefault(key, []).append(str(exc))
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            self.failures.setdefault(key, []).append(f"{what}: {type(exc).__name__}: {exc}")
        print(f"    {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)


def main(argv: t.Sequence[str] | None = None) -> int:
    args = _parse(argv)
    quick: bool = args.quick
    parts: set[str] = args.parts
    load_at_start = round(os.getloadavg()[0], 2)
    workdir = Path(tempfile.mkdtemp(prefix="tap-avicenna-bench-"))
    set_workdir(workdir)
    started = time.perf_counter()
    runner = _Runner()
    sensor_sizes = sensor.QUICK_SIZES if quick else sensor.FULL_SIZES
    survey_sizes = survey.QUICK_SIZES if quick else survey.FULL_SIZES
    conc_sizes = concurrency.QUICK_SIZES if quick else concurrency.FULL_SIZES
    sensor_results = sensor.SensorResults()
    survey_results = survey.SurveyResults()
    conc_results = concurrency.ConcurrencyResults(conc_sizes)
    multi_results = multistream.MultiStreamResults(
        multistream.QUICK_DELAY if quick else multistream.FULL_DELAY
    )
    dbt_sizes = dbt_build.QUICK_SIZES if quick else dbt_build.FULL_SIZES
    dbt_results = dbt_build.DbtResults()
    pipeline_results = pipeline.PipelineResults()
    repeats: int = args.pipeline_repeats or (
        pipeline.QUICK_REPEATS if quick else pipeline.FULL_REPEATS
    )
    sections: list[Section] = []
    try:
        if parts & {"sensor", "memory"}:
            rows = sensor.SensorSizes.rows(sensor_sizes.main_interval)
            runner.step(
                "sensor_record",
                f"sensor: {rows:,}-row export (RECORD, raw, BATCH)",
                lambda: sensor.run_main(workdir, sensor_sizes, sensor_results),
            )
        if "survey" in parts:
            runner.step(
                "survey",
                "survey: raw loop, tap survey stream if any",
                lambda: survey.run_survey(workdir, survey_sizes, survey_results),
            )
        if "memory" in parts:
            rows = sensor.SensorSizes.rows(sensor_sizes.large_interval)
            runner.step(
                "memory",
                f"memory: {rows:,}-row export",
                lambda: sensor.run_large(workdir, sensor_sizes, sensor_results),
            )
        if "concurrency" in parts:
            runner.step(
                "concurrency",
                f"concurrency: {conc_sizes.exports} exports, tap then sequential client",
                lambda: concurrency.run_concurrency(workdir, conc_sizes, conc_results),
            )
        if "multistream" in parts:
            runner.step(
                "multistream",
                f"multi-stream: {multi_results.exports} exports of 6 streams, one runner then "
                "per stream",
                lambda: multistream.run_multistream(workdir, multi_results),
            )
        if "pipeline" in parts:
            rows = sensor.SensorSizes.rows(sensor_sizes.main_interval)
            runner.step(
                "pipeline",
                f"pipeline: meltano run into PostgreSQL, {rows:,} rows, {repeats} round(s)",
                lambda: pipeline.run_pipeline(workdir, sensor_sizes, repeats, pipeline_results),
            )
        if "dbt" in parts:
            runner.step(
                "dbt",
                "dbt: load accelerometer + GPS into PostgreSQL, dbt build, one more day, "
                "incremental build",
                lambda: dbt_build.run_dbt(workdir, dbt_sizes, dbt_results),
            )
        startup: list[Section] = []
        if "startup" in parts:
            runner.step(
                "startup",
                "start-up",
                lambda: startup.append(startup_section(workdir, 3 if quick else 5)),
            )

        if "sensor" in parts:
            sections.append(sensor.record_section(sensor_results))
            sections.append(sensor.batch_section(sensor_results))
        if "survey" in parts:
            sections.append(survey.survey_section(survey_results))
        if "memory" in parts:
            sections.append(sensor.memory_section(sensor_results))
        if "concurrency" in parts:
            sections.append(concurrency.concurrency_section(conc_results))
        if "multistream" in parts:
            sections.append(multistream.multistream_section(multi_results))
        if "pipeline" in parts:
            sections.append(pipeline.pipeline_section(pipeline_results))
        if "startup" in parts:
            sections.extend(startup or [Section("startup", "6. Start-up")])
        if "dbt" in parts:
            sections.append(dbt_build.dbt_section(dbt_results))
    finally:
        if args.keep:
            print(f"working directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    for section in sections:
        section.failures.extend(runner.failures.pop(section.key, []))
    if runner.failures:  # failures of a step whose section was not shown
        sections.append(
            Section(
                "other",
                "Other failures",
                failures=[f for fs in runner.failures.values() for f in fs],
            )
        )
    machine = _machine()
    machine["load_average_1min_at_start"] = load_at_start
    mode = "quick" if quick else "full"
    elapsed = time.perf_counter() - started
    header = [
        f"tap-avicenna benchmarks ({mode}), {dt.datetime.now():%Y-%m-%d %H:%M}, {elapsed:.0f}s",
        f"machine: {machine['cpus']} CPUs, Python {machine['python']}, "
        f"singer-sdk {machine['singer_sdk']}, commit {machine['commit']}; "
        f"load average (1 min) {load_at_start} at start, {machine['load_average_1min']} at end",
        "rates: rows / wall time of the whole tap process (start-up, export, download, "
        "parse, emit); RSS: the tap process's peak (wait4), MB = 10^6 bytes",
    ]
    print(render_text(sections, header))
    failed = [f for s in sections for f in s.failures]
    if args.json:
        goals = [f for s in sections for f in s.figures if f.met is not None]
        document = {
            "mode": mode,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "elapsed_seconds": round(elapsed, 1),
            "machine": machine,
            "sections": {s.key: s.to_json() for s in sections},
            "goals": {"met": sum(1 for f in goals if f.met), "total": len(goals)},
            "failed_runs": failed,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
