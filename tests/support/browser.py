"""Headless Chromium against the MLflow web UI: a page's rendered text (``--dump-dom``) and screenshots.

``--virtual-time-budget`` lets the React app fetch and render before the DOM is taken. Each call uses a
fresh profile directory, so no column choice or dismissed pop-up of an earlier call carries over.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900"]
BUDGETS_MS = (15_000, 40_000, 90_000)
"""Virtual time the React app gets before the DOM is taken; a page whose last request has not come back
(a loaded machine, a slow count query) is taken again with more, until the caller's condition holds."""


def require_chromium() -> str:
    """The chromium binary; skip where it is missing, fail instead when CI requires it."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    reason = f"no {CHROMIUM} (Debian package chromium)"
    if os.environ.get("ALIGN_TRACK_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"chromium required (ALIGN_TRACK_REQUIRE_CHROMIUM=1) but {reason}")
    pytest.skip(reason)


def _chromium(*args: str, budget_ms: int = BUDGETS_MS[0]) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="align-track-chromium-")
    try:
        return subprocess.run([CHROMIUM, *_FLAGS, f"--virtual-time-budget={budget_ms}", f"--user-data-dir={profile}",
                               *args], capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def page_text(url: str, rendered: Callable[[str], bool] = lambda text: True) -> str:
    """The visible text of the rendered page (scripts and styles dropped, whitespace collapsed), taken once
    ``rendered(text)`` holds: the app renders in steps (rows, then counts), so a test names what it waits for."""
    text = ""
    for budget in BUDGETS_MS:
        result = _chromium("--dump-dom", url, budget_ms=budget)
        assert result.returncode == 0, result.stderr[-2000:]
        text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", result.stdout, flags=re.S)
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())
        if rendered(text):
            break
    return text


def screenshot(url: str, path: Path) -> Path:
    """A 1400x900 PNG of the rendered page."""
    result = _chromium(f"--screenshot={path}", url)
    assert result.returncode == 0 and path.stat().st_size > 0, result.stderr[-2000:]
    return path
