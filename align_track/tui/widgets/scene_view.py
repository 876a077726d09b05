"""A scene as Rich renderables: state, characters, choices (chosen one marked), justification, KDMA values.

Marks never rely on colour alone (▶ for the chosen choice), so it reads in 16 colours and monochrome.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from align_track.schema import ATTR_PREDICTED_KDMA, ATTR_TRUE_KDMA
from align_track.tui.models.scenes import Scene, choice_texts, kdma_rows, kdma_text
from align_track.tui.widgets.long_text import LongText
from align_track.tui.widgets.scene_reader import Block, Document

HEADING = "bold underline"
CHOSEN = "bold green"
TEXT_CAP = 4000
"""Characters of one long text (a 10 MB state) drawn by default: wrapping megabytes blocks the terminal."""


FULL_HINT = "press f for the full text"
TABLE_CAP = 20_000
"""Characters of a table drawn as a table: a table is drawn in one piece, so with ``f`` a bigger one (a cell of
megabytes) is drawn as rows instead, each long cell a text drawn where it is read (see LongText)."""


def capped(value: Any, full: bool, style: str = "", hint: str = FULL_HINT) -> Text:
    """The text, or its first TEXT_CAP characters and how to see the rest (``hint``)."""
    text = str(value).strip()
    if full or len(text) <= TEXT_CAP:
        return Text(text, style=style)
    out = Text(text[:TEXT_CAP], style=style)
    out.append(f"\n… {len(text) - TEXT_CAP:,} more characters: {hint}", "bold yellow")
    return out


def _characters(characters: Any, full: bool = False) -> list[Block] | None:
    if not isinstance(characters, list) or not characters:
        return None
    rows: list[list[tuple[str, str, str]]] = []
    for char in characters:
        if not isinstance(char, dict):
            rows.append([("", "•", "bold"), ("", str(char), "")])
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
        rows.append([("", name, "bold"), ("", text, "")])
    if full and _too_big(rows):
        return _as_rows(rows)
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(ratio=1, overflow="fold")
    for (_, name, _), (_, text, _) in rows:
        table.add_row(name, capped(text, full))
    return [table]


def _too_big(rows: list[list[tuple[str, str, str]]]) -> bool:
    """Whether a table of these cells, drawn whole, would hold a cell longer than TEXT_CAP or TABLE_CAP in all."""
    sizes = [len(text) for row in rows for _, text, _ in row]
    return max(sizes, default=0) > TEXT_CAP or sum(sizes) > TABLE_CAP


def _as_rows(rows: list[list[tuple[str, str, str]]]) -> list[Block]:
    """A table too big to draw in one piece, row after row: each cell on lines of its own after its column's
    name, a long one drawn where it is read, so every cell is shown whole at any width."""
    blocks: list[Block] = []
    for i, row in enumerate(rows):
        if i:
            blocks.append(Text())
        for label, text, style in row:
            if not text:
                continue
            if len(text) > TEXT_CAP:
                if label:
                    blocks.append(Text(f"{label}:", "bold"))
                blocks.append(LongText(text, style))
            else:
                line = Text()
                if label:
                    line.append(f"{label}: ", "bold")
                line.append(text, style)
                blocks.append(line)
    return blocks


def _choices(scene: Scene, full: bool = False) -> list[Block]:
    choices = scene.inputs.get("choices")
    if not isinstance(choices, list) or not choices:
        return [Text("(no choices recorded)", style="dim")]
    cells: list[tuple[bool, str, str]] = []
    for i, choice in enumerate(choices):
        if isinstance(choice, dict):
            text = str(choice.get("unstructured") or choice.get("action_id") or "")
            cells.append((i == scene.choice_index, text, kdma_text(choice.get("kdma_association"))))
        else:
            cells.append((i == scene.choice_index, str(choice), "–"))
    if full:
        rows = [[("", f"{'▶ ' if chosen else ''}choice {i}", CHOSEN if chosen else "bold"),
                 ("", text, CHOSEN if chosen else ""), ("KDMA association", kdma, "")]
                for i, (chosen, text, kdma) in enumerate(cells)]
        if _too_big(rows):
            return _as_rows(rows)
    table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold", expand=True)
    table.add_column("", width=1, no_wrap=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("choice", ratio=1, min_width=16, overflow="fold")  # never squeezed to '…' by long KDMA lists
    # a long unstructured value folds, never ends in '…'; a word wider than a line makes the column take a share
    # of the width (Rich draws a column without one at the word's width, then crops it)
    wide = max((len(word) for _, _, kdma in cells for word in kdma.split()), default=0) > 24
    table.add_column("KDMA association", overflow="fold", ratio=1 if wide else None)
    for i, (chosen, text, kdma) in enumerate(cells):
        style = CHOSEN if chosen else ""
        table.add_row("▶" if chosen else "", str(i), capped(text, full, style), capped(kdma, full, style))
    return [table]


def _kdma_table(scene: Scene, full: bool = False) -> list[Block] | None:
    true_values = scene.attributes.get(ATTR_TRUE_KDMA)
    predicted = scene.attributes.get(ATTR_PREDICTED_KDMA)
    if not true_values and not predicted:
        return None
    rows = [[("▶ choice" if name == scene.chosen_action else "choice", name,
              CHOSEN if name == scene.chosen_action else ""), ("true", true_text, ""), ("predicted", pred_text, "")]
            for name, true_text, pred_text in kdma_rows(true_values, predicted, choice_texts(scene))]
    if full and _too_big(rows):
        return _as_rows(rows)
    table = Table(box=None, padding=(0, 1), header_style="bold", expand=True)
    table.add_column("", width=1, no_wrap=True)
    # thirds: long KDMA lists wrap in their columns instead of squeezing the choice's name to '…'; a word wider
    # than its column (an unstructured value) folds instead of ending in '…'
    table.add_column("choice", ratio=1, overflow="fold")
    table.add_column("true", ratio=1, overflow="fold")
    table.add_column("predicted", ratio=1, overflow="fold")
    for (label, name, style), (_, true_text, _), (_, pred_text, _) in rows:
        table.add_row("▶" if label.startswith("▶") else "", capped(name, full, style), capped(true_text, full),
                      capped(pred_text, full))
    return [table]


SECTIONS = ("state", "characters", "choices", "decision", "justification", "kdma")
"""The parts of a scene a reader jumps between (and stays at from one scene to the next)."""


def long_text(value: Any, full: bool, style: str = "") -> list[Block]:
    """A text drawn where it is read, whole when ``full`` (any size: see LongText), else its first TEXT_CAP
    characters and how to see the rest."""
    text = str(value).strip()
    if full or len(text) <= TEXT_CAP:
        return [LongText(text, style)]
    return [LongText(text[:TEXT_CAP], style),
            Text(f"… {len(text) - TEXT_CAP:,} more characters: {FULL_HINT}", "bold yellow")]


def scene_header(scene: Scene, position: int | None = None, total: int | None = None, full: bool = False,
                 mode: str = "") -> Text:
    """One line: which scene this is, kept in view while the scene scrolls; what is not the default (``full``,
    another ``mode`` such as the raw JSON) comes right after the scene's id, never cut off at 60 columns."""
    head = Text()
    head.append(f"scene {scene.scene_id}", "bold")
    if mode:
        head.append(f"  ·  {mode}", "bold yellow")
    if full:
        head.append("  ·  full text (f: cut)", "bold yellow")
    head.append(f"  ·  {scene.scenario_id}")
    if position is not None and total:
        head.append(f"  ·  {position + 1} of {total}", "dim")
    head.append(f"  ·  {'–' if scene.seconds is None else f'{scene.seconds:.2f} s'}")
    return head


def scene_document(scene: Scene, position: int | None = None, total: int | None = None,
                   full: bool = False) -> Document:
    """Everything a researcher reads to judge one decision, top to bottom; long texts cut unless ``full``."""
    doc = Document(scene_header(scene, position, total, full))

    def section(name: str | None, title: str, *blocks: Block) -> None:
        if doc.blocks:
            doc.blocks.append(Text())
        if name:
            doc.sections[name] = len(doc.blocks)
        doc.blocks.append(Text(title, style=HEADING))
        doc.blocks.extend(blocks)

    state = scene.inputs.get("state") or scene.inputs.get("unstructured")
    blocks = long_text(state or "(none)", full)
    unstructured = scene.inputs.get("unstructured")
    if unstructured and str(unstructured).strip() != str(state or "").strip():
        blocks += long_text(unstructured, full, "italic")
    section("state", "State", *blocks)

    characters = _characters(scene.inputs.get("characters"), full)
    if characters is not None:
        section("characters", "Characters", *characters)

    section("choices", "Choices (▶ chosen)", *_choices(scene, full))

    action = scene.outputs.get("action") if isinstance(scene.outputs.get("action"), dict) else {}
    decision = Text()
    decision.append("Chosen: ", "bold")
    decision.append(scene.chosen_action or "(none)", CHOSEN)
    if scene.choice_index is not None:
        decision.append(f"  (choice {scene.choice_index})", "dim")
    if isinstance(action.get("parameters"), dict) and action["parameters"]:
        decision.append("\nParameters: ", "bold")
        decision.append(", ".join(f"{k}={v}" for k, v in action["parameters"].items()))
    section("decision", "Decision", decision)
    justification = action.get("justification")
    section("justification", "Justification", *(long_text(justification, full) if justification
                                                 else [Text("(none)")]))

    kdma = _kdma_table(scene, full)
    section("kdma", "KDMA values: true vs predicted",
            *(kdma if kdma is not None else [Text("(none recorded)", style="dim")]))
    timing = Text()
    timing.append("Timing: ", "bold")
    timing.append("not recorded" if scene.seconds is None else f"{scene.seconds:.2f} s")
    doc.blocks += [Text(), timing]
    return doc
