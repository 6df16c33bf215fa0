"""Sensor path: RECORD throughput and peak RSS, the raw lower bound, BATCH, the same
export with null words and odd cells ("dirty"), and how peak RSS scales from a 1M-row to
a 3M-row export."""

from __future__ import annotations

import csv
import gzip
import json
import re
import shutil
import typing as t
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.common import (
    RunFailed,
    TapRun,
    base_tap_config,
    catalog_selecting,
    require_rows,
    require_success,
    run_tap,
)
from benchmarks.raw import SENSOR_TYPES, RawResult, raw_records
from benchmarks.report import Section
from benchmarks.simulation import (
    WEEK_SECONDS,
    WarmSimulator,
    expected_sensor_rows,
    extract_csv,
    fetch_sensor_file,
    sensor_config,
)
from tap_avicenna.simulator.data import ODD_CELLS, VALUE_AT
from tap_avicenna.simulator.exports import DATA_SOURCE

SOURCE_ID = 20
STREAM = "sensor_accelerometer"
PARTICIPANT = 101

RECORD_GOAL = 100_000.0
RAW_RATIO_GOAL = 0.3
BATCH_GOAL = 400_000.0
RSS_GOAL_MB = 150.0
RSS_SCALING_GOAL = 1.10
NULL_WORD_RATE, ODD_CELL_RATE = 0.05, 0.01  # of the dirty file's value cells
_UNTYPED = re.compile(r"(\d+) cell\(s\) did not fit their column's type")


@dataclass(frozen=True)
class SensorSizes:
    """Accelerometer intervals: one participant over one 7-day window, one export."""

    main_interval: float
    large_interval: float

    @staticmethod
    def rows(interval: float) -> int:
        return round(WEEK_SECONDS / interval)


FULL_SIZES = SensorSizes(main_interval=0.6, large_interval=0.2)  # 1.008M and 3.024M rows
QUICK_SIZES = SensorSizes(main_interval=6.048, large_interval=2.016)  # 100k and 300k rows


@dataclass
class SyncMeasure:
    """One measured tap sync of one ready export."""

    rows: int
    file_bytes: int
    render_seconds: float
    rendered_in_run: float  # rendering that still happened inside the tap run (cache miss)
    run: TapRun

    @property
    def records_per_second(self) -> float:
        return self.rows / self.run.wall_seconds


def tap_config(url: str, **extra: t.Any) -> dict[str, t.Any]:
    return base_tap_config(
        url,
        participant_ids=[PARTICIPANT],
        data_sources=[{"id": SOURCE_ID, "name": "accelerometer"}],
        participants_per_export=1,
        max_concurrent_exports=1,
        **extra,
    )


def measured_sync(
    sim: WarmSimulator,
    workdir: Path,
    name: str,
    rows: int,
    file_bytes: int,
    config: dict[str, t.Any],
    stdout_path: Path | None = None,
) -> SyncMeasure:
    catalog = catalog_selecting(workdir, name, config, STREAM)
    before = len(sim.renders)
    warm_up = sim.render_seconds(DATA_SOURCE)
    run = run_tap(workdir, name, config, *catalog, stdout_path=stdout_path)
    require_success(run, name)
    require_rows(run, name, rows, prefix=STREAM)
    return SyncMeasure(
        rows=rows,
        file_bytes=file_bytes,
        render_seconds=warm_up,
        rendered_in_run=sim.render_seconds(DATA_SOURCE, since=before),
        run=run,
    )


def warm_export(sim: WarmSimulator, workdir: Path, name: str) -> Path:
    return fetch_sensor_file(
        sim, workdir / f"{name}.zip", source_id=SOURCE_ID, participant_ids=[PARTICIPANT]
    )


# BATCH encodings measured: (format, compression). The goal allows either format.
BATCH_ENCODINGS = (("parquet", "none"), ("jsonl", "gzip"))


def _file_rows(path: str) -> int:
    if ".parquet" in path:
        import pyarrow.parquet as pq

        return int(pq.read_metadata(path).num_rows)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as part:
        return sum(1 for _ in part)


def _batch_rows(stdout_path: Path) -> tuple[int, int, int]:
    """(BATCH messages, files, rows in the files) of the sensor stream from the tap's stdout."""
    messages = files = rows = 0
    with open(stdout_path, "rb") as out:
        for line in out:
            message = json.loads(line)
            if message.get("type") != "BATCH" or message.get("stream") != STREAM:
                continue
            messages += 1
            files += len(message["manifest"])
            rows += sum(_file_rows(urlsplit(url).path) for url in message["manifest"])
    return messages, files, rows


@dataclass
class BatchMeasure:
    """One BATCH sync: the run, and what its BATCH messages announced."""

    encoding: str
    sync: SyncMeasure
    messages: int
    files: int


@dataclass
class SensorResults:
    main: SyncMeasure | None = None
    raw: RawResult | None = None
    batches: list[BatchMeasure] = field(default_factory=list)
    large: SyncMeasure | None = None
    large_batch: BatchMeasure | None = None
    dirty: SyncMeasure | None = None
    dirty_batch: BatchMeasure | None = None
    odd_cells: int = 0  # in the dirty file's value cells


def untyped_cells(run: TapRun) -> int:
    """The cells the tap kept in `_untyped_cells`, from its WARNING lines."""
    return sum(int(m.group(1)) for m in _UNTYPED.finditer(run.stderr))


def run_main(workdir: Path, sizes: SensorSizes, results: SensorResults) -> None:
    """The ~1M-row export: RECORD run, raw loop on the same file, BATCH run."""
    with WarmSimulator(sensor_config(interval_seconds=sizes.main_interval)) as sim:
        rows = expected_sensor_rows(sim, SOURCE_ID, [PARTICIPANT])
        path = warm_export(sim, workdir, "sensor-main")
        config = tap_config(sim.url)
        results.main = measured_sync(
            sim, workdir, "sensor-record", rows, path.stat().st_size, config
        )

        csv_path = extract_csv(path, workdir / "sensor-main.csv")
        results.raw = raw_records(csv_path, STREAM, SENSOR_TYPES)
        if results.raw.rows != rows:
            raise RunFailed(f"raw loop read {results.raw.rows:,} rows, expected {rows:,}")
        csv_path.unlink()

        for fmt, compression in BATCH_ENCODINGS:
            results.batches.append(
                _batch_sync(sim, workdir, rows, path, fmt, compression, f"sensor-batch-{fmt}")
            )
        path.unlink()
    run_dirty(workdir, sizes, results)


def run_dirty(workdir: Path, sizes: SensorSizes, results: SensorResults) -> None:
    """The same export with null words and odd cells: RECORD and BATCH Parquet runs, which
    must keep every row and account for every odd cell."""
    config = sensor_config(interval_seconds=sizes.main_interval)
    study = config.studies[next(iter(config.studies))]
    study.null_word_rate, study.odd_cell_rate = NULL_WORD_RATE, ODD_CELL_RATE
    with WarmSimulator(config) as sim:
        rows = expected_sensor_rows(sim, SOURCE_ID, [PARTICIPANT])
        path = warm_export(sim, workdir, "sensor-dirty")
        csv_path = extract_csv(path, workdir / "sensor-dirty.csv")
        with open(csv_path, newline="") as text:
            reader = csv.reader(text)
            next(reader)
            results.odd_cells = sum(c in ODD_CELLS for row in reader for c in row[VALUE_AT:])
        csv_path.unlink()
        results.dirty, results.dirty_batch = _record_and_batch(
            sim, workdir, "sensor-dirty", rows, path
        )
    for run in (results.dirty.run, results.dirty_batch.sync.run):
        kept = untyped_cells(run)
        if kept != results.odd_cells:
            raise RunFailed(
                f"dirty file: the tap kept {kept:,} untyped cells, the file has "
                f"{results.odd_cells:,} odd cells"
            )


def _batch_sync(
    sim: WarmSimulator,
    workdir: Path,
    rows: int,
    path: Path,
    fmt: str,
    compression: str,
    name: str,
) -> BatchMeasure:
    """A BATCH sync of the warmed export into local files; their rows are counted."""
    storage = workdir / "batch"
    storage.mkdir(exist_ok=True)
    batch_config = {
        "encoding": {"format": fmt, "compression": compression},
        "storage": {"root": storage.as_uri()},
    }
    stdout_path = workdir / f"{name}.out"
    sync = measured_sync(
        sim,
        workdir,
        name,
        rows,
        path.stat().st_size,
        tap_config(sim.url, batch_config=batch_config),
        stdout_path=stdout_path,
    )
    messages, files, batch_rows = _batch_rows(stdout_path)
    if batch_rows != rows:
        raise RunFailed(f"{name}: BATCH files hold {batch_rows:,} rows, expected {rows:,}")
    shutil.rmtree(storage, ignore_errors=True)
    stdout_path.unlink()
    label = fmt + (
        f".{'gz' if compression == 'gzip' else compression}" if compression != "none" else ""
    )
    return BatchMeasure(label, sync, messages, files)


def run_large(workdir: Path, sizes: SensorSizes, results: SensorResults) -> None:
    """The ~3M-row export: RECORD run, for peak RSS."""
    with WarmSimulator(sensor_config(interval_seconds=sizes.large_interval)) as sim:
        rows = expected_sensor_rows(sim, SOURCE_ID, [PARTICIPANT])
        path = warm_export(sim, workdir, "sensor-large")
        results.large, results.large_batch = _record_and_batch(
            sim, workdir, "sensor-large", rows, path
        )


def _record_and_batch(
    sim: WarmSimulator, workdir: Path, name: str, rows: int, path: Path
) -> tuple[SyncMeasure, BatchMeasure]:
    """A RECORD sync and a BATCH sync (the first encoding) of the warmed export at `path`
    (deleted afterwards)."""
    record = measured_sync(sim, workdir, name, rows, path.stat().st_size, tap_config(sim.url))
    fmt, compression = BATCH_ENCODINGS[0]
    batch = _batch_sync(sim, workdir, rows, path, fmt, compression, f"{name}-batch-{fmt}")
    path.unlink()
    return record, batch


def record_section(results: SensorResults) -> Section:
    main, raw = results.main, results.raw
    rows = main.rows if main else None
    section = Section(
        "sensor_record",
        f"1-2. Sensor RECORD path: one ready export of {rows or 0:,} accelerometer rows",
    )
    if main is None:
        return section
    run = main.run
    section.add("export file (ZIP)", main.file_bytes / 1e6, "MB", digits=1, key="file_mb")
    section.add(
        "simulator render time (before the run)",
        main.render_seconds,
        "s",
        digits=2,
        key="render_seconds",
    )
    section.add("tap wall time", run.wall_seconds, "s", digits=2, key="tap_wall_seconds")
    section.add(
        "tap records/s (rows / wall)",
        main.records_per_second,
        "rec/s",
        goal=f">= {RECORD_GOAL:,.0f} rec/s",
        met=main.records_per_second >= RECORD_GOAL,
        key="tap_records_per_second",
    )
    stream = main.run.stream_seconds()
    section.add(
        "tap records/s, file on disk -> last record",
        main.rows / stream if stream else None,
        "rec/s",
        key="tap_stream_records_per_second",
    )
    section.add(
        "tap CPU (user+sys)",
        run.user_seconds + run.system_seconds,
        "s",
        digits=2,
        key="tap_cpu_seconds",
    )
    section.add("tap peak RSS", run.max_rss_mb, "MB", digits=1, key="tap_peak_rss_mb")
    if raw is not None:
        section.add(
            "raw loop rows/s (csv + envelope + orjson)",
            raw.rows_per_second,
            "rows/s",
            key="raw_rows_per_second",
        )
        section.add_raw_ratio(main.records_per_second, raw.rows_per_second, RAW_RATIO_GOAL)
    dirty = results.dirty
    if dirty is not None:
        section.add(
            f"dirty file ({NULL_WORD_RATE:.0%} null words, {ODD_CELL_RATE:.0%} odd cells): "
            "tap records/s",
            dirty.records_per_second,
            "rec/s",
            key="dirty_records_per_second",
        )
        section.add(
            "dirty / clean records/s",
            dirty.records_per_second / main.records_per_second,
            "x",
            digits=3,
            key="dirty_ratio",
        )
        section.add(
            "dirty file: rows kept / odd cells kept in _untyped_cells",
            f"{dirty.rows:,} / {results.odd_cells:,}",
            key="dirty_rows_odd_cells",
        )
        _add_peak_rss(section, "dirty file: tap peak RSS", dirty.run, "dirty_peak_rss_mb")
    if main.rendered_in_run:
        section.notes.append(
            f"the simulator rendered the file during the tap run ({main.rendered_in_run:.1f}s "
            "counted in the tap's wall time): the warm-up request did not match the tap's"
        )
    return section


def batch_section(results: SensorResults) -> Section:
    section = Section("sensor_batch", "BATCH: the same export, batch_config, local files")
    if not results.batches:
        section.add("BATCH", "not measured", goal=f">= {BATCH_GOAL:,.0f} rows/s")
        return section
    best = max(results.batches, key=lambda b: b.sync.records_per_second)
    for batch in results.batches:
        run = batch.sync.run
        key = batch.encoding.replace(".", "_")
        section.add(
            f"{batch.encoding}: tap wall time", run.wall_seconds, "s", digits=2, key=f"{key}_wall"
        )
        is_best = batch is best
        section.add(
            f"{batch.encoding}: tap rows/s (rows / wall)",
            batch.sync.records_per_second,
            "rows/s",
            goal=f">= {BATCH_GOAL:,.0f} rows/s" if is_best else "",
            met=batch.sync.records_per_second >= BATCH_GOAL if is_best else None,
            key=f"{key}_rows_per_second",
        )
        section.add(
            f"{batch.encoding}: BATCH messages / files",
            f"{batch.messages} / {batch.files}",
            key=f"{key}_messages_files",
        )
        section.add(
            f"{batch.encoding}: tap CPU (user+sys)",
            run.user_seconds + run.system_seconds,
            "s",
            digits=2,
            key=f"{key}_cpu_seconds",
        )
        _add_peak_rss(section, f"{batch.encoding}: tap peak RSS", run, f"{key}_peak_rss_mb")
    dirty = results.dirty_batch
    clean = next((b for b in results.batches if dirty and b.encoding == dirty.encoding), None)
    if dirty is not None and clean is not None:
        section.add(
            f"{dirty.encoding}, dirty file: tap rows/s",
            dirty.sync.records_per_second,
            "rows/s",
            key="dirty_rows_per_second",
        )
        section.add(
            f"{dirty.encoding}, dirty / clean rows/s",
            dirty.sync.records_per_second / clean.sync.records_per_second,
            "x",
            digits=3,
            key="dirty_ratio",
        )
        _add_peak_rss(
            section, f"{dirty.encoding}, dirty file: tap peak RSS", dirty.sync.run, "dirty_rss_mb"
        )
    section.notes.append(
        "the goal is for jsonl.gz or Parquet, so it is checked on the faster; files are "
        "written from Arrow columns (pyarrow CSV reader, vectorised conversion and JSON "
        "text, row ids hashed by a helper process), one BATCH message and one STATE per "
        "export; peak RSS is the tap's (the helper's own is about 15 MB)"
    )
    return section


def memory_section(results: SensorResults) -> Section:
    small, large = results.main, results.large
    section = Section("memory", "4. Memory scaling: peak RSS of the tap, one export each")
    if small is None or large is None:
        return section
    for measure in (small, large):
        _add_peak_rss(
            section, f"peak RSS, {measure.rows:,} rows", measure.run, f"peak_rss_mb_{measure.rows}"
        )
    section.add(
        f"tap records/s, {large.rows:,} rows",
        large.records_per_second,
        "rec/s",
        key="large_records_per_second",
    )
    _add_rss_ratio(section, "RSS large / small", small.run, large.run, "rss_ratio")
    large_batch = results.large_batch
    small_batch = next(
        (b for b in results.batches if large_batch and b.encoding == large_batch.encoding), None
    )
    if large_batch is not None and small_batch is not None:
        label = f"BATCH {large_batch.encoding}"
        run = large_batch.sync.run
        _add_peak_rss(
            section,
            f"{label} peak RSS, {large_batch.sync.rows:,} rows",
            run,
            "batch_peak_rss_mb_large",
        )
        _add_rss_ratio(
            section, f"{label} RSS large / small", small_batch.sync.run, run, "batch_rss_ratio"
        )
    return section


def _add_peak_rss(section: Section, label: str, run: TapRun, key: str) -> None:
    section.add(
        label,
        run.max_rss_mb,
        "MB",
        goal=f"< {RSS_GOAL_MB:.0f} MB",
        met=run.max_rss_mb < RSS_GOAL_MB,
        key=key,
        digits=1,
    )


def _add_rss_ratio(section: Section, label: str, small: TapRun, large: TapRun, key: str) -> None:
    ratio = large.max_rss_bytes / small.max_rss_bytes
    section.add(
        label,
        ratio,
        "x",
        goal=f"<= {RSS_SCALING_GOAL:.2f} x",
        met=ratio <= RSS_SCALING_GOAL,
        key=key,
        digits=3,
    )
