"""Compare pane: the marked runs' choices scene by scene, disagreements marked, and how many scenes agree."""

from __future__ import annotations

from string import ascii_uppercase
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Label, Static
from textual.worker import get_current_worker

from align_track.errors import printable
from align_track.query.textfit import cut_apart, cut_middle, shared_spans
from align_track.schema import DEFAULT_VARIANT, RunSummary
from align_track.tui.messages import ShowPane
from align_track.tui.models.runs import short_llm
from align_track.tui.models.scenes import Comparison, compare
from align_track.tui.panes.base import Pane
from align_track.tui.widgets.vtable import Column, VirtualTable

if TYPE_CHECKING:
    from align_track.store.runs_reader import RunRow

DIFFERENT = Style(color="red", bold=True)
ODD = Style(color="red", bold=True, reverse=True)
SAME, DIFF, MISSING = "=", "≠", "—"
"""A scene every run chose alike in, one they chose differently in, one some run never met (not a difference)."""
ODD_MARK = "✗"
ORDERS = ("scene", "disagreement", "KDMA error")
"""``o`` cycles: scene order, disagreeing scenes first, largest KDMA prediction error first."""


def run_fields(run: RunRow) -> list[str]:
    """What tells compared runs apart: ADM, LLM, target, variant."""
    s = RunSummary.of(run)
    return [printable(x) for x in (s.adm or "?", short_llm(s.llm), s.target, s.variant)]


def legend(fields: list[list[str]], width: int) -> tuple[str, list[str]]:
    """(what every run shares, one label per run with only what differs), each fitted to ``width`` cells.

    Fields alike in every run are said once; each run's label is cut where it is like the others' (see
    ``cut_apart``), so ``Qwen2.5-7B-Instruct`` and ``Qwen2.5-32B-Instruct`` keep their sizes in view."""
    columns = list(zip(*fields, strict=True)) if fields else []
    same = [len(fields) > 1 and len(set(col)) == 1 for col in columns]
    common = " · ".join(col[0] for col, alike in zip(columns, same, strict=True)
                        if alike and col[0] and col[0] != DEFAULT_VARIANT)
    labels = [" · ".join(x for x, alike in zip(run, same, strict=True) if not alike and x and x != DEFAULT_VARIANT)
              or " · ".join(x for x in run if x and x != DEFAULT_VARIANT) for run in fields]
    spans = shared_spans(labels)
    return cut_middle(common, width), [cut_apart(label, width, *spans[label]) for label in labels]


def letters(count: int) -> list[str]:
    return [ascii_uppercase[i] if i < 26 else f"R{i + 1}" for i in range(count)]


class ComparePane(Pane):
    """Scenes matched by (scenario, scene id); a scene agrees when all runs have it and chose the same action, and
    one some run lacks is shown missing (—), counted apart."""

    TITLE = "Compare"
    SHORT = "Cmp"
    KEY = "3"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_scene", "Side by side",
                tooltip="Show the runs' choices, justifications and KDMA values side by side"),
        Binding("d", "toggle_differences", "Diffs only",
                tooltip="Show only the scenes where the runs disagree (again: all)"),
        Binding("o", "cycle_order", "Order",
                tooltip="Sort scenes by scene, disagreement or KDMA prediction error"),
        Binding("escape", "back", "Runs", tooltip="Back to the runs"),
    ]
    DEFAULT_CSS = """
    ComparePane #compare-legend {
        height: auto; max-height: 6; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis;
    }
    ComparePane #compare-legend.-hint { text-wrap: wrap; }
    ComparePane #compare-summary { height: auto; max-height: 3; padding: 0 1; background: $boost; width: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs: list[RunRow] = []
        self.comparison: Comparison | None = None
        self.only_differences = False
        self.order = 0
        self.at: tuple[str, str] | None = None
        """(scenario, scene) the cursor opens on: the scene the Scenes pane shows, if one of these runs is open."""

    def compose(self) -> ComposeResult:
        yield Static("Mark two or more runs with space in Runs (1), or filter them down to 2-4, then press c.",
                     id="compare-legend", classes="-hint")
        yield Label("", id="compare-summary")
        yield VirtualTable(id="compare-table", empty_text="nothing compared yet")

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#compare-table", VirtualTable)

    def focus_default(self) -> None:
        self.focus_now(self.table)

    def start(self, uri: str, experiment_id: str, runs: list[RunRow], at: tuple[str, str] | None = None) -> None:
        """Load every scene of each run in a worker, then line them up (the cursor on scene ``at`` if they have
        it: the scene being read in Scenes is the one to compare, not the first)."""
        self.runs = runs
        self.at = at
        self.comparison = None
        self.only_differences = False  # a filter never carries silently into the next compare
        self.order = 0
        # One line per run with what differs, cut where the runs are alike; what they share said once.
        room = max((self.size.width or self.app.size.width) - 6, 20)
        common, labels = legend([run_fields(run) for run in runs], room)
        text = Text(no_wrap=True, overflow="ellipsis")
        for letter, label in zip(letters(len(runs)), labels, strict=True):
            text.append(f"{letter} ", "bold reverse")
            text.append(f" {label}\n")
        if common:
            text.append(f"all: {common}", "dim")
        text.rstrip()
        self.query_one("#compare-legend", Static).update(text)
        self.query_one("#compare-legend", Static).remove_class("-hint")
        self.query_one("#compare-summary", Label).update(f"loading scenes of {len(runs)} runs…")
        self.table.empty_text = "loading…"
        self.table.set_data([], [])
        self._load(uri, experiment_id, [r.run_id for r in runs])

    @work(thread=True, exclusive=True, group="compare")
    def _load(self, uri: str, experiment_id: str, run_ids: list[str]) -> None:
        from align_track.tui.models.data import all_scenes

        worker = get_current_worker()
        scenes = []
        try:
            for run_id in run_ids:
                got = all_scenes(uri, experiment_id, run_id, lambda: worker.is_cancelled)
                if got is None:
                    return
                scenes.append(got)
        except Exception as exc:  # the store failed: report, do not crash
            self.post_ui(self._failed, f"cannot load scenes: {exc}")
            return
        if not worker.is_cancelled:
            self.post_ui(self._show, run_ids, compare(scenes))

    def _failed(self, message: str) -> None:
        self.query_one("#compare-summary", Label).update(message)
        self.set_error(message)

    def _show(self, run_ids: list[str], comparison: Comparison) -> None:
        if run_ids != [r.run_id for r in self.runs]:
            return
        self.comparison = comparison
        self._update_summary()
        # Four runs fit in 80 columns: letters as headers (the legend above names them), values cut in the
        # middle, the ≠ column frozen so it stays in view when scrolling right.
        columns = [Column("agree", "", 1, essential=True),
                   Column("scenario", "scenario", 24, middle=True, min_width=8, essential=True),
                   Column("scene", "scene", 16, middle=True, min_width=6, essential=True)]
        columns += [Column(letter, letter, 30, middle=True, grow=True, min_width=10, essential=True)
                    for letter in letters(len(run_ids))]
        odd = [comparison.odd_ones(i) for i in range(len(comparison.keys))]
        rows = [
            (MISSING if comparison.missing(i) else SAME if ok else DIFF, key[0], key[1],
             *[MISSING if d is None else (f"{ODD_MARK} {d}" if r in odd[i] else d) for r, d in enumerate(decisions)])
            for i, (key, decisions, ok) in enumerate(zip(comparison.keys, comparison.decisions, comparison.agree,
                                                         strict=True))
        ]

        def style(row: int, col: int) -> Style | None:
            if rows[row][0] != DIFF:
                return None
            if col == 0:
                return DIFFERENT
            if col >= 3 and (col - 3) in odd[row]:
                return ODD  # the run that differs from the majority, not the whole row
            if col >= 3 and not odd[row]:
                return DIFFERENT  # no majority: every run differs
            return None

        table = self.table
        table.empty_text = "no scenes"
        table.frozen, table.pin = 1, 3  # ≠ always; scenario and scene too when they fit in half the width
        table.cell_style = style
        table.set_data(columns, rows, self._view())
        if self.at in comparison.keys:
            table.move_to_row(comparison.keys.index(self.at))

    def _update_summary(self) -> None:
        if self.comparison is None:
            return
        # What o and d changed comes first: after the summary (which grows with missing scenes) it was cut at 80
        # columns, and o seemed to do nothing. The line wraps rather than cut the rest.
        text = Text(f"by {ORDERS[self.order]} (o)", "bold")
        if self.only_differences:
            text.append(" · disagreements only (d: all)", "bold yellow")
        text.append(f" · {self.comparison.summary()}")
        self.query_one("#compare-summary", Label).update(text)

    def _view(self) -> list[int]:
        comparison = self.comparison
        if comparison is None:
            return []
        rows = list(range(len(comparison.keys)))
        if self.only_differences:  # scenes the runs chose differently in; a scene some run lacks is no difference
            rows = [i for i in rows if comparison.differs(i)]
        if ORDERS[self.order] == "disagreement":  # then the scenes some run lacks, then those that agree
            rows.sort(key=lambda i: (not comparison.differs(i), comparison.agree[i],
                                     -len(comparison.odd_ones(i)) or 0, i))
        elif ORDERS[self.order] == "KDMA error":
            errors = {i: comparison.kdma_error(i) for i in rows}
            rows.sort(key=lambda i: (errors[i] is None, -(errors[i] or 0.0), i))
        return rows

    def action_toggle_differences(self) -> None:
        self.only_differences = not self.only_differences
        self.table.set_view(self._view())
        self._update_summary()

    def action_cycle_order(self) -> None:
        self.order = (self.order + 1) % len(ORDERS)
        self.table.clear_sort()  # o's order replaces a column's (shift+letter) sort
        self.table.set_view(self._view())
        self._update_summary()

    def action_open_scene(self) -> None:
        from align_track.tui.screens.compare_scene import CompareSceneScreen, side_by_side

        comparison, row = self.comparison, self.table.current_row
        if comparison is None or row is None:
            return
        view = list(self.table.view)
        names = letters(len(self.runs))

        def render(position: int):
            i = view[position]
            return side_by_side(comparison.keys[i], names, comparison.scenes[i], comparison.odd_ones(i))

        self.app.push_screen(CompareSceneScreen(render, self.table.cursor, len(view)))

    def action_back(self) -> None:
        self.tell_app(ShowPane("runs"))
