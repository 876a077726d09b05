"""The Ingest pane's log as a person reads it: the run folder, then the reason, each path said once."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from align_track.errors import printable
from align_track.ingest.outcomes import MAYBE_RUNNING

if TYPE_CHECKING:
    from align_track.ingest.pipeline import Summary

_YAML_MARK = re.compile(r'\s*in "[^"]*", (line \d+, column \d+)')


def readable_error(error: str, root: str, rel: str) -> str:
    """``/abs/root/rel/.hydra/config.yaml: invalid YAML (... in "/abs/.../config.yaml", line 60, column 6 ...)``
    -> ``.hydra/config.yaml: invalid YAML (... line 60, column 6 ...)``: the folder is in its own column, so
    the message names files relative to it, and YAML's repeated ``in "<path>"`` goes."""
    text = _YAML_MARK.sub(r" at \1", error)
    folder = f"{root.rstrip('/')}/{rel}".rstrip("/")
    for prefix in (folder + "/", root.rstrip("/") + "/"):
        text = text.replace(prefix, "")
    if text.startswith(f"{rel}: "):
        text = text[len(rel) + 2:]
    return printable(" ".join(text.split()))


def summary_text(summary: Summary) -> str:
    """``done · 2 ingested · 1 failed (enter on it: why) · 8 scenes in 0:15``: short enough for 80 columns."""
    parts = [f"{summary.count(status)} {status}" for status in ("ingested", "updated", "skipped", "busy", "failed")
             if summary.count(status)]
    if summary.count("failed"):
        parts[-1] += " (enter on it: why)"
    running = summary.noted(MAYBE_RUNNING)
    if running:
        parts.append(f"{running} {MAYBE_RUNNING}")
    head = "cancelled" if summary.cancelled else "done"
    took = f"{summary.traces} scenes in {elapsed_text(summary.seconds)}"
    return f"{head} · {' · '.join(parts) or 'nothing to do'} · {took}"


def elapsed_text(seconds: float) -> str:
    """``75.2`` -> ``1:15``; hours when it takes that long."""
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
