"""Every command of the README's "Using it" section, and the dbt commands of "Analysis-
ready data (dbt)", run as written.

The commands run in a scratch checkout: the repository's tracked files (linked), the
virtual environment and the installed meltano plugins of this one, and a fresh meltano
system database, so a run never touches the developer's state or files. The only
change to what the README says is its two ports, 18080 (simulator) and 55432
(PostgreSQL), replaced everywhere (commands, meltano.yml, sample_config.json) by free
ones, so that the test never meets a server the developer started. A command ending
in `&` is started in the background and the next one runs once it listens on its
`--port`; `kill %N` stops the N-th of them. A block preceded by an HTML comment
starting with "not run by tests" is skipped (it needs the real Avicenna). The dbt
commands run after the load, before the README stops PostgreSQL; `meltano invoke
dbt-duckdb build` reads output/warehouse.duckdb, which the demo writes: the test loads
it first the way the demo does (`meltano run --no-state-update tap-avicenna
target-duckdb`, the first three days only). dbt's target/ and logs/ go to the test's
folder (DBT_TARGET_PATH, DBT_LOG_PATH), not into transform/. Afterwards the checkout
holds nothing the commands wrote but in output/ and .meltano/ (no config.json, no
state file in its root).

Needs PostgreSQL's binaries (the README's `pg-test.sh start` starts its own server),
hence the e2e mark; PGTEST_PORT is not used.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.e2e.conftest import EMITTED, PG_DB, PG_HOST, PG_PASSWORD, PG_USER, ROOT, record_output

pytestmark = pytest.mark.e2e

README_PORTS = {"18080": "simulator", "55432": "postgres"}
OPT_OUT = "<!-- not run by tests"
SCHEMA = "avicenna"  # meltano.yml's default_target_schema
COMMAND_TIMEOUT = 300
_FENCE = re.compile(r"```bash\n(.*?)```", re.S)
_FOREIGN_ENV = ("TAP_AVICENNA_", "TARGET_", "MELTANO_", "PGTEST_")


def readme_commands(heading: str = "Using it") -> list[str]:
    """The command lines of the bash blocks of a section that are not opted out."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    commands: list[str] = []
    for match in _FENCE.finditer(section):
        before = section[: match.start()].rstrip().splitlines()
        if before and before[-1].startswith(OPT_OUT):
            continue
        lines = [line.strip() for line in match.group(1).splitlines()]
        commands += [line for line in lines if line and not line.startswith("#")]
    return commands


def tracked() -> list[str]:
    return subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()


def run_dbt_commands(checkout: Checkout, commands: list[str]) -> None:
    """The README's dbt commands, as written; the DuckDB one after the demo's load."""
    for command in commands:
        if "dbt-duckdb" in command:
            load = (
                "TAP_AVICENNA_END_DATE=2025-01-04T00:00:00Z .venv/bin/meltano run "
                "--no-state-update tap-avicenna target-duckdb"
            )
            run_command(checkout, load)
        run_command(checkout, checkout.substitute(command))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Checkout:
    """A scratch copy of the repository after `bash scripts/setup.sh`."""

    path: Path
    ports: dict[str, str]  # README port -> the port used here
    env: dict[str, str]

    def substitute(self, text: str) -> str:
        for written, used in self.ports.items():
            text = text.replace(written, used)
        return text


def make_checkout(tmp_path: Path, pg_dir: Path) -> Checkout:
    ports = {written: str(free_port()) for written in README_PORTS}
    path = tmp_path / "checkout"
    path.mkdir()
    checkout = Checkout(path, ports, {})
    for name in sorted({entry.split("/", 1)[0] for entry in tracked()}):
        source = ROOT / name
        if source.is_file() and any(port in source.read_text() for port in ports):
            (path / name).write_text(checkout.substitute(source.read_text()))
        else:
            (path / name).symlink_to(source)
    (path / ".venv").symlink_to(ROOT / ".venv")
    (path / "output").mkdir()
    (path / ".meltano").mkdir()
    for kind in ("extractors", "loaders", "utilities"):
        (path / ".meltano" / kind).symlink_to(ROOT / ".meltano" / kind)
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}
    env.update(
        DBT_TARGET_PATH=str(tmp_path / "dbt" / "target"),
        DBT_LOG_PATH=str(tmp_path / "dbt" / "logs"),
        PGTEST_DIR=str(pg_dir),
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        MELTANO_CLI_DISABLE_VERSION_CHECK="true",
    )
    checkout.env = env
    return checkout


@dataclass(frozen=True)
class Ran:
    command: str
    returncode: int
    stdout: str
    stderr: str

    def emitted(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for match in EMITTED.finditer(self.stderr):
            counts[match.group(1)] += int(match.group(2).replace(",", ""))
        return counts


def run_command(checkout: Checkout, command: str) -> Ran:
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=checkout.path,
        env=checkout.env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    record_output(command, done.stdout, done.stderr)
    print(f"{time.monotonic() - started:6.1f}s  {command}")
    ran = Ran(command, done.returncode, done.stdout, done.stderr)
    assert ran.returncode == 0, f"`{command}` exited {ran.returncode}:\n{ran.stderr[-4000:]}"
    return ran


def start_background(checkout: Checkout, command: str) -> subprocess.Popen[bytes]:
    """Start `command` and return once it listens on its `--port`."""
    port = int(re.search(r"--port (\d+)", command).group(1))  # type: ignore[union-attr]
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=checkout.path,
        env=checkout.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while True:
        assert proc.poll() is None, f"`{command}` exited {proc.returncode}"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        assert time.monotonic() < deadline, f"`{command}` never listened on {port}"
        time.sleep(0.05)


def table_counts(port: int) -> dict[str, int]:
    with psycopg.connect(
        host=PG_HOST, port=port, user=PG_USER, password=PG_PASSWORD, dbname=PG_DB
    ) as conn:
        tables = [
            str(name)
            for (name,) in conn.execute(
                "select table_name from information_schema.tables where table_schema = %s",
                (SCHEMA,),
            )
        ]
        counts = {}
        for table in tables:
            query = sql.SQL("select count(*) from {}").format(sql.Identifier(SCHEMA, table))
            row = conn.execute(query).fetchone()
            assert row is not None
            counts[table] = int(row[0])
        return counts


def test_given_fresh_checkout_when_readme_commands_run_as_written_then_each_works(
    tmp_path: Path,
) -> None:
    commands = readme_commands()
    assert any("meltano run tap-avicenna target-postgres" in c for c in commands)
    assert any("--state output/state.json" in c for c in commands)
    dbt_commands = readme_commands("Analysis-ready data (dbt)")
    assert any("dbt-postgres:build" in c for c in dbt_commands)
    # Not under tmp_path: the server runs as the `postgres` user when the tests run as
    # root, and pytest's folders are private to their owner.
    pg_dir = Path("/tmp") / f"pgtest-readme-{uuid.uuid4().hex[:12]}"
    checkout = make_checkout(tmp_path, pg_dir)
    pg_port = int(checkout.ports["55432"])
    background: list[subprocess.Popen[bytes]] = []
    ran: list[Ran] = []
    try:
        for written in commands:
            command = checkout.substitute(written)
            code = command.split(" #", 1)[0].strip()
            killed = re.fullmatch(r"kill %(\d+)", code)
            if code.endswith("&"):
                background.append(start_background(checkout, code[:-1].strip()))
            elif killed:
                proc = background[int(killed.group(1)) - 1]
                proc.terminate()
                assert proc.wait(timeout=60) == 0, f"`{code}`"
            else:
                if "pg-test.sh stop" in code:
                    assert_loaded(checkout, ran, table_counts(pg_port))
                    run_dbt_commands(checkout, dbt_commands)
                ran.append(run_command(checkout, command))
        assert not pg_dir.exists()  # the README's stop command removed it
        left = {p.name for p in checkout.path.iterdir()} - {p.split("/")[0] for p in tracked()}
        assert left == {".venv", ".meltano", "output"}, "the README's commands left files"
    finally:
        for proc in background:
            proc.kill()
            proc.wait()
        subprocess.run(
            ["bash", "scripts/pg-test.sh", "stop"],
            cwd=checkout.path,
            env={**checkout.env, "PGTEST_PORT": str(pg_port)},
            capture_output=True,
            check=False,
        )


def assert_loaded(checkout: Checkout, ran: list[Ran], counts: dict[str, int]) -> None:
    """PostgreSQL holds every row of the full meltano sync once, after the Singer runs
    loaded some of the same rows again (sample_config.json is the dev environment's
    first week); the resumed run, from the state the target wrote, exported less."""
    full = next(r for r in ran if "meltano run" in r.command).emitted()
    assert full and all(full.values()), full
    assert counts == dict(full)
    singer = [
        r
        for r in ran
        if r.command.startswith(".venv/bin/tap-avicenna --config") and "|" in r.command
    ]
    first, resumed = singer
    assert "--state" in resumed.command and "--state" not in first.command
    assert set(first.emitted()) == set(full)
    assert all(0 < n <= full[stream] for stream, n in first.emitted().items())
    assert sum(resumed.emitted().values()) < sum(first.emitted().values())
    state = json.loads((checkout.path / "output" / "state.json").read_text())
    assert set(state["bookmarks"]) == set(full)
