"""The shards of meltano.yml: one inherited extractor `tap-avicenna--shard{k}` each.

Read without Dagster (the tests and reshard.py use it from the project's own venv).
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXTRACTOR = "tap-avicenna"
LOADER = "target-postgres"
SHARD_NAME = re.compile(rf"^{re.escape(EXTRACTOR)}--shard(\d+)$")


class ShardPlanError(ValueError):
    """meltano.yml's shard plugins do not make one consistent plan."""


@dataclass(frozen=True)
class Shard:
    """One shard: its inherited extractor and the state id `meltano run` gives it."""

    index: int
    count: int
    plugin: str

    def state_id(self, environment: str = "dev") -> str:
        return f"{environment}:{self.plugin}-to-{LOADER}"


def plan_shards(meltano_yml: Path = ROOT / "meltano.yml") -> list[Shard]:
    """The shard plugins of `meltano_yml`, in index order; each must inherit from
    tap-avicenna, its `shard_index` must be its name's k, and every `shard_count` must
    equal the number of shard plugins."""
    project = yaml.safe_load(meltano_yml.read_text(encoding="utf-8"))
    extractors: list[dict[str, t.Any]] = project.get("plugins", {}).get("extractors", [])
    shards = []
    for plugin in extractors:
        name = str(plugin.get("name", ""))
        match = SHARD_NAME.match(name)
        if match is None:
            continue
        if plugin.get("inherit_from") != EXTRACTOR:
            raise ShardPlanError(f"{name}: must have `inherit_from: {EXTRACTOR}`")
        config = plugin.get("config") or {}
        index, count = config.get("shard_index"), config.get("shard_count")
        if index != int(match.group(1)):
            raise ShardPlanError(f"{name}: shard_index is {index!r}, its name says {match[1]}")
        shards.append(Shard(index, count if isinstance(count, int) else 0, name))
    shards.sort(key=lambda shard: shard.index)
    if not shards:
        raise ShardPlanError(f"{meltano_yml}: no `{EXTRACTOR}--shard<k>` extractor")
    if [shard.index for shard in shards] != list(range(len(shards))):
        raise ShardPlanError(
            f"shard indexes {[shard.index for shard in shards]} are not 0..{len(shards) - 1}"
        )
    wrong = [shard.plugin for shard in shards if shard.count != len(shards)]
    if wrong:
        raise ShardPlanError(
            f"{', '.join(wrong)}: shard_count must be {len(shards)}, the number of shard plugins"
        )
    return shards


def shard_entries(count: int) -> list[dict[str, t.Any]]:
    """meltano.yml's extractor entries for `count` shards."""
    return [
        {
            "name": f"{EXTRACTOR}--shard{index}",
            "inherit_from": EXTRACTOR,
            "config": {"shard_count": count, "shard_index": index},
        }
        for index in range(count)
    ]
