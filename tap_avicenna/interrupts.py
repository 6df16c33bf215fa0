"""SIGINT/SIGTERM: stop where the records written and the records counted agree.

The signal handler raises `Interrupted`, which unwinds the sync so that every meter
logs its final figure before the CLI writes the last STATE and its one ERROR line.
While a record is being written and counted (`held`), the exception waits until the
record is done (`release`), so that a record is never written without being counted.
"""

from __future__ import annotations

import signal
import sys
import threading
import typing as t
from types import FrameType


class Interrupted(BaseException):
    """The run was stopped by a signal (a BaseException, like KeyboardInterrupt, so
    that no `except Exception` takes it for a failure to report)."""

    def __init__(self, signum: int, note: str = "") -> None:
        super().__init__(f"Interrupted by signal {signum}" + (f": {note}" if note else ""))
        self.signum = signum


SIGNAL_RACE = "ignored due to race condition"
"""CPython's report of a signal caught by its Python handler just before SIG_IGN took its
place ("Signal 2 ignored due to race condition", an OSError printed with a traceback)."""


def _quiet_signal_races(previous: t.Callable[[t.Any], object]) -> t.Callable[[t.Any], None]:
    """`sys.unraisablehook` but silent on SIGNAL_RACE: ignoring that signal is the point."""

    def hook(unraisable: t.Any) -> None:
        error = unraisable.exc_value
        if not (isinstance(error, OSError) and SIGNAL_RACE in str(error)):
            previous(unraisable)

    return hook


def ignore_signals() -> None:
    """SIGINT and SIGTERM ignored by the process from now on (SIG_IGN), so that none
    ends it by the signal. A Python handler is not enough: interpreter shutdown puts
    the default action back in its place, not SIG_IGN. A signal that arrives while
    SIG_IGN is being set is ignored without CPython's traceback for it. Only the main
    thread may set it; elsewhere nothing is done."""
    if threading.current_thread() is threading.main_thread():
        sys.unraisablehook = _quiet_signal_races(sys.unraisablehook)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


class InterruptGate:
    """Turns SIGINT/SIGTERM into `Interrupted`, at once or at the end of a held record.

    Once the run is stopping, further signals are ignored: a second Ctrl-C (or a
    SIGTERM after a SIGINT) would otherwise interrupt the clean-up that writes the last
    STATE, or a generator closed at exit, and print a traceback after the ERROR line,
    or end the process by the signal while the interpreter shuts down instead of with
    128 + the first signal. `on_stop` runs as the run starts stopping (the tap's:
    `ignore_signals`).
    """

    def __init__(self, on_stop: t.Callable[[], None] = lambda: None) -> None:
        self.held = False
        self.deferred: int | None = None
        self.stopping = False
        self.on_stop = on_stop

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler."""
        del frame
        if self.stopping:
            return
        if self.held:
            self.deferred = signum
            return
        self._stop(signum)

    def release(self) -> None:
        """End a held section: raise the signal that arrived during it, if any."""
        self.held = False
        if self.deferred is not None and not self.stopping:
            self._stop(self.deferred)

    def _stop(self, signum: int) -> None:
        self.stopping = True
        self.on_stop()
        raise Interrupted(signum)
