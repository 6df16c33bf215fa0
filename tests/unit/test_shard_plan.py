"""Shards planned from meltano.yml, their states merged on resharding, and the tap's
dropping of bookmarks outside its shard."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrate.plan import ROOT, ShardPlanError, plan_shards, shard_entries
from orchestrate.reshard import merge, shard_lines
from tap_avicenna.bookmarks import drop_other_participants


def test_meltano_yml_plans_three_shards_with_their_state_ids() -> None:
    shards = plan_shards()
    assert [(s.index, s.count, s.plugin) for s in shards] == [
        (k, 3, f"tap-avicenna--shard{k}") for k in range(3)
    ]
    assert shards[1].state_id() == "dev:tap-avicenna--shard1-to-target-postgres"


def write_project(tmp_path: Path, extractors: list[dict[str, object]]) -> Path:
    path = tmp_path / "meltano.yml"
    path.write_text(yaml.safe_dump({"plugins": {"extractors": extractors}}))
    return path


def test_a_shard_count_that_is_not_the_number_of_shard_plugins_is_refused(
    tmp_path: Path,
) -> None:
    entries = shard_entries(3)[:2]  # two plugins that say shard_count 3
    with pytest.raises(ShardPlanError, match="shard_count must be 2"):
        plan_shards(write_project(tmp_path, entries))
    with pytest.raises(ShardPlanError, match="inherit_from"):
        plan_shards(write_project(tmp_path, [{**shard_entries(1)[0], "inherit_from": "x"}]))


def test_resharding_rewrites_the_shard_lines_only(tmp_path: Path) -> None:
    text = (ROOT / "meltano.yml").read_text()
    rewritten = shard_lines(text, 2)
    path = tmp_path / "meltano.yml"
    path.write_text(rewritten)
    assert [(s.index, s.count) for s in plan_shards(path)] == [(0, 2), (1, 2)]
    assert len(text.splitlines()) - len(rewritten.splitlines()) == 1


def sensor(marks: dict[str, str], **extra: object) -> dict[str, object]:
    return {"participants": marks, "data_source_id": 10, **extra}


def test_merged_state_unites_sensor_bookmarks_and_keeps_shard_0s_other_streams() -> None:
    old = [
        {
            "bookmarks": {
                "sensor_gps": sensor({"102": "B", "105": "C"}, pending_exports={"k": 7}),
                "survey_daily": {"covered_until": {"all": "S"}, "activity_id": 5678},
            }
        },
        {"bookmarks": {"sensor_gps": sensor({"101": "A", "102": "A"})}},
    ]
    assert merge(old) == {
        "bookmarks": {
            "sensor_gps": sensor({"101": "A", "102": "A", "105": "C"}),
            "survey_daily": {"covered_until": {"all": "S"}, "activity_id": 5678},
        }
    }


def test_the_tap_drops_bookmarks_of_participants_outside_its_shard() -> None:
    state = {"bookmarks": {"sensor_gps": sensor({"101": "A", "102": "B", "104": "C"})}}
    assert drop_other_participants(state, lambda p: p % 3 == 2) == 1
    assert state == {"bookmarks": {"sensor_gps": sensor({"101": "A", "104": "C"})}}


def test_the_tap_drops_row_digests_of_participants_outside_its_shard_not_surveys() -> None:
    gps = {**sensor({"101": "A", "102": "B"}), "day_digests": {"101": ["d"], "102": ["d"]}}
    daily = {"covered_until": {"all": "S"}, "day_digests": {"all": ["d"]}}
    state = {"bookmarks": {"sensor_gps": gps, "survey_daily": daily}}
    assert drop_other_participants(state, lambda p: p % 2 == 1) == 1
    assert state["bookmarks"]["sensor_gps"]["day_digests"] == {"101": ["d"]}
    assert state["bookmarks"]["survey_daily"]["day_digests"] == {"all": ["d"]}
