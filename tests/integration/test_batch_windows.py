"""BATCH mode: a window closes in state only once the BATCH message announcing its files
is written, and a failed export leaves no file behind (the tap in this process)."""

from __future__ import annotations

import os
import signal
import typing as t
from pathlib import Path

import pytest
from singer_sdk import Stream

from tap_avicenna.simulator import Simulator
from tests.conftest import catalog_file, cli_in_process, expand_batches, tap_config
from tests.integration.test_batch import batch_config
from tests.integration.test_resilience import (
    STREAM,
    assert_states_claim_only_emitted,
    expected,
    small_config,
)


def test_given_a_signal_while_a_batch_message_is_written_when_stopped_then_state_claims_it(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the window closed before its BATCH message; a SIGTERM in between left a final
    STATE claiming rows that no message announced (never loaded)."""
    write = Stream._write_batch_message

    def signalled(self: Stream, *args: t.Any, **kwargs: t.Any) -> None:
        if self.name == STREAM:  # its first BATCH message
            os.kill(os.getpid(), signal.SIGTERM)
        write(self, *args, **kwargs)

    monkeypatch.setattr(Stream, "_write_batch_message", signalled)
    config = small_config(simulator, batch_config=batch_config(tmp_path / "b", "jsonl", "gzip"))
    run = cli_in_process(tmp_path, config)
    assert run.returncode == 143, run.stderr[-3000:]
    messages = expand_batches(run.messages)
    assert assert_states_claim_only_emitted(messages, expected(simulator, config)) > 0
    assert [m["stream"] for m in run.messages if m["type"] == "BATCH"][-1] == STREAM


SURVEY_FILE = (
    b"uuid,record_time,participant_id,Q3\n"
    b"u1,2025-01-01T10:00:00Z,101,a\n"
    b"u2,2025-01-01T11:00:00Z,101,b\n"
    b"u3,2025-01-01T12:00:00Z,101,c\n"
    b"u4,2025-01-01T13:00:00Z,101,d,e,f\n"
)


def test_given_a_survey_file_failing_after_batch_files_when_synced_then_its_files_deleted(
    simulator: Simulator, tmp_path: Path
) -> None:
    """Was: the row-by-row path (survey streams) left the files it had written before
    the broken line in the storage root."""
    root = tmp_path / "b"
    config = tap_config(
        simulator,
        end_date="2025-01-03T00:00:00Z",
        surveys=[{"activity_id": 5678, "name": "daily", "columns": ["participant_id", "Q3"]}],
        batch_config=batch_config(root, "jsonl", "none", size=1),
    )
    catalog = catalog_file(tmp_path, config, "survey_daily")
    simulator.faults.replace_next_files = [SURVEY_FILE]
    run = cli_in_process(tmp_path, config, "--catalog", str(catalog))
    assert run.returncode == 1, run.stderr[-3000:]
    assert "line 5" in run.stderr
    assert not any(m["type"] == "BATCH" for m in run.messages)
    assert list(root.iterdir()) == []
