"""``python -m tap_avicenna.simulator``."""

from .cli import main

raise SystemExit(main())
