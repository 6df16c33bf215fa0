"""Change the number of shards without losing or re-exporting anything.

    .venv/bin/python -m orchestrate.reshard 2      # run between two syncs, never during one

Reads every current shard's state from meltano's system database, rewrites meltano.yml's
shard plugins for the new count, and gives every new shard the union of the old shards'
sensor bookmarks (the tap drops the bookmarks of participants outside its shard at
start); the participants and survey streams, which only shard 0 syncs, keep shard 0's
state. Exports in flight are dropped (a sync that was interrupted exports those windows
again). The old shards' state ids beyond the new count are cleared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import typing as t
from pathlib import Path

from orchestrate.plan import ROOT, plan_shards, shard_entries

State = dict[str, t.Any]


def merge(states: t.Sequence[State]) -> State:
    """The old shards' Singer states (shard 0 first) as one: sensor streams' participant
    bookmarks united (the earlier one when two shards hold one participant), every other
    stream as shard 0 had it, no export in flight."""
    bookmarks: dict[str, State] = {}
    for number, state in enumerate(states):
        for stream, stream_state in (state.get("bookmarks") or {}).items():
            marks = stream_state.get("participants")
            if not isinstance(marks, dict):
                if number == 0:
                    bookmarks[stream] = dict(stream_state)
                continue
            merged = bookmarks.setdefault(
                stream, {"participants": {}, "data_source_id": stream_state.get("data_source_id")}
            )
            if merged["data_source_id"] != stream_state.get("data_source_id"):
                continue  # bookmarks of another data source under this name: start over
            for member, value in marks.items():
                old = merged["participants"].get(member)
                merged["participants"][member] = value if old is None else min(old, value)
    for stream_state in bookmarks.values():
        stream_state.pop("pending_exports", None)
    return {"bookmarks": bookmarks}


def shard_lines(text: str, count: int) -> str:
    """meltano.yml's text with its shard plugin lines replaced by `count` shards'."""
    lines = text.splitlines(keepends=True)
    at = [i for i, line in enumerate(lines) if re.search(r"name: tap-avicenna--shard\d+\b", line)]
    if not at or at != list(range(at[0], at[-1] + 1)):
        raise SystemExit("reshard: meltano.yml's shard plugins must be one block of lines")
    indent = lines[at[0]][: len(lines[at[0]]) - len(lines[at[0]].lstrip())]
    new = [
        f"{indent}- {{name: {e['name']}, inherit_from: {e['inherit_from']}, config: "
        f"{{shard_count: {count}, shard_index: {e['config']['shard_index']}}}}}\n"
        for e in shard_entries(count)
    ]
    return "".join(lines[: at[0]] + new + lines[at[-1] + 1 :])


class Meltano:
    """`meltano state` commands in one project."""

    def __init__(self, project: Path, environment: str) -> None:
        self.project = project
        self.environment = environment
        self.executable = os.environ.get("MELTANO", str(ROOT / ".venv" / "bin" / "meltano"))

    def state(self, *args: str) -> str:
        done = subprocess.run(
            [self.executable, "--environment", self.environment, "state", *args],
            cwd=self.project,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"reshard: meltano state {args[0]} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def get(self, state_id: str) -> State:
        """The Singer state of `state_id` ({} when there is none)."""
        return dict(json.loads(self.state("get", state_id)).get("singer_state") or {})


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, help="the new number of shards")
    parser.add_argument("--project", type=Path, default=ROOT, help="the meltano project")
    parser.add_argument("--environment", default="dev")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("the number of shards must be 1 or more")
    meltano_yml = args.project / "meltano.yml"
    old = plan_shards(meltano_yml)
    meltano = Meltano(args.project, args.environment)
    merged = merge([meltano.get(shard.state_id(args.environment)) for shard in old])
    meltano_yml.write_text(shard_lines(meltano_yml.read_text(encoding="utf-8"), args.count))
    new = plan_shards(meltano_yml)
    for shard in new:
        mine = (
            merged
            if shard.index == 0
            else {
                "bookmarks": {
                    stream: state
                    for stream, state in merged["bookmarks"].items()
                    if "participants" in state
                }
            }
        )
        state_id = shard.state_id(args.environment)
        meltano.state("set", "--force", state_id, json.dumps({"singer_state": mine}))
        print(f"reshard: {state_id} <- {len(old)} old shards' bookmarks", file=sys.stderr)
    for shard in old[len(new) :]:
        meltano.state("clear", "--force", shard.state_id(args.environment))
        print(f"reshard: {shard.state_id(args.environment)} cleared", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
