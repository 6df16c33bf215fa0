"""scripts/pg-test.sh from a folder made by someone else: the benchmarks' throwaway server."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from benchmarks.pipeline import test_postgres as throwaway_postgres

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_benchmarks_start_their_own_server_in_an_empty_temporary_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`python -m benchmarks --only pipeline` without PGTEST_PORT starts a server in a
    fresh `mkdtemp` folder; pg-test.sh refused it ("was not made by pg-test.sh; left
    alone") until an empty folder counted as nothing to protect."""
    monkeypatch.delenv("PGTEST_PORT", raising=False)
    with throwaway_postgres() as pg, pg.connect() as connection:
        assert connection.execute("select 1").fetchone() == (1,)
        folder = connection.execute("show unix_socket_directories").fetchone()
    assert folder is not None
    assert not Path(folder[0]).exists()  # stopped and removed


def test_a_folder_with_files_it_did_not_make_is_left_alone(tmp_path: Path) -> None:
    """A PGTEST_DIR holding anything pg-test.sh did not make is never used or removed."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "precious.txt").write_text("keep me")
    env = {**os.environ, "PGTEST_DIR": str(folder), "PGTEST_PORT": "1"}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "pg-test.sh"), "start"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "was not made by pg-test.sh; left alone" in done.stderr
    assert (folder / "precious.txt").read_text() == "keep me"
