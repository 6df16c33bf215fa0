"""`python -m tap_avicenna_report`."""

import sys

from tap_avicenna_report.cli import main

sys.exit(main())
