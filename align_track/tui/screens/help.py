"""The help screen: every binding by pane, generated from the bindings themselves so it cannot drift."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from align_track.tui.keys import KeyAction
from align_track.tui.screens.scrolling import SCROLL_BINDINGS, ScrollingScreen

MOVES: tuple[tuple[str, str], ...] = (
    ("↓/j ↑/k", "next / previous row (help and scene text: scroll)"),
    ("pgdn/^d pgup/^u", "a page down / up"),
    ("home/g end/G", "first / last row"),
    ("← →", "scroll a wide table sideways (compare keeps its ≠ column in view)"),
    ("→", "in the Ingest path box: accept the suggested completion"),
    ("esc", "leave a text box (filter, ingest path, export path); close a dialog"),
    ("tab", "move focus (e.g. to a scene's detail, to scroll it)"),
    ("ctrl+p", "command palette: type to find any action above"),
)
"""Keys that work the same everywhere (the tables' and text boxes' own), listed once."""


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
        table.add_column(style="bold", no_wrap=True, min_width=10)
        table.add_column(ratio=1)
        section = None
        for item in self.actions:
            if item.section != section:
                section = item.section
                table.add_row(Text(f"\n{section}", style="bold underline"), "")
            table.add_row(self.key_display(item.key), item.help)
        table.add_row(Text("\nEverywhere", style="bold underline"),
                      Text("\nin lists, tables and text boxes", style="dim"))
        for keys, text in MOVES:
            table.add_row(keys, text)
        intro = Text("align-track: keys (escape closes)", style="bold")
        with VerticalScroll():
            yield Static(intro)
            yield Static(table, id="help-keys")
