"""The study-health report: one offline HTML page drawn from the dbt marts of transform/.

Kept apart from the tap (`tap_avicenna` never imports it): `tap-avicenna-report`, from the
`report` extra (plotly, duckdb, psycopg).
"""

import importlib.util

if importlib.util.find_spec("plotly") is None:
    raise SystemExit(
        "tap-avicenna-report needs the `report` extra: pip install 'tap-avicenna[report]'"
    )
