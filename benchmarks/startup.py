"""Start-up: `tap-avicenna --about` and `--discover` (no network), median of N runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.common import base_tap_config, median_wall, tap_command
from benchmarks.report import Section

STARTUP_GOAL_SECONDS = 1.5
NO_NETWORK_URL = "http://127.0.0.1:9"  # discovery must not call it; nothing listens there


def tap_executable() -> list[str]:
    """The installed `tap-avicenna` script next to this interpreter (else `-m`)."""
    script = Path(sys.executable).parent / "tap-avicenna"
    return [str(script)] if script.exists() else tap_command()


def startup_section(workdir: Path, repeats: int) -> Section:
    section = Section("startup", f"6. Start-up: median wall time of {repeats} runs")
    config_path = workdir / "startup.json"
    config = base_tap_config(
        NO_NETWORK_URL,
        participant_ids=[101, 102],
        data_sources=[{"id": 10, "name": "gps"}, {"id": 20, "name": "accelerometer"}],
    )
    config_path.write_text(json.dumps(config))
    goal = f"< {STARTUP_GOAL_SECONDS} s"
    for label, key, args in (
        ("tap-avicenna --about", "about_seconds", ["--about"]),
        (
            "tap-avicenna --discover (no network)",
            "discover_seconds",
            ["--discover", "--config", str(config_path)],
        ),
    ):
        median, walls = median_wall([*tap_executable(), *args], repeats)
        section.add(
            label, median, "s", goal=goal, met=median < STARTUP_GOAL_SECONDS, key=key, digits=2
        )
        section.extra.setdefault("runs", {})[key] = [round(w, 3) for w in walls]
    return section
