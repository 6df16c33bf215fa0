"""The tap into a real PostgreSQL through meltano and through a plain Singer pipe.

Needs PGTEST_PORT (see tests/e2e/conftest.py); `bash scripts/test.sh` provides it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import typing as t
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tap_avicenna.simulator import Simulator, default_config
from tests.conftest import STUDY_ID, make_simulator, multiset
from tests.e2e.conftest import (
    PG_DB,
    PG_HOST,
    PG_PASSWORD,
    PG_USER,
    PYTHON,
    ROOT,
    TAP,
    TARGET,
    Done,
    Pipeline,
    Postgres,
    base_env,
    describe_difference,
    isolated_names,
    record_output,
    run,
    table_multiset,
)

pytestmark = pytest.mark.e2e

# Small on purpose: 3 participants in 2 batches, 2 data sources, 10 days (2 windows).
# The numbers go through meltano as TAP_AVICENNA_* environment variables, so the
# fractional poll interval also proves that such a value set from the environment works.
SETTINGS: dict[str, t.Any] = {
    "start_date": "2025-01-01T00:00:00Z",
    "end_date": "2025-01-11T00:00:00Z",
    "participant_ids": [101, 102, 103],
    "data_sources": [{"id": 10, "name": "gps"}, {"id": 30, "name": "battery"}],
    "surveys": [{"activity_id": 5679, "name": "screen", "columns": ["participant_id", "Q1", "Q3"]}],
    "participants_per_export": 2,
    "export_window_days": 7,
    "lookback_days": 2,
    "poll_interval_seconds": 0.1,
}

# JSON schema type of a tap column -> the column type target-postgres 0.8.1 creates.
PG_TYPES = {
    "integer": "bigint",
    "number": "numeric",
    "date-time": "timestamp without time zone",
    "string": "text",
    "boolean": "boolean",
}


# Tables whose primary key is not `_row_id`.
PRIMARY_KEYS: dict[str, str] = {"participants": "participant_id", "survey_screen": "uuid"}


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def v2_survey_row(row: t.Mapping[str, str]) -> dict[str, t.Any]:
    """A simulator survey row (v2 headers) as the fields the README documents:
    `device.id` -> `device_id`, `Q1` -> `q1`, `mQ1_metadata` -> `q1_metadata` (a JSON
    object, or {"_text": cell} when the cell is not one)."""
    out: dict[str, t.Any] = {}
    for header, cell in row.items():
        if header.startswith("mQ") and header.endswith("_metadata"):
            name = "q" + header[2:]
            try:
                parsed = json.loads(cell) if cell else None
            except ValueError:
                parsed = None
            out[name] = parsed if isinstance(parsed, dict) else ({"_text": cell} if cell else None)
        else:
            out[header.replace(".", "_").lower()] = cell
    return out


def expected_tables(
    sim: Simulator,
    settings: t.Mapping[str, t.Any],
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> dict[str, list[dict[str, t.Any]]]:
    """Table -> the rows the simulator serves for these settings in [start, end)."""
    lo = start or when(settings["start_date"])
    hi = end or when(settings["end_date"])
    tables: dict[str, list[dict[str, t.Any]]] = {
        f"sensor_{source['name']}": sim.expected_rows(
            STUDY_ID, source["id"], settings["participant_ids"], lo, hi
        )
        for source in settings["data_sources"]
    }
    tables["participants"] = sim.expected_participation_rows(STUDY_ID)
    for survey in settings["surveys"]:
        columns = ["uuid", "record_time", *survey["columns"]]
        body = {"export_version": "v2", "rule_set": {"columns": columns}}
        rows = sim.expected_survey_rows(STUDY_ID, survey["activity_id"], body)
        tables[f"survey_{survey['name']}"] = [
            v2_survey_row(row) for row in rows if iso_text(lo) <= row["record_time"] < iso_text(hi)
        ]
    return tables


def bookmarks(state: t.Mapping[str, t.Any], table: str) -> dict[str, str]:
    """A stream's coverage bookmarks: per participant (sensor) or "all" (survey)."""
    stream = state["bookmarks"][table]
    return dict(stream["participants" if table.startswith("sensor_") else "covered_until"])


def iso_text(value: dt.datetime) -> str:
    """The simulator's timestamp text form, which sorts like the instants."""
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


Export = tuple[int, int, int, tuple[int, ...]]
"""A sensor export as (data source id, start ms, end ms, participant ids)."""


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def expected_exports(
    settings: t.Mapping[str, t.Any], bookmark: dt.datetime | None, end: dt.datetime
) -> Counter[Export]:
    """The sensor exports a run must create: the windows of the grid (anchored at
    start_date, export_window_days wide) from bookmark - lookback_days (or start_date)
    to end, for every participant batch and data source."""
    origin = when(settings["start_date"])
    size = dt.timedelta(days=settings["export_window_days"])
    cursor = origin
    if bookmark is not None:
        cursor = max(origin, bookmark - dt.timedelta(days=settings["lookback_days"]))
    windows = []
    while cursor < end:
        stop = min(origin + ((cursor - origin) // size + 1) * size, end)
        windows.append((ms(cursor), ms(stop)))
        cursor = stop
    ids, per = sorted(settings["participant_ids"]), settings["participants_per_export"]
    batches = [tuple(ids[i : i + per]) for i in range(0, len(ids), per)]
    return Counter(
        (source["id"], lo, hi, batch)
        for source in settings["data_sources"]
        for lo, hi in windows
        for batch in batches
    )


def sensor_exports(sim: Simulator, after: int = 0) -> Counter[Export]:
    """The sensor exports created at the simulator after export number `after` (exports
    of other kinds, such as the participation list, are left out)."""
    return Counter(
        (e["data_source"], e["start_date"], e["end_date"], tuple(e["participant_ids"]))
        for e in sim.exports(STUDY_ID)
        if e["data_source"] is not None and e["study_specific_id"] > after
    )


def last_export_number(sim: Simulator) -> int:
    return max((int(e["study_specific_id"]) for e in sim.exports(STUDY_ID)), default=0)


def assert_table_names(server: Postgres, schema: str, expected: t.Iterable[str], run: Done) -> None:
    """Every expected table is there, and no sensor table beyond them."""
    tables, wanted = set(server.tables(schema)), set(expected)
    sensors = {name for name in tables if name.startswith("sensor_")}
    assert wanted <= tables, f"{schema}: tables {sorted(tables)}\n{run.tail()}"
    assert sensors <= wanted, f"{schema}: unexpected tables {sorted(sensors - wanted)}"


def assert_tables_hold(
    server: Postgres, schema: str, expected: t.Mapping[str, list[dict[str, str]]], run: Done
) -> None:
    """Exactly the expected rows in every table, each primary key once."""
    for table, rows in expected.items():
        assert rows, f"the simulator serves no rows for {table}: the test data is wrong"
        count = server.count(schema, table)
        assert count == len(rows), f"{schema}.{table}: {count} rows, expected {len(rows)}"
        key = PRIMARY_KEYS.get(table, "_row_id")
        ids = server.distinct(schema, table, key)
        assert ids == count, f"{schema}.{table}: {count} rows but {ids} distinct {key}"
        want, got = multiset(rows), table_multiset(server, schema, table)
        assert got == want, f"{schema}.{table}: {describe_difference(want, got)}\n{run.tail(1500)}"


@dataclass(frozen=True)
class Loaded:
    pipeline: Pipeline
    run: Done


@pytest.fixture(scope="module")
def loaded(pg: Postgres) -> t.Iterator[Loaded]:
    """One `meltano run tap-avicenna target-postgres` of SETTINGS, shared by the tests
    that only read its tables."""
    sim = make_simulator()
    try:
        with isolated_names(pg, "meltano") as name:
            pipeline = Pipeline(sim, pg, name, dict(SETTINGS))
            yield Loaded(pipeline, pipeline.meltano_run())
    finally:
        sim.stop()


@pytest.fixture
def pipeline(pg: Postgres, simulator: Simulator) -> t.Iterator[Pipeline]:
    with isolated_names(pg, "incremental") as name:
        yield Pipeline(simulator, pg, name, dict(SETTINGS))


def discovered_types(
    config: dict[str, t.Any], tmp_path: Path, server: Postgres
) -> dict[str, dict[str, str]]:
    """Stream -> column -> JSON type, from the tap's own `--discover`."""
    path = tmp_path / "discover-config.json"
    path.write_text(json.dumps(config))
    done = run(
        [TAP, "--config", path, "--discover"], env=base_env(server.port), what="tap --discover"
    )
    assert done.returncode == 0, done.tail()
    types: dict[str, dict[str, str]] = {}
    for entry in json.loads(done.stdout)["streams"]:
        columns = types.setdefault(entry["tap_stream_id"], {})
        for name, spec in entry["schema"]["properties"].items():
            kinds = spec.get("type", [])
            kinds = [k for k in ([kinds] if isinstance(kinds, str) else kinds) if k != "null"]
            if spec.get("format") == "date-time":
                columns[name] = "date-time"
            elif len(kinds) == 1:
                columns[name] = kinds[0]
    return types


# --- 1. meltano run ------------------------------------------------------------------


def test_given_simulator_when_meltano_run_into_postgres_then_tables_hold_exactly_its_rows(
    loaded: Loaded, pg: Postgres
) -> None:
    pipeline, done = loaded.pipeline, loaded.run
    expected = expected_tables(pipeline.sim, SETTINGS)
    assert_table_names(pg, pipeline.schema, expected, done)
    assert {k: v for k, v in done.emitted().items() if k in expected} == {
        table: len(rows) for table, rows in expected.items()
    }, done.tail()
    assert_tables_hold(pg, pipeline.schema, expected, done)
    # 2 windows (7 + 3 days) x 2 participant batches x 2 data sources
    exports = sensor_exports(pipeline.sim)
    assert exports == expected_exports(SETTINGS, None, when(SETTINGS["end_date"])), exports
    assert exports.total() == 8


def test_given_meltano_run_when_columns_inspected_then_types_follow_the_tap_schema(
    loaded: Loaded, pg: Postgres, tmp_path: Path
) -> None:
    pipeline = loaded.pipeline
    discovered = discovered_types(pipeline.tap_config(), tmp_path, pg)
    for table in expected_tables(pipeline.sim, SETTINGS):
        columns = pg.column_types(pipeline.schema, table)
        wrong = {
            column: (kind, columns.get(column))
            for column, kind in discovered[table].items()
            if kind in PG_TYPES and columns.get(column) != PG_TYPES[kind]
        }
        assert not wrong, f"{table}: column -> (tap type, PostgreSQL type): {wrong}"
        if table.startswith("sensor_"):
            assert columns.get("record_time") == "timestamp without time zone", (table, columns)
            assert columns.get("participant_id") == "bigint", (table, columns)
            numbers = [c for c, kind in discovered[table].items() if kind == "number"]
            assert numbers, f"{table} has no number column to check"
            assert {columns[c] for c in numbers} == {"numeric"}, (table, columns)


# --- 2. the plain Singer pipe ---------------------------------------------------------


def test_given_same_config_when_tap_piped_into_target_postgres_then_same_tables_as_meltano(
    loaded: Loaded, pg: Postgres, tmp_path: Path
) -> None:
    pipeline = loaded.pipeline
    with isolated_names(pg, "pipe") as schema:
        tap_config = tmp_path / "tap.json"
        tap_config.write_text(json.dumps(pipeline.tap_config()))
        target_config = tmp_path / "target.json"
        target_config.write_text(
            json.dumps(
                {
                    "host": PG_HOST,
                    "port": pg.port,
                    "user": PG_USER,
                    "password": PG_PASSWORD,
                    "database": PG_DB,
                    "default_target_schema": schema,
                    "use_copy": True,  # as in meltano.yml
                }
            )
        )
        pipe = (
            f"{shlex.quote(str(TAP))} --config {shlex.quote(str(tap_config))} | "
            f"{shlex.quote(str(TARGET))} --config {shlex.quote(str(target_config))}"
        )
        done = run(
            ["bash", "-o", "pipefail", "-c", pipe],
            env=base_env(pg.port),
            what="tap-avicenna | target-postgres",
        )
        assert done.returncode == 0, done.tail()

        # The same tables as the meltano run (whichever streams the tap has), the
        # expected ones among them, each with the same rows.
        tables = pg.tables(pipeline.schema)
        assert pg.tables(schema) == tables, done.tail()
        assert_table_names(pg, schema, expected_tables(pipeline.sim, SETTINGS), done)
        for table in tables:
            via_meltano = pg.count(pipeline.schema, table)
            assert pg.count(schema, table) == via_meltano, (table, done.tail(1500))
            want = table_multiset(pg, pipeline.schema, table)
            got = table_multiset(pg, schema, table)
            assert got == want, f"{table}: {describe_difference(want, got)}"
            if "_row_id" in pg.column_types(schema, table):
                same_ids = pg.row_ids(schema, table) == pg.row_ids(pipeline.schema, table)
                assert same_ids, f"{table}: the _row_id sets differ"


@pytest.mark.parametrize(("fmt", "compression"), [("parquet", "none"), ("jsonl", "gzip")])
def test_given_batch_config_when_meltano_runs_then_same_tables_and_row_ids_as_record_run(
    loaded: Loaded, pg: Postgres, tmp_path: Path, fmt: str, compression: str
) -> None:
    """BATCH files (sensor streams written from Arrow columns, the others row by row)
    load the same tables as RECORD messages, row ids included."""
    pipeline = loaded.pipeline
    batch_config = {
        "encoding": {"format": fmt, "compression": compression},
        "storage": {"root": (tmp_path / "files").as_uri()},
    }
    with isolated_names(pg, f"batch{fmt}") as name:
        batched = Pipeline(pipeline.sim, pg, name, {**SETTINGS, "batch_config": batch_config})
        done = batched.meltano_run()
        assert "read row by row" not in done.stderr, done.tail()
        tables = pg.tables(pipeline.schema)
        assert pg.tables(name) == tables, done.tail()
        assert_table_names(pg, name, expected_tables(pipeline.sim, SETTINGS), done)
        for table in tables:
            want = table_multiset(pg, pipeline.schema, table)
            got = table_multiset(pg, name, table)
            assert got == want, f"{table}: {describe_difference(want, got)}"
            if "_row_id" in pg.column_types(name, table):
                assert pg.row_ids(name, table) == pg.row_ids(pipeline.schema, table), table
        files = list((tmp_path / "files").iterdir())
        assert any(".parquet" in f.name or f.name.endswith(".json.gz") for f in files), files


# --- 3. incremental ------------------------------------------------------------------


def test_given_loaded_table_when_meltano_runs_again_to_later_end_then_only_new_exports_and_rows(
    pipeline: Pipeline, pg: Postgres
) -> None:
    sim, schema = pipeline.sim, pipeline.schema
    first_end, second_end = when("2025-01-08T00:00:00Z"), when("2025-01-12T00:00:00Z")
    lookback = dt.timedelta(days=SETTINGS["lookback_days"])

    # the lookback's rows sent again in full (what the table gains is still only the new
    # rows): skip_unchanged_days off; on, tests/integration/test_unchanged_days.py
    first = pipeline.meltano_run(end_date=first_end.isoformat(), skip_unchanged_days=False)
    exports = sensor_exports(sim)
    assert exports == expected_exports(SETTINGS, None, first_end), exports
    assert exports.total() == 4  # 1 window x 2 participant batches x 2 data sources
    before = expected_tables(sim, SETTINGS, end=first_end)
    assert_tables_hold(pg, schema, before, first)
    state = pipeline.state()
    record_output("meltano state", json.dumps(state))
    for table in before:
        if table != "participants":  # full table: no bookmark
            marks = bookmarks(state, table)
            assert set(marks.values()) == {first_end.isoformat(timespec="microseconds")}, marks

    numbered = last_export_number(sim)
    second = pipeline.meltano_run(  # no --full-refresh
        end_date=second_end.isoformat(), skip_unchanged_days=False
    )
    created = sensor_exports(sim, after=numbered)
    # from the bookmark minus 2 lookback days: windows 01-06..01-08 and 01-08..01-12,
    # x 2 participant batches x 2 data sources
    assert created == expected_exports(SETTINGS, first_end, second_end), second.tail()
    assert created.total() == 8
    reread = expected_tables(sim, SETTINGS, start=first_end - lookback, end=second_end)
    assert {k: v for k, v in second.emitted().items() if k in reread} == {
        table: len(rows) for table, rows in reread.items()
    }, second.tail()
    after = expected_tables(sim, SETTINGS, end=second_end)
    new = expected_tables(sim, SETTINGS, start=first_end, end=second_end)
    for table in after:
        added = pg.count(schema, table) - len(before[table])
        if table != "participants":  # full table, merged on its key: nothing added
            assert added == len(new[table]), f"{table}: {added} rows added, not {len(new[table])}"
    assert_tables_hold(pg, schema, after, second)
    assert_table_names(pg, schema, after, second)
    state = pipeline.state()
    record_output("meltano state", json.dumps(state))
    for table in after:
        if table == "participants":
            continue
        stream = state["bookmarks"][table]
        assert set(bookmarks(state, table).values()) == {
            second_end.isoformat(timespec="microseconds")
        }, stream
        assert not stream.get("pending_exports"), stream


# --- 4. the README's demo, into PostgreSQL ---------------------------------------------

DEMO_ROW = re.compile(r"^\s+(\w+)\s+([\d,]+)\s+([\d,]+)\s+(ok|MISMATCH)\s*$", re.MULTILINE)


def demo_settings() -> dict[str, t.Any]:
    """The tap settings of meltano.yml's dev environment, which the demo runs."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    dev = next(e for e in project["environments"] if e["name"] == "dev")
    extractors = dev["config"]["plugins"]["extractors"]
    return dict(next(e for e in extractors if e["name"] == "tap-avicenna")["config"])


def test_given_pgtest_port_when_demo_targets_postgres_then_one_ok_row_per_sensor_stream(
    pg: Postgres,
) -> None:
    pg.drop_schema("avicenna")  # the demo's schema: count this run's rows only
    done = run(
        [PYTHON, "scripts/demo.py", "--target", "postgres"],
        env={**base_env(pg.port), "PGTEST_PORT": str(pg.port)},
        what="scripts/demo.py --target postgres",
    )
    log = ROOT / "output" / "demo.log"
    if log.exists():
        record_output("output/demo.log", log.read_text())
    assert done.returncode == 0, done.tail()

    rows = DEMO_ROW.findall(done.stdout)
    printed = {name: values for name, *values in rows}
    settings = demo_settings()
    sources = {f"sensor_{s['name']}": int(s["id"]) for s in settings["data_sources"]}
    sensor_rows = sorted(name for name, *_ in rows if name.startswith("sensor_"))
    assert sensor_rows == sorted(sources), f"one row per sensor stream?\n{done.tail()}"
    bad = {name: row for name, row in printed.items() if row[2] != "ok"}
    assert not bad, f"rows not ok: {bad}\n{done.tail()}"

    # What the demo's simulator (default data, clock from 2025-02-01) serves for it.
    reference = Simulator(default_config())
    for table, source_id in sources.items():
        emitted, stored = (int(n.replace(",", "")) for n in printed[table][:2])
        assert emitted > 0 and stored == emitted, (table, printed[table])
        assert pg.count("avicenna", table) == stored, table
        expected = reference.expected_rows(
            int(settings["study_id"]),
            source_id,
            settings["participant_ids"],
            when(str(settings["start_date"])),
            when(str(settings["end_date"])),
        )
        assert stored == len(expected), f"{table}: {stored} rows, simulator has {len(expected)}"
