"""The messages screen (``!``): every error and notice so far, in full, newest last."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from align_track.errors import printable
from align_track.tui.models.message_log import Logged
from align_track.tui.screens.scrolling import SCROLL_BINDINGS, ScrollingScreen

MARK = {"error": ("✖", "bold red"), "warning": ("!", "bold yellow"), "information": ("·", "")}


def messages_text(items: list[Logged]) -> Text:
    """One paragraph per message: time, mark, text (wrapped by the screen, never cut)."""
    text = Text()
    if not items:
        text.append("no messages yet", "dim")
    for n, item in enumerate(items):
        if n:
            text.append("\n")
        mark, style = MARK.get(item.severity, MARK["information"])
        text.append(time.strftime("%H:%M:%S ", time.localtime(item.at)), "dim")
        text.append(f"{mark} ", style)
        text.append(printable(item.text), style if item.severity == "error" else "")
        if item.repeats > 1:
            text.append(f"  (×{item.repeats})", "dim")
    return text


class MessagesScreen(ScrollingScreen):
    """Opens at the newest message; escape, q or ! closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,exclamation_mark", "dismiss", "Close"),
        *SCROLL_BINDINGS,
    ]
    DEFAULT_CSS = """
    MessagesScreen { align: center middle; }
    MessagesScreen > VerticalScroll { width: 95%; max-width: 120; height: auto; max-height: 90%;
                                      border: round $accent; background: $surface; padding: 0 1; }
    MessagesScreen #messages-keys { color: $text-muted; }
    """

    def __init__(self, items: list[Logged]) -> None:
        super().__init__()
        self.items = list(items)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text(f"Messages ({len(self.items)}, newest last)", style="bold"), id="messages-title")
            yield Static(messages_text(self.items), id="messages-text")
            yield Static("escape: close   j/k, pgup/pgdn: scroll", id="messages-keys")

    def on_mount(self) -> None:
        self.call_after_refresh(self.scroll_box().scroll_end, animate=False)
