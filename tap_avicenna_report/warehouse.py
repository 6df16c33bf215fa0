"""Rows of the marts, from DuckDB or PostgreSQL, with the dbt profiles' connection settings.

The environment variables are those transform/profiles/*/profiles.yml read (meltano's dbt
utilities set them from their settings), with the profiles' defaults.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

Row = dict[str, Any]
MODELS_SCHEMA = "avicenna_analytics"  # the profiles' default schema of the models


class Warehouse(Protocol):
    """Where the marts are: runs a query, answers rows as dicts."""

    schema: str

    def rows(self, sql: str) -> list[Row]: ...


def columns(warehouse: Warehouse, table: str) -> list[str]:
    """The columns of a table of the warehouse's schema, in order ([] when it does not exist)."""
    return [
        str(row["column_name"])
        for row in warehouse.rows(
            "select column_name from information_schema.columns"
            f" where table_schema = '{warehouse.schema}' and table_name = '{table}'"
            " order by ordinal_position"
        )
    ]


class _Cursor(Protocol):
    @property
    def description(self) -> Any: ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...


def _as_rows(cursor: _Cursor) -> list[Row]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


@dataclass
class DuckDBWarehouse:
    """A DuckDB file, opened read-only for each query (the loader may hold it between)."""

    path: str
    schema: str

    def rows(self, sql: str) -> list[Row]:
        import duckdb

        with duckdb.connect(self.path, read_only=True) as connection:
            return _as_rows(connection.execute(sql))


@dataclass
class PostgresWarehouse:
    """A PostgreSQL database (psycopg 3)."""

    settings: Mapping[str, str]
    schema: str

    def rows(self, sql: str) -> list[Row]:
        import psycopg

        conninfo = psycopg.conninfo.make_conninfo("", **self.settings)
        with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
            cursor.execute(sql.encode())
            return _as_rows(cursor)


def duckdb_warehouse(path: str | None, schema: str | None) -> DuckDBWarehouse:
    """The DuckDB file of the dbt-duckdb profile (DBT_DUCKDB_PATH, DBT_DUCKDB_SCHEMA)."""
    found = path or os.environ.get("DBT_DUCKDB_PATH")
    if not found:
        raise SystemExit("tap-avicenna-report: give --path or set DBT_DUCKDB_PATH")
    if not os.path.exists(found):
        raise SystemExit(f"tap-avicenna-report: no DuckDB file at {found}")
    return DuckDBWarehouse(
        found, schema or os.environ.get("DBT_DUCKDB_SCHEMA", "avicenna_analytics")
    )


def postgres_warehouse(schema: str | None) -> PostgresWarehouse:
    """The database of the dbt-postgres profile (DBT_POSTGRES_HOST, _PORT, _USER, ...)."""
    env = os.environ
    missing = [name for name in ("DBT_POSTGRES_USER", "DBT_POSTGRES_DBNAME") if not env.get(name)]
    if missing:
        raise SystemExit(f"tap-avicenna-report: set {' and '.join(missing)}")
    settings = {
        "host": env.get("DBT_POSTGRES_HOST", "127.0.0.1"),
        "port": env.get("DBT_POSTGRES_PORT", "5432"),
        "user": env["DBT_POSTGRES_USER"],
        "password": env.get("DBT_POSTGRES_PASSWORD", ""),
        "dbname": env["DBT_POSTGRES_DBNAME"],
        "connect_timeout": "10",
    }
    return PostgresWarehouse(
        settings, schema or env.get("DBT_POSTGRES_SCHEMA", "avicenna_analytics")
    )


@contextmanager
def no_warehouse_errors(what: str) -> Iterator[None]:
    """A database error as one line naming `what` was read (no traceback)."""
    try:
        yield
    except Exception as error:
        if type(error).__module__.split(".")[0] not in {"duckdb", "psycopg"}:
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SystemExit(f"tap-avicenna-report: cannot read {what}: {first}") from None
