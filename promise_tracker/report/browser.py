"""Headless Chromium, driven over the Chrome DevTools Protocol on a pipe: the report's PDF is
Chromium's print of the very page the HTML file holds, and the browser tests load, measure
and photograph it the same way.

``--remote-debugging-pipe`` makes Chromium read commands from its file descriptor 3 and
write answers and events to 4, each a JSON message ended by a NUL byte: no port, no
websocket client. Only our own self-contained page is opened (no script, nothing fetched),
so Chromium runs without its sandbox, which needs user namespaces that containers often
lack.
"""

from __future__ import annotations

import base64
import fcntl
import itertools
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from promise_tracker.errors import PromiseTrackerError, UsageError

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--remote-debugging-pipe",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
)


class BrowserError(PromiseTrackerError):
    """Chromium did not start, stopped, or refused a command."""


def find_chromium() -> str:
    for name in EXECUTABLES:
        found = shutil.which(name)
        if found:
            return found
    raise UsageError(
        "--pdf prints the page with headless Chromium, which is not installed "
        "(Debian: apt-get install chromium)"
    )


@dataclass
class Page:
    """One tab: ``errors`` collects what its console said at level error, and exceptions."""

    browser: Chromium
    session: str
    errors: list[str] = field(default_factory=list)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.call(method, params, session=self.session)

    def open(self, url: str) -> Page:
        """Load ``url`` and wait for its load event."""
        self.call("Page.navigate", url=url)
        self.browser.wait_for("Page.loadEventFired", self.session)
        return self

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (JSON-serialisable), run in the page."""
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression[:60]}...: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def screenshot(self, path: Path, width: int = 1280) -> Path:
        """A PNG of the whole page, ``width`` CSS pixels wide."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=800,
            deviceScaleFactor=1,
            mobile=False,
        )
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=int(size["height"]) + 1,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def pdf(self, path: Path) -> Path:
        """Chromium's print of the page, on the paper its CSS asks for (``@page``)."""
        printed = self.call(
            "Page.printToPDF",
            printBackground=True,
            preferCSSPageSize=True,
            displayHeaderFooter=False,
        )
        path.write_bytes(base64.b64decode(printed["data"]))
        return path


class Chromium:
    """A headless Chromium for the life of a ``with`` block; its profile in a temporary
    directory removed afterwards."""

    def __init__(self, executable: str | None = None, timeout: float = 60.0):
        self.executable = executable
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self._pages: dict[str, Page] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._home = ""  # the profile, and Chromium's stderr (read when it stops)

    def __enter__(self) -> Chromium:
        executable = self.executable or find_chromium()
        self._home = tempfile.mkdtemp(prefix="promise-tracker-chromium-")
        profile = Path(self._home) / "profile"
        commands_r, self._commands = os.pipe()  # we write, Chromium reads on its fd 3
        self._answers, answers_w = os.pipe()  # Chromium writes on its fd 4, we read

        def pipes() -> None:  # in the child: the two ends as fds 3 and 4, inheritable
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (commands_r, answers_w)]
            for target, fd in zip((3, 4), high, strict=True):
                os.dup2(fd, target)
                os.close(fd)

        try:
            with (Path(self._home) / "stderr.log").open("wb") as log:
                self._process = subprocess.Popen(
                    [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    preexec_fn=pipes,  # only dup2 and close in the child
                    close_fds=False,  # fds 3 and 4 stay open; ours are close-on-exec
                )
        except OSError as exc:
            self._cleanup()
            raise BrowserError(f"cannot start {executable}: {exc.strerror}") from None
        finally:
            os.close(commands_r)
            os.close(answers_w)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._process is not None and self._process.poll() is None:
                try:
                    self.call("Browser.close", {})
                except BrowserError:
                    pass
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        for fd in (getattr(self, "_commands", -1), getattr(self, "_answers", -1)):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._commands = self._answers = -1
        if self._home:
            shutil.rmtree(self._home, ignore_errors=True)

    def new_page(self) -> Page:
        """A new tab, its console and exceptions watched."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, session["sessionId"])
        self._pages[page.session] = page
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        return page

    def call(
        self, method: str, params: dict[str, Any], session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its answer; events meanwhile are kept."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        try:
            os.write(self._commands, json.dumps(message).encode() + b"\0")
        except OSError as exc:
            raise BrowserError(
                f"{method}: Chromium stopped ({exc.strerror}){self._why()}"
            ) from None
        answer = self._next(lambda m: m.get("id") == number, method)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error'].get('message', answer['error'])}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def wait_for(self, event: str, session: str) -> dict[str, Any]:
        """The next ``event`` of a tab (one that came already counts)."""

        def wanted(message: dict[str, Any]) -> bool:
            return message.get("method") == event and message.get("sessionId") == session

        for index, message in enumerate(self._events):
            if wanted(message):
                return self._events.pop(index)
        return self._next(wanted, event)

    def _next(self, wanted: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._read(deadline, what)
            if wanted(message):
                return message
            self._watch(message)
            if "method" in message:
                self._events.append(message)

    def _watch(self, message: dict[str, Any]) -> None:
        """Console errors and exceptions go to their tab's ``errors``."""
        page = self._pages.get(message.get("sessionId", ""))
        if page is None:
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            texts = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
            page.errors.append("console: " + " ".join(texts))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            page.errors.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            page.errors.append(f"log ({entry.get('source')}): {entry.get('text')}")

    def _read(self, deadline: float, what: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"{what}: no answer from Chromium in {self.timeout:g} s")
            ready, _, _ = select.select([self._answers], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise BrowserError(f"{what}: Chromium stopped{self._why()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def _why(self) -> str:
        """The end of Chromium's stderr, once it has exited."""
        if self._process is None or self._process.poll() is None:
            return ""
        try:
            text = (Path(self._home) / "stderr.log").read_text(errors="replace")
        except OSError:
            return ""
        lines = text.strip().splitlines()
        return (": " + " | ".join(lines[-3:])) if lines else ""


def print_pdf(html: Path, pdf: Path, timeout: float = 60.0) -> Path:
    """``html`` (a self-contained page) printed to ``pdf`` by headless Chromium."""
    with Chromium(timeout=timeout) as browser:
        page = browser.new_page().open(html.resolve().as_uri())
        return page.pdf(pdf)
