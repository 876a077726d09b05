"""A scene as Rich renderables: state, characters, choices (chosen one marked), justification, KDMA values.

Marks never rely on colour alone (▶ for the chosen choice), so it reads in 16 colours and monochrome.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from align_track.schema import ATTR_PREDICTED_KDMA, ATTR_TRUE_KDMA
from align_track.tui.models.scenes import Scene, choice_texts, kdma_rows, kdma_text

HEADING = "bold underline"
CHOSEN = "bold green"
TEXT_CAP = 4000
"""Characters of one long text (a 10 MB state) drawn by default: wrapping megabytes blocks the terminal."""


def capped(value: Any, full: bool, style: str = "") -> Text:
    """The text, or its first TEXT_CAP characters and how to see the rest ('f' in the Scenes pane)."""
    text = str(value).strip()
    if full or len(text) <= TEXT_CAP:
        return Text(text, style=style)
    out = Text(text[:TEXT_CAP], style=style)
    out.append(f"\n… {len(text) - TEXT_CAP:,} more characters: press f for the full text", "bold yellow")
    return out


def _heading(title: str) -> Text:
    return Text(f"\n{title}", style=HEADING)


def _characters(characters: Any, full: bool = False) -> RenderableType | None:
    if not isinstance(characters, list) or not characters:
        return None
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(ratio=1)
    for char in characters:
        if not isinstance(char, dict):
            table.add_row("•", str(char))
            continue
        name = str(char.get("name") or char.get("id") or "?")
        text = str(char.get("unstructured") or "").strip()
        extra = []
        demo = char.get("demographics") if isinstance(char.get("demographics"), dict) else {}
        if demo.get("age") is not None or demo.get("sex"):
            extra.append(" ".join(str(v) for v in (demo.get("age"), demo.get("sex")) if v))
        injuries = [i for i in char.get("injuries") or [] if isinstance(i, dict)]
        if injuries:
            extra.append(", ".join(f"{i.get('name')} ({i.get('severity') or '?'}) {i.get('location') or ''}".strip()
                                   for i in injuries))
        if extra:
            text = f"{text}\n[{'; '.join(extra)}]" if text else f"[{'; '.join(extra)}]"
        table.add_row(name, capped(text, full))
    return table


def _choices(scene: Scene) -> RenderableType:
    choices = scene.inputs.get("choices")
    table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold", expand=True)
    table.add_column("", width=1, no_wrap=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("choice", ratio=1, min_width=16)  # never squeezed to '…' by long KDMA lists
    table.add_column("KDMA association")
    if not isinstance(choices, list) or not choices:
        return Text("(no choices recorded)", style="dim")
    for i, choice in enumerate(choices):
        chosen = i == scene.choice_index
        style = CHOSEN if chosen else ""
        if isinstance(choice, dict):
            text = str(choice.get("unstructured") or choice.get("action_id") or "")
            kdma = kdma_text(choice.get("kdma_association"))
        else:
            text, kdma = str(choice), "–"
        table.add_row("▶" if chosen else "", str(i), Text(text, style=style), Text(kdma, style=style))
    return table


def _kdma_table(scene: Scene) -> RenderableType | None:
    true_values = scene.attributes.get(ATTR_TRUE_KDMA)
    predicted = scene.attributes.get(ATTR_PREDICTED_KDMA)
    if not true_values and not predicted:
        return None
    rows = kdma_rows(true_values, predicted, choice_texts(scene))
    table = Table(box=None, padding=(0, 1), header_style="bold", expand=True)
    table.add_column("", width=1, no_wrap=True)
    # thirds: long KDMA lists wrap in their columns instead of squeezing the choice's name to '…'
    table.add_column("choice", ratio=1)
    table.add_column("true", ratio=1)
    table.add_column("predicted", ratio=1)
    for name, true_text, pred_text in rows:
        chosen = name == scene.chosen_action
        style = CHOSEN if chosen else ""
        table.add_row("▶" if chosen else "", Text(name, style=style), true_text, pred_text)
    return table


def render_scene(scene: Scene, position: int | None = None, total: int | None = None,
                 full: bool = False) -> RenderableType:
    """Everything a researcher reads to judge one decision, top to bottom; long texts capped unless ``full``."""
    head = Text()
    head.append(f"scene {scene.scene_id}", "bold")
    head.append(f"  ·  {scene.scenario_id}")
    if position is not None and total:
        head.append(f"  ·  {position + 1} of {total}", "dim")
    head.append(f"  ·  {'–' if scene.seconds is None else f'{scene.seconds:.2f} s'}")
    parts: list[RenderableType] = [head]

    state = scene.inputs.get("state") or scene.inputs.get("unstructured")
    parts += [_heading("State"), capped(state or "(none)", full)]
    unstructured = scene.inputs.get("unstructured")
    if unstructured and str(unstructured).strip() != str(state or "").strip():
        parts.append(capped(unstructured, full, "italic"))

    characters = _characters(scene.inputs.get("characters"), full)
    if characters is not None:
        parts += [_heading("Characters"), characters]

    parts += [_heading("Choices (▶ chosen)"), _choices(scene)]

    action = scene.outputs.get("action") if isinstance(scene.outputs.get("action"), dict) else {}
    decision = Text()
    decision.append("Chosen: ", "bold")
    decision.append(scene.chosen_action or "(none)", CHOSEN)
    if scene.choice_index is not None:
        decision.append(f"  (choice {scene.choice_index})", "dim")
    if isinstance(action.get("parameters"), dict) and action["parameters"]:
        decision.append("\nParameters: ", "bold")
        decision.append(", ".join(f"{k}={v}" for k, v in action["parameters"].items()))
    parts += [_heading("Decision"), decision]
    justification = action.get("justification")
    parts += [_heading("Justification"), capped(justification, full) if justification else Text("(none)")]

    kdma = _kdma_table(scene)
    parts += [_heading("KDMA values: true vs predicted"), kdma if kdma is not None else Text("(none recorded)",
                                                                                          style="dim")]
    timing = Text()
    timing.append("Timing: ", "bold")
    timing.append("not recorded" if scene.seconds is None else f"{scene.seconds:.2f} s")
    parts += [Text(), timing]
    return Group(*parts)


class RenderedText(Widget):
    """A Rich renderable (a scene, its raw JSON) drawn once per width and kept as lines.

    ``Static`` renders a Rich renderable twice per paint (once to measure its height, once to draw it);
    a scene's tables make that tens of milliseconds on the way to the first scene on screen. Scrolling
    then reuses the lines."""

    DEFAULT_CSS = "RenderedText { height: auto; }"

    def __init__(self, renderable: RenderableType = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.content: RenderableType = renderable
        self._lines: list[Strip] = []
        self._width = -1

    def update(self, renderable: RenderableType) -> None:
        self.content = renderable
        self._width = -1
        self.refresh(layout=True)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._width = -1  # a theme change restyles every line

    def _rendered(self, width: int) -> list[Strip]:
        if width != self._width:
            options = self.app.console_options.update(width=width, highlight=False)
            lines = self.app.console.render_lines(self.content, options, style=self.rich_style, pad=True)
            self._lines = [Strip(line, width) for line in lines]
            self._width = width
        return self._lines

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self._rendered(width))

    def render_line(self, y: int) -> Strip:
        lines = self._rendered(self.size.width)
        return lines[y] if y < len(lines) else Strip.blank(self.size.width, self.rich_style)
