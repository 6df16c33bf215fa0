"""BATCH output: files written straight from the export, with exactly the records a
RECORD sync emits, and state that only claims rows in files already announced."""

from __future__ import annotations

import gzip
import typing as t
from pathlib import Path
from urllib.parse import unquote

import pytest

from tap_avicenna.simulator import Simulator, default_config
from tests.conftest import (
    batch_file_rows,
    catalog_file,
    expand_batches,
    make_simulator,
    multiset,
    run_tap,
    unstamped,
)
from tests.integration.test_resilience import (
    STREAM,
    assert_states_claim_only_emitted,
    expected,
    small_config,
)

ENCODINGS = [("jsonl", "gzip"), ("jsonl", "none"), ("parquet", "none"), ("parquet", "gzip")]


def batch_config(root: Path, fmt: str, compression: str, size: int = 1000) -> dict[str, t.Any]:
    root.mkdir(exist_ok=True)
    return {
        "encoding": {"format": fmt, "compression": compression},
        "storage": {"root": root.as_uri(), "prefix": "b-"},
        "batch_size": size,
    }


def without_time(records: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """`unstamped` records in a fixed order."""
    return sorted(
        unstamped(records), key=lambda r: (r["participant_id"], r["record_time"], r["_row_id"])
    )


@pytest.fixture(scope="module")
def record_run(
    simulator_module: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, t.Any]]:
    """The records of a RECORD sync of the small configuration."""
    run = run_tap(tmp_path_factory.mktemp("record"), small_config(simulator_module))
    assert run.returncode == 0, run.stderr[-3000:]
    return run.records(STREAM)


@pytest.mark.parametrize(("fmt", "compression"), ENCODINGS)
def test_given_batch_config_when_synced_then_files_hold_the_record_syncs_records_and_state_follows(
    simulator_module: Simulator,
    record_run: list[dict[str, t.Any]],
    tmp_path: Path,
    fmt: str,
    compression: str,
) -> None:
    config = small_config(
        simulator_module, batch_config=batch_config(tmp_path / "files", fmt, compression)
    )
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    kinds = [m["type"] for m in run.messages if m.get("stream", STREAM) == STREAM]
    assert "RECORD" not in kinds and kinds.count("BATCH") == 4  # one per export
    batches = [m for m in run.messages if m["type"] == "BATCH"]
    assert sum(len(m["manifest"]) for m in batches) > 4  # files of at most 1,000 rows
    assert "read row by row" not in run.stderr  # the columnar writer did the work
    records = run.records(STREAM)
    # The same records, field for field (row ids included), as the RECORD sync.
    assert without_time(records) == without_time(record_run)
    rows = expected(simulator_module, config)
    assert multiset(records) == multiset(rows)
    assert assert_states_claim_only_emitted(expand_batches(run.messages), rows) > 0
    marks = run.last_state["bookmarks"][STREAM]["participants"]
    assert set(marks.values()) == {"2025-01-11T00:00:00.000000+00:00"}


def test_given_a_deselected_field_when_batched_then_left_out_and_row_ids_unchanged(
    simulator_module: Simulator, record_run: list[dict[str, t.Any]], tmp_path: Path
) -> None:
    config = small_config(
        simulator_module, batch_config=batch_config(tmp_path / "files", "parquet", "none")
    )
    catalog_path = catalog_file(tmp_path, config, STREAM, deselect=["device_id"])
    run = run_tap(tmp_path, config, None, "--catalog", str(catalog_path))
    assert run.returncode == 0, run.stderr[-3000:]
    records = run.records(STREAM)
    assert records and all("device_id" not in r for r in records)
    wanted = [{k: v for k, v in r.items() if k != "device_id"} for r in record_run]
    assert without_time(records) == without_time(wanted)


def test_given_quoted_cells_when_batched_then_read_row_by_row_with_the_same_records(
    record_run: list[dict[str, t.Any]], tmp_path: Path
) -> None:
    """A file the columnar reader refuses (every cell quoted) is read row by row: the
    output is the same, and no file is left that was not announced."""
    config = default_config()
    config.studies[1234].quote_all = True
    sim = make_simulator(config)
    try:
        settings = small_config(sim, batch_config=batch_config(tmp_path / "files", "jsonl", "gzip"))
        run = run_tap(tmp_path, settings)
    finally:
        sim.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("read row by row (the first line is not a plain header") == 4
    assert without_time(run.records(STREAM)) == without_time(record_run)
    announced = {url.rsplit("/", 1)[-1] for m in run.messages if m["type"] == "BATCH"
                 for url in m["manifest"]}  # fmt: skip
    assert {p.name for p in (tmp_path / "files").iterdir()} == announced


def test_given_parquet_and_a_stream_with_object_fields_when_batched_then_json_lines_same_records(
    simulator_module: Simulator, tmp_path: Path
) -> None:
    """Survey metadata are free-form objects, which Parquet would turn into structs of
    every key any row has: that stream's files are JSON lines, announced as such."""
    settings = {
        "data_sources": [],
        "participant_ids": None,
        "surveys": [{"activity_id": 5679, "name": "screen", "columns": ["Q1", "Q3"]}],
        "export_window_days": 14,
    }
    (tmp_path / "r").mkdir()
    records = run_tap(tmp_path / "r", {**small_config(simulator_module), **settings})
    config = {
        **small_config(simulator_module),
        **settings,
        "batch_config": batch_config(tmp_path / "files", "parquet", "none"),
    }
    run = run_tap(tmp_path, config)
    assert run.returncode == 0 and records.returncode == 0, run.stderr[-3000:]
    encodings = {m["stream"]: m["encoding"]["format"] for m in run.messages if m["type"] == "BATCH"}
    assert encodings == {"survey_screen": "jsonl", "participants": "parquet"}
    got, want = run.records("survey_screen"), records.records("survey_screen")
    got, want = unstamped(got), unstamped(want)
    assert got and sorted(got, key=lambda r: r["uuid"]) == sorted(want, key=lambda r: r["uuid"])
    assert any(isinstance(r.get("q1_metadata"), dict) for r in got)


@pytest.fixture(scope="module")
def s3_endpoint() -> t.Iterator[str]:
    """A local S3 (moto's server) on a free port, with a bucket `batches`."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
        aws_secret_access_key="test",
    ).create_bucket(Bucket="batches")  # fmt: skip
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> t.Any:
    """A client of the local S3, whose endpoint and keys the tap gets as AWS_* variables."""
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    return boto3.client("s3", endpoint_url=s3_endpoint)


@pytest.mark.parametrize(("fmt", "compression"), [("parquet", "none"), ("jsonl", "gzip")])
def test_given_object_storage_when_batched_then_files_in_the_bucket_hold_the_records(
    simulator_module: Simulator,
    record_run: list[dict[str, t.Any]],
    s3: t.Any,
    tmp_path: Path,
    fmt: str,
    compression: str,
) -> None:
    """`storage.root` as an `s3://` URL (singer-sdk's fsspec storage, s3fs): the files
    land in the bucket and hold the RECORD sync's records."""
    root = f"s3://batches/{fmt}-{compression}"
    config = small_config(
        simulator_module,
        batch_config={
            "encoding": {"format": fmt, "compression": compression},
            "storage": {"root": root, "prefix": "b-"},
            "batch_size": 1000,
        },
    )
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    urls = [u for m in run.messages if m["type"] == "BATCH" and m["stream"] == STREAM
            for u in m["manifest"]]  # fmt: skip
    assert urls and all(u.startswith(root + "/b-") for u in urls)
    listed = s3.list_objects_v2(Bucket="batches", Prefix=f"{fmt}-{compression}/")
    keys = {o["Key"] for o in listed.get("Contents", [])}
    assert {u.removeprefix("s3://batches/") for u in urls} <= keys
    records = []
    for url in urls:
        body = s3.get_object(Bucket="batches", Key=url.removeprefix("s3://batches/"))
        local = tmp_path / url.rsplit("/", 1)[-1]
        local.write_bytes(body["Body"].read())
        records += batch_file_rows(local.as_uri())
    assert without_time(records) == without_time(record_run)


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_given_a_quote_deep_in_the_file_when_batched_then_the_files_written_are_replaced(
    simulator_module: Simulator,
    s3: t.Any,
    tmp_path: Path,
    storage: str,
) -> None:
    """The columnar reader meets a quoted cell after some files are written: those files
    are deleted, the export is read row by row, and only announced files remain."""
    from tests.integration.test_hostile_files import HEADER, hostile_config, lines, row

    rows = [row(i) for i in range(60_000)]  # ~5 MB in the window: the quote comes after
    rows[55_000] = rows[55_000].replace("dev1", '"dev1"')  # ~9 pieces, files written
    simulator_module.faults.replace_next_files = [gzip.compress(lines(HEADER, *rows))]
    root = "s3://batches/deep-quote" if storage == "s3" else (tmp_path / "files").as_uri()
    config = hostile_config(simulator_module, {})
    config["batch_config"] = {  # row by row, Parquet goes through singer-sdk's batcher,
        "encoding": {"format": "parquet", "compression": "none"},  # under other names
        "storage": {"root": root},
        "batch_size": 1000,
    }
    catalog = catalog_file(tmp_path, config, STREAM)
    run = run_tap(tmp_path, config, None, "--catalog", str(catalog))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "read row by row (quoted fields)" in run.stderr
    announced = {u for m in run.messages if m["type"] == "BATCH" for u in m["manifest"]}
    assert len(announced) == 60
    if storage == "s3":
        listed = s3.list_objects_v2(Bucket="batches", Prefix="deep-quote/")
        present = {o["Key"].rsplit("/", 1)[-1] for o in listed.get("Contents", [])}
    else:
        present = {p.name for p in (tmp_path / "files").iterdir()}
        records = [r for u in announced for r in batch_file_rows(u)]
        assert len(records) == 60_000 and {r["device_id"] for r in records} == {"dev1"}
    assert present == {unquote(u.rsplit("/", 1)[-1]) for u in announced}
