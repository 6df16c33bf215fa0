"""Shared fixtures: a running simulator, the tap run as a process of its own (or in this
process), and a check that no test's output ever shows the API key, the Authorization
header or a download URL."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import io
import json
import logging
import os
import signal
import sys
import threading
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tap_avicenna.load_time import EXTRACTED_AT
from tap_avicenna.simulator import Simulator, SimulatorConfig, default_config
from tests import forked_tap

USERNAME = "researcher@example.com"
API_KEY = "sim-secret-key-0123456789"
STUDY_ID = 1234
SECRET_MARKERS = (API_KEY, "ApiKey ", "/media/exports/")

_OUTPUTS: list[tuple[str, str]] = []


def _assert_no_secrets(outputs: list[tuple[str, str]]) -> None:
    for what, text in outputs:
        for marker in SECRET_MARKERS:
            assert marker not in text, f"{marker!r} leaked into {what}"


@pytest.fixture(autouse=True)
def no_secrets_in_outputs(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> t.Iterator[None]:
    """After each test, everything it gathered is checked for secrets: the stdout,
    stderr and state of every tap run (also those of wider-scoped fixtures, which run
    before this one: nothing is cleared before the check), the tap's log records in this
    process, and the messages of singer-sdk's in-process suite."""
    caplog.set_level(logging.INFO, logger="tap-avicenna")
    yield
    if "runner" in request.fixturenames:  # singer-sdk's suite: the tap ran in this process
        messages = getattr(request.getfixturevalue("runner"), "raw_messages", [])
        _OUTPUTS.append(("singer-sdk suite messages", json.dumps(messages)))
    records = caplog.get_records("setup") + caplog.get_records("call")
    _OUTPUTS.append(("log records", "\n".join(record.getMessage() for record in records)))
    outputs = list(_OUTPUTS)
    _OUTPUTS.clear()
    _assert_no_secrets(outputs)


@pytest.fixture(autouse=True, scope="session")
def no_secrets_left_unchecked() -> t.Iterator[None]:
    """Outputs gathered after the last test's check (fixture teardowns)."""
    yield
    _assert_no_secrets(_OUTPUTS)


def make_simulator(config: SimulatorConfig | None = None, **settings: t.Any) -> Simulator:
    config = config or default_config()
    config.port = 0
    sim = Simulator(config).start()
    sim.configure(**{"pending_seconds": 0.05, "processing_delay": 0.3, **settings})
    return sim


@pytest.fixture
def simulator() -> t.Iterator[Simulator]:
    with make_simulator() as sim:
        yield sim


@pytest.fixture(scope="module")
def simulator_module() -> t.Iterator[Simulator]:
    """One simulator for the tests of a module."""
    with make_simulator() as sim:
        yield sim


def tap_config(sim: Simulator, **overrides: t.Any) -> dict[str, t.Any]:
    config: dict[str, t.Any] = {
        "api_url": sim.url,
        "username": USERNAME,
        "api_key": API_KEY,
        "study_id": STUDY_ID,
        "start_date": "2025-01-01T00:00:00Z",
        "end_date": "2025-01-31T00:00:00Z",
        "participant_ids": [101, 102, 103, 104, 105],
        "data_sources": [{"id": 10, "name": "gps"}, {"id": 20, "name": "accelerometer"}],
        "export_window_days": 7,
        "participants_per_export": 2,
        "max_concurrent_exports": 4,
        "poll_interval_seconds": 0.1,
    }
    config.update(overrides)
    return config


def unstamped(records: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The records without `_extracted_at` (the download time, which differs between
    runs), once every record is shown to carry one as a UTC instant."""
    for record in records:
        assert dt.datetime.fromisoformat(record[EXTRACTED_AT]).utcoffset() == dt.timedelta(0)
    return [{k: v for k, v in r.items() if k != EXTRACTED_AT} for r in records]


def batch_file_rows(url: str) -> list[dict[str, t.Any]]:
    """The records in one BATCH file (JSON lines, gzip'd or not, or Parquet)."""
    path = Path(urlsplit(url).path)
    if ".parquet" in path.name:
        import pyarrow.parquet as pq

        return t.cast(list[dict[str, t.Any]], pq.read_table(path).to_pylist())
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.splitlines()]


def expand_batches(messages: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """Messages with each BATCH message replaced by RECORD messages of its files' rows."""
    out: list[dict[str, t.Any]] = []
    for message in messages:
        if message["type"] != "BATCH":
            out.append(message)
            continue
        for url in message["manifest"]:
            out.extend(
                {"type": "RECORD", "stream": message["stream"], "record": record}
                for record in batch_file_rows(url)
            )
    return out


@dataclass
class TapRun:
    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, t.Any]] = field(default_factory=list)

    def records(self, stream: str | None = None) -> list[dict[str, t.Any]]:
        """RECORD messages' records, and the rows of BATCH messages' files in their place."""
        return [
            m["record"]
            for m in expand_batches(self.messages)
            if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)
        ]

    def states(self) -> list[dict[str, t.Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    def schemas(self, stream: str) -> list[dict[str, t.Any]]:
        return [m for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream]

    @property
    def last_state(self) -> dict[str, t.Any]:
        return self.states()[-1]

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if "| ERROR" in line]


def run_tap(
    tmp_path: Path,
    config: dict[str, t.Any],
    state: dict[str, t.Any] | None = None,
    *args: str,
    timeout: float = 300,
) -> TapRun:
    """Run `python -m tap_avicenna` as a process of its own (forked after its imports:
    tests/forked_tap.py) and parse what it printed."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    command = ["--config", str(config_path), *args]
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state))
        command += ["--state", str(state_path)]
    env = {**os.environ, "TAP_AVICENNA_LOGLEVEL": "INFO"}
    done = forked_tap.run(command, env=env, timeout=timeout)
    return _parsed(done.returncode, done.stdout, done.stderr)


@contextlib.contextmanager
def _tap_in_this_process() -> t.Iterator[None]:
    """Puts back what a tap run changes in the process it runs in: the SIGINT/SIGTERM
    handlers (a tap made in the main thread installs its own), the root logger's
    handlers and level, `sys.excepthook` and warnings capture."""
    main = threading.current_thread() is threading.main_thread()
    signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    root = logging.getLogger()
    handlers, level, hook = list(root.handlers), root.level, sys.excepthook
    try:
        yield
    finally:
        for signum, handler in signals.items():
            signal.signal(signum, handler)
        root.handlers[:] = handlers
        root.setLevel(level)
        sys.excepthook = hook
        logging.captureWarnings(False)


def _parsed(returncode: int, stdout: str, stderr: str) -> TapRun:
    _OUTPUTS.extend([("stdout", stdout), ("stderr", stderr)])
    messages = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"type"')]
    return TapRun(returncode, stdout, stderr, messages)


def cli_in_process(tmp_path: Path, config: dict[str, t.Any] | Path, *args: str) -> TapRun:
    """`tap-avicenna --config <config> ARGS` run by its click command in this process
    (stdout and stderr captured, exit code from SystemExit): what the CLI prints and
    its exit code, without a process start. `config` is a settings object (written to
    tmp_path/config.json) or a path given as it is."""
    from tap_avicenna.tap import TapAvicenna

    if isinstance(config, Path):
        path = config
    else:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
    out, err = io.BytesIO(), io.StringIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    code: int = 0
    with _tap_in_this_process(), contextlib.redirect_stdout(stdout):
        with contextlib.redirect_stderr(err):
            command = TapAvicenna.cli  # its console log handler writes to `err`
            try:
                command.main(["--config", str(path), *args], prog_name="tap-avicenna")
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        stdout.flush()
    return _parsed(code, out.getvalue().decode(), err.getvalue())


def sync_in_process(
    config: dict[str, t.Any],
    state: dict[str, t.Any] | None = None,
    catalog: Path | None = None,
) -> TapRun:
    """A sync by the tap in this process, as its CLI runs one (`TapAvicenna(...)
    .sync_all()`), with what it writes to stdout and logs: quicker than `run_tap` where
    the process boundary proves nothing more. An exception propagates."""
    from singer_sdk.logging import ConsoleFormatter

    from tap_avicenna.tap import TapAvicenna

    out, err = io.BytesIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(ConsoleFormatter())
    logger = logging.getLogger("tap-avicenna")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    try:
        with _tap_in_this_process(), contextlib.redirect_stdout(stdout):
            tap = TapAvicenna(  # copies: the tap changes its config and state in place
                config=json.loads(json.dumps(config)),
                state=None if state is None else json.loads(json.dumps(state)),
                catalog=None if catalog is None else json.loads(catalog.read_text()),
            )
            tap.sync_all()
            stdout.flush()
        text = out.getvalue().decode()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return _parsed(0, text, err.getvalue())


def catalog_file(
    tmp_path: Path, config: dict[str, t.Any], stream: str, deselect: t.Sequence[str] = ()
) -> Path:
    """The tap's own `--discover` catalog with only `stream` selected, and its `deselect`
    fields not; written to `tmp_path/discover/catalog.json`."""
    folder = tmp_path / "discover"
    folder.mkdir(parents=True, exist_ok=True)
    found = run_tap(folder, config, None, "--discover")
    assert found.returncode == 0, found.stderr[-3000:]
    catalog = json.loads(found.stdout)
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] == stream
            elif meta["breadcrumb"] in [["properties", name] for name in deselect]:
                meta["metadata"]["selected"] = False
    path = folder / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def sensor_exports(sim: Simulator) -> list[dict[str, t.Any]]:
    """The study's sensor exports (not the participation or survey ones)."""
    return [e for e in sim.exports(STUDY_ID) if e["export_type"] == "data_source"]


# --- comparing rows ------------------------------------------------------------------


def _canon(value: t.Any) -> t.Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return text


PARTICIPANT_ALIASES = {"user_id": "participant_id"}


def row_key(row: t.Mapping[str, t.Any]) -> tuple[tuple[str, t.Any], ...]:
    """A row as comparable content: names normalised, values canonical, nulls dropped."""
    return tuple(
        sorted(
            (PARTICIPANT_ALIASES.get(name, name), _canon(value))
            for name, value in row.items()
            if value not in (None, "") and not name.startswith("_")
        )
    )


def multiset(rows: t.Iterable[t.Mapping[str, t.Any]]) -> Counter[tuple[tuple[str, t.Any], ...]]:
    return Counter(row_key(row) for row in rows)


def expected_sensor_rows(
    sim: Simulator, config: t.Mapping[str, t.Any], source_id: int, start: str | None = None
) -> list[dict[str, str]]:
    def when(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

    return sim.expected_rows(
        config["study_id"],
        source_id,
        config["participant_ids"],
        when(start or config["start_date"]),
        when(config["end_date"]),
    )
