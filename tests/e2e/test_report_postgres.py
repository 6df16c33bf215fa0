"""tap-avicenna-report reading the marts from PostgreSQL, with the dbt-postgres
profile's variables: the same marts (synthetic, tests/report/marts.py, copied from
DuckDB) make the same study as from DuckDB, and the page is written."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import duckdb
import pytest
from psycopg import sql

from tap_avicenna_report import cli, study
from tap_avicenna_report.warehouse import DuckDBWarehouse, postgres_warehouse
from tests.e2e.conftest import PG_DB, PG_PASSWORD, PG_USER, Postgres
from tests.report.marts import write_marts

pytestmark = pytest.mark.e2e

TABLES = (study.SUMMARY, study.YIELD, study.COMPLIANCE)
PG_TYPES = {
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "DATE": "date",
    "BOOLEAN": "boolean",
    "DOUBLE": "double precision",
    "VARCHAR": "text",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
}


def copy_to_postgres(source: DuckDBWarehouse, server: Postgres, schema: str) -> None:
    """The marts' tables of `source`, column types and rows, into `schema`."""
    with duckdb.connect(source.path, read_only=True) as db, server.connect() as pg:
        pg.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
        for table in TABLES:
            kinds = db.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_schema = ? and table_name = ? order by ordinal_position",
                [source.schema, table],
            ).fetchall()
            pg.execute(
                sql.SQL("create table {} ({})").format(
                    sql.Identifier(schema, table),
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(PG_TYPES[kind]))
                        for name, kind in kinds
                    ),
                )
            )
            rows = db.execute(f"select * from {source.schema}.{table}").fetchall()
            with (
                pg.cursor() as cursor,
                cursor.copy(
                    sql.SQL("copy {} from stdin").format(sql.Identifier(schema, table))
                ) as copy,
            ):
                for row in rows:
                    copy.write_row(row)


def test_given_marts_in_postgres_when_reported_then_the_same_study_as_from_duckdb(
    pg: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = DuckDBWarehouse(str(tmp_path / "warehouse.duckdb"), "marts")
    write_marts(Path(source.path), source.schema, 12, 10)
    schema = f"e2e_report_{uuid.uuid4().hex[:8]}"
    try:
        copy_to_postgres(source, pg, schema)
        for name, value in {
            "HOST": "127.0.0.1",
            "PORT": str(pg.port),
            "USER": PG_USER,
            "PASSWORD": PG_PASSWORD,
            "DBNAME": PG_DB,
            "SCHEMA": schema,
        }.items():
            monkeypatch.setenv(f"DBT_POSTGRES_{name}", value)
        from_postgres = study.load(postgres_warehouse(None))
        assert from_postgres.participant_days > 100
        assert from_postgres == dataclasses.replace(study.load(source), schema=schema)
        report = tmp_path / "report.html"
        assert cli.main(["--target", "postgres", "--output", str(report)]) == 0
        assert f"schema {schema}" in report.read_text()
    finally:
        pg.drop_schema(schema)
