"""singer-sdk's standard tap tests (`get_tap_test_class`) against the simulator."""

from __future__ import annotations

import atexit

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_avicenna.tap import TapAvicenna
from tests.conftest import make_simulator, tap_config

_SIMULATOR = make_simulator()
atexit.register(_SIMULATOR.stop)

TestTapAvicenna = get_tap_test_class(
    tap_class=TapAvicenna,
    config=tap_config(
        _SIMULATOR,
        end_date="2025-01-04T00:00:00Z",
        participant_ids=[101, 102],
        data_sources=[
            {"id": 10, "name": "gps"},
            {"id": 20, "name": "accelerometer"},
            {"id": 30, "name": "battery"},
        ],
    ),
    suite_config=SuiteConfig(max_records_limit=200),
)
