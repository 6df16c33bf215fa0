"""WindowedExportStream: streams whose records come from planned export windows.

Sensor and survey streams plan exports (date windows, participant batches), run them
and close each window in state once its records are out, as RECORD messages or as
BATCH files.
"""

from __future__ import annotations

import gzip
import itertools
import typing as t
import uuid

from singer_sdk import Stream
from singer_sdk.batch import Batcher, lazy_chunked_generator
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig

from tap_avicenna.bookmarks import CoverageBookmarks
from tap_avicenna.client import epoch_ms
from tap_avicenna.errors import FileFormatError
from tap_avicenna.exports.job import ExportJob, ExportRequest
from tap_avicenna.exports.planner import PlannedExport
from tap_avicenna.exports.runner import ReadyExport
from tap_avicenna.streams.base import ENCODER, ExportStream


class ExportResult:
    """A finished export being emitted: read `records()` to the end, then `close()`."""

    def __init__(
        self,
        stream: WindowedExportStream,
        ready: ReadyExport,
        plan: PlannedExport,
        bookmarks: CoverageBookmarks,
        read: t.Callable[[ReadyExport, PlannedExport], t.Iterator[dict[str, t.Any]]],
    ) -> None:
        self.stream, self.ready, self.plan = stream, ready, plan
        self.bookmarks, self.read = bookmarks, read
        self.rows = 0

    def records(self) -> t.Iterator[dict[str, t.Any]]:
        """The export's records; a file that fails to parse is dropped from state, so
        that the next run asks for a new export instead of reading it again."""
        try:
            for record in self.read(self.ready, self.plan):
                self.rows += 1
                yield record
            self.stream.after_export(self.ready)
        except FileFormatError:
            self.bookmarks.remove_pending(self.ready.job.request.key)
            self.stream.checkpoint()
            raise

    def close(self, write_state: bool) -> None:
        """All records are out: mark the window emitted (and write a STATE now, unless
        the SDK writes one after the BATCH message announcing them)."""
        self.bookmarks.complete(self.plan)
        self.bookmarks.remove_pending(self.ready.job.request.key)
        if write_state:
            self.stream.checkpoint()


def _batch_writer(
    stream: Stream, config: BatchConfig
) -> t.Callable[[t.Iterator[dict[str, t.Any]]], t.Iterator[list[str]]]:
    """Files of `batch_size` records: JSON lines written here (msgspec, gzip level 1),
    other formats by singer-sdk's own batcher."""
    if config.encoding.format != "jsonl":
        batcher = Batcher(tap_name=stream.tap_name, stream_name=stream.name, batch_config=config)
        return lambda records: batcher.get_batches(records=records)
    storage = config.storage
    gzipped = config.encoding.compression == "gzip"
    sync_id = f"{stream.tap_name}--{stream.name}-{uuid.uuid4()}"
    counter = itertools.count(1)

    def files(records: t.Iterator[dict[str, t.Any]]) -> t.Iterator[list[str]]:
        for chunk in lazy_chunked_generator(records, config.batch_size):
            name = f"{storage.prefix or ''}{sync_id}-{next(counter)}.json{'.gz' if gzipped else ''}"
            data = ENCODER.encode_lines(list(chunk))
            with storage.open(name, "wb") as handle:
                handle.write(gzip.compress(data, compresslevel=1) if gzipped else data)
            yield [storage.get_url(name)]

    return files


class WindowedExportStream(ExportStream):
    """An export-backed stream incremental on windows of record time."""

    # --- exports ---------------------------------------------------------------------

    def request_key(self, plan: PlannedExport) -> str:
        """Identifies the export of `plan` across runs (in state)."""
        raise NotImplementedError

    @staticmethod
    def window_key(prefix: str, plan: PlannedExport, suffix: str) -> str:
        """`<prefix>:<window start ms>:<window end ms>:<suffix>`, a request key."""
        return f"{prefix}:{epoch_ms(plan.start)}:{epoch_ms(plan.end)}:{suffix}"

    def request(self, plan: PlannedExport) -> ExportRequest:
        """The export request for `plan`."""
        raise NotImplementedError

    def after_export(self, ready: ReadyExport) -> None:
        """Called once all rows of an export were emitted, before its window is closed."""
        del ready

    def export_results(
        self,
        plans: list[PlannedExport],
        bookmarks: CoverageBookmarks,
        read: t.Callable[[ReadyExport, PlannedExport], t.Iterator[dict[str, t.Any]]],
    ) -> t.Iterator[ExportResult]:
        """Run the plans' exports and hand each finished one over, in completion order.

        Each created export is written to state at once, so a killed run resumes it.
        """
        bookmarks.expect(plans)
        by_key = {self.request_key(plan): plan for plan in plans}
        bookmarks.forget_pending_except(by_key)

        def created(job: ExportJob) -> None:
            assert job.export_id is not None
            bookmarks.add_pending(job.request.key, job.export_id)
            self.checkpoint()

        requests = [self.request(plan) for plan in plans]
        total = 0
        for ready in self.runner().run(requests, resume=bookmarks.resume_map(), on_created=created):
            result = ExportResult(self, ready, by_key[ready.job.request.key], bookmarks, read)
            yield result
            total += result.rows
            self.logger.info(
                "%s: %s rows emitted (%s so far in %s)",
                ready.job.name,
                f"{result.rows:,}",
                f"{total:,}",
                self.name,
            )
        self.logger.info(
            "%s: sync complete, %s rows emitted from %d export(s)",
            self.name,
            f"{total:,}",
            len(plans),
        )

    def exports(self) -> t.Iterator[ExportResult]:
        """Plan this run's exports from state and settings, and run them."""
        raise NotImplementedError

    def get_records(self, context: t.Mapping[str, t.Any] | None) -> t.Iterator[dict[str, t.Any]]:
        """RECORD mode: each export's records, then a STATE closing its window."""
        for result in self.exports():
            yield from result.records()
            result.close(write_state=True)

    def get_batches(
        self, batch_config: BatchConfig, context: t.Mapping[str, t.Any] | None = None
    ) -> t.Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
        """BATCH mode: each export's rows go to files straight from the parsed CSV.

        A window is closed in state only with the BATCH message of its export's last
        file (the SDK writes a STATE after each BATCH message), so a STATE never claims
        rows that are not in a file already announced.
        """
        files = _batch_writer(self, batch_config)
        for result in self.exports():
            previous: list[str] | None = None
            for manifest in files(result.records()):
                if previous is not None:
                    yield batch_config.encoding, previous
                previous = manifest
            result.close(write_state=previous is None)  # no file: nothing to announce
            if previous is not None:
                yield batch_config.encoding, previous
