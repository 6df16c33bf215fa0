"""`python -m tap_avicenna`."""

from tap_avicenna.tap import TapAvicenna

TapAvicenna.cli()
