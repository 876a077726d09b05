"""Text as the terminal should show it: control characters (escape sequences in a folder name) made visible."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``'run\\x1b[31m'`` -> ``'run\\\\x1b[31m'``: a name can never recolour, move or clear the screen."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
