"""The fast RECORD path writes what singer-sdk's own record loop writes, and keeps
what the SDK promises: field selection, stream maps, flattening and state."""

from __future__ import annotations

import typing as t
from pathlib import Path

from tap_avicenna.simulator import Simulator
from tests.conftest import catalog_file, run_tap, tap_config

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
    simulator: Simulator, tmp_path: Path
) -> None:
    """Flattening (nothing to flatten here) sends records through the SDK's own loop."""
    (tmp_path / "fast").mkdir()
    (tmp_path / "sdk").mkdir()
    fast = run_tap(tmp_path / "fast", small(simulator))
    flattening = small(simulator, flattening_enabled=True, flattening_max_depth=1)
    sdk = run_tap(tmp_path / "sdk", flattening)
    assert fast.returncode == sdk.returncode == 0, fast.stderr[-2000:] + sdk.stderr[-2000:]
    assert fast.records(STREAM) and fast.records(STREAM) == sdk.records(STREAM)
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
