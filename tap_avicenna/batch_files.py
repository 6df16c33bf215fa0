"""BATCH files of one stream: JSON lines (gzip optional) or Parquet, from records or
straight from Arrow columns.

Files are named per export (`<prefix><tap>--<stream>-<uuid>-<export>-<file>`). The
columnar writer runs a pipeline: one thread reads and converts the CSV, one builds the
JSON text (Arrow releases the GIL in both), the calling thread has the row ids hashed
by a helper process (`hashing.RowIdHasher`), and one thread writes the files. An
attempt that fails deletes the files it wrote: none of them was announced.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import importlib
import importlib.util
import threading
import typing as t
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from singer_sdk.batch import Batcher, lazy_chunked_generator
from singer_sdk.helpers._batch import BatchConfig
from upath import UPath

from tap_avicenna.load_time import EXTRACTED_AT
from tap_avicenna.parsing.values import UNTYPED
from tap_avicenna.rowids import ENCODER, ROW_ID

if t.TYPE_CHECKING:
    import pyarrow as pa

    from tap_avicenna.columnar import Columns
    from tap_avicenna.hashing import RowIdHasher

    Encoded = tuple[Columns, dict[str, pa.Array], pa.Array]  # columns, JSON texts, canonical
    Select = t.Callable[[Columns, pa.Array], pa.Array | None]  # rows kept (mask), or all

_HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None
_AHEAD = 3  # batches read, converted and written ahead of the row-id hashing
_DICTIONARY_TYPES = frozenset({"string", "integer", "boolean", "date"})


class BatchFiles:
    """Writes the BATCH files of one stream's exports."""

    def __init__(self, tap_name: str, stream_name: str, config: BatchConfig) -> None:
        self.config = config
        self.format = config.encoding.format
        self.gzip = config.encoding.compression == "gzip"
        self.sync_id = f"{tap_name}--{stream_name}-{uuid.uuid4()}"
        self._batcher = Batcher(tap_name=tap_name, stream_name=stream_name, batch_config=config)
        self._hasher: RowIdHasher | None = None
        self.extracted_at: str | None = None  # `_extracted_at` of the export's rows

    def close(self) -> None:
        """Stop the row-id helper process, if one was started."""
        if self._hasher is not None:
            self._hasher.close()

    @property
    def columnar(self) -> bool:
        """Whether the columnar writer can write these files (pyarrow is a dependency;
        without it, files are written row by row)."""
        return self.format in ("jsonl", "parquet") and _HAS_PYARROW

    def warm_up(self) -> None:
        """Import pyarrow (about 0.3 s) in the background while the first exports are
        created and polled, instead of after the first download."""
        modules = ["tap_avicenna.columnar"] + (
            ["pyarrow.parquet"] if self.format == "parquet" else []
        )
        threading.Thread(
            target=lambda: [importlib.import_module(m) for m in modules], daemon=True
        ).start()

    def _name(self, export_no: int, file_no: int) -> str:
        extension = ".json" if self.format == "jsonl" else ".parquet"
        suffix = ".gz" if self.gzip else ""
        prefix = self.config.storage.prefix or ""
        return f"{prefix}{self.sync_id}-{export_no}-{file_no}{extension}{suffix}"

    # --- row by row -------------------------------------------------------------------

    def from_records(self, records: t.Iterator[dict[str, t.Any]], export_no: int) -> list[str]:
        """Files of `batch_size` records: JSON lines written here (msgspec, gzip level 1),
        other formats by singer-sdk's own batcher. If anything fails (the records, a
        write), the files written so far are deleted: none of them was announced."""
        urls: list[str] = []
        names: list[str] = []
        try:
            if self.format != "jsonl":
                for manifest in self._batcher.get_batches(records):
                    urls.extend(manifest)
                return urls
            chunks = lazy_chunked_generator(records, self.config.batch_size)
            for number, chunk in enumerate(chunks):
                names.append(self._name(export_no, number + 1))
                urls.append(self._write(names[-1], ENCODER.encode_lines(list(chunk))))
        except BaseException:
            self.discard(names)
            self._discard_urls(urls)
            raise
        return urls

    def _write(self, name: str, data: bytes) -> str:
        storage = self.config.storage
        with storage.open(name, "wb") as handle:
            handle.write(gzip.compress(data, compresslevel=1) if self.gzip else data)
        return storage.get_url(name)

    def _discard_urls(self, urls: t.Iterable[str]) -> None:
        """Delete files by their URL (those singer-sdk's batcher wrote)."""
        for url in urls:
            with contextlib.suppress(OSError):
                UPath(url, **self.config.storage.params).unlink(missing_ok=True)

    def discard(self, names: t.Iterable[str]) -> None:
        """Delete files that will not be announced (a columnar attempt given up)."""
        storage = self.config.storage
        root = UPath(storage.root, **storage.params)
        for name in names:
            with contextlib.suppress(OSError):
                root.joinpath(name).unlink(missing_ok=True)

    # --- columnar ---------------------------------------------------------------------

    def _row_hasher(self) -> RowIdHasher:
        from tap_avicenna.hashing import RowIdHasher

        if self._hasher is None:
            self._hasher = RowIdHasher()
        return self._hasher

    def row_ids(self, columns: Columns) -> pa.Array:
        """The row ids of a batch's rows, as `from_columns` writes them."""
        from tap_avicenna.columnar import canonical_json, json_texts

        return self._row_hasher().hex_ids(canonical_json(json_texts(columns)))

    def from_columns(
        self,
        batches: t.Iterator[Columns],
        export_no: int,
        dropped: t.Collection[str] = (),
        select: Select | None = None,
    ) -> tuple[list[str], int]:
        """Files of `batch_size` rows from typed Arrow batches, and the number of rows
        written.

        Row ids are computed from every column; `select` (given a batch and its row ids)
        may then leave rows out (a mask of those kept; None: all), and `dropped` columns
        (deselected) are left out of the files. If anything fails, the files written so
        far are deleted.
        """
        from tap_avicenna.columnar import canonical_json, json_texts

        hasher = self._row_hasher()

        def read() -> Columns | None:
            return next(batches, None)

        def encode(read: Future[Columns | None]) -> Encoded | None:
            columns = read.result()
            if columns is None:
                return None
            texts = json_texts(columns)
            return columns, texts, canonical_json(texts)

        sink = _FileSink(self, export_no)
        rows = 0
        with (
            ThreadPoolExecutor(1) as reader,
            ThreadPoolExecutor(1) as encoder,
            ThreadPoolExecutor(1) as writer,
        ):

            def next_batch() -> Future[Encoded | None]:
                return encoder.submit(encode, reader.submit(read))

            ahead = collections.deque(next_batch() for _ in range(_AHEAD))
            writes: collections.deque[Future[None]] = collections.deque()
            try:
                while (item := ahead.popleft().result()) is not None:
                    ahead.append(next_batch())
                    columns, texts, canonical = item
                    ids = hasher.hex_ids(canonical)
                    mask = None if select is None else select(columns, ids)
                    if mask is not None:
                        columns, ids = columns.filter(mask), ids.filter(mask)
                        texts = {name: text.filter(mask) for name, text in texts.items()}
                    rows += len(ids)
                    keep = _written(columns, dropped)
                    writes.append(writer.submit(sink.add, columns, texts, ids, keep))
                    while len(writes) > _AHEAD:
                        writes.popleft().result()
                writes.append(writer.submit(sink.close))
                for write in writes:
                    write.result()
            except BaseException:
                for pending in (ahead, writes):
                    for future in pending:
                        future.cancel()
                writer.submit(sink.abandon).result()
                self.discard(sink.names)
                raise
        return sink.urls, rows


def _written(columns: Columns, dropped: t.Collection[str]) -> list[int]:
    """The columns written to the files: not the deselected ones, nor `UNTYPED` when it is
    null in every row of the batch (the record then has no such field, as in RECORD mode)."""
    return [
        i
        for i, (name, values) in enumerate(zip(columns.names, columns.arrays, strict=True))
        if name not in dropped and not (name == UNTYPED and values.null_count == len(values))
    ]


class _FileSink:
    """Cuts the rows of consecutive batches into files of `batch_size` rows (one thread)."""

    def __init__(self, files: BatchFiles, export_no: int) -> None:
        self.files = files
        self.export_no = export_no
        self.size = files.config.batch_size
        self.urls: list[str] = []
        self.names: list[str] = []  # of the files opened, for `discard`
        self._open = contextlib.ExitStack()
        self._parquet: t.Any = None
        self._parquet_names: list[str] = []
        self._lines: list[bytes] = []
        self._rows = 0  # rows in the current file

    def add(
        self, columns: Columns, texts: dict[str, pa.Array], ids: pa.Array, keep: list[int]
    ) -> None:
        if self._parquet is not None and self._parquet_names != [columns.names[i] for i in keep]:
            self.close()  # a table of the same ZIP with other columns: files of its own
        start, total = 0, len(ids)
        while start < total:
            take = min(total - start, self.size - self._rows)
            if self.files.format == "parquet":
                self._add_parquet(columns, ids, keep, start, take)
            else:
                self._add_lines(columns, texts, ids, keep, start, take)
            self._rows += take
            start += take
            if self._rows == self.size:
                self.close()

    def _add_parquet(
        self, columns: Columns, ids: pa.Array, keep: list[int], start: int, take: int
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = [columns.arrays[i].slice(start, take) for i in keep] + [ids.slice(start, take)]
        names = [columns.names[i] for i in keep] + [ROW_ID]
        if self.files.extracted_at is not None:
            arrays.append(pa.repeat(pa.scalar(self.files.extracted_at, pa.string()), take))
            names.append(EXTRACTED_AT)
        batch = pa.record_batch(arrays, names=names)
        if self._parquet is None:
            self._parquet_names = [columns.names[i] for i in keep]
            name = self._next_name()
            handle = self._open.enter_context(self.files.config.storage.open(name, "wb"))
            self._parquet = pq.ParquetWriter(
                handle,
                batch.schema,
                compression="gzip" if self.files.gzip else "snappy",
                # Dictionaries pay off for ids and labels, not for unique values (a third of
                # the writing time went into dictionaries of row ids and timestamps).
                use_dictionary=[
                    columns.names[i] for i in keep if columns.types[i] in _DICTIONARY_TYPES
                ],
            )
            self.urls.append(self.files.config.storage.get_url(name))
        self._parquet.write_batch(batch)

    def _add_lines(
        self,
        columns: Columns,
        texts: dict[str, pa.Array],
        ids: pa.Array,
        keep: list[int],
        start: int,
        take: int,
    ) -> None:
        from tap_avicenna.columnar import json_lines

        part = {columns.names[i]: texts[columns.names[i]].slice(start, take) for i in keep}
        stamp = self.files.extracted_at
        tail = "" if stamp is None else f',"{EXTRACTED_AT}":"{stamp}"'
        self._lines.append(json_lines(part, ids.slice(start, take), tail))

    def _next_name(self) -> str:
        name = self.files._name(self.export_no, len(self.names) + 1)
        self.names.append(name)
        return name

    def close(self) -> None:
        """Finish the current file, if any."""
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
            self._open.close()
        elif self._lines:
            name = self._next_name()
            self.urls.append(self.files._write(name, b"".join(self._lines)))
            self._lines = []
        self._rows = 0

    def abandon(self) -> None:
        """Close what is open without finishing it (the attempt is given up)."""
        with contextlib.suppress(Exception):
            if self._parquet is not None:
                self._parquet.close()
        with contextlib.suppress(Exception):
            self._open.close()
        self._parquet, self._lines = None, []
