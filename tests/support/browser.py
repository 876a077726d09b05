"""Headless Chromium against the MLflow web UI, driven as a user drives it: open a page, wait until it shows
what the test reads, click (a menu, a column to show, a row), type into the search box, take a screenshot.

Driven over the DevTools protocol through ``--remote-debugging-pipe`` (no websocket or browser-automation
package needed; the Debian ``chromium`` package is all it takes).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900"]
WAIT_S = 180.0
"""How long ``Browser.wait_for`` polls a page before failing (generous: the machine may be loaded)."""


def require_chromium() -> str:
    """The chromium binary; skip where it is missing, fail instead when CI requires it."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    reason = f"no {CHROMIUM} (Debian package chromium)"
    if os.environ.get("ALIGN_TRACK_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"chromium required (ALIGN_TRACK_REQUIRE_CHROMIUM=1) but {reason}")
    pytest.skip(reason)


class Browser:
    """Headless Chromium driven over the DevTools protocol (``--remote-debugging-pipe``: JSON messages on fds 3/4,
    no websocket library needed): for pages a user has to click on, e.g. ticking a column in a menu.

    Waits poll the page until the caller's condition holds (``wait_for``), so a loaded machine makes the test
    slower, not flaky. One fresh profile per Browser: what a user ticks stays for its lifetime (localStorage),
    as in a real browser, and nothing leaks between tests.
    """

    def __init__(self, size: tuple[int, int] = (1400, 900)) -> None:
        self._profile = tempfile.mkdtemp(prefix="align-track-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # chromium reads commands on fd 3 and answers on fd 4
            # Via fds >= 10 first: a pipe end may itself be fd 3 or 4 (a fresh process), where dup2 onto
            # itself would neither move it out of the way nor clear its close-on-exec flag.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_child_r, from_child_w)]
            for fd, target in zip(high, (3, 4), strict=True):
                os.dup2(fd, target)  # inheritable: survives the exec

        self._process = subprocess.Popen(
            [CHROMIUM, *_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=fds)  # close_fds would close 3 and 4 again (Python's fds are non-inheritable)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        try:
            page = next(t for t in self._send("Target.getTargets")["targetInfos"] if t["type"] == "page")
            self._session = self._send("Target.attachToTarget", targetId=page["targetId"],
                                       flatten=True)["sessionId"]
            self._send("Page.enable", session=True)
            width, height = size
            self._send("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                       deviceScaleFactor=1, mobile=False)
        except (OSError, RuntimeError):
            self.close()
            raise

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._to_child)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._from_child)
        shutil.rmtree(self._profile, ignore_errors=True)

    def _send(self, method: str, session: bool = False, **params: Any) -> dict:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        try:
            os.write(self._to_child, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise RuntimeError(f"chromium is gone ({method}); exit code {self._process.poll()}") from None
        while True:  # events arrive in between: skip them
            while b"\0" not in self._buffer:
                ready, _, _ = select.select([self._from_child], [], [], 120)
                chunk = os.read(self._from_child, 1 << 20) if ready else b""
                if not chunk:
                    raise RuntimeError(f"chromium stopped answering ({method})")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values)."""
        result = self._send("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                            awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self._send("Page.navigate", session=True, url=url)

    def text(self) -> str:
        """The page's visible text, whitespace collapsed."""
        return " ".join((self.evaluate("document.body ? document.body.innerText : ''") or "").split())

    def until(self, condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
        """Poll until ``condition()`` holds (True) or ``timeout`` s have passed (False)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)
        return True

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        """Poll until ``condition()`` holds; fail naming ``what`` (and the page's text) after ``timeout`` s."""
        if not self.until(condition, timeout):
            pytest.fail(f"waited {timeout:.0f}s for {what}; the page shows: {self.text()[:3000]}")

    def settled(self, selector: str, what: str, quiet_s: float = 1.5, timeout: float = WAIT_S) -> None:
        """Wait until the element ``selector`` names stays the same node for ``quiet_s``: React may mount an
        input, then replace it once a late request answers, and typing into the first one would be lost."""
        mark = f"(() => {{ const e = document.querySelector({selector!r}); if (!e) return 'none'; " \
               "if (!e.dataset.atMark) e.dataset.atMark = String(Math.random()); return e.dataset.atMark; })()"
        deadline = time.monotonic() + timeout
        seen, since = None, time.monotonic()
        while time.monotonic() < deadline:
            now = self.evaluate(mark)
            if now != seen or now == "none":
                seen, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.25)
        pytest.fail(f"waited {timeout:.0f}s for {what} to settle; the page shows: {self.text()[:3000]}")

    def click(self, selector: str, text: str | None = None) -> None:
        """Click, as a user does (mouse down and up at its centre), the first visible element matching the CSS
        ``selector`` whose text (or, for an icon, aria-label) is exactly ``text`` (any text if None)."""
        box = self.evaluate(f"""(() => {{
            for (const el of document.querySelectorAll({json.dumps(selector)})) {{
                const r = el.getBoundingClientRect();
                const label = el.innerText.trim() || el.getAttribute('aria-label') || '';
                if (({json.dumps(text)} === null || label === {json.dumps(text)}) && r.width > 0 && r.height > 0) {{
                    el.scrollIntoView({{block: 'center'}});
                    const b = el.getBoundingClientRect();
                    return [b.x + b.width / 2, b.y + b.height / 2];
                }}
            }}
            return null;
        }})()""")
        if box is None:
            pytest.fail(f"no visible {selector} reading {text!r}; the page shows: {self.text()[:3000]}")
        x, y = box
        self._send("Input.dispatchMouseEvent", session=True, type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self._send("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y, button="left", clickCount=1)

    def present(self, selector: str) -> bool:
        """True when an element matching the CSS ``selector`` is on the page and visible."""
        return bool(self.evaluate(f"""[...document.querySelectorAll({json.dumps(selector)})].some(el => {{
            const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; }})"""))

    def type(self, selector: str, text: str) -> None:
        """Click into the field matching ``selector``, select what it holds and type ``text`` over it."""
        self.click(selector)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
        self._send("Input.insertText", session=True, text=text)

    def press(self, key: str) -> None:
        """Press and release a named key (``Escape``, ``Enter``)."""
        codes = {"Escape": 27, "Enter": 13}
        for kind in ("keyDown", "keyUp"):
            self._send("Input.dispatchKeyEvent", session=True, type=kind, key=key, code=key,
                       windowsVirtualKeyCode=codes[key])

    def screenshot(self, path: Path) -> Path:
        data = self._send("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path
