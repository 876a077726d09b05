"""A long message in full (a failed folder's error): wrapped, scrollable, escape closes."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from align_track.errors import printable
from align_track.tui.screens.scrolling import SCROLL_BINDINGS, ScrollingScreen


class MessageScreen(ScrollingScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "dismiss", "Close"),
        *SCROLL_BINDINGS,
    ]
    DEFAULT_CSS = """
    MessageScreen { align: center middle; }
    MessageScreen > VerticalScroll { width: 90%; max-width: 110; height: auto; max-height: 90%;
                                     border: round $error; background: $surface; padding: 0 1; }
    MessageScreen #message-keys { color: $text-muted; }
    """

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text(printable(self.title_text), style="bold"), id="message-title")
            yield Static(Text(printable(self.message)), id="message-text")
            yield Label("escape: close", id="message-keys")
