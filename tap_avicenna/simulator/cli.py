"""Console script ``tap-avicenna-simulator``: run the simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .clock import parse_instant
from .config import PRESETS, SimulatorConfig, preset_config
from .server import Simulator


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="tap-avicenna-simulator",
        description="Serve a local stand-in for the Avicenna Data Export API.",
    )
    parser.add_argument("--port", type=int, default=None, help="port (0 = any free port)")
    parser.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    parser.add_argument("--config", help="JSON config file (see --print-config)")
    parser.add_argument("--preset", choices=PRESETS, help="built-in data set (default: default)")
    parser.add_argument(
        "--processing-delay", type=float, help="seconds until an export succeeds (default 1.0)"
    )
    parser.add_argument("--now", help="simulated start instant, ISO 8601 (default 2025-02-01)")
    parser.add_argument("--time-scale", type=float, help="simulated seconds per real second")
    parser.add_argument("--seed", type=int, help="seed for data and injected faults")
    parser.add_argument("--log-requests", action="store_true", help="log requests (redacted)")
    parser.add_argument(
        "--print-config", action="store_true", help="print the effective config as JSON and exit"
    )
    return parser


def load_config(args: argparse.Namespace) -> SimulatorConfig:
    """The config file (or preset) with command-line overrides applied."""
    if args.config:
        config = SimulatorConfig.from_json(args.config)
    else:
        config = preset_config(args.preset or "default")
    if args.port is not None:
        config.port = args.port
    if args.host is not None:
        config.host = args.host
    if args.processing_delay is not None:
        config.processing_delay = args.processing_delay
    if args.now is not None:
        config.now = parse_instant(args.now)
    if args.time_scale is not None:
        config.time_scale = args.time_scale
    if args.seed is not None:
        config.seed = args.seed
    if args.log_requests:
        config.log_requests = True
    config.validate()
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator; print one ``listening on`` line to stderr; exit 0 on a signal."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        parser.error(f"invalid configuration: {exc}")
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2, ensure_ascii=False))
        return 0
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        simulator = Simulator(config).start()
    except OSError as exc:
        print(f"tap-avicenna-simulator: cannot listen: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        print(f"Avicenna simulator listening on {simulator.url}", file=sys.stderr, flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        simulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
