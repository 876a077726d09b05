"""Every error and notice the TUI showed, kept in full: the status bar wraps to three lines and a notice
fades after seconds, so the messages screen (``!``) is where a long or missed one is read."""

from __future__ import annotations

import time
from dataclasses import dataclass

KEPT = 500
"""The newest messages kept; older ones go (a store that fails on every refresh must not grow memory)."""


@dataclass
class Logged:
    """One message: when (epoch seconds, of its latest repeat), how severe, the text, and how often in a row."""

    at: float
    severity: str
    text: str
    repeats: int = 1


class MessageLog:
    """Newest last; a message repeated in a row is counted, not listed again."""

    def __init__(self) -> None:
        self.items: list[Logged] = []

    def add(self, severity: str, text: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        text = str(text).strip()
        if not text:
            return
        last = self.items[-1] if self.items else None
        if last is not None and last.text == text and last.severity == severity:
            last.repeats += 1
            last.at = now
            return
        self.items.append(Logged(now, severity, text))
        del self.items[:-KEPT]
