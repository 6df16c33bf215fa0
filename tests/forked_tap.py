"""`python -m tap_avicenna ARGS` as a real process, without paying for its imports each time.

Starting the tap costs ~1.4 s of imports (singer-sdk alone ~1 s) before it does anything,
and the suite starts it a few hundred times. A server process (one per test process,
started on first use) imports the tap once; each run is a child forked from it, that
takes the test's pipes as its stdin/stdout/stderr, its environment and working folder,
and runs `tap_avicenna/__main__.py` as `python -m` does. The child is a process like any
other: its own exit code, signals, pipes and files. What it skips is only the import,
which `tests/integration/test_cli.py`, `test_bad_config.py` and the `--about`/`--help`
tests of `test_first_hour.py` still do with a real `python -m tap_avicenna` start.

`TapProcess` offers the part of `subprocess.Popen` the tests use. The server reports a
child's end (its wait status) on a socket made for that child, so `wait` needs no
polling. The server forks only from its single thread; it exits, killing the children
still running, when the test process closes the connection or dies.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import typing as t
from pathlib import Path

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
ROOT = Path(__file__).resolve().parents[1]


# --- the server (runs in its own process) ----------------------------------------------


def serve(fd: int) -> None:
    """Fork a tap for each request on the connection `fd` until it closes."""
    import tap_avicenna.tap  # noqa: F401  (the point: imported once, before any fork)

    control = socket.socket(fileno=fd)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of pytest is pytest's to handle
    children: dict[int, socket.socket] = {}
    while True:
        readable, _, _ = select.select([control.fileno(), wake_read], [], [])
        if wake_read in readable:
            os.read(wake_read, 4096)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            report = children.pop(pid)
            with contextlib.suppress(OSError):  # the test gave up on it
                report.sendall(json.dumps({"status": status}).encode())
            report.close()
        if control.fileno() not in readable:
            continue
        message, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)
        if not message:
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            return
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            for sock in (control, *children.values()):
                sock.close()
            os.close(wake_read)
            os.close(wake_write)
            _run_tap(request, fds)
        children[pid] = socket.socket(fileno=fds[3])
        for fd in fds[:3]:
            os.close(fd)
        control.sendall(json.dumps({"pid": pid}).encode())


def _run_tap(request: dict[str, t.Any], fds: list[int]) -> t.NoReturn:
    """In the forked child: become `python -m tap_avicenna ARGS` and exit as it would."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.close(fds[3])
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # TMPDIR is read again
    sys.argv = ["tap_avicenna", *request["args"]]
    code: int
    try:
        runpy.run_module("tap_avicenna", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        code = -signal.SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # as Python does when it cannot flush at exit
    if code < 0:  # an unhandled KeyboardInterrupt: Python ends by the signal
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


# --- the test side -----------------------------------------------------------------------


class _Server:
    """The server process of this test process, started on first use."""

    _lock = threading.Lock()
    _control: socket.socket | None = None
    _process: subprocess.Popen[bytes] | None = None

    @classmethod
    def spawn(cls, request: dict[str, t.Any], fds: list[int]) -> int:
        with cls._lock:
            if cls._control is None:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                code = f"from tests.forked_tap import serve; serve({theirs.fileno()})"
                cls._process = subprocess.Popen(
                    [sys.executable, "-c", code],
                    cwd=ROOT,
                    pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,  # never the test process's: xdist talks there
                )
                theirs.close()
                cls._control = ours
                atexit.register(cls.stop)
            socket.send_fds(cls._control, [json.dumps(request).encode()], fds)
            answer = cls._control.recv(4096)
            if not answer:
                raise RuntimeError("the forked-tap server ended; see the test's stderr")
            return int(json.loads(answer)["pid"])

    @classmethod
    def stop(cls) -> None:
        """Close the connection: the server ends, and the taps still running with it."""
        if cls._control is not None and cls._process is not None:
            cls._control.close()
            cls._process.wait(timeout=60)


class TapProcess:
    """`python -m tap_avicenna ARGS`, forked from the server: stdout and stderr each a
    pipe (`PIPE`, read as text), `DEVNULL`, or an open file."""

    def __init__(
        self,
        args: t.Sequence[str],
        *,
        stdout: int | t.IO[t.Any] = PIPE,
        stderr: int | t.IO[t.Any] = PIPE,
        env: t.Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
    ) -> None:
        self.args = list(args)
        self.returncode: int | None = None
        ends = [os.open(os.devnull, os.O_RDONLY)]  # stdin, stdout, stderr: closed once sent
        self.stdout = self._end(stdout, ends)
        self.stderr = self._end(stderr, ends)
        self._report, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = {
            "args": self.args,
            "env": dict(os.environ if env is None else env),
            "cwd": str(cwd or os.getcwd()),
        }
        try:
            self.pid = _Server.spawn(request, [*ends, theirs.fileno()])
        finally:
            theirs.close()
            for fd in ends:
                os.close(fd)

    @staticmethod
    def _end(where: int | t.IO[t.Any], ends: list[int]) -> t.IO[str] | None:
        """The child's end of `where`, added to `ends`; ours when it is a pipe."""
        if where == PIPE:
            read, write = os.pipe()
            ends.append(write)
            return open(read, encoding="utf-8")
        if where == DEVNULL:
            ends.append(os.open(os.devnull, os.O_WRONLY))
        else:
            assert not isinstance(where, int)
            ends.append(os.dup(where.fileno()))
        return None

    def poll(self) -> int | None:
        if self.returncode is None:
            readable, _, _ = select.select([self._report], [], [], 0)
            if readable:
                self._reap()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            readable, _, _ = select.select([self._report], [], [], timeout)
            if not readable:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            self._reap()
        assert self.returncode is not None
        return self.returncode

    def _reap(self) -> None:
        answer = self._report.recv(4096)
        self._report.close()
        if not answer:
            raise RuntimeError("the forked-tap server ended before the tap did")
        status = int(json.loads(answer)["status"])
        self.returncode = os.waitstatus_to_exitcode(status)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Both pipes read to the end (by a thread each: neither can fill up), then the
        exit; on timeout the tap is killed and TimeoutExpired raised."""
        texts = {"stdout": "", "stderr": ""}

        def read(name: str, pipe: t.IO[str]) -> None:
            texts[name] = pipe.read()

        readers = [
            threading.Thread(target=read, args=(name, pipe))
            for name, pipe in (("stdout", self.stdout), ("stderr", self.stderr))
            if pipe is not None
        ]
        for reader in readers:
            reader.start()
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait()
            raise
        finally:
            for reader in readers:
                reader.join()
            for pipe in (self.stdout, self.stderr):
                if pipe is not None:
                    pipe.close()
        return texts["stdout"], texts["stderr"]


def run(
    args: t.Sequence[str], *, env: t.Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(..., capture_output=True, text=True)` for a forked tap."""
    process = TapProcess(args, env=env)
    stdout, stderr = process.communicate(timeout)
    assert process.returncode is not None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
