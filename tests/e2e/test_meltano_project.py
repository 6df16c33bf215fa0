"""A user's own Meltano project: the README's "Add it to your Meltano project" commands,
run as written in a temporary folder outside the checkout, then the Hub definition
pasted into a fresh project's meltano.yml.

What the test changes in the commands, and nothing else: `/path/to/tap-avicenna` is this
checkout (only its Hub definition is read), `/path/to/tap_avicenna-<version>-py3-none-
any.whl` the wheel built from it (`package_build` in tests/e2e/conftest.py; the README's
file name must be the current version's) and port 18080 a free one. The commands run one
by one in bash; `cd` moves the folder the next ones run in, a command ending in `&` runs in the
background (the next one starts once it listens on its `--port`) and `kill %N` stops the
N-th of those; a heredoc is one command with its body. `meltano` is this checkout's (the
only thing on PATH from it), as a user's own meltano install would be; the tap runs in
the virtualenv meltano makes for it from the wheel.

E2e: meltano and uv install the plugins (from uv's cache after the first run).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import sqlite3
import subprocess
import typing as t
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from tap_avicenna.simulator import Simulator, default_config
from tests.conftest import STUDY_ID, multiset
from tests.e2e.conftest import MELTANO, ROOT, Done, PackageBuild, outside_env, run
from tests.e2e.test_readme_commands import Checkout, free_port, start_background

pytestmark = pytest.mark.e2e

SECTION = "Add it to your Meltano project"
CHECKOUT_PLACEHOLDER = "/path/to/tap-avicenna"
WHEEL_PLACEHOLDER = re.compile(r"/path/to/(tap_avicenna-[^ ]+\.whl)")
SIM_PORT = "18080"
HEREDOC = re.compile(r"<<'(\w+)'")
_FENCE = re.compile(r"```bash\n(.*?)```", re.S)
# the README's settings: the simulator's study, two participants, two sources, two days
SOURCES = {"sensor_gps": 10, "sensor_battery": 30}
PARTICIPANTS = [101, 102]
START, END = (
    dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
    dt.datetime(2025, 1, 3, tzinfo=dt.timezone.utc),
)
DUCKDB_ROWS = """
import datetime as dt, json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
out = {}
for (table,) in con.execute(
    "select table_name from information_schema.tables where table_schema = 'avicenna'"
).fetchall():
    cur = con.execute(f'select * from avicenna."{table}"')
    names = [d[0] for d in cur.description]
    out[table] = [
        {n: (v.isoformat() if isinstance(v, dt.datetime) else v) for n, v in zip(names, row)}
        for row in cur.fetchall()
    ]
print(json.dumps(out, default=str))
"""


def section_commands() -> list[str]:
    """The commands of the section's bash blocks: one per line, a heredoc with its body
    as one; comment lines dropped."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split(f"\n## {SECTION}\n", 1)[1].split("\n## ", 1)[0]
    commands: list[str] = []
    for block in _FENCE.findall(section):
        lines = iter(block.splitlines())
        for line in lines:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            heredoc = HEREDOC.search(line)
            if heredoc:
                body = []
                for more in lines:
                    body.append(more)
                    if more == heredoc.group(1):
                        break
                line = "\n".join([line, *body])
            commands.append(line)
    return commands


@dataclass
class Shell:
    """The commands' shell: its folder, environment, background jobs and outputs."""

    checkout: Checkout  # `path` is the folder the next command runs in
    jobs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    done: list[Done] = field(default_factory=list)

    def run(self, command: str) -> None:
        code = command.split(" #", 1)[0].strip() if "\n" not in command else command
        killed = re.fullmatch(r"kill %(\d+)", code)
        if code.startswith("cd "):
            self.checkout.path = self.checkout.path / code[3:].strip()
        elif code.endswith("&"):
            self.jobs.append(start_background(self.checkout, code[:-1].strip()))
        elif killed:
            job = self.jobs[int(killed.group(1)) - 1]
            job.terminate()
            assert job.wait(timeout=60) == 0, f"`{code}`"
        else:
            done = run(
                ["bash", "-o", "pipefail", "-c", command],
                env=self.checkout.env,
                what=command.splitlines()[0],
                cwd=self.checkout.path,
            )
            print(f"{done.seconds:6.1f}s  {done.what}")
            assert done.returncode == 0, done.tail()
            self.done.append(done)

    def close(self) -> None:
        for job in self.jobs:
            job.kill()
            job.wait()


@dataclass(frozen=True)
class UserProject:
    """The project the README's commands made, and what they printed."""

    path: Path
    env: dict[str, str]
    done: list[Done]


def user_env(tmp: Path) -> dict[str, str]:
    """A user's shell: their own `meltano` on PATH (this checkout's, alone)."""
    tools = tmp / "tools"
    tools.mkdir()
    (tools / "meltano").symlink_to(MELTANO)
    return outside_env(path_first=tools)


@pytest.fixture(scope="module")
def user_project(
    package_build: PackageBuild, tmp_path_factory: pytest.TempPathFactory
) -> t.Iterator[UserProject]:
    """Run the README section's commands in a temporary folder."""
    commands = section_commands()
    wheels = {match.group(1) for c in commands for match in WHEEL_PLACEHOLDER.finditer(c)}
    assert wheels == {package_build.wheel.name}, (
        f"the README names {wheels}, the build {package_build.wheel}"
    )
    assert any(c.startswith("meltano run tap-avicenna target-duckdb") for c in commands)
    tmp = tmp_path_factory.mktemp("user")
    port = str(free_port())
    substitutions = {
        f"/path/to/{package_build.wheel.name}": str(package_build.wheel),
        CHECKOUT_PLACEHOLDER: str(ROOT),
        SIM_PORT: port,
    }
    shell = Shell(Checkout(tmp, {SIM_PORT: port}, user_env(tmp)))
    try:
        for written in commands:
            command = written
            for placeholder, value in substitutions.items():
                command = command.replace(placeholder, value)
            shell.run(command)
    finally:
        shell.close()
    yield UserProject(shell.checkout.path, shell.checkout.env, shell.done)


def emitted(done: list[Done]) -> dict[str, int]:
    runs = [d for d in done if d.what.startswith("meltano run")]
    assert len(runs) == 1
    return runs[0].emitted()


def test_given_readme_commands_when_run_as_written_then_duckdb_holds_the_exact_rows(
    user_project: UserProject,
) -> None:
    project = user_project.path
    assert project.parent.name.startswith("user") and not project.is_relative_to(ROOT)
    python = project / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
    dumped = run(
        [python, "-c", DUCKDB_ROWS, project / "output" / "warehouse.duckdb"],
        env=user_project.env,
        what="read duckdb",
        cwd=project,
    )
    assert dumped.returncode == 0, dumped.tail()
    tables: dict[str, list[dict[str, t.Any]]] = json.loads(dumped.stdout)
    assert set(tables) == {"participants", *SOURCES}
    sim = Simulator(default_config())
    for stream, source_id in SOURCES.items():
        expected = sim.expected_rows(STUDY_ID, source_id, PARTICIPANTS, START, END)
        assert expected, stream
        assert multiset(tables[stream]) == multiset(expected), stream
    counts = emitted(user_project.done)
    assert {name: len(rows) for name, rows in tables.items()} == counts
    # meltano kept the state for the next run, under the project's own state id
    with contextlib.closing(sqlite3.connect(project / ".meltano" / "meltano.db")) as db:
        state_ids = [str(row[0]) for row in db.execute("select state_id from state")]
    assert state_ids == ["dev:tap-avicenna-to-target-duckdb"]
    # the tap came from the wheel, not from this checkout
    installed = project / ".meltano" / "extractors" / "tap-avicenna" / "venv"
    pth_files = installed.glob("lib/python*/site-packages/*.pth")
    assert not [pth for pth in pth_files if str(ROOT) in pth.read_text()]
    assert list(installed.glob("lib/python*/site-packages/tap_avicenna/parsing/__init__.py"))


def test_given_hub_definition_pasted_into_a_fresh_meltano_yml_then_the_plugin_works(
    user_project: UserProject, package_build: PackageBuild, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The definition as it is, `pip_url` aside (the wheel), under `plugins: extractors:`
    of a new project's meltano.yml: meltano installs it without the Hub and the tap
    reports the installed version and the settings the definition declares."""
    definition = yaml.safe_load(
        (ROOT / "meltano-hub" / "extractors" / "tap-avicenna" / "avicenna.yml").read_text()
    )
    project = tmp_path_factory.mktemp("pasted")
    meltano_yml = {
        "default_environment": "dev",
        "project_id": "pasted-definition",
        "send_anonymous_usage_stats": False,
        "environments": [{"name": "dev"}],
        "plugins": {"extractors": [{**definition, "pip_url": str(package_build.wheel)}]},
    }
    (project / "meltano.yml").write_text(yaml.safe_dump(meltano_yml, sort_keys=False))
    env = user_project.env

    def meltano(*args: str) -> Done:
        done = run(["meltano", *args], env=env, what=f"meltano {args[0]}", cwd=project)
        assert done.returncode == 0, done.tail()
        return done

    # `invoke` installs the plugin first (meltano's auto_install)
    about = json.loads(meltano("invoke", "tap-avicenna", "--about", "--format=json").stdout)
    assert about["version"] == version("tap-avicenna")
    listed = meltano("config", "list", "--all", "tap-avicenna").stdout
    declared = set(re.findall(r"^(\w+) \[env: TAP_AVICENNA_\w+\]", listed, re.M))
    # meltano keeps the Hub's own fields (keywords, quality, ...) as `_`-named extras
    extras = {f"_{key}" for key in ("domain_url", "keywords", "maintenance_status", "quality")}
    assert declared == {s["name"] for s in definition["settings"]} | extras
    assert "Required settings: api_key, start_date, study_id, username" in listed
