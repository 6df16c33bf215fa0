"""The package as users install it: the wheel built from the tracked files, installed
(not editable) into a fresh virtual environment in a temporary folder, run from there.

Nothing of this checkout reaches those processes: no PYTHONPATH, not its .venv on PATH,
and their working folder is outside it. The simulator is the installed package's own
`tap-avicenna-simulator`; the expected rows come from the simulator of this checkout,
which is deterministic (same data set, same seed).

E2e (it runs in the one process of the e2e tests): the wheel is built once per test run
(`package_build` in tests/e2e/conftest.py) and shared with
tests/e2e/test_meltano_project.py.
"""

from __future__ import annotations

import datetime as dt
import json
import tarfile
import typing as t
import zipfile
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import pytest

from tap_avicenna.simulator import Simulator, default_config
from tests.conftest import API_KEY, STUDY_ID, USERNAME, multiset
from tests.e2e.conftest import (
    ROOT,
    Done,
    PackageBuild,
    new_venv,
    outside_env,
    run,
    simulator_process,
    tracked_files,
)

pytestmark = pytest.mark.e2e

SOURCES = {"sensor_gps": 10, "sensor_battery": 30}
SETTINGS: dict[str, t.Any] = {
    "username": USERNAME,
    "api_key": API_KEY,
    "study_id": STUDY_ID,
    "start_date": "2025-01-01T00:00:00Z",
    "end_date": "2025-01-03T00:00:00Z",
    "participant_ids": [101, 102],
    "data_sources": [{"id": 10, "name": "gps"}, {"id": 30, "name": "battery"}],
    "poll_interval_seconds": 0.1,
}


@pytest.fixture(scope="module")
def installed(package_build: PackageBuild, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh virtual environment with the wheel installed."""
    return new_venv(tmp_path_factory.mktemp("installed") / "venv", package_build.wheel)


def in_venv(bin_dir: Path, *args: str | Path, what: str) -> Done:
    """Run `args` (a program of `bin_dir`) from the venv's parent folder; it must exit 0."""
    done = run(
        [bin_dir / str(args[0]), *args[1:]],
        env=outside_env(path_first=bin_dir),
        what=what,
        cwd=bin_dir.parent.parent,
    )
    assert done.returncode == 0, done.tail()
    return done


def test_given_built_wheel_then_it_holds_every_tracked_file_of_the_package(
    package_build: PackageBuild,
) -> None:
    """Every module and data file of tap_avicenna/ and tap_avicenna_report/ (git
    ls-files) is in the wheel and in the sdist, so a subpackage or data file left out
    fails here."""
    with zipfile.ZipFile(package_build.wheel) as wheel:
        in_wheel = set(wheel.namelist())

    with tarfile.open(package_build.sdist) as sdist:
        root = sdist.getnames()[0].split("/", 1)[0]
        in_sdist = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    package = tracked_files("tap_avicenna") + tracked_files("tap_avicenna_report")
    assert "tap_avicenna/datasources.json" in package and "tap_avicenna/py.typed" in package
    assert [name for name in package if name not in in_wheel] == []
    assert [name for name in package if name not in in_sdist] == []
    assert root == f"tap_avicenna-{version('tap-avicenna')}"
    assert {"LICENSE", "README.md", "pyproject.toml"} <= in_sdist
    dist_info = f"tap_avicenna-{version('tap-avicenna')}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in in_wheel
    # only the packages (tests, scripts, benchmarks, orchestrate and transform stay out)
    assert {name.split("/", 1)[0] for name in in_wheel} == {
        "tap_avicenna",
        "tap_avicenna_report",
        dist_info,
    }


def test_given_built_artifacts_then_twine_check_passes(package_build: PackageBuild) -> None:
    """What a package index would show: the metadata and the README render."""
    done = run(
        [
            ROOT / ".venv" / "bin" / "twine",
            "check",
            "--strict",
            package_build.sdist,
            package_build.wheel,
        ],
        env=outside_env(),
        what="twine check",
        cwd=package_build.wheel.parent,
    )
    assert done.returncode == 0, done.tail()
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_given_wheel_installed_outside_checkout_then_about_reports_installed_version(
    installed: Path,
) -> None:
    located = in_venv(
        installed,
        "python",
        "-c",
        "import tap_avicenna; print(tap_avicenna.__file__)",
        what="import",
    )
    assert Path(located.stdout.strip()).is_relative_to(installed.parent), located.stdout
    about = json.loads(
        in_venv(installed, "tap-avicenna", "--about", "--format=json", what="about").stdout
    )
    assert about["version"] == version("tap-avicenna")  # the checkout's pyproject.toml version
    assert "activate-version" not in about["capabilities"]
    assert {"catalog", "discover", "state", "about", "test", "batch"} <= set(about["capabilities"])
    assert "api_key" in about["settings"]["properties"]
    markdown = in_venv(installed, "tap-avicenna", "--about", "--format=markdown", what="about md")
    assert "gps" in markdown.stdout  # the known data sources: datasources.json is installed


def test_given_wheel_installed_without_the_report_extra_when_report_runs_then_one_line_says_so(
    installed: Path,
) -> None:
    done = run(
        [installed / "tap-avicenna-report", "--help"],
        env=outside_env(path_first=installed),
        what="report without its extra",
        cwd=installed.parent.parent,
    )
    assert done.returncode == 1, done.tail()
    assert done.stderr.strip().splitlines() == [
        "tap-avicenna-report needs the `report` extra: pip install 'tap-avicenna[report]'"
    ], done.tail()


def test_given_wheel_installed_outside_checkout_when_syncing_its_simulator_then_exact_rows(
    installed: Path,
) -> None:
    """`--discover`, then a short sync against the installed simulator: the rows of
    every sensor stream are the simulator's, each once."""
    folder = installed.parent.parent
    with simulator_process(installed, folder) as url:
        config = folder / "config.json"
        config.write_text(json.dumps({**SETTINGS, "api_url": url}))
        found = in_venv(
            installed, "tap-avicenna", "--config", config, "--discover", what="discover"
        )
        catalog = json.loads(found.stdout)
        streams = {entry["tap_stream_id"] for entry in catalog["streams"]}
        assert set(SOURCES) | {"participants"} <= streams
        synced = in_venv(installed, "tap-avicenna", "--config", config, what="sync")
    messages = [json.loads(line) for line in synced.stdout.splitlines()]
    records: dict[str, list[dict[str, t.Any]]] = {}
    for message in messages:
        if message["type"] == "RECORD":
            records.setdefault(message["stream"], []).append(message["record"])
    expected_sim = Simulator(default_config())
    for stream, source_id in SOURCES.items():
        expected = expected_sim.expected_rows(
            STUDY_ID,
            source_id,
            SETTINGS["participant_ids"],
            dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
            dt.datetime(2025, 1, 3, tzinfo=dt.timezone.utc),
        )
        assert expected, stream
        assert multiset(records[stream]) == multiset(expected), stream
    assert Counter(m["type"] for m in messages)["STATE"] >= 1
    assert set(messages[-1]["value"]["bookmarks"]) >= set(SOURCES)
