"""The audit report in a real browser: headless Chromium driven over the DevTools protocol.

Chromium is started with ``--remote-debugging-pipe`` (commands on fd 3, replies on fd 4, one
JSON message per NUL-terminated chunk), so the test needs no driver, no websocket library and
no network. It records every request the page makes, console errors and CSP violations, checks
that every image decoded, sorts a table by clicking its header, and saves a screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from test_report import build_synthetic_report

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)
TIMEOUT = 60.0


def chromium_binary() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


class DevTools:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, profile: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child_fds():
            # Move both ends above any fd that dup2 targets, then onto 3 and 4 (inheritable).
            a = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=child_fds,
            close_fds=False,  # only fds 3 and 4 are inheritable
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._inbox: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.session = None

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                self._inbox.put(None)
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for m in messages:
                self._inbox.put(json.loads(m))

    def _pump(self, deadline: float) -> None:
        message = self._inbox.get(timeout=max(0.01, deadline - time.monotonic()))
        if message is None:
            raise RuntimeError(f"Chromium closed the pipe: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
        if "id" in message:
            self._replies[message["id"]] = message
        else:
            self.events.append(message)

    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while self._next_id not in self._replies:
            self._pump(deadline)
        reply = self._replies.pop(self._next_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while True:
            for event in self.events:
                if event["method"] == method:
                    return event
            self._pump(deadline)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open_page(self, url: str, width: int = 1280, height: int = 900) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        self.session = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, session=False
        )["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        params = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params |= {
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            }
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", params)["data"]))
        return path

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False)
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self._to_browser)


@pytest.fixture(scope="module")
def chromium():
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium not installed: apt-get install chromium (make system-deps)")
    return binary


@pytest.fixture(scope="module")
def page(chromium, tmp_path_factory):
    """The synthetic audit report opened in headless Chromium (the DevTools client)."""
    tmp = tmp_path_factory.mktemp("browser")
    report = build_synthetic_report(tmp / "inputs", tmp / "report.html")
    devtools = DevTools(chromium, tmp / "profile")
    try:
        devtools.open_page(report.resolve().as_uri())
        devtools.report = report
        devtools.tmp = tmp
        yield devtools
    finally:
        devtools.close()


def test_report_renders_with_title_and_sections(page):
    assert page.evaluate("document.title") == "Synthetic audit"
    sections = page.evaluate("Array.from(document.querySelectorAll('main section[id]')).map(s => s.id)")
    assert {"findings", "run", "key", "figures", "criteria", "gallery", "about"} <= set(sections)
    text = page.evaluate("document.querySelector('#findings').innerText")
    assert "Bias amplification w.r.t. Male" in text
    # The layout really happened: the page is taller than one screen and the TOC is visible.
    assert page.evaluate("document.documentElement.scrollHeight") > 2000
    assert page.evaluate("document.querySelector('nav.toc').getBoundingClientRect().width") > 100


def test_every_image_loads(page):
    images = page.evaluate(
        "Array.from(document.images).map(i => ({src: i.src.slice(0, 30), ok: i.complete && i.naturalWidth > 0}))"
    )
    assert len(images) >= 3  # figures and gallery thumbnails
    assert [i for i in images if not i["ok"]] == []


def test_no_request_leaves_the_file(page):
    requests = [e["params"]["request"]["url"] for e in page.events if e["method"] == "Network.requestWillBeSent"]
    assert requests, "the navigation itself should be recorded"
    outside = [u for u in requests if not (u.startswith("file://") or u.startswith("data:"))]
    assert outside == []
    # Requests the Content-Security-Policy blocked never reach the network log: check the console too.
    problems = [
        e["params"]["entry"]
        for e in page.events
        if e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] in ("error", "warning")
    ]
    errors = [e for e in page.events if e["method"] == "Runtime.exceptionThrown"]
    assert problems == [] and errors == []


def test_clicking_a_header_sorts_the_table(page):
    read = "Array.from(document.querySelectorAll('#t-key tbody tr')).map(r => r.cells[2].dataset.sort)"
    page.evaluate("document.querySelector('#t-key thead th:nth-child(3)').click()")
    up = [float(v) for v in page.evaluate(read)]
    page.evaluate("document.querySelector('#t-key thead th:nth-child(3)').click()")
    down = [float(v) for v in page.evaluate(read)]
    assert up == sorted(up) and down == sorted(down, reverse=True) and up != down


def test_screenshot(page):
    path = page.screenshot(page.tmp / "audit_report.png")
    assert path.stat().st_size > 10_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {path}")
