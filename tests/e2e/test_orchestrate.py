"""The shards under Dagster (orchestrate/): in parallel, state in PostgreSQL, a killed tap
retried, dbt once after them; then resharding 3 -> 2.

The job runs in-process in Dagster's own venv (`python -m orchestrate.run`: execute_job,
multiprocess executor, a temporary instance) against this module's simulator and the
test PostgreSQL: tables in their own schema, meltano's system database (and so the
state) in the server's second database `meltano` (scripts/pg-test.sh).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import threading
import typing as t
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tap_avicenna.simulator import Simulator
from tests.conftest import STUDY_ID, make_simulator, multiset
from tests.e2e.conftest import (
    MELTANO,
    PG_HOST,
    PG_PASSWORD,
    PG_USER,
    PYTHON,
    ROOT,
    Done,
    Pipeline,
    Postgres,
    base_env,
    describe_difference,
    isolated_names,
    run,
    table_multiset,
    tap_env,
)
from tests.e2e.test_postgres_pipeline import PRIMARY_KEYS, expected_tables, ms, when

pytestmark = pytest.mark.e2e

DAGSTER_PYTHON = ROOT / "orchestrate" / ".venv" / "bin" / "python"
STATE_DB = "meltano"
SHARDS = 3
KILLED_SHARD = 1
MAX_CONCURRENT_EXPORTS = 2
START, SECOND = "2025-01-01T00:00:00Z", "2025-01-03T00:00:00Z"  # the first 2-day window
END, LATER_END = "2025-01-05T00:00:00Z", "2025-01-07T00:00:00Z"
PARTICIPANTS = [101, 102, 103, 104, 105]
# lookback_days 0: a later run exports nothing before the bookmarks, so "no export of a
# day already loaded" is exact. Shards of 3: {102, 105}, {103}, {101, 104}.
SETTINGS: dict[str, t.Any] = {
    "start_date": START,
    "end_date": END,
    "participant_ids": PARTICIPANTS,
    "data_sources": [  # the three the dbt package models
        {"id": 10, "name": "gps"},
        {"id": 20, "name": "accelerometer"},
        {"id": 30, "name": "battery"},
    ],
    "surveys": [{"activity_id": 5678, "name": "daily", "columns": ["participant_id", "Q2"]}],
    "participants_per_export": 2,
    "export_window_days": 2,
    "lookback_days": 0,
    "poll_interval_seconds": 0.1,
    "max_concurrent_exports": MAX_CONCURRENT_EXPORTS,
}
SENSORS = ("sensor_gps", "sensor_accelerometer", "sensor_battery")
TABLES = (*SENSORS, "participants", "survey_daily")
MARTS = (
    "avicenna__participant_day_summary",
    "avicenna__compliance_participant",
)
HOLD_SECONDS = 120
BATCH_ROWS = 100  # the target commits every 100 rows of a stream


def state_uri(port: int) -> str:
    return f"postgresql+psycopg://{PG_USER}:{PG_PASSWORD}@{PG_HOST}:{port}/{STATE_DB}"


def state_db(port: int) -> psycopg.Connection[t.Any]:
    return psycopg.connect(
        host=PG_HOST,
        port=port,
        user=PG_USER,
        password=PG_PASSWORD,
        dbname=STATE_DB,
        autocommit=True,
    )


def shard_state_id(index: int) -> str:
    return f"dev:tap-avicenna--shard{index}-to-target-postgres"


def clear_shard_states(port: int) -> None:
    """Remove the shards' state (meltano's `state` table, once meltano made it)."""
    with state_db(port) as conn:
        if conn.execute("select to_regclass('public.state')").fetchone() == (None,):
            return
        conn.execute("delete from state where state_id like 'dev:tap-avicenna%shard%'")


def stored_states(
    port: int, pattern: str = "dev:tap-avicenna--shard%"
) -> dict[str, dict[str, t.Any]]:
    """Shard state id -> the Singer state meltano holds for it (completed, with any
    later partial state over it, as `meltano state get` merges them)."""
    with state_db(port) as conn:
        rows = conn.execute(
            "select state_id, completed_state, partial_state from state where state_id like %s",
            (pattern,),
        ).fetchall()
    out = {}
    for state_id, completed, partial in rows:  # JSON texts
        stored = [json.loads(text) for text in (partial, completed) if text]
        singer = [value["singer_state"] for value in stored if value.get("singer_state")]
        out[str(state_id)] = dict(singer[0]) if singer else {}
    return out


def sensor_marks(state: t.Mapping[str, t.Any]) -> dict[str, set[int]]:
    return {
        stream: {int(p) for p in value.get("participants", {})}
        for stream, value in state.get("bookmarks", {}).items()
        if stream.startswith("sensor_")
    }


def in_shard(participant: int, index: int, count: int) -> bool:
    return participant % count == index


# --- killing one shard's tap after its first STATE ------------------------------------


class ShardKiller:
    """SIGKILLs shard KILLED_SHARD's tap once it emitted its first STATE and rows after it.

    The tap writes a STATE when it creates an export, before any of its rows. The target
    forwards no STATE while a stream runs (singer-sdk's target only does so when it
    drains every sink: at the end, or after 5 minutes), but it commits each full sink
    (`batch_size_rows`, kept small). So BATCH_ROWS committed rows of the shard prove the
    tap emitted a STATE and rows after it. The simulator holds that shard's downloads
    beyond their first window until the kill, so the tap is still running then. Polls
    for the conditions; no sleep decides anything.
    """

    def __init__(self, sim: Simulator, pg: Postgres, schema: str) -> None:
        self.sim, self.pg, self.schema = sim, pg, schema
        self.killed = threading.Event()
        self.killed_pids: list[int] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        original = sim.find_download

        def held(path: str) -> t.Any:
            export = original(path)
            sensor = export.sensor if export is not None else None
            if (
                sensor is not None
                and all(in_shard(p, KILLED_SHARD, SHARDS) for p in sensor.participant_ids or ())
                and sensor.start_ms != ms(when(START))
            ):
                self.killed.wait(HOLD_SECONDS)
            return export

        sim.find_download = held  # type: ignore[method-assign]

    def __enter__(self) -> ShardKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.killed.set()
        self._thread.join(10)

    def _tap_pids(self) -> list[int]:
        marker = f"/run/tap-avicenna--shard{KILLED_SHARD}/"
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            words = [word.decode(errors="replace") for word in argv]
            if any(w.endswith("/bin/tap-avicenna") for w in words[:2]) and any(
                marker in w for w in words
            ):
                pids.append(int(proc.name))
        return pids

    def _rows_committed(self) -> bool:
        committed = 0
        for table in SENSORS:
            query = sql.SQL("select count(*) from {} where participant_id % {} = {}").format(
                sql.Identifier(self.schema, table), sql.Literal(SHARDS), sql.Literal(KILLED_SHARD)
            )
            with contextlib.suppress(psycopg.errors.UndefinedTable):  # not made yet
                committed += int(self.pg.scalar(query))
        return committed >= BATCH_ROWS

    def _watch(self) -> None:
        try:
            while not self._stop.wait(0.05):
                if self._rows_committed():
                    pids = self._tap_pids()
                    for pid in pids:
                        os.kill(pid, signal.SIGKILL)
                    self.killed_pids = pids
                    return
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.killed.set()


# --- the job ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRun:
    done: Done
    steps: dict[str, list[dict[str, t.Any]]]
    killed_pids: list[int]
    max_pending: int
    states: dict[str, dict[str, t.Any]]

    def times(self, step: str, event: str) -> list[float]:
        return [float(e["time"]) for e in self.steps.get(step, []) if e["event"] == event]


@dataclass
class Orchestrated:
    sim: Simulator
    pg: Postgres
    schema: str
    reference: Pipeline
    job: JobRun
    work: Path

    @property
    def models(self) -> str:
        return f"{self.schema}_analytics"

    def env(self, **settings: t.Any) -> dict[str, str]:
        return {
            **base_env(self.pg.port),
            **tap_env({"api_url": self.sim.url, **SETTINGS, **settings}),
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": self.schema,
            "TARGET_POSTGRES_BATCH_SIZE_ROWS": str(BATCH_ROWS),
            "MELTANO_DATABASE_URI": state_uri(self.pg.port),
            "DBT_POSTGRES_PORT": str(self.pg.port),
            "DBT_POSTGRES_PASSWORD": PG_PASSWORD,
            "DBT_POSTGRES_SCHEMA": self.models,
            "DBT_POSTGRES_SOURCE_SCHEMA": self.schema,
            "DBT_TARGET_PATH": str(self.work / "target"),
            "DBT_LOG_PATH": str(self.work / "logs"),
            "PYTHONPATH": str(ROOT),
        }


def run_job(
    sim: Simulator, pg: Postgres, schema: str, env: dict[str, str], steps_json: Path
) -> JobRun:
    sim.reset_stats()
    with ShardKiller(sim, pg, schema) as killer:
        done = run(
            [DAGSTER_PYTHON, "-m", "orchestrate.run", str(steps_json)],
            env=env,
            what="orchestrate.run",
            timeout=600,
        )
    assert killer.error is None, killer.error
    assert done.returncode == 0, done.tail()
    report = json.loads(steps_json.read_text(encoding="utf-8"))
    return JobRun(
        done,
        report["steps"],
        killer.killed_pids,
        int(sim.stats()["max_concurrent_pending"]),
        stored_states(pg.port),
    )


def dbt(env: dict[str, str], schema: str, models: str) -> None:
    done = run(
        [MELTANO, "invoke", "dbt-postgres", "run"],
        env={**env, "DBT_POSTGRES_SCHEMA": models, "DBT_POSTGRES_SOURCE_SCHEMA": schema},
        what="dbt run (unsharded)",
    )
    assert done.returncode == 0, done.tail()


@pytest.fixture(scope="module")
def orchestrated(
    pg: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> t.Iterator[Orchestrated]:
    """Dagster's venv; one unsharded run with dbt (the reference); the sharded job."""
    setup = subprocess.run(
        ["bash", str(ROOT / "scripts" / "orchestrate.sh"), "setup"],
        capture_output=True,
        text=True,
    )
    assert setup.returncode == 0, setup.stderr[-3000:]
    work = tmp_path_factory.mktemp("orchestrate")
    with (
        make_simulator() as sim,
        isolated_names(pg, "ref") as ref,
        isolated_names(pg, "shards") as schema,
    ):
        clear_shard_states(pg.port)
        killed = [p for p in PARTICIPANTS if in_shard(p, KILLED_SHARD, SHARDS)]
        for source in SETTINGS["data_sources"]:  # each one's first window fills a batch
            window = sim.expected_rows(STUDY_ID, source["id"], killed, when(START), when(SECOND))
            assert len(window) > BATCH_ROWS, source
        try:
            reference = Pipeline(sim, pg, ref, dict(SETTINGS))
            reference.meltano_run()
            box = Orchestrated(sim, pg, schema, reference, t.cast(JobRun, None), work)
            dbt(box.env(), ref, f"{ref}_analytics")
            box.job = run_job(sim, pg, schema, box.env(), work / "steps.json")
            yield box
        finally:
            clear_shard_states(pg.port)
            for name in (f"{ref}_analytics", f"{schema}_analytics"):
                pg.drop_schema(name)


def test_the_shard_steps_run_at_once(orchestrated: Orchestrated) -> None:
    job = orchestrated.job
    starts = [min(job.times(f"shard_{k}", "start")) for k in range(SHARDS)]
    ends = [max(job.times(f"shard_{k}", "success")) for k in range(SHARDS)]
    assert max(starts) < min(ends), f"starts {starts}, ends {ends}: the shards did not overlap"


def test_meltano_postgres_state_holds_each_shard_with_its_participants_only(
    orchestrated: Orchestrated,
) -> None:
    states = orchestrated.job.states
    assert set(states) == {shard_state_id(k) for k in range(SHARDS)}
    for index in range(SHARDS):
        state = states[shard_state_id(index)]
        mine = {p for p in PARTICIPANTS if in_shard(p, index, SHARDS)}
        assert sensor_marks(state) == dict.fromkeys(SENSORS, mine), index
        surveys = {s for s in state["bookmarks"] if s.startswith("survey_")}
        assert surveys == ({"survey_daily"} if index == 0 else set()), index


def test_a_killed_shard_is_retried_with_force_and_succeeds(orchestrated: Orchestrated) -> None:
    job = orchestrated.job
    assert job.killed_pids, "the shard's tap was never killed"
    killed = f"shard_{KILLED_SHARD}"
    assert len(job.times(killed, "retry")) == 1, job.steps[killed]
    assert len(job.times(killed, "start")) == 2 and job.times(killed, "success")
    for index in set(range(SHARDS)) - {KILLED_SHARD}:
        assert not job.times(f"shard_{index}", "retry"), job.steps[f"shard_{index}"]
    commands = {
        step: [e["metadata"]["command"] for e in events if e["event"] == "output"]
        for step, events in job.steps.items()
    }
    assert commands[killed] == [
        f"meltano run --force tap-avicenna--shard{KILLED_SHARD} target-postgres"
    ]
    assert commands["shard_0"] == ["meltano run tap-avicenna--shard0 target-postgres"]


def assert_same_tables(pg: Postgres, expected: str, actual: str, tables: t.Iterable[str]) -> None:
    for table in tables:
        want, got = table_multiset(pg, expected, table), table_multiset(pg, actual, table)
        assert got == want, f"{actual}.{table}: {describe_difference(want, got)}"
        key = PRIMARY_KEYS.get(table, "_row_id")
        if key in {column for row in pg.rows(actual, table) for column in row}:
            assert pg.distinct(actual, table, key) == pg.count(actual, table), table


def test_loaded_tables_equal_one_unsharded_run(orchestrated: Orchestrated) -> None:
    box = orchestrated
    assert_same_tables(box.pg, box.reference.schema, box.schema, TABLES)
    assert box.pg.count(box.schema, "sensor_gps") > 0


def test_dbt_runs_after_every_shard_and_its_marts_equal_the_unsharded_build(
    orchestrated: Orchestrated,
) -> None:
    box, job = orchestrated, orchestrated.job
    shards_done = max(max(job.times(f"shard_{k}", "success")) for k in range(SHARDS))
    assert min(job.times("dbt_build", "start")) > shards_done
    assert job.times("dbt_build", "success")
    assert_same_tables(box.pg, f"{box.reference.schema}_analytics", box.models, MARTS)


def test_pending_exports_stay_within_the_shards_combined_limit(orchestrated: Orchestrated) -> None:
    job = orchestrated.job
    assert 0 < job.max_pending <= SHARDS * MAX_CONCURRENT_EXPORTS


# --- resharding ------------------------------------------------------------------------


def project_copy(folder: Path) -> Path:
    """meltano.yml and the installed plugins (linked), as a pod has its own filesystem."""
    folder.mkdir()
    shutil.copy(ROOT / "meltano.yml", folder / "meltano.yml")
    (folder / ".meltano").mkdir()
    for kind in ("extractors", "loaders"):
        (folder / ".meltano" / kind).symlink_to(ROOT / ".meltano" / kind)
    return folder


def test_resharding_3_to_2_loses_no_row_and_exports_no_loaded_day_again(
    orchestrated: Orchestrated,
) -> None:
    box, sim = orchestrated, orchestrated.sim
    project = project_copy(box.work / "resharded")
    env = box.env(end_date=LATER_END)
    done = run(
        [PYTHON, "-m", "orchestrate.reshard", "2", "--project", project],
        env={**env, "MELTANO": str(MELTANO)},
        what="orchestrate.reshard",
    )
    assert done.returncode == 0, done.tail()
    assert "tap-avicenna--shard2" not in (project / "meltano.yml").read_text()
    before = len(sim.exports(STUDY_ID))
    shards = [
        subprocess.Popen(
            [MELTANO, "run", f"tap-avicenna--shard{k}", "target-postgres"],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    for shard in shards:
        _, err = shard.communicate(timeout=300)
        assert shard.returncode == 0, err[-3000:]
    created = sim.exports(STUDY_ID)[: len(sim.exports(STUDY_ID)) - before]  # newest first
    sensor = [e for e in created if e["data_source"] is not None]
    assert sensor, "the resharded run created no sensor export"
    loaded_until = ms(when(END))
    assert all(e["start_date"] >= loaded_until for e in sensor), [
        (e["data_source"], e["start_date"], e["participant_ids"]) for e in sensor
    ]
    expected = expected_tables(sim, {**SETTINGS, "end_date": LATER_END})
    for table in SENSORS:
        want, got = multiset(expected[table]), table_multiset(box.pg, box.schema, table)
        assert got == want, f"{table}: {describe_difference(want, got)}"
        assert box.pg.distinct(box.schema, table) == box.pg.count(box.schema, table)
    states = stored_states(box.pg.port)
    assert set(states) == {shard_state_id(0), shard_state_id(1)}
    for index in range(2):
        mine = {p for p in PARTICIPANTS if in_shard(p, index, 2)}
        assert sensor_marks(states[shard_state_id(index)]) == dict.fromkeys(SENSORS, mine)
    when_loaded = dt.datetime.fromisoformat(
        states[shard_state_id(0)]["bookmarks"]["sensor_gps"]["participants"]["102"]
    )
    assert when_loaded == when(LATER_END)


def test_the_kubernetes_command_runs_n_shards_at_once_each_in_its_own_project_copy(
    orchestrated: Orchestrated,
) -> None:
    """orchestrate/k8s/run-shard.sh as the Indexed Job's pods run it: JOB_COMPLETION_INDEX
    k of SHARD_COUNT 2, each in its own copy of the project, the state shared."""
    box = orchestrated
    with isolated_names(box.pg, "k8s") as schema:
        env = {
            **box.env(),
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
            "MELTANO": str(MELTANO),
            "SHARD_COUNT": "2",
        }
        pods = []
        for index in range(2):
            project = project_copy(box.work / f"pod{index}")
            shutil.copytree(
                ROOT / "orchestrate",
                project / "orchestrate",
                symlinks=True,
                ignore=shutil.ignore_patterns(".venv", "__pycache__"),
            )
            pods.append(
                subprocess.Popen(
                    ["bash", "orchestrate/k8s/run-shard.sh"],
                    cwd=project,
                    env={**env, "JOB_COMPLETION_INDEX": str(index)},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for pod in pods:
            _, err = pod.communicate(timeout=300)
            assert pod.returncode == 0, err[-3000:]
        assert_same_tables(box.pg, box.reference.schema, schema, TABLES)
        states = stored_states(box.pg.port, "dev:tap-avicenna-to-target-postgres:shard%")
        assert len(states) == 2, sorted(states)
        for index in range(2):
            state = states[f"dev:tap-avicenna-to-target-postgres:shard{index}"]
            mine = {p for p in PARTICIPANTS if in_shard(p, index, 2)}
            assert sensor_marks(state) == dict.fromkeys(SENSORS, mine)
