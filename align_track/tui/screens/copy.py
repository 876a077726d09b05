"""``y``: pick what to copy; it goes to the clipboard by OSC 52, which works over SSH and in tmux."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from align_track.errors import printable
from align_track.tui.models.links import CopyItem


class CopyScreen(ModalScreen[CopyItem | None]):
    """A short list: enter (or the item's number) copies it, escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,y", "dismiss(None)", "Cancel"),
        *(Binding(str(n), f"pick({n - 1})", show=False) for n in range(1, 10)),
        Binding("j", "move(1)", show=False),
        Binding("k", "move(-1)", show=False),
    ]
    DEFAULT_CSS = """
    CopyScreen { align: center middle; }
    CopyScreen > Vertical { width: 90%; max-width: 100; height: auto; border: round $accent;
                            background: $surface; padding: 0 1; }
    CopyScreen OptionList { height: auto; max-height: 12; }
    CopyScreen #copy-keys { color: $text-muted; }
    """

    def __init__(self, items: list[CopyItem]) -> None:
        super().__init__()
        self.items = items

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Copy to the clipboard (OSC 52: works over SSH)", id="copy-title")
            yield OptionList(*(Option(f"{i + 1} {it.label}: {printable(it.text)}") for i, it in enumerate(self.items)),
                             id="copy-options")
            yield Label("enter or 1-9: copy · escape: cancel", id="copy-keys")

    def on_mount(self) -> None:
        self.query_one(OptionList).highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.items[event.option_index])

    def action_pick(self, index: int) -> None:
        if 0 <= index < len(self.items):
            self.dismiss(self.items[index])

    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        options.highlighted = max(0, min(len(self.items) - 1, (options.highlighted or 0) + step))
