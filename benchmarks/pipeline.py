"""Whole pipeline: `meltano run tap-avicenna target-postgres` into PostgreSQL on the export of
the sensor scenario (1,008,000 accelerometer rows), RECORD and Parquet BATCH, with the
loader settings meltano.yml ships and with target-postgres's own defaults for them (what
meltano.yml shipped before it declared them), beside the tap alone; then the fast path
(`tap-avicenna--fast target-postgres--fast`: Parquet BATCH appended to tables without
key) and PostgreSQL's own COPY of the same rows, the limit."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from benchmarks.common import RunFailed, TapRun, require_rows, require_success, run_child
from benchmarks.report import Section
from benchmarks.sensor import (
    PARTICIPANT,
    SOURCE_ID,
    STREAM,
    SensorSizes,
    SyncMeasure,
    measured_sync,
    tap_config,
    warm_export,
)
from benchmarks.simulation import JAN1, JAN8, WarmSimulator, expected_sensor_rows, sensor_config

ROOT = Path(__file__).resolve().parent.parent
MELTANO = Path(sys.executable).parent / "meltano"
PG_USER, PG_PASSWORD, PG_DB = "tap", "tap", "tapdb"

# The loader settings meltano.yml sets for speed, at target-postgres 0.8.1's defaults:
# the configuration it shipped before it declared them.
TARGET_DEFAULTS = {
    "validate_records": "true",
    "batch_size_rows": "10000",
    "add_record_metadata": "true",
    "activate_version": "true",
}
# Rows per BATCH file: singer-sdk's default (what a batch_config without batch_size
# gives), and the README's recommendation for target-postgres.
SDK_FILE_ROWS = 10_000
SHIPPED_FILE_ROWS = 50_000

RECORD_GOAL = 2.0
BATCH_GOAL = 1.5
FAST_OVER_RECORD_GOAL = 4.0  # the fast path against the shipped RECORD path
FAST_OVER_COPY_GOAL = 0.5  # the fast path against PostgreSQL's COPY of the same rows
FULL_REPEATS = 2
QUICK_REPEATS = 1


@dataclass(frozen=True)
class Variant:
    """One configuration of the pipeline."""

    key: str
    label: str
    file_rows: int | None  # None: RECORD messages; else Parquet BATCH files of this size
    loader: t.Mapping[str, str] = field(default_factory=dict)  # overrides of meltano.yml
    plugins: tuple[str, str] = ("tap-avicenna", "target-postgres")  # of meltano.yml

    @property
    def batch(self) -> bool:
        return self.file_rows is not None


BEFORE_RECORD = Variant("record_before", "RECORD, before (target defaults)", None, TARGET_DEFAULTS)
SHIPPED_RECORD = Variant("record_shipped", "RECORD, shipped meltano.yml", None)
BEFORE_BATCH = Variant(
    "batch_before", "Parquet BATCH, before (target defaults)", SDK_FILE_ROWS, TARGET_DEFAULTS
)
SHIPPED_BATCH = Variant("batch_shipped", "Parquet BATCH, shipped meltano.yml", SHIPPED_FILE_ROWS)
PAIRS = ((BEFORE_RECORD, SHIPPED_RECORD, RECORD_GOAL), (BEFORE_BATCH, SHIPPED_BATCH, BATCH_GOAL))
FAST = Variant(
    "batch_fast",
    "Parquet BATCH, fast path (append)",
    SHIPPED_FILE_ROWS,
    plugins=("tap-avicenna--fast", "target-postgres--fast"),
)


@dataclass(frozen=True)
class PipelineRun:
    """One `meltano run` and what it left in PostgreSQL."""

    run: TapRun
    rows: int
    table_rows: int
    distinct_row_ids: int
    server_cpu_seconds: float | None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.run.wall_seconds

    @property
    def client_cpu_seconds(self) -> float:
        """meltano, the tap and the target (wait4 counts the children meltano reaped)."""
        return self.run.user_seconds + self.run.system_seconds

    @property
    def total_cpu_seconds(self) -> float | None:
        """Client and server CPU: the work done, which other load on the machine moves
        much less than the wall time."""
        if self.server_cpu_seconds is None:
            return None
        return self.client_cpu_seconds + self.server_cpu_seconds


@dataclass
class PipelineResults:
    rows: int = 0
    tap_record: SyncMeasure | None = None
    tap_batch: SyncMeasure | None = None
    runs: dict[str, list[PipelineRun]] = field(default_factory=dict)
    copy_rates: list[float] = field(default_factory=list)  # PostgreSQL's COPY, rows/s
    nights: dict[str, SecondNight] = field(default_factory=dict)


@dataclass(frozen=True)
class SecondNight:
    """The same study loaded a day later (state kept, lookback 1 day)."""

    run: TapRun
    sent: int  # rows the tap emitted
    served: int  # rows the simulator serves for the re-exported days
    new: int  # of which the new day's (the rest: the lookback day, unchanged)
    table_rows: int  # after the second night
    distinct_row_ids: int
    written: int  # rows the table gained (an appending load keeps the copies)


# --- PostgreSQL ----------------------------------------------------------------------


@dataclass(frozen=True)
class Postgres:
    port: int

    def connect(self) -> psycopg.Connection[t.Any]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=PG_USER,
            password=PG_PASSWORD,
            dbname=PG_DB,
            autocommit=True,
            connect_timeout=10,
        )

    def counts(self, schema: str) -> tuple[int, int]:
        """(rows, distinct _row_id) of the stream's table."""
        query = sql.SQL("select count(*), count(distinct _row_id) from {}").format(
            sql.Identifier(schema, STREAM)
        )
        with self.connect() as conn:
            row = conn.execute(query).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def copy_rate(self, schema: str, scratch: Path) -> float:
        """Rows/s of PostgreSQL's own COPY of the stream's table (its rows written out
        first, then COPYed into a table like it without constraints): the limit."""
        table, copy = sql.Identifier(schema, STREAM), sql.Identifier(schema, "copy_limit")
        with self.connect() as conn:
            with (
                scratch.open("wb") as out,
                conn.cursor() as cur,
                cur.copy(sql.SQL("copy {} to stdout").format(table)) as source,
            ):
                for block in source:
                    out.write(block)
            conn.execute(sql.SQL("create table {} (like {})").format(copy, table))
            start = time.perf_counter()
            with (
                scratch.open("rb") as data,
                conn.cursor() as cur,
                cur.copy(sql.SQL("copy {} from stdin").format(copy)) as sink,
            ):
                while chunk := data.read(1 << 20):
                    sink.write(chunk)
            wall = time.perf_counter() - start
            row = conn.execute(sql.SQL("select count(*) from {}").format(copy)).fetchone()
        scratch.unlink()
        assert row is not None
        return int(row[0]) / wall

    def drop_schema(self, schema: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))

    def cpu_seconds(self) -> float | None:
        """CPU time of the whole server so far: the postmaster, the backends it reaped
        and those still running. None when the server's processes cannot be read (not on
        this host)."""
        with self.connect() as conn:
            row = conn.execute("select pg_backend_pid()").fetchone()
        assert row is not None
        try:
            postmaster = _proc_stat(int(row[0]))[1]
            stat = _proc_stat(postmaster)
            total = sum(stat[11:15])  # utime, stime, cutime, cstime
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    with contextlib.suppress(OSError, ValueError):
                        child = _proc_stat(int(entry.name))
                        if child[1] == postmaster:
                            total += child[11] + child[12]
        except (OSError, ValueError):
            return None
        return total / os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> list[int]:
    """/proc/<pid>/stat after the command name, as numbers (field 4, ppid, at index 1)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return [int(f) if f.lstrip("-").isdigit() else 0 for f in fields]


@contextlib.contextmanager
def test_postgres() -> t.Iterator[Postgres]:
    """The server of `PGTEST_PORT` if set, else a throwaway one from scripts/pg-test.sh
    on a free port (stopped afterwards)."""
    given = os.environ.get("PGTEST_PORT", "").strip()
    if given:
        yield Postgres(int(given))
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Outside the benchmark's working directory: the server runs as `postgres` when root.
    env = {
        **os.environ,
        "PGTEST_PORT": str(port),
        "PGTEST_DIR": tempfile.mkdtemp(prefix="tap-avicenna-bench-pg-"),
    }
    script = str(ROOT / "scripts" / "pg-test.sh")
    started = subprocess.run(["bash", script, "start"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        raise RunFailed(f"scripts/pg-test.sh start failed:\n{started.stderr[-2000:]}")
    try:
        yield Postgres(port)
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True, check=False)


# --- runs ----------------------------------------------------------------------------


def _environment(
    settings: t.Mapping[str, t.Any], variant: Variant, pg: Postgres, schema: str
) -> dict[str, str]:
    """The tap settings as meltano's TAP_AVICENNA_* variables (only the measured stream
    selected, no surveys), the loader pointed at a fresh schema, meltano off the network."""
    env = {
        f"TAP_AVICENNA_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
        for name, value in {**settings, "surveys": []}.items()
    }
    env.update({f"TARGET_POSTGRES_{name.upper()}": value for name, value in variant.loader.items()})
    env.update(
        TAP_AVICENNA__SELECT=json.dumps([f"{STREAM}.*"]),
        TARGET_POSTGRES_PORT=str(pg.port),
        TARGET_POSTGRES_PASSWORD=PG_PASSWORD,
        TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA=schema,
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        MELTANO_CLI_DISABLE_VERSION_CHECK="true",
    )
    # An inherited extractor's own `config:` (the fast path's batch_config) wins over
    # the parent's TAP_AVICENNA_* variables: set the settings under its prefix too.
    own = variant.plugins[0].upper().replace("-", "_") + "_"
    for name, value in list(env.items()):
        if name.startswith("TAP_AVICENNA_") and not name.startswith("TAP_AVICENNA__"):
            env[own + name[len("TAP_AVICENNA_") :]] = value
    return env


def _batch_config(root: Path, file_rows: int) -> dict[str, t.Any]:
    return {
        "encoding": {"format": "parquet", "compression": "none"},
        "storage": {"root": root.as_uri()},
        "batch_size": file_rows,
    }


def meltano_run(
    sim: WarmSimulator,
    workdir: Path,
    pg: Postgres,
    variant: Variant,
    rows: int,
    number: int,
    copy_rates: list[float] | None = None,
) -> PipelineRun:
    """`meltano run --full-refresh --no-state-update <extractor> <loader>` into a schema
    of its own; checks the rows the tap emitted and those in the table; with
    `copy_rates`, also measures PostgreSQL's COPY of the loaded rows into it."""
    name = f"pipeline_{variant.key}_{number}"
    files = workdir / f"{name}-files"
    extra = {"batch_config": _batch_config(files, variant.file_rows)} if variant.file_rows else {}
    settings = tap_config(sim.url, **extra)
    command = [str(MELTANO), "--cwd", str(ROOT), "run", "--full-refresh", "--no-state-update"]
    pg.drop_schema(name)
    cpu_before = pg.cpu_seconds()
    try:
        run = run_child(
            [*command, *variant.plugins],
            env=_environment(settings, variant, pg, name),
        )
        cpu_after = pg.cpu_seconds()
        require_success(run, name)
        require_rows(run, name, rows, prefix=STREAM)
        table_rows, distinct = pg.counts(name)
        if copy_rates is not None:
            copy_rates.append(pg.copy_rate(name, workdir / f"{name}.copy"))
    finally:
        pg.drop_schema(name)
        shutil.rmtree(files, ignore_errors=True)
    if table_rows != rows or distinct != rows:
        raise RunFailed(
            f"{name}: the table holds {table_rows:,} rows ({distinct:,} distinct _row_id), "
            f"the simulator serves {rows:,}"
        )
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return PipelineRun(run, rows, table_rows, distinct, server_cpu)


NIGHT_2 = JAN8 + dt.timedelta(days=1)


def second_night(sim: WarmSimulator, workdir: Path, pg: Postgres, variant: Variant) -> SecondNight:
    """Two `meltano run`s with state, to JAN8 then to JAN8 + 1 day, `lookback_days: 1`:
    the second re-exports the last day of the first and the new one, and sends the new
    day's rows only (`skip_unchanged_days`, the default: the lookback day is unchanged)."""
    name = f"night_{variant.key}"
    files = workdir / f"{name}-files"
    extra = {"batch_config": _batch_config(files, variant.file_rows)} if variant.file_rows else {}
    state_id = f"dev:{variant.plugins[0]}-to-{variant.plugins[1]}:{name}"
    command = [str(MELTANO), "--cwd", str(ROOT)]
    pg.drop_schema(name)
    try:
        runs = []
        for end in (JAN8, NIGHT_2):
            settings = tap_config(sim.url, lookback_days=1, end_date=end.isoformat(), **extra)
            env = _environment(settings, variant, pg, name)
            run = run_child([*command, "run", "--state-id-suffix", name, *variant.plugins], env=env)
            require_success(run, name)
            runs.append((run, *pg.counts(name)))
        (_, first_rows, _), (run, table_rows, distinct) = runs
    finally:
        pg.drop_schema(name)
        shutil.rmtree(files, ignore_errors=True)
        clear = [*command, "state", "clear", "--force", state_id]
        run_child(clear, env=_environment({}, variant, pg, name))
    served = expected_sensor_rows(
        sim, SOURCE_ID, [PARTICIPANT], JAN8 - dt.timedelta(days=1), NIGHT_2
    )
    new = expected_sensor_rows(sim, SOURCE_ID, [PARTICIPANT], JAN8, NIGHT_2)
    sent = sum(n for s, n in run.rows_by_stream().items() if s.startswith(STREAM))
    all_rows = expected_sensor_rows(sim, SOURCE_ID, [PARTICIPANT], JAN1, NIGHT_2)
    if distinct != all_rows:
        raise RunFailed(f"{name}: {distinct:,} distinct _row_id after night 2, served {all_rows:,}")
    return SecondNight(run, sent, served, new, table_rows, distinct, table_rows - first_rows)


def run_pipeline(workdir: Path, sizes: SensorSizes, repeats: int, results: PipelineResults) -> None:
    """The tap alone (RECORD, Parquet BATCH), then `repeats` rounds of the four pipeline
    variants, each before/shipped pair in alternating order (drifts of the machine's load
    then fall on both sides alike)."""
    if not MELTANO.exists():
        raise RunFailed(f"{MELTANO} is missing: run `bash scripts/setup.sh`")
    with WarmSimulator(sensor_config(interval_seconds=sizes.main_interval)) as sim:
        rows = expected_sensor_rows(sim, SOURCE_ID, [PARTICIPANT])
        results.rows = rows
        path = warm_export(sim, workdir, "pipeline")
        size = path.stat().st_size
        results.tap_record = measured_sync(
            sim, workdir, "pipeline-tap-record", rows, size, tap_config(sim.url)
        )
        files = workdir / "pipeline-tap-files"
        results.tap_batch = measured_sync(
            sim,
            workdir,
            "pipeline-tap-batch",
            rows,
            size,
            tap_config(sim.url, batch_config=_batch_config(files, SHIPPED_FILE_ROWS)),
        )
        shutil.rmtree(files, ignore_errors=True)
        with test_postgres() as pg:
            for number in range(repeats):
                for before, shipped, _ in PAIRS:
                    order = (before, shipped) if number % 2 == 0 else (shipped, before)
                    for variant in order:
                        print(f"    {variant.label} ({number + 1}/{repeats})", file=sys.stderr)
                        copies = results.copy_rates if variant is SHIPPED_RECORD else None
                        done = meltano_run(sim, workdir, pg, variant, rows, number, copies)
                        results.runs.setdefault(variant.key, []).append(done)
                print(f"    {FAST.label} ({number + 1}/{repeats})", file=sys.stderr)
                done = meltano_run(sim, workdir, pg, FAST, rows, number)
                results.runs.setdefault(FAST.key, []).append(done)
            for variant in (SHIPPED_RECORD, SHIPPED_BATCH, FAST):
                print(f"    {variant.label}: two nights", file=sys.stderr)
                results.nights[variant.key] = second_night(sim, workdir, pg, variant)
        path.unlink()


# --- report --------------------------------------------------------------------------


def _median_rate(runs: t.Sequence[PipelineRun]) -> float:
    return statistics.median(r.rows_per_second for r in runs)


def _add_variant(section: Section, variant: Variant, runs: t.Sequence[PipelineRun]) -> None:
    rates = [r.rows_per_second for r in runs]
    spread = f" ({min(rates):,.0f}-{max(rates):,.0f})" if len(rates) > 1 else ""
    section.add(
        f"{variant.label}: rows/s, median{spread}",
        _median_rate(runs),
        "rows/s",
        key=f"{variant.key}_rows_per_second",
    )
    section.add(
        f"{variant.label}: wall time, median",
        statistics.median(r.run.wall_seconds for r in runs),
        "s",
        digits=1,
        key=f"{variant.key}_wall_seconds",
    )
    server = [r.server_cpu_seconds for r in runs if r.server_cpu_seconds is not None]
    cpu = f"{statistics.median(r.client_cpu_seconds for r in runs):.1f} s"
    if server:
        cpu += f" / {statistics.median(server):.1f} s"
    section.add(
        f"{variant.label}: CPU meltano+tap+target / PostgreSQL",
        cpu,
        key=f"{variant.key}_cpu",
    )
    section.add(
        f"{variant.label}: peak RSS (largest process)",
        max(r.run.max_rss_mb for r in runs),
        "MB",
        digits=0,
        key=f"{variant.key}_peak_rss_mb",
    )
    wrong = [r for r in runs if r.distinct_row_ids != r.rows or r.table_rows != r.rows]
    last = runs[-1]
    section.add(
        f"{variant.label}: rows / distinct _row_id in the table",
        f"{last.table_rows:,} / {last.distinct_row_ids:,}",
        goal=f"= {last.rows:,} in every run",
        met=not wrong,
        key=f"{variant.key}_table_rows",
    )


def pipeline_section(results: PipelineResults) -> Section:
    section = Section(
        "pipeline",
        f"7. Whole pipeline: meltano run tap-avicenna target-postgres, {results.rows:,} rows",
    )
    for measure, label, key in (
        (results.tap_record, "tap alone, RECORD", "tap_record"),
        (results.tap_batch, "tap alone, Parquet BATCH", "tap_batch"),
    ):
        if measure is not None:
            section.add(
                f"{label}: rows/s (wall {measure.run.wall_seconds:.1f} s)",
                measure.records_per_second,
                "rows/s",
                key=f"{key}_rows_per_second",
            )
    for before, shipped, goal in PAIRS:
        measured = [v for v in (before, shipped) if results.runs.get(v.key)]
        for variant in measured:
            _add_variant(section, variant, results.runs[variant.key])
        if len(measured) < 2:
            continue
        ratio = _median_rate(results.runs[shipped.key]) / _median_rate(results.runs[before.key])
        kind = "RECORD" if not shipped.batch else "Parquet BATCH"
        section.add(
            f"{kind}: shipped / before (median rows/s)",
            ratio,
            "x",
            goal=f">= {goal} x",
            met=ratio >= goal,
            key=f"{shipped.key}_speedup",
            digits=2,
        )
        pairs = zip(results.runs[before.key], results.runs[shipped.key], strict=False)
        per_round = [b.run.wall_seconds / s.run.wall_seconds for b, s in pairs]
        section.add(
            f"{kind}: shipped / before, round by round",
            ", ".join(f"{r:.2f}" for r in per_round) + " x",
            key=f"{shipped.key}_speedup_rounds",
        )
        cpu = [
            [c for r in results.runs[v.key] if (c := r.total_cpu_seconds) is not None]
            for v in (before, shipped)
        ]
        if all(cpu):
            section.add(
                f"{kind}: before / shipped, median CPU of all processes and PostgreSQL",
                statistics.median(cpu[0]) / statistics.median(cpu[1]),
                "x",
                key=f"{shipped.key}_cpu_ratio",
                digits=2,
            )
        tap = results.tap_batch if shipped.batch else results.tap_record
        if tap is not None:
            share = _median_rate(results.runs[shipped.key]) / tap.records_per_second
            section.add(f"{kind}: shipped pipeline / tap alone", share, "x", digits=2)
    _add_fast(section, results)
    section.notes.append(
        "before = the loader settings meltano.yml now sets (validate_records, "
        "batch_size_rows, add_record_metadata, activate_version) at target-postgres "
        f"0.8.1's defaults, files of {SDK_FILE_ROWS:,} rows; the pairs run in alternating "
        "order; CPU: meltano + tap + target from wait4, PostgreSQL from /proc (the whole "
        "server, when it runs on this host)"
    )
    return section


def _add_fast(section: Section, results: PipelineResults) -> None:
    """The fast path, and every path against PostgreSQL's COPY of the same rows."""
    fast = results.runs.get(FAST.key)
    if fast:
        _add_variant(section, FAST, fast)
    copy = statistics.median(results.copy_rates) if results.copy_rates else None
    if copy is not None:
        section.add(
            "PostgreSQL COPY of the same rows (the limit): rows/s", copy, "rows/s", key="copy"
        )
    record = results.runs.get(SHIPPED_RECORD.key)
    if fast and record:
        ratio = _median_rate(fast) / _median_rate(record)
        section.add(
            "fast path / shipped RECORD (median rows/s)",
            ratio,
            "x",
            goal=f">= {FAST_OVER_RECORD_GOAL} x",
            met=ratio >= FAST_OVER_RECORD_GOAL,
            key="fast_over_record",
            digits=2,
        )
    for variant in (SHIPPED_RECORD, SHIPPED_BATCH, FAST):
        night = results.nights.get(variant.key)
        if night is not None:
            section.add(
                f"{variant.label}, second night (lookback 1 day): rows sent (of them for "
                "the unchanged lookback day) / served, rows the table gained, rows / "
                "distinct _row_id after, wall",
                f"{night.sent:,} ({night.sent - night.new:,}) / {night.served:,}, "
                f"{night.written:,}, "
                f"{night.table_rows:,} / {night.distinct_row_ids:,}, "
                f"{night.run.wall_seconds:.1f} s",
                key=f"{variant.key}_second_night",
            )
    if copy is None:
        return
    for variant in (SHIPPED_RECORD, SHIPPED_BATCH, FAST):
        runs = results.runs.get(variant.key)
        if runs:
            ratio = _median_rate(runs) / copy
            goal = variant is FAST
            section.add(
                f"{variant.label} / COPY",
                ratio,
                "x",
                goal=f">= {FAST_OVER_COPY_GOAL} x" if goal else "",
                met=ratio >= FAST_OVER_COPY_GOAL if goal else None,
                key=f"{variant.key}_over_copy",
                digits=2,
            )
