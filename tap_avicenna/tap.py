"""TapAvicenna: settings, stream discovery from config, the CLI."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
import typing as t
from pathlib import Path
from types import FrameType

import click
from singer_sdk import Stream, Tap
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import TapCapabilities
from singer_sdk.plugin_base import SingerCommand

from tap_avicenna.client import AvicennaClient
from tap_avicenna.errors import AvicennaError, ConfigError
from tap_avicenna.exports.planner import Period
from tap_avicenna.exports.repository import AvicennaExportRepository
from tap_avicenna.exports.runner import ExportRunner
from tap_avicenna.parsing import Limits
from tap_avicenna.settings import CONFIG_SCHEMA, Settings, coerce_numbers, parse_settings
from tap_avicenna.streams.participants import ParticipantsStream
from tap_avicenna.streams.sensor import SensorStream
from tap_avicenna.streams.survey import SurveyStream


class _Command(SingerCommand):
    """The SDK's command, but expected failures print one line and exit 1.

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


class TapAvicenna(Tap):
    """Singer tap for Avicenna Research data exports."""

    name = "tap-avicenna"
    config_jsonschema = CONFIG_SCHEMA
    message_writer_class = MsgSpecWriter
    capabilities: t.ClassVar[list] = [  # type: ignore[type-arg]
        *Tap.capabilities,
        TapCapabilities.TEST,
    ]

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        coerce_numbers(self._config)
        return super()._validate_config(raise_errors=raise_errors)

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

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: write the state reached (it claims only rows already
        emitted) and exit non-zero, so an orchestrator never takes an interrupted
        sync for a complete one."""
        del frame
        self._state_writer.write_state(self.state)
        self.logger.error(
            "Interrupted by signal %d: sync incomplete; the last STATE resumes it", signum
        )
        sys.exit(128 + signum)

    def export_runner(self) -> ExportRunner:
        s = self.settings
        return ExportRunner(
            AvicennaExportRepository(self.client, s.study_id),
            max_concurrent=s.max_concurrent_exports,
            poll_interval=s.poll_interval_seconds,
            timeout=s.export_timeout_seconds,
            limits=self.limits,
        )

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
        participants = ParticipantsStream(self)
        participants.selected_by_default = first_shard
        return [
            participants,
            *(SensorStream(self, source) for source in self.settings.data_sources),
            *(SurveyStream(self, s) for s in self.settings.surveys if first_shard),
        ]

    # --- CLI -------------------------------------------------------------------------

    @classmethod
    def get_singer_command(cls) -> click.Command:
        command = super().get_singer_command()
        command.__class__ = _Command
        return command

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
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test`: one export-list request proves the credentials and the study."""
        if value != "all":
            super().cb_test(ctx, param, value)
            return
        config = ctx.params.get("config")
        tap = cls(
            config=config.config if config else {},
            parse_env_config=bool(config and config.parse_env),
            validate_config=True,
        )
        exports = tap.client.list_exports(tap.settings.study_id)
        tap.logger.info(
            "Connection test passed: user '%s' can read study %d (%d export(s) listed)",
            tap.settings.username,
            tap.settings.study_id,
            len(exports),
        )
        ctx.exit()
