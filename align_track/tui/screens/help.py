"""The help screen: every key by pane, from the one list (``tui.keys``) built from the bindings themselves."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from align_track.tui.keys import EVERYWHERE, KeyAction
from align_track.tui.screens.scrolling import SCROLL_BINDINGS, ScrollingScreen


class HelpScreen(ScrollingScreen):
    """Keys, grouped; escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close help"),
        *SCROLL_BINDINGS,
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 96; height: 90%; border: round $accent; background: $surface; padding: 0 1;
    }
    """

    def __init__(self, actions: list[KeyAction], key_display) -> None:
        super().__init__()
        self.actions = actions
        self.key_display = key_display

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        table.add_column(style="bold", min_width=10, max_width=16, overflow="fold")
        table.add_column(ratio=1)
        section = None
        for item in self.actions:
            if item.section != section:
                section = item.section
                note = "in lists, tables and text boxes" if section == EVERYWHERE else ""
                table.add_row(Text(f"\n{section}", style="bold underline"), Text(f"\n{note}", style="dim"))
            table.add_row(item.display or self.key_display(item.key), item.help)
        intro = Text("align-track: keys (escape closes)", style="bold")
        with VerticalScroll():
            yield Static(intro)
            yield Static(table, id="help-keys")
