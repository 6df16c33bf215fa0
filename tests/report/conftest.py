"""The report's tests: test_dbt_package's DuckDB build of the integration project, for the
browser test's marts."""

from tests.unit.test_dbt_package import duckdb_project  # noqa: F401 (a fixture)
