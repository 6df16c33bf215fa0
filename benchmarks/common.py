"""Running the tap as a measured child process and reading what it logged."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

USERNAME = "researcher@example.com"
API_KEY = "sim-secret-key-0123456789"
STUDY_ID = 1234
TAP_TIMEOUT_SECONDS = 1800.0

_SYNC_COMPLETE = re.compile(r"(\S+): sync complete, ([\d,]+) rows emitted")
_POLL = re.compile(r"Status poll #(\d+): (\d+) list requests? for (\d+) pending export")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \|")


class RunFailed(Exception):
    """A measured run did not do its job (exit code, record count): the benchmark fails."""


def auth_header() -> dict[str, str]:
    return {"Authorization": f"ApiKey {USERNAME}:{API_KEY}"}


def base_tap_config(api_url: str, **overrides: t.Any) -> dict[str, t.Any]:
    """Settings every scenario shares; the scenario adds its streams and sizes."""
    config: dict[str, t.Any] = {
        "api_url": api_url,
        "username": USERNAME,
        "api_key": API_KEY,
        "study_id": STUDY_ID,
        "start_date": "2025-01-01T00:00:00Z",
        "end_date": "2025-01-08T00:00:00Z",
        "export_window_days": 7,
        "lookback_days": 0,
        "poll_interval_seconds": 0.2,
    }
    config.update(overrides)
    return config


@dataclass
class TapRun:
    """One finished child process: exit code, wall time and its own resource usage."""

    command: list[str]
    returncode: int
    wall_seconds: float
    max_rss_bytes: int
    user_seconds: float
    system_seconds: float
    stderr: str
    stdout_path: Path | None = None

    @property
    def max_rss_mb(self) -> float:
        return self.max_rss_bytes / 1e6

    def rows_by_stream(self) -> dict[str, int]:
        """Rows per stream from the `<stream>: sync complete, N rows emitted` lines."""
        found: dict[str, int] = {}
        for match in _SYNC_COMPLETE.finditer(self.stderr):
            found[match.group(1)] = found.get(match.group(1), 0) + int(
                match.group(2).replace(",", "")
            )
        return found

    def polls(self) -> list[tuple[int, int]]:
        """(list requests, pending exports) of each `Status poll #N` line."""
        return [(int(m.group(2)), int(m.group(3))) for m in _POLL.finditer(self.stderr)]

    def log_time(self, needle: str, last: bool = False) -> dt.datetime | None:
        """Timestamp of the first (or last) log line containing `needle`."""
        lines = [line for line in self.stderr.splitlines() if needle in line]
        if not lines:
            return None
        match = _STAMP.match(lines[-1] if last else lines[0])
        if match is None:
            return None
        return dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")

    def stream_seconds(self) -> float | None:
        """From the last file on disk to the last `sync complete` (log timestamps): the
        tail of the run that only parses and emits, when the export was the last one."""
        downloaded = self.log_time("Downloaded export", last=True)
        done = self.log_time("sync complete", last=True)
        if downloaded is None or done is None:
            return None
        return max((done - downloaded).total_seconds(), 1e-3)

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.stderr.splitlines()[-lines:])


def tap_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tap_avicenna", *args]


LAUNCHER = Path(__file__).resolve().parent / "launch.py"


def run_child(
    command: list[str],
    *,
    stdout_path: Path | None = None,
    timeout: float = TAP_TIMEOUT_SECONDS,
    env: t.Mapping[str, str] | None = None,
) -> TapRun:
    """Run `command` through `launch.py`: its wall time and its own peak RSS.

    The launcher forks the command from a small fresh process and reads its rusage
    with wait4 (see launch.py for why the benchmark process must not be its parent).
    stdout goes to /dev/null unless `stdout_path` is given.
    """
    environment = {**os.environ, "TAP_AVICENNA_LOGLEVEL": "INFO", **(env or {})}
    stdout_target = stdout_path if stdout_path is not None else Path(os.devnull)
    stem = _child_stem()
    result_path = stem.with_suffix(".result.json")
    with (
        open(stdout_target, "wb") as stdout,
        open(stem.with_suffix(".stderr"), "w+b") as stderr,
    ):
        process = subprocess.Popen(
            [sys.executable, "-S", str(LAUNCHER), str(result_path), *command],
            stdout=stdout,
            stderr=stderr,
            env=environment,
            start_new_session=True,  # a timeout kills the launcher and the command
        )
        timer = threading.Timer(timeout, _kill_group, args=(process.pid,))
        timer.start()
        try:
            process.wait()
        finally:
            timer.cancel()
        stderr.seek(0)
        text = stderr.read().decode("utf-8", errors="replace")
    if not result_path.exists():
        raise RunFailed(f"{' '.join(command[:4])}: no result (timed out?); stderr:\n{text[-2000:]}")
    result = json.loads(result_path.read_text())
    result_path.unlink()
    if not _STDERR_DIR:  # no working directory to keep it in
        stem.with_suffix(".stderr").unlink(missing_ok=True)
    return TapRun(
        command=command,
        returncode=int(result["returncode"]),
        wall_seconds=float(result["wall_seconds"]),
        max_rss_bytes=int(result["max_rss_kib"]) * 1024,  # Linux reports KiB
        user_seconds=float(result["user_seconds"]),
        system_seconds=float(result["system_seconds"]),
        stderr=text,
        stdout_path=stdout_path,
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


_STDERR_DIR: list[Path] = []


def set_workdir(path: Path) -> None:
    _STDERR_DIR[:] = [path]


def _child_stem() -> Path:
    base = _STDERR_DIR[0] if _STDERR_DIR else Path(tempfile.gettempdir())
    return base / f"child-{time.monotonic_ns()}"


def run_tap(
    workdir: Path,
    name: str,
    config: t.Mapping[str, t.Any],
    *args: str,
    stdout_path: Path | None = None,
) -> TapRun:
    """`python -m tap_avicenna --config <name>.json [args]`."""
    config_path = workdir / f"{name}.json"
    config_path.write_text(json.dumps(config))
    return run_child(tap_command("--config", str(config_path), *args), stdout_path=stdout_path)


def catalog_selecting(
    workdir: Path, name: str, config: t.Mapping[str, t.Any], prefix: str
) -> list[str]:
    """`--catalog <file>` arguments selecting only the streams whose id starts with `prefix`
    (a default sync also runs e.g. the participants stream, whose export is not measured)."""
    catalog_path = workdir / f"{name}.catalog.json"
    run = run_tap(workdir, f"{name}.discover", config, "--discover", stdout_path=catalog_path)
    require_success(run, f"{name} discovery")
    catalog = json.loads(catalog_path.read_text())
    chosen = 0
    for stream in catalog.get("streams", []):
        selected = str(stream.get("tap_stream_id", "")).startswith(prefix)
        chosen += selected
        for entry in stream.get("metadata", []):
            if not entry.get("breadcrumb"):
                entry.setdefault("metadata", {})["selected"] = selected
    if not chosen:
        raise RunFailed(f"{name}: discovery shows no stream starting with {prefix!r}")
    catalog_path.write_text(json.dumps(catalog))
    return ["--catalog", str(catalog_path)]


def require_success(run: TapRun, what: str) -> None:
    if run.returncode != 0:
        raise RunFailed(f"{what}: tap exited with {run.returncode}; stderr tail:\n{run.tail()}")


def require_rows(run: TapRun, what: str, expected: int, prefix: str = "") -> int:
    """The rows the tap says it emitted (streams starting with `prefix`) must be `expected`."""
    by_stream = {s: n for s, n in run.rows_by_stream().items() if s.startswith(prefix)}
    if not by_stream:
        raise RunFailed(f"{what}: no 'sync complete, N rows emitted' line on the tap's stderr")
    emitted = sum(by_stream.values())
    if emitted != expected:
        raise RunFailed(f"{what}: tap emitted {emitted:,} rows, the simulator serves {expected:,}")
    return emitted


def median_wall(command: list[str], repeats: int) -> tuple[float, list[float]]:
    """Median wall time of `repeats` runs of `command` (each must exit 0)."""
    walls: list[float] = []
    for _ in range(repeats):
        run = run_child(command)
        require_success(run, " ".join(command[-3:]))
        walls.append(run.wall_seconds)
    return statistics.median(walls), walls
