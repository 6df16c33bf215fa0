"""The fast RECORD path writes what singer-sdk's own record loop writes, and keeps
what the SDK promises: field selection, stream maps, flattening and state."""

from __future__ import annotations

import typing as t
from collections import Counter
from pathlib import Path

import pytest
from singer_sdk import Stream

from tap_avicenna.simulator import Simulator
from tap_avicenna.streams.base import ExportStream
from tests.conftest import catalog_file, run_tap, sync_in_process, tap_config, unstamped

STREAM = "sensor_gps"


def small(sim: Simulator, **extra: t.Any) -> dict[str, t.Any]:
    return tap_config(
        sim,
        participant_ids=[101, 102],
        data_sources=[{"id": 10, "name": "gps"}],
        end_date="2025-01-05T00:00:00Z",
        **extra,
    )


def test_given_flattening_on_when_synced_then_sdk_loop_writes_the_same_records(
    simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flattening (nothing to flatten here) sends records through the SDK's own loop,
    which writes the same messages as the fast path. Which loop wrote a stream's records
    is counted (the fast path per stream, the SDK's loop per record)."""
    loops: Counter[tuple[str, str]] = Counter()
    fast_records, write_record = ExportStream.fast_records, Stream._write_record_message

    def counted_fast(stream: ExportStream) -> t.Generator[dict[str, t.Any], t.Any, t.Any]:
        loops["fast", stream.name] += 1
        return fast_records(stream)

    def counted_sdk(stream: Stream, record: dict[str, t.Any]) -> None:
        loops["sdk", stream.name] += 1
        write_record(stream, record)

    monkeypatch.setattr(ExportStream, "fast_records", counted_fast)
    monkeypatch.setattr(Stream, "_write_record_message", counted_sdk)
    fast = sync_in_process(small(simulator))
    fast_loops = dict(loops)
    loops.clear()
    sdk = sync_in_process(small(simulator, flattening_enabled=True, flattening_max_depth=1))
    records = fast.records(STREAM)
    assert fast_loops == {("fast", "participants"): 1, ("fast", STREAM): 1}
    assert dict(loops) == {("sdk", "participants"): 5, ("sdk", STREAM): len(records)}
    assert records and unstamped(records) == unstamped(sdk.records(STREAM))
    assert fast.last_state["bookmarks"][STREAM] == sdk.last_state["bookmarks"][STREAM]
    keys = {tuple(m) for m in fast.messages if m["type"] == "RECORD"}
    assert keys == {("type", "stream", "record", "time_extracted")}


def test_given_deselected_field_when_synced_then_records_do_not_carry_it(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = small(simulator)
    path = catalog_file(tmp_path, config, STREAM, deselect=["speed"])
    run = run_tap(tmp_path, config, None, "--catalog", str(path))
    assert run.returncode == 0, run.stderr[-2000:]
    records = run.records(STREAM)
    assert records and all("speed" not in r and "lat" in r for r in records)
    assert {m["stream"] for m in run.messages if m["type"] == "RECORD"} == {STREAM}


def test_given_stream_map_when_synced_then_records_are_mapped_and_filtered(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = small(
        simulator,
        stream_maps={
            STREAM: {
                "__alias__": "gps_points",
                "__filter__": "provider == 'gps'",
                "position": "str(lat) + ',' + str(lon)",
                "speed": None,
            }
        },
    )
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-2000:]
    records = run.records("gps_points")
    assert records and not run.records(STREAM)
    assert all(r["provider"] == "gps" and "," in r["position"] for r in records)
    assert all("speed" not in r for r in records)
