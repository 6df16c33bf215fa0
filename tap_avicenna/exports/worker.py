"""RunnerThread: the export runner driven by a background thread.

Every HTTP request of a sync is made by this thread (the client's `requests.Session`
is used by it alone), while the main thread parses files and writes every Singer
message. The main thread sends commands (closures applied to the runner between its
steps) and takes the runner's events from `events`; an exception that ends the thread
becomes a `RunnerStopped` event, which the main thread raises as its own.
"""

from __future__ import annotations

import logging
import queue
import threading
import typing as t
from dataclasses import dataclass

from tap_avicenna.exports.handover import Event
from tap_avicenna.exports.runner import ExportRunner

STOP_SECONDS = 2.0
"""How long `stop` waits for the thread to finish what it is doing (an HTTP request)."""
RUNNER_LOGGERS = ("tap-avicenna.exports", "tap-avicenna.client")

Command = t.Callable[[ExportRunner], None]


@dataclass(frozen=True)
class RunnerStopped:
    """The runner thread ended on an error: the run cannot go on."""

    error: BaseException


class _Silence(logging.Filter):
    """Drops the thread's log records once it was told to stop, so that no line of it
    follows the main thread's last one (an interrupted run ends with its ERROR line)."""

    def __init__(self) -> None:
        super().__init__()
        self.thread: int | None = None
        self.on = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.on and record.thread == self.thread)


class RunnerThread:
    """Runs an ExportRunner in a daemon thread until `stop`."""

    def __init__(self, make_runner: t.Callable[[t.Callable[[Event], None]], ExportRunner]) -> None:
        self.events: queue.SimpleQueue[Event | RunnerStopped] = queue.SimpleQueue()
        self.runner = make_runner(self.events.put)
        self._commands: queue.SimpleQueue[Command | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name="tap-avicenna-exports", daemon=True)
        self._silence = _Silence()

    def start(self) -> None:
        self._thread.start()

    def send(self, command: Command) -> None:
        """Apply `command` to the runner in its thread, before its next step."""
        self._commands.put(command)

    def stop(self, timeout: float = STOP_SECONDS) -> bool:
        """Stop the runner and wait for the thread (at most `timeout`: an HTTP request
        in flight cannot be cut short; the daemon thread then ends with the process,
        silent). True when the thread has ended."""
        self._silence.on = True
        self.runner.stop()
        self._commands.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _main(self) -> None:
        self._silence.thread = threading.get_ident()
        loggers = [logging.getLogger(name) for name in RUNNER_LOGGERS]
        for logger in loggers:
            logger.addFilter(self._silence)
        wait: float | None = 0.0
        try:
            while True:
                command = self._next_command(wait)
                while command is not None:
                    command(self.runner)
                    try:
                        command = self._commands.get_nowait()
                    except queue.Empty:
                        break
                if command is None:
                    return
                wait = self.runner.step()
        except BaseException as exc:  # handed to the main thread, which raises it
            self.events.put(RunnerStopped(exc))
        finally:
            for logger in loggers:  # the thread's id may be given to another thread now
                logger.removeFilter(self._silence)

    def _next_command(self, wait: float | None) -> Command | None:
        """The next command, waiting for one at most `wait` seconds (None: until one
        comes); a no-op when none came in time."""
        try:
            if wait is None:
                return self._commands.get()
            if wait > 0:
                return self._commands.get(timeout=wait)
            return self._commands.get_nowait()
        except queue.Empty:
            return _nothing


def _nothing(runner: ExportRunner) -> None:
    del runner
