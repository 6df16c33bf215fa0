"""Benchmarks of tap-avicenna against the local simulator: `python -m benchmarks`.

Measurements, not tests: a missed goal is reported, never asserted. A run that fails
(the tap exits non-zero, or emits a different number of records than the simulator
serves) makes the command exit non-zero. See benchmarks/README.md.
"""
