"""One compared scene, the runs side by side: each run's choice, justification and true vs predicted KDMAs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from align_track.schema import ATTR_PREDICTED_KDMA, ATTR_TRUE_KDMA
from align_track.tui.models.scenes import Scene, choice_texts, kdma_error, kdma_rows
from align_track.tui.screens.scrolling import SCROLL_BINDINGS, ScrollingScreen
from align_track.tui.widgets.scene_view import capped

ODD = "bold red"
WHOLE_HINT = "the whole text: the run's scene in Scenes (2), then f"
"""Side by side, a justification is cut (a table cell is drawn whole); the Scenes pane reads any length."""


def side_by_side(key: tuple[str, str], letters: Sequence[str], scenes: Sequence[Scene | None],
                 odd: set[int]) -> Group:
    """A column per run: chosen action (✗ marks the odd one out), justification, KDMA true → predicted."""
    head = Text()
    head.append(f"scene {key[1]}", "bold")
    head.append(f"  ·  {key[0]}")
    table = Table(expand=True, show_lines=True, padding=(0, 1), header_style="bold")
    table.add_column("", style="dim", no_wrap=True)
    for r, letter in enumerate(letters):
        table.add_column(f"{letter}{' ✗ odd one out' if r in odd else ''}", ratio=1,
                         header_style=ODD if r in odd else "bold")

    def row(label: str, cells: list[Text]) -> None:
        table.add_row(label, *cells)

    row("chose", [Text("— missing: this run never met this scene", "dim") if sc is None else
                  Text(("✗ " if r in odd else "") + (sc.chosen_action or "(none)"), ODD if r in odd else "bold green")
                  for r, sc in enumerate(scenes)])
    row("why", [Text("") if sc is None else _justification(sc) for sc in scenes])
    row("KDMA\ntrue→\npred", [Text("") if sc is None else _kdmas(sc) for sc in scenes])
    errors = [None if sc is None else kdma_error(sc) for sc in scenes]
    row("error", [Text("–" if e is None else f"{e:.2f}") for e in errors])
    return Group(head, table)


def _justification(scene: Scene) -> Text:
    action = scene.outputs.get("action") if isinstance(scene.outputs.get("action"), dict) else {}
    justification = action.get("justification")
    return capped(justification, False, hint=WHOLE_HINT) if justification else Text("(none)", "dim")


def _kdmas(scene: Scene) -> Text:
    rows = kdma_rows(scene.attributes.get(ATTR_TRUE_KDMA), scene.attributes.get(ATTR_PREDICTED_KDMA),
                     choice_texts(scene))
    text = Text()
    for name, true_text, pred_text in rows:
        chosen = name == scene.chosen_action
        text.append(("▶ " if chosen else "") + name, "bold" if chosen else "")
        text.append(f"\n  {true_text} → {pred_text}\n")
    text.rstrip()
    return text or Text("(none recorded)", "dim")


class CompareSceneScreen(ScrollingScreen):
    """Escape closes; j/k, arrows and page keys scroll; n/p move to the next or previous compared scene."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "dismiss", "Close"),
        *SCROLL_BINDINGS,
        Binding("n", "step(1)", "Next scene"),
        Binding("p", "step(-1)", "Previous scene"),
    ]
    DEFAULT_CSS = """
    CompareSceneScreen { align: center middle; }
    CompareSceneScreen > VerticalScroll { width: 100%; height: 100%; background: $surface; padding: 0 0; }
    CompareSceneScreen #compare-scene-keys { color: $text-muted; }
    """

    def __init__(self, render, position: int, count: int,
                 hint: str = "escape: back · n/p: next/previous scene · j/k: scroll") -> None:
        super().__init__()
        self.render_at = render
        self.position = position
        self.count = count
        self.hint = hint

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text(self.hint), id="compare-scene-keys")
            yield Static(self.render_at(self.position), id="compare-scene")

    def action_step(self, step: int) -> None:
        position = self.position + step
        if 0 <= position < self.count:
            self.position = position
            self.query_one("#compare-scene", Static).update(self.render_at(position))
            self.query_one(VerticalScroll).scroll_home(animate=False)
