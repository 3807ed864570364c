"""Headless Chromium driven over the W3C WebDriver protocol, with httpx as the client.

`chromium()` starts Debian's `chromedriver` on a free loopback port, opens one browser session
on `/usr/bin/chromium` with a fresh profile, and yields a `Browser`; both are gone when the block
ends. Only what the UI tests need is here: open a page, run a script in it, read text, type
into a field and click, size the window, take a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from stepd.testing import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = "apt-get install chromium chromium-driver (`make test` as root installs them)"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--hide-scrollbars",
)
WINDOW_SIZE = (1400, 1300)  # pixels: the classroom execution page fits without scrolling
DRIVER_READY_SECONDS = 20.0
COMMAND_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.2
STALE_TRIES = 5  # a page that reloads itself can swap an element out between two commands
FIND_SECONDS = (
    10.0  # how long finding an element waits for it (a page still loading on a busy machine)
)
STOP_SECONDS = 10.0
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # the W3C name of an element reference


class WebDriverError(AssertionError):
    """The driver refused a command."""


def missing() -> list[str]:
    """The browser binaries this machine lacks."""
    return [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]


class Browser:
    """One WebDriver session."""

    def __init__(self, http: httpx.Client, session: str) -> None:
        self._http = http
        self._session = session

    def _command(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, f"/session/{self._session}{path}", json=body)
        answer = response.json()
        if response.status_code != httpx.codes.OK:
            raise WebDriverError(f"{method} {path}: {response.status_code} {answer}")
        return answer["value"]

    def open(self, url: str) -> None:
        """Navigate to `url` and wait until it has loaded."""
        self._command("POST", "/url", {"url": url})

    def run(self, script: str, *args: Any) -> Any:
        """The value of `script` (a function body: `return ...`) run in the page."""
        return self._command("POST", "/execute/sync", {"script": script, "args": list(args)})

    def _element(self, css: str) -> str:
        found = self._command("POST", "/element", {"using": "css selector", "value": css})
        return str(found[ELEMENT_KEY])

    def text(self, css: str) -> str:
        """The rendered text of the first element matching `css` (found again when the page
        reloaded itself between finding the element and reading it)."""
        for _ in range(STALE_TRIES):
            try:
                return str(self._command("GET", f"/element/{self._element(css)}/text"))
            except WebDriverError as exc:
                if "stale element reference" not in str(exc):
                    raise
        raise WebDriverError(f"{css}: the element went stale on each of {STALE_TRIES} tries")

    def type(self, css: str, text: str) -> None:
        """Type `text` into the first element matching `css`, as a person would."""
        self._command("POST", f"/element/{self._element(css)}/value", {"text": text})

    def click(self, css: str) -> None:
        """Click the first element matching `css` (a navigation it starts is waited for)."""
        self._command("POST", f"/element/{self._element(css)}/click", {})

    @property
    def url(self) -> str:
        """The address of the page shown."""
        return str(self._command("GET", "/url"))

    def resize(self, width: int, height: int) -> None:
        """Make the page's viewport `width` x `height` pixels (the window is larger by its
        frame)."""
        frame = self.run("return [outerWidth - innerWidth, outerHeight - innerHeight]")
        size = {"width": width + frame[0], "height": height + frame[1]}
        self._command("POST", "/window/rect", size)

    @property
    def title(self) -> str:
        return str(self._command("GET", "/title"))

    def screenshot(self, path: Path) -> Path:
        """Save what the window shows as a PNG at `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._command("GET", "/screenshot")))
        return path

    def wait_for(self, script: str, *, timeout: float, what: str) -> Any:
        """Run `script` until it returns something truthy (a reloading page may refuse for a
        moment); that value. Fails with `what` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.run(script)
            except WebDriverError as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(POLL_SECONDS)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


@contextlib.contextmanager
def chromium(profile: Path, log: Path) -> Iterator[Browser]:
    """A headless Chromium session with a fresh profile in `profile`; the driver logs to `log`."""
    port = free_port()
    with log.open("wb") as sink:
        driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={port}"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=COMMAND_TIMEOUT_SECONDS, trust_env=False
        ) as http:
            _wait_ready(http, driver)
            width, height = WINDOW_SIZE
            flags = [
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
            ]
            capabilities = {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": flags},
                "timeouts": {"implicit": int(FIND_SECONDS * 1000)},
            }
            response = http.post("/session", json={"capabilities": {"alwaysMatch": capabilities}})
            answer = response.json()
            if response.status_code != httpx.codes.OK:
                raise WebDriverError(f"no browser session: {answer}")
            session = answer["value"]["sessionId"]
            try:
                yield Browser(http, session)
            finally:
                http.delete(f"/session/{session}")
    finally:
        driver.terminate()
        try:
            driver.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait(timeout=STOP_SECONDS)


def _wait_ready(http: httpx.Client, driver: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DRIVER_READY_SECONDS
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            raise WebDriverError(f"chromedriver exited with {driver.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if http.get("/status").json()["value"]["ready"]:
                return
        time.sleep(POLL_SECONDS)
    raise WebDriverError(f"chromedriver was not ready after {DRIVER_READY_SECONDS} s")
