"""Every key, grouped by where it works: the one list the help screen and the command palette read (the key bar
shows the same bindings where the focus is). Built from the app's and the panes' BINDINGS, each pane's
``MORE_KEYS`` (what its widgets or its key handlers answer outside its BINDINGS) and the keys that work the same
everywhere; ``tests/tui/test_keys_complete.py`` finds every key a pane answers and checks it is here."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

from align_track.tui.panes.base import Pane

EVERYWHERE = "Everywhere"


@dataclass(frozen=True)
class KeyAction:
    """One entry: its pane class name ('' = anywhere), section, key(s) as Textual names joined by commas, footer
    label, action string ('' = a key a widget answers: listed in help, not run from the palette), help text, and
    how help shows the keys when their names would say too little ('' = from the keys)."""

    pane: str
    section: str
    key: str
    description: str
    action: str
    help: str
    display: str = ""


EVERYWHERE_KEYS: tuple[tuple[str, str, str], ...] = (
    ("down,j,up,k", "", "next / previous row (help and scene text: scroll)"),
    ("pagedown,ctrl+d,pageup,ctrl+u", "", "a page down / up"),
    ("home,g,end,G", "", "first / last row (in a text box: start / end of the line)"),
    ("left,right", "", "a table: one column left / right, its first column kept in view (compare keeps its ≠, "
     "scenario and scene); in a text box: move"),
    ("A-Z", "shift+letter", "a table: sort by the column whose header letter is underlined (again: reversed)"),
    ("ctrl+pageup,ctrl+pagedown", "", "a scrolling text: a page left / right"),
    ("escape", "", "leave a text box (filter, ingest path, export path); close a dialog"),
    ("tab,shift+tab", "", "move focus (e.g. to a scene's detail, to scroll it; the next dropdown)"),
    ("ctrl+p", "", "command palette: type to find any action above"),
    ("ctrl+c,super+c", "", "copy the text selected with the mouse or in a text box (q or ctrl+q quits)"),
    ("backspace,delete,ctrl+a,ctrl+e,ctrl+w,ctrl+k,ctrl+u,super+backspace,ctrl+backspace,alt+backspace,"
     "ctrl+left,ctrl+right,shift+left,shift+right,ctrl+shift+left,ctrl+shift+right,shift+home,shift+end,"
     "ctrl+shift+a,ctrl+x,ctrl+v,enter",
     "text box",
     "edit as in a shell: ctrl+a/ctrl+e start/end, ctrl+w or alt+backspace a word back / forward, ctrl+u/ctrl+k "
     "to the start/end, ctrl+←/→ by word, shift+arrows select (ctrl+shift+a all), ctrl+x/ctrl+c/ctrl+v cut, "
     "copy, paste, delete/backspace, enter submits"),
)
"""(keys, how help shows them, what they do): the tables', scrolling texts' and text boxes' own keys, listed once.
Keys in a text box go to the text box: ctrl+u and ctrl+d there edit, elsewhere they page."""


def _bindings(items: list) -> list[Binding]:
    return [b if isinstance(b, Binding) else Binding(*b) for b in items]


def key_actions(app_bindings: list, panes: list[type[Pane]]) -> list[KeyAction]:
    """Global bindings first, then each pane's in tab order (its BINDINGS, then its MORE_KEYS), then the keys
    that work everywhere. A binding without a description is a helper of another, not a key to learn."""
    out = [KeyAction("", "Global", b.key, b.description, b.action, b.tooltip or b.description)
           for b in _bindings(app_bindings) if b.description]
    for pane in panes:
        section = f"{pane.KEY} {pane.TITLE}"
        out += [KeyAction(pane.__name__, section, b.key, b.description, b.action, b.tooltip or b.description)
                for b in _bindings(pane.BINDINGS) if b.description]
        out += [KeyAction(pane.__name__, section, keys, "", "", text, display)
                for keys, display, text in pane.MORE_KEYS]
    out += [KeyAction("", EVERYWHERE, keys, "", "", text, display) for keys, display, text in EVERYWHERE_KEYS]
    return out
