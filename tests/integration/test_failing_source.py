"""A data source whose exports always fail ends its own stream, not the run's others."""

from __future__ import annotations

from pathlib import Path

from tap_avicenna.simulator import Simulator
from tests.conftest import expected_sensor_rows, multiset, run_tap, tap_config


def test_given_a_data_source_that_always_fails_when_synced_then_the_others_synced_exit_1(
    simulator: Simulator, tmp_path: Path
) -> None:
    """Was: the first stream's failing export ended the run; GPS, synced after it, was
    never loaded (on every run)."""
    simulator.faults.fail_data_sources = {20}
    config = tap_config(
        simulator,
        data_sources=[{"id": 20, "name": "accelerometer"}, {"id": 10, "name": "gps"}],
        end_date="2025-01-08T00:00:00Z",
    )
    run = run_tap(tmp_path, config)
    assert run.returncode == 1, run.stderr[-3000:]
    assert multiset(run.records("sensor_gps")) == multiset(
        expected_sensor_rows(simulator, config, 10)
    )
    assert not run.records("sensor_accelerometer")
    assert "sensor_accelerometer stops here: export #" in run.stderr
    errors = run.error_lines()
    assert len(errors) == 1, errors
    assert "sensor_accelerometer: export #" in errors[0]
    assert "failed at Avicenna on attempt 3 of 3" in errors[0]
    assert errors[0].endswith("every other stream was synced")
    assert run.last_state["bookmarks"]["sensor_gps"]["participants"]
