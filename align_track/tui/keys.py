"""Every key binding, grouped by where it works: the one list the help screen and the command palette read."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

from align_track.tui.panes.base import Pane


@dataclass(frozen=True)
class KeyAction:
    """One action: its pane class name ('' = anywhere), key(s), footer label, action string and help text."""

    pane: str
    section: str
    key: str
    description: str
    action: str
    help: str


def _bindings(items: list) -> list[Binding]:
    return [b if isinstance(b, Binding) else Binding(*b) for b in items]


def key_actions(app_bindings: list, panes: list[type[Pane]]) -> list[KeyAction]:
    """Global bindings first, then each pane's in tab order; hidden helper bindings are left out."""
    out = [KeyAction("", "Global", b.key, b.description, b.action, b.tooltip or b.description)
           for b in _bindings(app_bindings) if b.description]
    for pane in panes:
        out += [KeyAction(pane.__name__, f"{pane.KEY} {pane.TITLE}", b.key, b.description, b.action,
                          b.tooltip or b.description)
                for b in _bindings(pane.BINDINGS) if b.show and b.description]
    return out
