"""TapAvicenna: settings, stream discovery from config, the CLI."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import typing as t
from pathlib import Path
from types import FrameType

import click
from singer_sdk import Stream, Tap
from singer_sdk.about import AboutFormatter
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers._util import load_json
from singer_sdk.helpers.capabilities import TapCapabilities
from singer_sdk.plugin_base import SingerCommand, _ConfigInput

from tap_avicenna.bookmarks import drop_other_participants
from tap_avicenna.catalogue import (
    closest_known,
    data_sources_markdown,
    data_sources_text,
    is_known,
    known_sources,
)
from tap_avicenna.client import AvicennaClient
from tap_avicenna.errors import AvicennaError, ConfigError, ExportFailed
from tap_avicenna.exports.handover import Event
from tap_avicenna.exports.planner import Period
from tap_avicenna.exports.repository import AvicennaExportRepository
from tap_avicenna.exports.runner import ExportRunner
from tap_avicenna.exports.schedule import PER_STREAM_ENV, ExportSchedule
from tap_avicenna.interrupts import Interrupted, InterruptGate, ignore_signals
from tap_avicenna.parsing import Limits
from tap_avicenna.settings import (
    CONFIG_SCHEMA,
    Settings,
    coerce_numbers,
    parse_settings,
    unknown_settings,
)
from tap_avicenna.startup import check_batch_storage, check_writable_folder, read_state_file
from tap_avicenna.streams.base import ExportStream
from tap_avicenna.streams.participants import ParticipantsStream
from tap_avicenna.streams.sensor import SensorStream
from tap_avicenna.streams.survey import SurveyStream


class _Command(SingerCommand):
    """The SDK's command, but expected failures print one line and exit 1 (128 +
    the signal for a signal).

    Click runs option callbacks (`--discover`, `--test`) while making the context and
    the sync while invoking it: both are covered.
    """

    @contextlib.contextmanager
    def _one_line_errors(self) -> t.Iterator[None]:
        try:
            yield
        except ConfigValidationError as exc:
            self.logger.error("Invalid settings: %s", "; ".join(exc.errors))
            raise click.exceptions.Exit(1) from None
        except AvicennaError as exc:
            self.logger.error("%s", exc)
            raise click.exceptions.Exit(1) from None
        except Interrupted as exc:
            self.logger.error("%s", exc)
            raise click.exceptions.Exit(128 + exc.signum) from None
        except BrokenPipeError:
            self.logger.error(
                "stdout was closed while the tap wrote to it (broken pipe): whatever read "
                "it (the target) stopped; the next run resumes from the last STATE it kept"
            )
            raise  # click quiets stdout's last flush and exits 1

    def make_context(self, *args: t.Any, **kwargs: t.Any) -> click.Context:
        with self._one_line_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> t.Any:
        logging.captureWarnings(capture=True)
        sys.excepthook = self.excepthook
        with self._one_line_errors():
            return click.Command.invoke(self, ctx)


def _check_config_file(path: str) -> None:
    """Raise ConfigError naming `path` if it is not a readable JSON object."""
    try:
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"Cannot read config file '{path}': {reason}") from None
    except ValueError as exc:
        raise ConfigError(f"Config file '{path}' is not valid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"Config file '{path}' must hold a JSON object")


def _read_catalog(file: t.IO[str]) -> dict[str, t.Any]:
    """`--catalog`: a JSON object with a list of streams, else a ConfigError naming the file."""
    name = getattr(file, "name", "--catalog")
    try:
        catalog = load_json(file.read())
    except ValueError as exc:
        raise ConfigError(f"Catalog file '{name}' is not valid JSON: {exc}") from None
    streams = catalog.get("streams") if isinstance(catalog, dict) else None
    if not isinstance(streams, list) or not all(
        isinstance(stream, dict) and "tap_stream_id" in stream for stream in streams
    ):
        raise ConfigError(
            f"Catalog file '{name}' must hold an object with a 'streams' list, each stream "
            "with its 'tap_stream_id': write one with --discover"
        )
    return catalog


class TapAvicenna(Tap):
    """Singer tap for Avicenna Research data exports."""

    name = "tap-avicenna"
    config_jsonschema = CONFIG_SCHEMA
    message_writer_class = MsgSpecWriter
    # The SDK's, but `activate-version`: the tap never sends ACTIVATE_VERSION messages.
    capabilities: t.ClassVar[list] = [  # type: ignore[type-arg]
        *(c for c in Tap.capabilities if c is not TapCapabilities.ACTIVATE_VERSION),
        TapCapabilities.TEST,
    ]

    dynamic_catalog = True  # the streams come from the settings: discovery checks them

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """The schema check, and settings the tap does not know: a WARNING each, or
        errors with `strict_settings`; named beside the schema's errors either way (a
        misspelt name is often why a required setting is missing)."""
        coerce_numbers(self._config)
        self.append_builtin_config(self.config_jsonschema)
        unknown = unknown_settings(self._config, self.config_jsonschema["properties"])
        try:
            errors = super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as exc:
            exc.errors.extend(unknown)
            raise
        if unknown and raise_errors and self._config.get("strict_settings") is True:
            raise ConfigValidationError(
                "Config validation failed", errors=unknown, schema=self.config_jsonschema
            )
        for line in unknown:
            self.logger.warning(
                "%s%s: ignored (strict_settings makes it an error; `tap-avicenna --about` "
                "lists the settings)",
                line[0].upper(),
                line[1:],
            )
        return errors

    @functools.cached_property
    def settings(self) -> Settings:
        return parse_settings(self.config)

    @functools.cached_property
    def client(self) -> AvicennaClient:
        s = self.settings
        return AvicennaClient(
            api_url=s.api_url,
            username=s.username,
            api_key=s.api_key,
            request_timeout=s.request_timeout_seconds,
            backoff_base=s.retry_backoff_seconds,
        )

    @functools.cached_property
    def limits(self) -> Limits:
        return Limits(max_expanded_bytes=self.settings.max_uncompressed_file_bytes)

    @functools.cached_property
    def interrupts(self) -> InterruptGate:
        return InterruptGate(on_stop=ignore_signals)

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: unwind the sync (`Interrupted`); `sync` then writes the
        state reached, which claims only rows already emitted, and the CLI exits
        non-zero, so an orchestrator never takes an interrupted sync for a complete one."""
        self.interrupts.handle(signum, frame)

    def check_before_sync(self) -> None:
        """What would otherwise fail only after exports were created and downloaded:
        the folders the tap writes to."""
        check_batch_storage(self.config.get("batch_config"))
        if self.settings.response_files_dir:
            folder = self.settings.response_files_dir
            check_writable_folder("response_files_dir", folder, folder)

    def sync(self) -> None:
        """`sync_all` after the start-up checks; an interrupted sync writes its last
        STATE before the CLI's ERROR line."""
        self.check_before_sync()
        dropped = drop_other_participants(self.state, self.settings.in_shard)
        if dropped:
            self.logger.info("State: %d bookmark(s) of other shards' participants ignored", dropped)
        try:
            self.sync_all()
        except Interrupted as exc:
            self._state_writer.write_state(self.state)
            raise Interrupted(exc.signum, "sync incomplete; the last STATE resumes it") from None

    def sync_all(self) -> None:  # type: ignore[misc]  # final in singer-sdk: see below
        """singer-sdk's sync, stream after stream, with the exports of every selected
        stream planned at the start and run by one runner in the background (see
        ExportSchedule); its files and thread are gone when this returns. Wrapping
        `sync_all` itself (singer-sdk marks it final for typing only) covers every
        sync, also those started by singer-sdk's test helpers."""
        self._failed_streams: dict[str, AvicennaError] = {}
        try:
            self.schedule.start(self._exporting_streams())
            super().sync_all()
        finally:
            self.schedule.close()
            del self.schedule  # its thread is gone: another sync of this tap makes its own
        if self._failed_streams:
            failed = "; ".join(f"{name}: {error}" for name, error in self._failed_streams.items())
            raise ExportFailed(f"{failed}; every other stream was synced")

    def stream_failed(self, name: str, error: AvicennaError) -> None:
        """One of the stream's exports cannot be obtained: the stream stops there (its
        state keeps what was emitted), the other streams go on (WARNING), and the run
        ends with the ERROR line once they are done."""
        self.logger.warning("%s stops here: %s; the other streams go on", name, error)
        self._failed_streams[name] = error

    def _exporting_streams(self) -> list[ExportStream]:
        """The selected streams, in sync order, and the participants stream first when
        a selected sensor stream needs the participant list."""
        streams = t.cast(dict[str, ExportStream], self.streams)
        selected = [s for s in streams.values() if s.selected]
        participants = streams["participants"]
        needed = self.settings.participant_ids is None and any(
            isinstance(s, SensorStream) for s in selected
        )
        if needed and participants not in selected:
            selected.insert(0, participants)
        return selected

    @functools.cached_property
    def schedule(self) -> ExportSchedule:
        """The run's exports: one runner thread serves every stream."""
        return ExportSchedule(
            self._make_runner,
            priorities={name: number for number, name in enumerate(self.streams)},
            per_stream=bool(os.environ.get(PER_STREAM_ENV)),
            logger=self.logger,
        )

    def _make_runner(self, emit: t.Callable[[Event], None], directory: str) -> ExportRunner:
        s = self.settings
        return ExportRunner(
            AvicennaExportRepository(self.client, s.study_id),
            emit=emit,
            max_concurrent=s.max_concurrent_exports,
            poll_interval=s.poll_interval_seconds,
            timeout=s.export_timeout_seconds,
            limits=self.limits,
            max_waiting_bytes=s.max_waiting_files_bytes,
            directory=directory,
        )

    def participants_known(self) -> bool:
        """Whether the participation export was read (sensor streams can be planned)."""
        return t.cast(ParticipantsStream, self.streams["participants"]).known

    def participants_for(self, stream: Stream) -> dict[int, Period | None]:
        """Participants whose sensor data a stream exports, with their participation
        period: `participant_ids` when set (any period), else the study's participants
        from the participation export."""
        settings = self.settings
        if settings.participant_ids is not None:
            periods: dict[int, Period | None] = {p: None for p in settings.participant_ids}
        else:
            periods = dict(t.cast(ParticipantsStream, self.streams["participants"]).periods())
        mine = {p: period for p, period in periods.items() if settings.in_shard(p)}
        if not mine:
            self.logger.warning("%s: no participants to export", stream.name)
        return mine

    def discover_streams(self) -> list[Stream]:
        """One stream per data source and survey, and participants.

        Shards other than 0 export only their participants' sensor data: the
        participants stream is there (sensor streams may need its list) but not
        selected, and the survey streams are shard 0's.
        """
        first_shard = self.settings.shard_index == 0
        self._warn_unknown_sources()
        participants = ParticipantsStream(self)
        participants.selected_by_default = first_shard
        return [
            participants,
            *(SensorStream(self, source) for source in self.settings.data_sources),
            *(SurveyStream(self, s) for s in self.settings.surveys if first_shard),
        ]

    def _warn_unknown_sources(self) -> None:
        for source in self.settings.data_sources:
            if source.fields or is_known(source.name):
                continue
            close = closest_known(source.name)
            self.logger.warning(
                "Data source '%s' (id %d) is not in the tap's catalogue, so its columns are "
                "typed as strings:%s type them with its `fields` (e.g. "
                '{"id": %d, "name": "%s", "fields": {"<column>": "number"}}); '
                "`tap-avicenna --about` lists the known names",
                source.name,
                source.id,
                f" did you mean '{close}'? Or" if close else "",
                source.id,
                source.name,
            )

    # --- CLI -------------------------------------------------------------------------

    @classmethod
    def get_singer_command(cls) -> click.Command:
        command = super().get_singer_command()
        command.__class__ = _Command
        command.help = (
            "Singer tap for the Avicenna Research Data Export API. With --config alone it "
            "syncs: RECORD (or BATCH), SCHEMA and STATE messages on stdout, logs on stderr."
        )
        options = {p.name: p for p in command.params if isinstance(p, click.Option)}
        options["discover"].help = (
            "Write the catalog (participants, and one stream per data source and survey "
            "of the settings) and exit."
        )
        options["test"].help = (
            "Check the settings, then prove the credentials and the study with one "
            "request (the study's export list) and exit; --test=schema writes the "
            "SCHEMA messages instead."
        )
        state = options["state"]
        state.type = click.STRING
        state.callback = cls.cb_state
        state.help = (
            "State to resume from: the last state a target wrote, a STATE message, or "
            'what `meltano state get` prints ({"singer_state": ...}).'
        )
        return command

    @classmethod
    def cb_state(
        cls, ctx: click.Context, param: click.Parameter, value: str | None
    ) -> dict[str, t.Any] | None:
        """`--state`: read and checked at once, so a broken file is one line naming it."""
        del ctx, param
        return None if value is None else read_state_file(value)

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: _ConfigInput | None = None,
        state: dict[str, t.Any] | None = None,
        catalog: t.IO[str] | None = None,
    ) -> None:
        """singer-sdk's sync command, with the start-up checks of `sync` and the state
        already read by `cb_state`."""
        if about:
            cls.print_about(about_format)
            sys.exit(0)
        cls.print_version(print_fn=cls.logger.info)
        config = config or _ConfigInput()
        tap = cls(
            config=config.config,
            state=state,
            catalog=None if catalog is None else _read_catalog(catalog),
            parse_env_config=config.parse_env,
            validate_config=True,
        )
        tap.sync()

    @classmethod
    def print_about(cls, output_format: str | None = None) -> None:
        """singer-sdk's `--about`, followed by the data source names the tap knows and
        the columns it types for them (JSON: a `data_sources` key)."""
        output_format = output_format or "text"
        info = cls._get_about_info()
        text = AboutFormatter.get_formatter(output_format).format_about(info)
        if output_format == "json":
            about = json.loads(text)
            about["data_sources"] = [
                {"names": list(source.names), "fields": source.fields} for source in known_sources()
            ]
            text = json.dumps(about, indent=2)
        elif output_format == "markdown":
            text = f"{text}\n{data_sources_markdown()}"
        else:
            text = f"{text}\n{data_sources_text()}"
        print(text)

    @classmethod
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> t.Any:
        """`--config`: a file that cannot be read is one clear line, not a traceback.

        singer-sdk reads the files; only when that fails is each one looked at again, to
        name the file and the reason.
        """
        try:
            return super().cb_config(ctx, param, value)
        except (OSError, ValueError, TypeError):
            for path in value:
                if path != "ENV":
                    _check_config_file(path)
            raise

    @classmethod
    def from_context(cls, ctx: click.Context, **kwargs: t.Any) -> TapAvicenna:
        """The tap of an option callback (`--discover`, `--test`), settings checked."""
        config = ctx.params.get("config")
        return cls(
            config=config.config if config else {},
            parse_env_config=bool(config and config.parse_env),
            validate_config=True,
            **kwargs,
        )

    @classmethod
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """`--discover`: every invalid setting in one line (as a sync), not the SDK's
        one line per error."""
        if not value:
            return
        cls.from_context(ctx, setup_mapper=False).run_discovery()
        ctx.exit()

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test`: the start-up checks, then one export-list request proves the
        credentials and the study."""
        if value != "all":
            super().cb_test(ctx, param, value)
            return
        tap = cls.from_context(ctx)
        tap.check_before_sync()
        exports, pages = tap.client.list_exports(tap.settings.study_id)
        tap.logger.info(
            "Connection test passed: user '%s' can read study %d (%d export(s) listed on "
            "%d page(s))",
            tap.settings.username,
            tap.settings.study_id,
            len(exports),
            pages,
        )
        ctx.exit()
