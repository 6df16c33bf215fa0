"""BATCH output: files written straight from the export, and state that only claims rows
in files already announced."""

from __future__ import annotations

import gzip
import json
import typing as t
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tap_avicenna.simulator import Simulator
from tests.conftest import multiset, run_tap
from tests.integration.test_resilience import (
    STREAM,
    assert_states_claim_only_emitted,
    expected,
    small_config,
)


def expand(messages: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """BATCH messages replaced by RECORD messages of the rows in their files."""
    out: list[dict[str, t.Any]] = []
    for message in messages:
        if message["type"] != "BATCH":
            out.append(message)
            continue
        for url in message["manifest"]:
            data = Path(urlsplit(url).path).read_bytes()
            if url.endswith(".gz"):
                data = gzip.decompress(data)
            out.extend(
                {"type": "RECORD", "stream": message["stream"], "record": json.loads(line)}
                for line in data.splitlines()
            )
    return out


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_given_batch_config_when_synced_then_files_hold_exact_rows_and_state_follows_them(
    simulator: Simulator, tmp_path: Path, compression: str
) -> None:
    config = small_config(
        simulator,
        batch_config={
            "encoding": {"format": "jsonl", "compression": compression},
            "storage": {"root": f"file://{tmp_path}/batches", "prefix": "b-"},
            "batch_size": 1000,
        },
    )
    (tmp_path / "batches").mkdir()
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    kinds = [m["type"] for m in run.messages if m.get("stream", STREAM) == STREAM]
    assert "RECORD" not in kinds and kinds.count("BATCH") == 4  # one per export
    batches = [m for m in run.messages if m["type"] == "BATCH"]
    assert sum(len(m["manifest"]) for m in batches) > 4  # files of at most 1,000 rows
    messages = expand(run.messages)
    rows = expected(simulator, config)
    assert multiset(m["record"] for m in messages if m["type"] == "RECORD"
                    and m["stream"] == STREAM) == multiset(rows)  # fmt: skip
    assert assert_states_claim_only_emitted(messages, rows) > 0
    marks = run.last_state["bookmarks"][STREAM]["participants"]
    assert set(marks.values()) == {"2025-01-11T00:00:00.000000+00:00"}
