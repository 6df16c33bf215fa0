"""Scale-out: N tap processes, each a shard of the study's participants."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tap_avicenna.simulator import Simulator
from tests.conftest import multiset, run_tap, tap_config


def test_given_3_shards_when_each_synced_then_together_exactly_one_unsharded_run(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = tap_config(
        simulator,
        data_sources=[{"id": 30, "name": "battery"}],
        surveys=[{"activity_id": 5678, "name": "daily", "columns": ["Q2"]}],
        end_date="2025-01-15T00:00:00Z",
    )
    del config["participant_ids"]  # from the participation export, in every shard
    (tmp_path / "all").mkdir()
    whole = run_tap(tmp_path / "all", config)
    assert whole.returncode == 0, whole.stderr[-2000:]

    union: dict[str, Counter[tuple[tuple[str, object], ...]]] = {}
    for index in range(3):
        (tmp_path / str(index)).mkdir()
        shard = run_tap(tmp_path / str(index), {**config, "shard_count": 3, "shard_index": index})
        assert shard.returncode == 0, shard.stderr[-2000:]
        for stream in ("sensor_battery", "survey_daily", "participants"):
            union.setdefault(stream, Counter()).update(multiset(shard.records(stream)))
        marks = shard.last_state["bookmarks"]["sensor_battery"]["participants"]
        assert marks and all(int(p) % 3 == index for p in marks)
        if index:
            assert not shard.records("participants") and not shard.records("survey_daily")
    for stream in ("sensor_battery", "survey_daily", "participants"):
        assert whole.records(stream)
        assert union[stream] == multiset(whole.records(stream)), stream
