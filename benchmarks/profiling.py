"""`python -m benchmarks.profiling [--rows N] [--top K]`: cProfile of one tap sync.

The same scenario as the sensor RECORD benchmark (one ready export, served from the
simulator's cache), run under `python -m cProfile`; prints the top entries by
cumulative and by own time. Profiling slows the tap down: read shares, not rates.
"""

from __future__ import annotations

import argparse
import io
import json
import pstats
import sys
import tempfile
from pathlib import Path

from benchmarks.common import catalog_selecting, run_child, set_workdir
from benchmarks.sensor import PARTICIPANT, SOURCE_ID, STREAM, tap_config
from benchmarks.simulation import WEEK_SECONDS, WarmSimulator, fetch_sensor_file, sensor_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling")
    parser.add_argument("--rows", type=int, default=1_008_000, help="about this many rows")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path, help="keep the pstats file here")
    args = parser.parse_args(argv)
    interval = WEEK_SECONDS / args.rows
    with (
        tempfile.TemporaryDirectory(prefix="tap-avicenna-profile-") as tmp,
        WarmSimulator(sensor_config(interval_seconds=interval)) as sim,
    ):
        workdir = Path(tmp)
        set_workdir(workdir)
        fetch_sensor_file(
            sim, workdir / "warm.zip", source_id=SOURCE_ID, participant_ids=[PARTICIPANT]
        )
        config = tap_config(sim.url)
        catalog = catalog_selecting(workdir, "profile", config, STREAM)
        config_path = workdir / "config.json"
        config_path.write_text(json.dumps(config))
        out = args.out or workdir / "tap.pstats"
        command = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "tap_avicenna"]
        run = run_child([*command, "--config", str(config_path), *catalog])
        if run.returncode != 0:
            print(run.tail(), file=sys.stderr)
            return 1
        print(f"tap under cProfile: {run.wall_seconds:.1f}s wall, rows {run.rows_by_stream()}")
        for order in ("cumulative", "tottime"):
            text = io.StringIO()
            stats = pstats.Stats(str(out), stream=text)
            stats.strip_dirs().sort_stats(order).print_stats(args.top)
            print(f"--- top {args.top} by {order} ---")
            print(text.getvalue().split("\n\n", 2)[-1].strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
