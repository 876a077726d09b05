"""Sweep pane: scenes across runs. Every (scenario, scene) the runs met, how they split, and each run's decision.

The index of every trace's decision is read once in a worker (the first scenes show after its first batch) over
the snapshot's runs; the rows are then computed for the runs the Runs pane selects (its marks, else its filter),
so marking or filtering there re-aggregates here without reading the store again.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Input, Label
from textual.worker import get_current_worker

from align_track.errors import printable
from align_track.query.scene_index import (
    SORTS,
    Decision,
    SceneIndex,
    SceneKey,
    SceneRow,
    first_line,
    haystack,
    kdma_pairs,
    matches,
    number_text,
    percent,
    sort_rows,
)
from align_track.query.textfit import cut_middle
from align_track.schema import DEFAULT_VARIANT, RunSummary
from align_track.tui.messages import OpenRun, ShowPane
from align_track.tui.models.runs import RUNNING, short_llm
from align_track.tui.models.selection import Selection
from align_track.tui.panes.base import Pane
from align_track.tui.widgets.fast_input import FastInput
from align_track.tui.widgets.vtable import Column, VirtualTable

if TYPE_CHECKING:
    from align_track.tui.models.data import RunsSnapshot

SCENE_COLUMNS: tuple[Column, ...] = (
    Column("scenario", "scenario", 24, middle=True, min_width=8, essential=True),
    Column("scene", "scene", 12, middle=True, min_width=5, essential=True),
    Column("runs", "runs", 6, numeric=True, essential=True),
    Column("agree", "agree", 6, numeric=True, essential=True),
    Column("oracle", "oracle", 6, numeric=True, essential=True),
    Column("dist", "dist", 5, numeric=True, essential=True),
    Column("choices", "choices taken", 60, grow=True, min_width=14, essential=True),
)
DECISION_COLUMNS: tuple[Column, ...] = (
    Column("adm", "ADM", 28, middle=True, min_width=8, essential=True),
    Column("llm", "LLM", 20, middle=True, min_width=6, essential=True),
    Column("target", "target", 28, middle=True, min_width=8, essential=True),
    Column("choice", "choice", 30, grow=True, min_width=10, essential=True),
    Column("hit", "hit", 3, essential=True),
    Column("dist", "dist", 5, numeric=True),
    Column("kdma", "KDMA true→pred", 30),
    Column("why", "why (first line)", 80),
    Column("variant", "variant", 26, middle=True),
)
SORT_LABEL = {"scene": "scene", "runs": "runs", "choices": "choices", "agreement": "agreement",
              "oracle": "oracle", "distance": "distance"}
SORT_COLUMN = {"runs": 2, "agreement": 3, "oracle": 4, "distance": 5, "choices": 6}
ODD = Style(color="red", bold=True)
PAINT_EVERY = 0.4
"""Seconds between two repaints of the scene list while the index is still being read."""


def scene_cells(row: SceneRow) -> tuple[str, ...]:
    return (printable(row.key[0]), printable(row.key[1]), str(row.runs), percent(row.agreement),
            percent(row.hit_rate), number_text(row.distance), printable(row.choices_text()))


class SweepPane(Pane):
    """Scenes across runs: the scenes (top) and the highlighted scene's decisions, grouped by ADM, LLM, target."""

    TITLE = "Sweep"
    SHORT = "Swp"
    KEY = "8"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", tooltip="Filter scenes by scenario, scene id, state text or choice"),
        Binding("s", "sort_next", "Sort", tooltip="Next scene order; shift+a header's underlined letter sorts by it"),
        Binding("S", "sort_reverse", "Reverse", tooltip="Reverse the scene order"),
        Binding("d", "toggle_splits", "Splits", tooltip="Only the scenes where the runs did not all choose alike"),
        Binding("tab", "switch_table", "Scenes/decisions", tooltip="Move between the scenes and the decisions"),
        Binding("enter", "side_by_side", "Side by side",
                tooltip="Show the runs' decisions on the scene side by side in full"),
        Binding("o", "open_run", "Run's scenes", tooltip="Open the decision's run at this scene in Scenes (2)"),
        Binding("y", "copy", "Copy", tooltip="Copy the scene's ids, command, or the run's id, URLs and folder"),
        Binding("escape", "back", "Runs", tooltip="Back to the runs"),
        Binding("escape", "clear_filter", "Clear filter", show=False,
                tooltip="In the filter box: clear the filter and go back to the table"),
        Binding("down", "leave_filter", "To the table", show=False,
                tooltip="In the filter box: go to the table, keeping the filter"),
    ]
    DEFAULT_CSS = """
    SweepPane #sweep-bar { height: 1; }
    SweepPane #sweep-mode { width: auto; padding: 0 1; background: $primary; color: $text; }
    SweepPane #sweep-mode:ansi { background: ansi_blue; color: ansi_bright_white; }
    SweepPane #sweep-filter { width: 1fr; }
    SweepPane #sweep-count { width: auto; padding: 0 1; }
    SweepPane #sweep-summary {
        height: auto; max-height: 2; padding: 0 1; background: $boost; text-style: bold; width: 1fr;
    }
    SweepPane #sweep-scenes { height: 1fr; }
    SweepPane #sweep-scene { height: 1; padding: 0 1; background: $boost; width: 1fr; }
    SweepPane #sweep-decisions { height: 1fr; }
    """

    def __init__(self, selection: Selection, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.selection = selection
        self.index: SceneIndex | None = None
        self.lock = threading.Lock()
        """Held while a worker adds to the index and while the UI thread reads a scene's decisions from it."""
        self.building = False
        self.read = 0
        self.snapshot: RunsSnapshot | None = None
        self.run_ids: set[str] = set()
        self.scope = ""
        self.rows: list[SceneRow] = []
        self.hay: list[str] = []
        self.text = ""
        self.sort_by = "scene"
        self.reverse = False
        self.splits_only = False
        self.decisions: list[Decision] = []
        self.details: dict[str, Any] = {}
        self._shown_key: SceneKey | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="sweep-bar"):
            yield Label("/", id="sweep-mode")
            yield FastInput(placeholder="filter scenes: scenario, scene id, state text, choice", id="sweep-filter",
                            compact=True, on_change=self.typed, on_submit=lambda _value: self.action_leave_filter())
            yield Label("", id="sweep-count")
        yield Label("scenes across runs: press 8 once runs are listed", id="sweep-summary")
        yield VirtualTable(SCENE_COLUMNS, id="sweep-scenes", empty_text="no scenes yet")
        yield Label("", id="sweep-scene")
        yield VirtualTable(DECISION_COLUMNS, id="sweep-decisions", empty_text="")

    @property
    def scenes_table(self) -> VirtualTable:
        return self.query_one("#sweep-scenes", VirtualTable)

    @property
    def decisions_table(self) -> VirtualTable:
        return self.query_one("#sweep-decisions", VirtualTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#sweep-filter", Input)

    def focus_default(self) -> None:
        self.focus_now(self.scenes_table)

    def set_zoom(self, zoomed: bool) -> None:
        pass

    # ------------------------------------------------------------------ the index

    def refresh_source(self) -> None:
        """Shown: read the index on first use, catch up with new runs, and aggregate over the Runs pane's
        selection (its marks, else the runs its filter shows)."""
        snapshot = self.selection.snapshot
        if snapshot is None:
            return
        marked = [r for r in self.selection.marked_ids if snapshot.run(r) is not None]
        shown = self.selection.shown_ids
        if marked:
            ids, scope = set(marked), f"{len(marked)} marked runs"
        elif shown and len(shown) < len(snapshot.runs):
            ids, scope = set(shown), f"{len(shown)} runs shown in Runs"
        else:
            ids, scope = {r.run_id for r in snapshot.runs}, f"every run ({len(snapshot.runs)})"
        changed = ids != self.run_ids
        self.run_ids, self.scope = ids, scope
        if self.index is None and not self.building:
            self.snapshot = snapshot
            self.building = True
            self._update_summary()
            self._build(snapshot)
        elif self.snapshot is not snapshot and not self.building:
            self.snapshot = snapshot
            self._refresh(snapshot)
        elif changed and self.index is not None:
            self._recompute()

    def runs_refreshed(self, snapshot: RunsSnapshot) -> None:
        """The app's live refresh: new runs and the new scenes of runs still being written join the index."""
        if self.index is not None and not self.building and self.app.screen is self.screen:
            self.snapshot = snapshot
            self._refresh(snapshot)

    @work(thread=True, exclusive=True, group="sweep")
    def _build(self, snapshot: RunsSnapshot) -> None:
        from align_track.query.scene_index import attach_state_texts, read_fields

        worker = get_current_worker()
        index = SceneIndex.for_runs(snapshot.runs)
        last = 0.0
        read = 0
        try:
            for batch in read_fields(snapshot.uri, snapshot.experiment_id):
                if worker.is_cancelled:
                    return
                with self.lock:
                    index.add(batch)
                read += len(batch)
                now = time.monotonic()
                if now - last >= PAINT_EVERY:  # the first batch at once, then a few repaints a second
                    last = now
                    with self.lock:
                        rows = index.rows(self.run_ids)
                    self.post_ui(self._indexed, index, rows, read, False)
            with self.lock:
                rows = index.rows(self.run_ids)
            self.post_ui(self._indexed, index, rows, read, True)
            attach_state_texts(index, snapshot.uri, snapshot.experiment_id)
            self.post_ui(self._texts_read, index)
        except Exception as exc:  # the store failed: say so, keep the UI alive
            self.post_ui(self._failed, f"cannot read the scenes: {exc}")

    @work(thread=True, exclusive=True, group="sweep")
    def _refresh(self, snapshot: RunsSnapshot) -> None:
        from align_track.query.scene_index import attach_state_texts, read_fields

        index = self.index
        if index is None:
            return
        live = [rid for rid, state in snapshot.status.items() if state == RUNNING]
        try:
            with self.lock:
                index.set_runs(snapshot.runs)
                have = index.indexed_runs()
            new = [r.run_id for r in snapshot.runs if r.run_id not in have]
            reads = [(new, None)] if new else []
            reads += [([rid], index.newest_ms(rid)) for rid in live if rid in have]
            added = 0
            for run_ids, since in reads:
                for batch in read_fields(snapshot.uri, snapshot.experiment_id, run_ids, since_ms=since):
                    with self.lock:
                        added += index.add(batch)
            attach_state_texts(index, snapshot.uri, snapshot.experiment_id)
        except Exception:  # noqa: BLE001 - a missed refresh is retried on the next tick; ctrl+r shows errors
            return
        self.post_ui(self._refreshed, index, added)

    def _indexed(self, index: SceneIndex, rows: list[SceneRow], read: int, done: bool) -> None:
        self.index = index
        self.read = read
        if done:
            self.building = False
            self._recompute()  # over the selection as it is now (it may have changed while reading)
            return
        self._set_rows(rows)

    def _texts_read(self, index: SceneIndex) -> None:
        if index is self.index:
            self._set_rows(self.rows)

    def _refreshed(self, index: SceneIndex, added: int) -> None:
        if index is self.index:
            self._recompute()

    def _failed(self, message: str) -> None:
        self.building = False
        self.scenes_table.empty_text = message
        self.scenes_table.refresh()
        self.set_error(message)
        self._update_summary()

    def _recompute(self) -> None:
        if self.index is None:
            return
        with self.lock:
            rows = self.index.rows(self.run_ids)
        self._set_rows(rows)

    # ------------------------------------------------------------------ the scene list

    def _set_rows(self, rows: list[SceneRow], keep_scene: bool = True) -> None:
        """Show ``rows`` filtered and sorted; the cursor stays on its scene (a new order: on the first)."""
        table = self.scenes_table
        keep = self.current_key if keep_scene else None
        self.rows = sort_rows(rows, self.sort_by, self.reverse)
        texts = self.index.texts if self.index is not None else {}
        self.hay = [haystack(r, texts.get(r.key, "")) for r in self.rows]
        table.empty_text = "indexing…" if self.building else "no scenes match" if rows else "no scenes"
        table.sort_column = SORT_COLUMN.get(self.sort_by)
        table.sort_reverse = self.reverse
        table.set_data(SCENE_COLUMNS, [scene_cells(r) for r in self.rows], self._view())
        if keep is not None:
            for i, r in enumerate(self.rows):
                if r.key == keep:
                    table.move_to_row(i)
                    break
        self._update_summary()
        self.show_decisions()

    def _view(self) -> list[int]:
        return [i for i, r in enumerate(self.rows)
                if (not self.splits_only or r.split) and (not self.text or matches(self.hay[i], self.text))]

    def _update_summary(self) -> None:
        # Wraps onto a second line rather than cut what s and d turned on (at 60 columns it was cut).
        text = Text()
        if self.building:
            text.append(f"indexing the scenes of {len(self.snapshot.runs) if self.snapshot else 0} runs… "
                        f"{self.read:,} traces read", "bold yellow")
        else:
            shown = len(self.scenes_table.view)
            text.append(f"{shown} scenes" if shown == len(self.rows) else f"{shown}/{len(self.rows)} scenes")
            text.append(f" · over {self.scope}")
        if self.splits_only:
            text.append(" · splits only (d)", "bold yellow")
        if self.sort_by != "scene":
            text.append(f" · by {SORT_LABEL[self.sort_by]}{'▼' if self.reverse else '▲'}")
        self.query_one("#sweep-summary", Label).update(text)
        count = self.query_one("#sweep-count", Label)
        label = f"{len(self.scenes_table.view)}/{len(self.rows)}"
        count.update(label, layout=len(label) != len(str(count.content)))

    @property
    def current_row(self) -> SceneRow | None:
        row = self.scenes_table.current_row
        return None if row is None or row >= len(self.rows) else self.rows[row]

    @property
    def current_key(self) -> SceneKey | None:
        row = self.current_row
        return None if row is None else row.key

    def typed(self, value: str) -> None:
        if value != self.text:
            self.text = value
            self.scenes_table.set_view(self._view(), keep_row=False)
            self._update_summary()

    def action_filter(self) -> None:
        box = self.filter_input
        self.focus_now(box)
        box.cursor_position = len(box.value)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Escape and down act on the filter box only while it has focus; escape elsewhere goes back."""
        in_box = self.screen.focused is self.filter_input
        if action in ("clear_filter", "leave_filter"):
            return in_box
        if action == "back":
            return not in_box
        return True

    def action_clear_filter(self) -> None:
        self.filter_input.value = ""
        self.focus_now(self.scenes_table)

    def action_leave_filter(self) -> None:
        self.focus_now(self.scenes_table)

    def on_mount(self) -> None:
        self.scenes_table.sorter = self._sort_column

    def _sort_column(self, column: int, reverse: bool) -> None:
        """Shift+a column's letter: that column's order (scenario and scene: scene order)."""
        by = next((name for name, i in SORT_COLUMN.items() if i == column), "scene")
        self.sort_by, self.reverse = by, reverse
        self._set_rows(self.rows, keep_scene=False)

    def action_sort_next(self) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]
        self.reverse = False
        self._set_rows(self.rows, keep_scene=False)  # the top of the new order (the most split scenes, ...)

    def action_sort_reverse(self) -> None:
        self.reverse = not self.reverse
        self._set_rows(self.rows, keep_scene=False)

    def action_toggle_splits(self) -> None:
        self.splits_only = not self.splits_only
        self.scenes_table.set_view(self._view())
        self._update_summary()

    def action_switch_table(self) -> None:
        target = self.decisions_table if self.screen.focused is self.scenes_table else self.scenes_table
        self.focus_now(target)

    def action_back(self) -> None:
        self.tell_app(ShowPane("runs"))

    # ------------------------------------------------------------------ one scene's decisions

    @on(VirtualTable.Highlighted, "#sweep-scenes")
    def _scene_highlighted(self, event: VirtualTable.Highlighted) -> None:
        event.stop()
        self.show_decisions()

    def show_decisions(self) -> None:
        """The highlighted scene's decisions, grouped by ADM, LLM, target (repeats blanked, as a tree)."""
        row = self.current_row
        title = self.query_one("#sweep-scene", Label)
        table = self.decisions_table
        if row is None or self.index is None:
            self.decisions = []
            self._shown_key = None
            title.update("")
            table.empty_text = "indexing…" if self.building else ""
            table.set_data(DECISION_COLUMNS, [])
            return
        if row.key == self._shown_key and len(self.decisions) == row.runs:
            return
        with self.lock:
            self.decisions = self.index.decisions_of(row.key, self.run_ids)
        self._shown_key = row.key
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(f"scene {printable(row.key[1])}", "bold")
        head.append(f" · {printable(row.key[0])} · {row.runs} runs: ")
        head.append(printable(row.choices_text()))
        title.update(head)
        top = majority(row)
        cells = self._decision_cells()
        table.empty_text = "no decisions"
        table.cell_style = (lambda r, c: ODD if c == 3 and top is not None and self.decisions[r].decision != top
                            else None)
        table.set_data(DECISION_COLUMNS, cells)
        missing = [d.trace_id for d in self.decisions if d.trace_id not in self.details]
        if missing and self.snapshot is not None:
            self._read_details(self.snapshot.uri, self.snapshot.experiment_id, row.key, missing)

    def _decision_cells(self) -> list[tuple[str, ...]]:
        runs = self.index.runs if self.index is not None else {}
        out = []
        previous = ("", "", "")
        for d in self.decisions:
            run = runs.get(d.run_id)
            s = RunSummary.of(run) if run is not None else None
            adm, llm, target = (s.adm, short_llm(s.llm), s.target) if s else ("?", "", "")
            group = (adm, llm, target)
            shown = [adm if group[:1] != previous[:1] else "",
                     llm if group[:2] != previous[:2] else "",
                     target if group != previous else ""]
            previous = group
            detail = self.details.get(d.trace_id)
            if detail is None:
                kdma, why = kdma_pairs(d.chosen_true, None, d.action) + " …", "…"
            else:
                kdma = kdma_pairs(d.chosen_true, detail.predicted, d.action)
                action = detail.action if isinstance(detail.action, dict) else {}
                why = first_line(action.get("justification"))
            variant = "" if s is None or s.variant == DEFAULT_VARIANT else s.variant
            out.append(tuple(printable(x) for x in (
                *shown, d.decision or "(none)", "" if d.hit is None else ("✓" if d.hit else "✗"),
                number_text(d.distance), kdma, why, variant)))
        return out

    @work(thread=True, exclusive=True, group="sweep-details")
    def _read_details(self, uri: str, experiment_id: str, key: SceneKey, trace_ids: list[str]) -> None:
        from align_track.store.scenes_reader import read_details

        try:
            found = read_details(uri, experiment_id, trace_ids)
        except Exception:  # noqa: BLE001 - the list still shows choices and true values; details stay '…'
            return
        self.post_ui(self._details_read, key, found)

    def _details_read(self, key: SceneKey, found: dict[str, Any]) -> None:
        self.details.update(found)
        if key == self._shown_key:
            self.decisions_table.update_rows(self._decision_cells())

    @property
    def current_decision(self) -> Decision | None:
        if not self.decisions:
            return None
        if self.screen.focused is self.decisions_table:
            row = self.decisions_table.current_row
            return None if row is None else self.decisions[row]
        return self.decisions[0]

    def action_open_run(self) -> None:
        d = self.current_decision
        if d is not None:
            self.tell_app(OpenRun(d.run_id, d.trace_id))

    def action_copy(self) -> None:
        from align_track.tui.models.links import CopyItem

        row = self.current_row
        if row is None:
            self.offer_copy([])
            return
        items = [CopyItem("scene id", row.key[1]), CopyItem("scenario id", row.key[0]),
                 CopyItem("align-track scenes command",
                          f"align-track scenes --scenario {_quoted(row.key[0])} --scene {_quoted(row.key[1])}")]
        d = self.current_decision if self.screen.focused is self.decisions_table else None
        if d is not None:
            items = self.selection.copy_items(d.run_id, d.trace_id) + items
        self.offer_copy(items)

    def action_side_by_side(self) -> None:
        """The decisions side by side in full, a page of runs at a time (n/p: next/previous runs)."""
        from align_track.tui.screens.compare_scene import CompareSceneScreen, side_by_side

        row = self.current_row
        if row is None or not self.decisions or self.snapshot is None:
            return
        decisions = list(self.decisions)
        start = 0
        if self.screen.focused is self.decisions_table and self.decisions_table.current_row is not None:
            start = self.decisions_table.current_row
        per_page = max(1, min(4, ((self.app.size.width or 80) - 8) // 34))
        pages = [decisions[i:i + per_page] for i in range(0, len(decisions), per_page)]
        uri, experiment_id = self.snapshot.uri, self.snapshot.experiment_id
        runs = self.index.runs if self.index is not None else {}
        top = majority(row)

        def render(page: int):
            chosen = pages[page]
            scenes = _scenes_of(uri, experiment_id, [d.trace_id for d in chosen])
            labels = [f"{_run_label(runs.get(d.run_id))}" for d in chosen]
            odd = {i for i, d in enumerate(chosen) if top is not None and d.decision != top}
            group = side_by_side(row.key, labels, [scenes.get(d.trace_id) for d in chosen], odd)
            note = Text(f"runs {page * per_page + 1}-{page * per_page + len(chosen)} of {len(decisions)}", "dim")
            from rich.console import Group

            return Group(note, group)

        self.app.push_screen(CompareSceneScreen(render, start // per_page, len(pages),
                                                hint="escape: back · n/p: next/previous runs · j/k: scroll"))


def majority(row: SceneRow) -> str | None:
    """The decision a strict majority of the scene's runs made, when the runs split (else None: no one is odd)."""
    if len(row.choices) < 2 or row.choices[0][1] == row.choices[1][1]:
        return None
    return row.choices[0][0]


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _run_label(run: Any) -> str:
    if run is None:
        return "?"
    s = RunSummary.of(run)
    parts = [s.adm or "?", short_llm(s.llm), s.target, "" if s.variant == DEFAULT_VARIANT else s.variant]
    return cut_middle(printable(" · ".join(p for p in parts if p)), 120)


def _scenes_of(uri: str, experiment_id: str, trace_ids: list[str]) -> dict[str, Any]:
    """Full scenes of these traces for the side-by-side view (SQL, else MLflow)."""
    from align_track.store import scenes_reader
    from align_track.store.spans_reader import Unreadable
    from align_track.tui.models.scenes import scene_from_row, scene_from_trace

    try:
        return {t: scene_from_row(r) for t, r in scenes_reader.read_root_spans(uri, experiment_id, trace_ids).items()}
    except Unreadable:
        from align_track.tui.models.data import _client

        return {t: scene_from_trace(tr) for t in trace_ids if (tr := _client(uri).get_trace(t)) is not None}
