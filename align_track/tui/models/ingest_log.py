"""The Ingest pane's log as a person reads it: the run folder, then the reason, each path said once."""

from __future__ import annotations

import re

from align_track.query.textfit import printable

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


def elapsed_text(seconds: float) -> str:
    """``75.2`` -> ``1:15``; hours when it takes that long."""
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
