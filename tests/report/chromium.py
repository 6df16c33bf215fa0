"""Headless Chromium driven over the Chrome DevTools Protocol on a pipe
(`--remote-debugging-pipe`: JSON messages ended by NUL on descriptors 3 and 4), so no
port, no websocket library and no browser download: Debian's `chromium` package
(scripts/install-chromium.sh).

The page is offline (`Network.emulateNetworkConditions`, and every host name resolves to
nothing); every request, console message and uncaught exception it makes is recorded.
Waits are promises evaluated in the page (resolved when a condition holds, polled on
animation frames) with a deadline, never sleeps.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import typing as t
from pathlib import Path

TIMEOUT_SECONDS = 60.0  # one command or wait; a hung browser fails the test, not the suite
FLAGS = (
    "--headless",
    "--remote-debugging-pipe",
    "--no-sandbox",  # root in CI
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--metrics-recording-only",
    "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--window-size=1400,1000",
    "--hide-scrollbars",
)


def _above_four(descriptor: int) -> int:
    """The same pipe end on a descriptor number above 4 (`descriptor` closed)."""
    moved = fcntl.fcntl(descriptor, fcntl.F_DUPFD, 10)
    os.close(descriptor)
    return moved


def js_call(function: str, *args: t.Any) -> str:
    """A JavaScript expression: `function` (its source) called with `args` (as JSON)."""
    return f"({function})({', '.join(json.dumps(arg) for arg in args)})"


def chromium_binary() -> str | None:
    return shutil.which("chromium")


class Browser:
    """A Chromium process and one page (tab) of it; `events` holds the page's events."""

    def __init__(self, binary: str, profile: Path, log: Path) -> None:
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # above 4, so that moving them to 3 and 4 overwrites neither
        to_browser_read = _above_four(to_browser_read)
        from_browser_write = _above_four(from_browser_write)
        with log.open("wb") as stderr:
            # the browser reads commands on descriptor 3 and writes answers on 4
            self.process = subprocess.Popen(
                [
                    "/bin/bash",  # dash takes no descriptor above 9
                    "-c",
                    f'exec "$@" 3<&{to_browser_read} 4>&{from_browser_write}'
                    f" {to_browser_read}<&- {from_browser_write}>&-",
                    "chromium",
                    binary,
                    *FLAGS,
                    f"--user-data-dir={profile}",
                    "about:blank",
                ],
                pass_fds=(to_browser_read, from_browser_write),
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._answers: queue.Queue[dict[str, t.Any] | None] = queue.Queue()
        self.events: list[dict[str, t.Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.session = ""
        target = self.command("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.command("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.command(f"{domain}.enable")
        self.command(
            "Network.emulateNetworkConditions",
            offline=True,
            latency=0,
            downloadThroughput=-1,
            uploadThroughput=-1,
        )

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for message in messages:
                    self._answers.put(json.loads(message))
        self._answers.put(None)

    def command(self, method: str, **params: t.Any) -> dict[str, t.Any]:
        """Send one command (to the page once attached) and return its result."""
        self._next_id += 1
        request: dict[str, t.Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session:
            request["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(request).encode() + b"\0")
        while True:
            try:
                message = self._answers.get(timeout=TIMEOUT_SECONDS)
            except queue.Empty:
                raise AssertionError(f"chromium gave no answer to {method}") from None
            if message is None:
                raise AssertionError(f"chromium ended (exit {self.process.wait()}) in {method}")
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            if "method" in message:
                self.events.append(message)

    def wait_for_event(self, method: str) -> dict[str, t.Any]:
        """The first `method` event of the page (already received, or the next ones)."""
        while True:
            for event in self.events:
                if event["method"] == method:
                    return event
            self.command("Runtime.evaluate", expression="0")  # receives what has come

    def evaluate(self, expression: str) -> t.Any:
        """The value of a JavaScript expression (a promise is awaited, for at most
        TIMEOUT_SECONDS)."""
        result = self.command(
            "Runtime.evaluate",
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
            timeout=TIMEOUT_SECONDS * 1000,
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression[:200]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, condition: str) -> t.Any:
        """Wait until the JavaScript expression `condition` is truthy (checked on every
        animation frame, for at most TIMEOUT_SECONDS); its value."""
        return self.evaluate(
            "new Promise((resolve, reject) => {"
            f" const deadline = performance.now() + {TIMEOUT_SECONDS * 1000 - 1000};"
            " const check = () => { let value; try { value = (" + condition + "); }"
            " catch (error) { value = undefined; }"
            " if (value) resolve(value);"
            " else if (performance.now() > deadline)"
            f" reject(new Error('never true: ' + {json.dumps(condition[:200])}));"
            " else requestAnimationFrame(check); };"
            " check(); })"
        )

    def open(self, url: str) -> None:
        """Load `url` and wait for its load event."""
        self.events.clear()
        self.command("Page.navigate", url=url)
        self.wait_for_event("Page.loadEventFired")

    def hover(self, x: float, y: float) -> None:
        """Move the mouse to (x, y), CSS pixels of the viewport."""
        self.command("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def click(self, x: float, y: float) -> None:
        """A left click at (x, y), CSS pixels of the viewport."""
        self.hover(x, y)
        for kind in ("mousePressed", "mouseReleased"):
            self.command(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page."""
        data = self.command("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(data["data"]))

    def errors(self) -> list[str]:
        """Console errors, failed assertions and uncaught exceptions of the page."""
        self.evaluate("0")  # a round trip: the events sent before it are received
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(json.dumps(params["exceptionDetails"])[:500])
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in {
                "error",
                "assert",
            }:
                found.append(json.dumps(params["args"])[:500])
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(json.dumps(params["entry"])[:500])
        return found

    def requests(self) -> list[str]:
        """URLs of every request the page made."""
        self.evaluate("0")
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event["method"] == "Network.requestWillBeSent"
        ]

    def close(self) -> None:
        self.session = ""
        with contextlib.suppress(AssertionError):  # the browser may end before it answers
            self.command("Browser.close")
        try:
            self.process.wait(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
