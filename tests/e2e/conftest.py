"""End-to-end fixtures: a real PostgreSQL, meltano and target-postgres as subprocesses.

PostgreSQL is the throwaway server of `scripts/pg-test.sh` (user tap, password tap,
database tapdb on 127.0.0.1) on `PGTEST_PORT`, else on this checkout's port (`bash
scripts/pg-test.sh port`); `scripts/test.sh` starts it. Without a server there every
e2e test fails (it never skips): deselect them with `-m "not e2e"` instead.

Each pipeline gets its own PostgreSQL schema and its own meltano state id (a
`--state-id-suffix`), both removed afterwards, so tests never see each other's data.
Every subprocess output goes through the secret-leak check of tests/conftest.py.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import decimal
import functools
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import typing as t
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from tap_avicenna.simulator import Simulator
from tests.conftest import _OUTPUTS, API_KEY, SECRET_MARKERS, STUDY_ID, USERNAME, multiset

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
PYTHON = BIN / "python"
MELTANO = BIN / "meltano"
TAP = BIN / "tap-avicenna"
TARGET = ROOT / ".meltano" / "loaders" / "target-postgres" / "venv" / "bin" / "target-postgres"

PG_HOST, PG_USER, PG_PASSWORD, PG_DB = "127.0.0.1", "tap", "tap", "tapdb"
STATE_ID = "dev:tap-avicenna-to-target-postgres"
RUN_TIMEOUT = 300
EMITTED = re.compile(r"(\w+): sync complete, ([\d,]+) rows emitted")

# Environment variables of the calling shell that must not steer a test's pipeline.
_FOREIGN_ENV = ("TAP_AVICENNA_", "TARGET_POSTGRES_", "TARGET_DUCKDB_", "MELTANO_")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "e2e: end to end against a real PostgreSQL (needs PGTEST_PORT, see "
        "scripts/pg-test.sh); deselect with -m 'not e2e'",
    )


# --- subprocesses --------------------------------------------------------------------


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""


def record_output(what: str, *texts: str) -> None:
    """Hand output to the secret-leak check of tests/conftest.py, and check it right
    away too (the failure then names the command)."""
    for text in texts:
        _OUTPUTS.append((what, text))
        for marker in SECRET_MARKERS:
            assert marker not in text, f"{marker!r} leaked into {what}"


@dataclass(frozen=True)
class Done:
    """A finished subprocess."""

    what: str
    command: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def tail(self, chars: int = 4000) -> str:
        """The end of both outputs, for assertion messages."""
        return (
            f"{self.what}: `{self.command}` exited {self.returncode} after "
            f"{self.seconds:.1f}s\n--- stdout (tail)\n{self.stdout[-chars:]}\n"
            f"--- stderr (tail)\n{self.stderr[-chars:]}"
        )

    def emitted(self) -> dict[str, int]:
        """Rows per stream from the tap's "sync complete, N rows emitted" log lines."""
        counts: Counter[str] = Counter()
        for match in EMITTED.finditer(self.stdout + self.stderr):
            counts[match.group(1)] += int(match.group(2).replace(",", ""))
        return dict(counts)


def run(
    command: t.Sequence[str | Path],
    *,
    env: t.Mapping[str, str],
    what: str,
    timeout: float = RUN_TIMEOUT,
    cwd: Path = ROOT,
) -> Done:
    """Run a command in `cwd` (the project root), capturing (and leak-checking) its
    output."""
    argv = [str(part) for part in command]
    shown = shlex.join(argv)
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        partial = Done(
            what, shown, -1, _text(exc.stdout), _text(exc.stderr), time.monotonic() - started
        )
        record_output(what, partial.stdout, partial.stderr)
        pytest.fail(f"timed out after {timeout:.0f}s\n{partial.tail()}", pytrace=False)
    result = Done(
        what, shown, done.returncode, done.stdout, done.stderr, time.monotonic() - started
    )
    record_output(what, result.stdout, result.stderr)
    return result


@functools.cache
def system_database() -> Path:
    """The meltano system database (state, runs) of the e2e tests' runs in the project
    of this checkout: a file of their own, deleted at exit, so that no test ever reads or
    writes the state of the developer's `dev` environment in .meltano/meltano.db."""
    folder = Path(tempfile.mkdtemp(prefix="tap-avicenna-e2e-meltano-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder / "meltano.db"


def base_env(pg_port: int) -> dict[str, str]:
    """The caller's environment without its tap/target/meltano settings, plus the
    PostgreSQL password and port, the tests' own meltano system database and meltano
    kept off the network."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}
    env.update(
        TARGET_POSTGRES_PASSWORD=PG_PASSWORD,
        TARGET_POSTGRES_PORT=str(pg_port),
        MELTANO_DATABASE_URI=f"sqlite:///{system_database()}",
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        MELTANO_CLI_DISABLE_VERSION_CHECK="true",
    )
    return env


def project_states() -> list[tuple[t.Any, ...]]:
    """Every row of the state table of this checkout's meltano system database (none
    when it has none yet)."""
    path = ROOT / ".meltano" / "meltano.db"
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        if not db.execute("select 1 from sqlite_master where name = 'state'").fetchone():
            return []
        return sorted(db.execute("select * from state").fetchall(), key=repr)


@pytest.fixture(scope="session", autouse=True)
def project_state_untouched() -> t.Iterator[None]:
    """No e2e test changes the state of this checkout's meltano project (the README's
    `meltano run tap-avicenna target-postgres` resumes from it)."""
    before = project_states()
    yield
    assert project_states() == before, "an e2e test wrote this checkout's meltano state"


def tap_env(settings: t.Mapping[str, t.Any]) -> dict[str, str]:
    """Tap settings as meltano's `TAP_AVICENNA_<SETTING>` environment variables."""
    return {
        f"TAP_AVICENNA_{name.upper()}": (
            json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        )
        for name, value in settings.items()
    }


# --- PostgreSQL ----------------------------------------------------------------------


@dataclass(frozen=True)
class Postgres:
    """The test server; every query opens its own short autocommit connection."""

    port: int

    def connect(self) -> psycopg.Connection[t.Any]:
        return psycopg.connect(
            host=PG_HOST,
            port=self.port,
            user=PG_USER,
            password=PG_PASSWORD,
            dbname=PG_DB,
            autocommit=True,
            connect_timeout=10,
        )

    def scalar(self, query: sql.SQL | sql.Composed) -> t.Any:
        with self.connect() as conn:
            row = conn.execute(query).fetchone()
        assert row is not None
        return row[0]

    def tables(self, schema: str) -> list[str]:
        with self.connect() as conn:
            rows = conn.execute(
                "select table_name from information_schema.tables "
                "where table_schema = %s order by table_name",
                (schema,),
            ).fetchall()
        return [str(name) for (name,) in rows]

    def count(self, schema: str, table: str) -> int:
        return int(
            self.scalar(sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table)))
        )

    def distinct(self, schema: str, table: str, column: str = "_row_id") -> int:
        query = sql.SQL("select count(distinct {}) from {}").format(
            sql.Identifier(column), sql.Identifier(schema, table)
        )
        return int(self.scalar(query))

    def row_ids(self, schema: str, table: str) -> set[str]:
        with self.connect() as conn:
            query = sql.SQL("select _row_id from {}").format(sql.Identifier(schema, table))
            return {str(row_id) for (row_id,) in conn.execute(query)}

    def rows(self, schema: str, table: str) -> list[dict[str, t.Any]]:
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql.SQL("select * from {}").format(sql.Identifier(schema, table)))
            return list(cur.fetchall())

    def column_types(self, schema: str, table: str) -> dict[str, str]:
        with self.connect() as conn:
            rows = conn.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = %s and table_name = %s",
                (schema, table),
            ).fetchall()
        return {str(name): str(kind) for name, kind in rows}

    def drop_schema(self, schema: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))


def pg_test(command: str) -> str:
    """What `bash scripts/pg-test.sh <command>` prints (`port`: this checkout's port)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "pg-test.sh"), command],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="session")
def pg() -> Postgres:
    """The running test PostgreSQL; fails (never skips) when it is not there, or when
    pytest-xdist runs tests in several processes: the e2e tests share this server and
    meltano's system database (.meltano/), so they run in one (`-n 0`)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")
    if workers != "1":
        pytest.fail(
            f"the e2e tests run in one process, not {workers} xdist workers: add `-n 0` "
            "(scripts/test.sh runs them so)",
            pytrace=False,
        )
    raw = os.environ.get("PGTEST_PORT", "").strip() or pg_test("port")
    if not raw.isdigit():
        pytest.fail(f"PGTEST_PORT must be a port number, got {raw!r}", pytrace=False)
    server = Postgres(int(raw))
    try:
        server.scalar(sql.SQL("select 1"))
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PGTEST_PORT={raw} but PostgreSQL on {PG_HOST}:{raw} (user {PG_USER}, "
            f"database {PG_DB}) is not reachable: {exc}\n"
            f"Start it with `PGTEST_PORT={raw} bash scripts/pg-test.sh start`, or run "
            "`bash scripts/test.sh`; deselect the e2e tests with -m 'not e2e'.",
            pytrace=False,
        )
    missing = [str(p.relative_to(ROOT)) for p in (MELTANO, TAP, TARGET) if not p.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run `bash scripts/setup.sh`", pytrace=False)
    return server


# --- one isolated pipeline -----------------------------------------------------------


def meltano(args: t.Sequence[str], pg_port: int, what: str) -> Done:
    return run([MELTANO, *args], env=base_env(pg_port), what=what)


@contextlib.contextmanager
def isolated_names(server: Postgres, label: str) -> t.Iterator[str]:
    """A fresh name for a PostgreSQL schema and a meltano state-id suffix; the schema
    and the state are removed afterwards."""
    name = f"e2e_{label}_{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        server.drop_schema(name)
        cleared = meltano(
            ["state", "clear", "--force", f"{STATE_ID}:{name}"], server.port, "meltano state clear"
        )
        if cleared.returncode != 0:
            print(f"could not clear meltano state:\n{cleared.tail(1000)}", file=sys.stderr)


@dataclass
class Pipeline:
    """`meltano run tap-avicenna target-postgres` with its own simulator, PostgreSQL
    schema (also the state-id suffix) and tap settings overriding meltano.yml's."""

    sim: Simulator
    pg: Postgres
    name: str
    settings: dict[str, t.Any] = field(default_factory=dict)

    @property
    def schema(self) -> str:
        return self.name

    @property
    def state_id(self) -> str:
        return f"{STATE_ID}:{self.name}"

    def env(self, **overrides: t.Any) -> dict[str, str]:
        settings = {"api_url": self.sim.url, **self.settings, **overrides}
        return {
            **base_env(self.pg.port),
            **tap_env(settings),
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": self.schema,
        }

    def meltano_run(self, **overrides: t.Any) -> Done:
        """Run the pipeline (state kept between runs); it must exit 0."""
        done = run(
            [MELTANO, "run", "--state-id-suffix", self.name, "tap-avicenna", "target-postgres"],
            env=self.env(**overrides),
            what=f"meltano run ({self.name})",
        )
        assert done.returncode == 0, done.tail()
        return done

    def state(self) -> dict[str, t.Any]:
        """The Singer state meltano stored for this pipeline."""
        done = meltano(["state", "get", self.state_id], self.pg.port, "meltano state get")
        assert done.returncode == 0, done.tail()
        return dict(json.loads(done.stdout)["singer_state"])

    def tap_config(self, **overrides: t.Any) -> dict[str, t.Any]:
        """The same settings as a tap config file (the credentials of meltano.yml's dev
        environment, which are the simulator's)."""
        return {
            "api_url": self.sim.url,
            "username": USERNAME,
            "api_key": API_KEY,
            "study_id": STUDY_ID,
            **self.settings,
            **overrides,
        }


# --- comparing rows ------------------------------------------------------------------


def canonical(row: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """A PostgreSQL row in the text forms tests.conftest.multiset canonicalises:
    timestamps (stored as UTC without time zone) as UTC instants, numerics as text."""
    out: dict[str, t.Any] = {}
    for name, value in row.items():
        if isinstance(value, dt.datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
            out[name] = aware.isoformat()
        elif isinstance(value, decimal.Decimal):
            out[name] = str(value)
        else:
            out[name] = value
    return out


def table_multiset(server: Postgres, schema: str, table: str) -> Counter[t.Any]:
    return multiset(canonical(row) for row in server.rows(schema, table))


def describe_difference(expected: Counter[t.Any], actual: Counter[t.Any], limit: int = 2) -> str:
    missing, extra = expected - actual, actual - expected
    return (
        f"{sum(missing.values())} expected row(s) missing, {sum(extra.values())} unexpected; "
        f"missing e.g. {list(missing)[:limit]}; unexpected e.g. {list(extra)[:limit]}"
    )


# --- the package as users install it --------------------------------------------------

UV = BIN / "uv"
# what must not reach a process of the installed package: this checkout on its path, or
# this checkout's virtual environment
_CHECKOUT_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")


def outside_env(*, path_first: Path | None = None) -> dict[str, str]:
    """The environment of a user's shell: no tap, target or meltano settings, nothing
    pointing into this checkout, meltano kept off the network; `path_first` (a venv's
    bin/) leads PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_FOREIGN_ENV) and k not in _CHECKOUT_ENV
    }
    paths = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))]
    if path_first is not None:
        paths.insert(0, str(path_first))
    env.update(
        PATH=os.pathsep.join(paths),
        UV_PYTHON_DOWNLOADS="never",
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        MELTANO_CLI_DISABLE_VERSION_CHECK="true",
    )
    return env


@dataclass(frozen=True)
class PackageBuild:
    """The sdist and the wheel of this checkout's tracked files."""

    sdist: Path
    wheel: Path


def tracked_files(under: str = "") -> list[str]:
    """`git ls-files` of the checkout (or of its folder `under`)."""
    done = subprocess.run(
        ["git", "ls-files", "-z", "--", under or "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(name for name in done.stdout.split("\0") if name)


@pytest.fixture(scope="session")
def package_build(tmp_path_factory: pytest.TempPathFactory) -> PackageBuild:
    """Build once per test run what a release uploads: a copy of the tracked files (a
    fresh clone's content; nothing left in this checkout's build/) to an sdist, and the
    wheel built from that sdist (`uv build`, as `python -m build` does)."""
    base = tmp_path_factory.mktemp("build")
    source = base / "source"
    for name in tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():  # a file deleted but not yet committed is skipped
            shutil.copy2(ROOT / name, target)
    dist = base / "dist"
    done = run(
        [UV, "build", "--python", PYTHON, "--out-dir", dist, source],
        env=outside_env(),
        what="uv build",
        cwd=base,
    )
    assert done.returncode == 0, done.tail()
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    return PackageBuild(sdist, wheel)


def new_venv(folder: Path, *requirements: str | Path) -> Path:
    """A fresh virtual environment at `folder` (this Python, no packages of this
    checkout) with `requirements` installed by uv; its bin/."""
    env = outside_env()
    made = run(
        [UV, "venv", "-q", "--python", PYTHON, folder], env=env, what="uv venv", cwd=folder.parent
    )
    assert made.returncode == 0, made.tail()
    installed = run(
        [UV, "pip", "install", "-q", "--python", folder / "bin" / "python", *requirements],
        env=env,
        what="uv pip install",
        cwd=folder.parent,
    )
    assert installed.returncode == 0, installed.tail()
    return folder / "bin"


@contextlib.contextmanager
def simulator_process(bin_dir: Path, cwd: Path) -> t.Iterator[str]:
    """`tap-avicenna-simulator` of `bin_dir` on a free port (default data set, exports
    ready after 0.1 s) until the block ends; its URL."""
    proc = subprocess.Popen(
        [str(bin_dir / "tap-avicenna-simulator"), "--port", "0", "--processing-delay", "0.1"],
        cwd=cwd,
        env=outside_env(path_first=bin_dir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        printed: list[str] = []
        # "Avicenna simulator listening on <url>" once it listens; EOF if it exits
        while not (listening := re.search(r"listening on (http://\S+)", "".join(printed))):
            line = proc.stderr.readline()
            assert line, f"tap-avicenna-simulator exited {proc.wait()}: {''.join(printed)}"
            printed.append(line)
        yield listening.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
