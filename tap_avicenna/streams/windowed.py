"""WindowedExportStream: streams whose records come from planned export windows.

Sensor and survey streams plan exports (date windows, participant batches), run them
and close each window in state once its records are out, as RECORD messages or as
BATCH files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import typing as t

from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig

from tap_avicenna.batch_files import BatchFiles
from tap_avicenna.bookmarks import CoverageBookmarks
from tap_avicenna.client import epoch_ms
from tap_avicenna.day_digests import STATE_KEY as DIGESTS
from tap_avicenna.day_digests import ExportDigest, prune
from tap_avicenna.errors import ExportFailed, FileFormatError
from tap_avicenna.exports.handover import NotOurExport, ReadyExport
from tap_avicenna.exports.job import ExportRequest
from tap_avicenna.exports.planner import PlannedExport
from tap_avicenna.load_time import EXTRACTED_AT, extracted_at, stamped
from tap_avicenna.rowids import ROW_ID
from tap_avicenna.streams.base import BULK, ExportStream, schema_type

if t.TYPE_CHECKING:
    import pyarrow as pa

    from tap_avicenna.columnar import Columns

Read = t.Callable[[ReadyExport, PlannedExport], t.Iterator[dict[str, t.Any]]]
ReadColumns = t.Callable[[ReadyExport, PlannedExport], t.Iterator["Columns"]]


class ExportResult:
    """A finished export being emitted: read `records()` to the end, then `close()`."""

    def __init__(
        self,
        stream: WindowedExportStream,
        ready: ReadyExport,
        plan: PlannedExport,
        bookmarks: CoverageBookmarks,
        read: Read,
        read_columns: ReadColumns | None,
    ) -> None:
        self.stream, self.ready, self.plan = stream, ready, plan
        self.bookmarks, self.read, self.read_columns = bookmarks, read, read_columns
        self.rows = 0  # emitted
        self.digest = stream.export_digest(plan, bookmarks)
        """The digests of the rows, to skip the periods sent before unchanged; None: off."""

    def records(self) -> t.Iterator[dict[str, t.Any]]:
        """The export's records (`rows_of_file`); a file that is not the request's is rejected:
        the runner gets the request's export again."""
        try:
            yield from self.rows_of_file()
        except NotOurExport as exc:
            self.reject(exc)

    def rows_of_file(self) -> t.Iterator[dict[str, t.Any]]:
        """The export's records; a file that fails to parse is dropped from state, so
        that the next run asks for a new export instead of reading it again."""
        schedule = self.stream.schedule
        try:
            stamp = extracted_at(self.ready.path)
            for record in stamped(self.unsent(), stamp):
                self.rows += 1
                yield record
                if not self.rows % BULK:
                    schedule.apply_events()  # the records so far are written
            self.log_skipped()
        except FileFormatError:
            self.bookmarks.remove_pending(self.ready.job.request.key)
            self.stream.checkpoint()
            raise
        self.stream.after_export(self.ready)

    @contextlib.contextmanager
    def reading_for_digests(self) -> t.Iterator[None]:
        """The first read of an export emits nothing: the stream's lines about its rows
        (INFO, WARNING) are left to the second; errors still show."""
        logger = self.stream.logger
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(level)

    def digest_fields(self) -> tuple[str, str]:
        """The fields of a row's member and record time (Arrow batches)."""
        member, when = self.stream.digest_member, self.stream.replication_key
        assert member is not None and when is not None
        return member, when

    def unsent(self) -> t.Iterator[dict[str, t.Any]]:
        """The export's records but those of the periods sent before unchanged: with
        digests in state for periods inside the export, the file is read twice."""
        digest = self.digest
        if digest is None:
            return self.read(self.ready, self.plan)
        key = self.stream.digest_key
        if digest.needs_first_pass:
            with self.reading_for_digests():
                for record in self.read(self.ready, self.plan):
                    digest.first(*key(record))
            digest.compare()
        if digest.watches_from is None:  # no period to skip or to digest (older windows)
            return self.read(self.ready, self.plan)
        return (r for r in self.read(self.ready, self.plan) if digest.keep(*key(r)))

    def first_pass_columns(self, files: BatchFiles) -> None:
        """`unsent`'s first pass on Arrow batches: row ids computed only for the rows in
        the time span of the stored segments inside the export."""
        import pyarrow.compute as pc

        digest, read_columns = self.digest, self.read_columns
        if digest is None or not digest.needs_first_pass or read_columns is None:
            return
        member, when = self.digest_fields()
        low, high = digest.stored_span()
        with self.reading_for_digests():
            for columns in read_columns(self.ready, self.plan):
                times = columns.column(when)
                inside = pc.fill_null(
                    pc.and_(pc.greater_equal(times, low), pc.less(times, high)), False
                )
                if not pc.any(inside).as_py():
                    continue
                part = columns.filter(inside)
                digest.first_columns(part.column(member), part.column(when), files.row_ids(part))
        digest.compare()

    def select(self, columns: Columns, ids: pa.Array) -> pa.Array | None:
        """The rows of an Arrow batch to write (a mask; None: all): `unsent`'s second
        pass, on the batches that reach the watched times."""
        import pyarrow.compute as pc

        digest = self.digest
        assert digest is not None
        member, when = self.digest_fields()
        watched = digest.watches_from
        times = columns.column(when)
        if watched is None or (pc.max(times).as_py() or "") < watched:
            return None
        return digest.keep_columns(columns.column(member), times, ids)

    def log_skipped(self) -> None:
        """How many rows were not sent again, their period being unchanged (INFO)."""
        if self.digest is not None and self.digest.needs_first_pass:
            self.stream.logger.info(
                "%s: %s row(s) of periods sent before and unchanged not emitted again "
                "(skip_unchanged_days)",
                self.ready.job.name,
                f"{self.digest.skipped:,}",
            )

    def reject(self, exc: NotOurExport) -> None:
        self.ready.reject(str(exc))
        self.bookmarks.remove_pending(self.ready.job.request.key)

    def write_files(self, files: BatchFiles, number: int, dropped: list[str]) -> list[str]:
        """The export's rows as BATCH files: from Arrow columns when the stream and the
        file allow it, else row by row (which also reports a broken file's line)."""
        if self.read_columns is not None and files.columnar:
            from tap_avicenna.columnar import NotColumnar

            keep_stamp = EXTRACTED_AT not in dropped
            files.extracted_at = extracted_at(self.ready.path) if keep_stamp else None
            select = None if self.digest is None else self.select
            try:
                self.first_pass_columns(files)
                urls, self.rows = files.from_columns(
                    self.read_columns(self.ready, self.plan), number, dropped, select
                )
            except NotOurExport as exc:
                self.reject(exc)
                return []
            except (NotColumnar, FileFormatError) as e:
                self.stream.logger.info("%s: read row by row (%s)", self.ready.job.name, e)
                self.rows = 0
                self.digest = self.stream.export_digest(self.plan, self.bookmarks)  # anew
            else:
                self.log_skipped()
                self.stream.after_export(self.ready)
                return urls
        records = self.rows_of_file()
        if dropped:
            records = ({k: v for k, v in r.items() if k not in dropped} for r in records)
        try:
            return files.from_records(records, number)  # deletes its files if it fails
        except NotOurExport as exc:
            self.reject(exc)
            return []

    def close(self) -> None:
        """All records are out (written, or announced by a BATCH message): mark the
        window emitted and write a STATE. A rejected file closes nothing."""
        if self.ready.rejected is not None:
            return
        self.bookmarks.complete(self.plan)
        self.bookmarks.remove_pending(self.ready.job.request.key)
        if self.digest is not None:
            self.store_digests(self.digest)
        self.stream.checkpoint()

    def store_digests(self, digest: ExportDigest) -> None:
        """The export's segments replace those they overlap in state (with the STATE that
        closes the window); segments ending at or before a member's bookmark - lookback
        are dropped."""
        stored = self.bookmarks.state.setdefault(DIGESTS, {})
        digest.store(stored)
        lookback = self.stream.settings.lookback
        bounds = {}
        for member in digest.ranges:
            mark = self.bookmarks.bookmark(member)
            bounds[str(member)] = None if mark is None else mark - lookback
        prune(stored, bounds)


class WindowedExportStream(ExportStream):
    """An export-backed stream incremental on windows of record time."""

    objects_may_appear = False
    """Whether files may bring object fields the schema does not have yet."""
    digest_member: str | None = None
    """The field naming a row's member in its digest (None: not a field)."""
    _plans: dict[str, PlannedExport]  # this run's, by request key (`plan`)
    _bookmarks: CoverageBookmarks

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

    def bind_source(self, bookmarks: CoverageBookmarks, key: str, value: int) -> None:
        """Record in state what this stream's bookmarks are of (a data source id, an
        activity id); when state holds another one for the same stream name, start over
        from start_date."""
        old = bookmarks.bind(key, value)
        if old is not None:
            self.logger.warning(
                "%s: %s changed from %s to %s under the same name: its bookmarks do not "
                "apply, the stream starts over from start_date",
                self.name,
                key,
                old,
                value,
            )

    def after_export(self, ready: ReadyExport) -> None:
        """Called once all rows of an export were emitted, before its window is closed."""
        del ready

    def planned(self) -> tuple[list[PlannedExport], CoverageBookmarks]:
        """This run's windows (from state and settings) and the bookmarks they move."""
        raise NotImplementedError

    def plan(self) -> tuple[list[ExportRequest], dict[str, int]]:
        """The windows' requests, and their exports in state to resume; in-flight
        exports of windows this run does not plan, and the row digests of members it
        does not plan, are dropped from state."""
        plans, bookmarks = self.planned()
        bookmarks.expect(plans)
        self._plans = {self.request_key(plan): plan for plan in plans}
        bookmarks.forget_pending_except(self._plans)
        digests = bookmarks.state.get(DIGESTS)
        if digests:
            planned = {str(m) for plan in plans for m in bookmarks.members(plan)}
            prune(digests, {m: None for m in digests if m not in planned})
        self._bookmarks = bookmarks
        return [self.request(plan) for plan in plans], bookmarks.resume_map()

    def digest_key(self, record: t.Mapping[str, t.Any]) -> tuple[t.Any, str, str]:
        """A record's member, record time and row id, for its digest."""
        assert self.digest_member is not None and self.replication_key is not None
        return record[self.digest_member], record[self.replication_key], record[ROW_ID]

    def export_digest(
        self, plan: PlannedExport, bookmarks: CoverageBookmarks
    ) -> ExportDigest | None:
        """The digests of an export's rows (`day_digests`), for each member over
        [max(window start, the member's start), window end); None when off."""
        settings = self.settings
        if not settings.skip_unchanged_days:
            return None
        ranges = {
            member: (max(plan.start, bookmarks.starts.get(member, plan.start)), plan.end)
            for member in bookmarks.members(plan)
        }
        stored = bookmarks.state.get(DIGESTS) or {}
        return ExportDigest(ranges, stored, settings.end_date - settings.lookback)

    def export_created(self, key: str, export_id: int) -> None:
        """Each created export is written to state at once, so a killed run resumes it."""
        self._bookmarks.add_pending(key, export_id)
        self.checkpoint()

    def export_results(
        self, read: Read, read_columns: ReadColumns | None = None
    ) -> t.Iterator[ExportResult]:
        """Each planned export once it is ready, in the order they are ready."""
        schedule = self.schedule
        total = exports = 0
        with contextlib.closing(schedule.results(self)) as files:
            try:
                for ready in files:
                    plan = self._plans[ready.job.request.key]
                    result = ExportResult(self, ready, plan, self._bookmarks, read, read_columns)
                    yield result
                    if ready.rejected is not None:
                        continue
                    total += result.rows
                    exports += 1
                    self.logger.info(
                        "%s: %s rows emitted (%s so far in %s); %s",
                        ready.job.name,
                        f"{result.rows:,}",
                        f"{total:,}",
                        self.name,
                        schedule.position(),
                    )
            except ExportFailed as exc:  # an export failing on every attempt
                if schedule.failure(self) is not exc:
                    raise
                self.services.stream_failed(self.name, exc)
                return
        self.logger.info(
            "%s: sync complete, %s rows emitted from %d export(s)",
            self.name,
            f"{total:,}",
            exports,
        )

    def exports(self) -> t.Iterator[ExportResult]:
        """This run's exports, each once it is ready (`export_results`)."""
        raise NotImplementedError

    def get_records(self, context: t.Mapping[str, t.Any] | None) -> t.Iterator[dict[str, t.Any]]:
        """RECORD mode: each export's records, then a STATE closing its window."""
        for result in self.exports():
            yield from result.records()
            result.close()

    def _faithful(self, config: BatchConfig) -> BatchConfig:
        """`config`, or JSON lines instead of Parquet for a stream with object fields:
        Parquet would store free-form objects as structs, adding every key any row has
        to every row (with null). Each BATCH message names its own encoding."""
        objects = [name for name, spec in self.schema["properties"].items()
                   if schema_type(spec) == "object"]  # fmt: skip
        if config.encoding.format != "parquet" or not (objects or self.objects_may_appear):
            return config
        self.logger.info(
            "%s: object field(s) %s do not fit Parquet as they are; this stream's BATCH "
            "files are JSON lines",
            self.name,
            ", ".join(objects[:5]) or "(as files bring them)",
        )
        encoding = BaseBatchFileEncoding(format="jsonl", compression=config.encoding.compression)
        return dataclasses.replace(config, encoding=encoding)

    def get_batches(
        self, batch_config: BatchConfig, context: t.Mapping[str, t.Any] | None = None
    ) -> t.Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
        """BATCH mode: one BATCH message per export, listing its files.

        The window is closed in state (with a STATE) only once that message is written,
        and a signal meanwhile waits for it (the interrupt gate), so a STATE never claims
        rows that are not in a file already announced. Deselected fields are left out
        of the files.
        """
        batch_config = self._faithful(batch_config)
        files = BatchFiles(self.tap_name, self.name, batch_config)
        if files.columnar:
            files.warm_up()
        dropped = self._deselected()
        gate = self.services.interrupts
        try:
            for number, result in enumerate(self.exports(), start=1):
                urls = result.write_files(files, number, dropped)
                if not urls:  # no file: nothing to announce
                    result.close()
                    continue
                gate.held = True
                try:
                    yield batch_config.encoding, urls  # the SDK writes the BATCH message
                    result.close()
                finally:
                    gate.release()
        finally:
            files.close()
