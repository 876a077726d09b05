"""Runs pane: every complete run of the experiment, filtered as you type, sorted and marked from the keyboard."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Input, Label, Static

from align_track.errors import printable
from align_track.schema import (
    DEFAULT_VARIANT,
    MAYBE_RUNNING,
    NO_TIMING,
    TAG_LAST_SCENE,
    TAG_SCENES,
    RunSummary,
    number,
)
from align_track.tui.messages import CompareRuns, OpenRun
from align_track.tui.models.ingest_log import elapsed_text
from align_track.tui.models.runs import FINISHED, RUN_COLUMNS, STATE_WORD, RunsModel, when
from align_track.tui.models.selection import Selection
from align_track.tui.panes.base import Pane
from align_track.tui.widgets.fast_input import FastInput
from align_track.tui.widgets.vtable import VirtualTable

if TYPE_CHECKING:
    from align_track.store.runs_reader import RunRow
    from align_track.tui.models.data import RunsSnapshot

TEXT, MLFLOW = "text", "mlflow"
FILTERED_COMPARE_MAX = 4
"""``c`` with nothing marked compares the runs a filter shows, when it shows 2 to this many (four fit side by side
at 80 columns): the filter already picked them, so marking each again is keys for nothing (the Sweep pane reads the
marks, else the filter, alike). Unfiltered, or a wider filter, still asks for marks."""
PLACEHOLDER = {
    TEXT: "type to filter (every word must match some column)",
    MLFLOW: "MLflow filter, e.g. params.adm = 'pipeline_baseline' AND metrics.`timing.avg_seconds` < 30",
}


def details_text(run: RunRow, state: str, now_ms: int | None = None, width: int | None = None) -> Text:
    """ADM · LLM, target · variant, state · when its experiment started and how long it ran (a live run: its
    progress), folder: the full values, never cut (the strip grows to hold them). Fields are packed whole into
    ``width``: a narrow strip puts the next field on its own line rather than breaking ``LLM`` from its value, and
    drops the copy hint before it costs a line. A variant that is part of the folder (as ingest derives it) is not
    printed twice: it is the folder's bold part."""
    s = RunSummary.of(run)

    def field(label: str, value: str | Text, style: str = "") -> Text:
        out = Text(f"{label} ", "dim")
        out.append(value if isinstance(value, Text) else Text(printable(value) or "–", style))
        return out

    folder, variant = printable(s.path), printable(s.variant)
    at = folder.rfind(variant) if variant and variant != DEFAULT_VARIANT and folder != variant else -1
    in_folder = at >= 0
    variant_field = field("variant", Text("= the folder's bold part", "italic")) if in_folder else \
        field("variant", s.variant)
    word = STATE_WORD.get(state, state)
    state_field = field("state", word, "green" if state == FINISHED else "bold" if state == NO_TIMING else
                        "bold yellow")
    third: list[Text] = [state_field]
    hint: Text | None = None
    if state == NO_TIMING:  # complete, but its end is only the folder's last file change: no 'ran' to tell
        third += [field("started", when(s.start_time)), field("last change", when(run.end_time))]
    elif state == MAYBE_RUNNING:  # within 80 columns: the start is in the table
        change = field("last change", when(run.end_time), "yellow")
        change.append(", just before ingest", "yellow")
        third.append(change)
    elif state == FINISHED:
        ran = "" if s.start_time is None or run.end_time is None else \
            f", ran {elapsed_text(max(0, run.end_time - s.start_time) / 1000)}"
        third.append(field("started", when(s.start_time) + ran))
        hint = Text("(y copies the run id)", "dim")
    else:
        third.append(Text(progress_text(run, now_ms), "yellow"))
    if in_folder:
        shown = Text(folder[:at])
        shown.append(variant, "bold")
        shown.append(folder[at + len(variant):])
    else:
        shown = Text(folder or "–")
    groups = [[field("ADM", s.adm, "bold"), field("LLM", s.llm)], [field("target", s.target, "bold"), variant_field],
              third, [field("folder", shown)]]
    return _pack(groups, width, hint)


def _pack(groups: list[list[Text]], width: int | None, hint: Text | None) -> Text:
    """Each group starts a line; its fields share it two spaces apart while they fit whole in ``width`` (None: no
    limit), else the next one starts a line; ``hint`` ends the third group's line only where it fits."""
    lines: list[Text] = []
    for n, fields in enumerate(groups):
        line = Text()
        for piece in [*fields, *([hint] if hint is not None and n == 2 else [])]:
            fits = width is None or line.cell_len + 2 + piece.cell_len <= width
            if piece is hint and not fits:
                continue
            if line.cell_len and not fits:
                lines.append(line)
                line = Text()
            if line.cell_len:
                line.append("  ")
            line.append_text(piece)
        lines.append(line)
    text = Text("\n", no_wrap=False, overflow="fold").join(lines)
    text.no_wrap, text.overflow = False, "fold"
    return text


def progress_text(run: RunRow, now_ms: int | None = None) -> str:
    """How far a live run is: scenes so far, time since it started and since its last scene landed."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    scenes = run.tags.get(TAG_SCENES) or "0"
    parts = [f"{scenes} scenes so far"]
    if run.start_time:
        parts.append(f"running for {elapsed_text((now_ms - run.start_time) / 1000)}")
    last = number(run.tags.get(TAG_LAST_SCENE))
    if last is not None:
        parts.append(f"last scene {elapsed_text((now_ms - last) / 1000)} ago")
    return " · ".join(parts)


class RunsPane(Pane):
    """The experiment's runs; marks (by run id) survive filtering, sorting and reloads."""

    TITLE = "Runs"
    KEY = "1"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter_text", "Filter",
                tooltip="Filter as you type across the columns (enter: back to the table; opens the run if only one)"),
        Binding("f", "filter_mlflow", "MLflow", tooltip="Filter with an MLflow filter string (enter applies)"),
        Binding("s", "sort_next", "Sort", tooltip="Next sort column; shift+a header's underlined letter sorts by it"),
        Binding("S", "sort_reverse", "Reverse", tooltip="Reverse the sort order"),
        Binding("space", "toggle_mark", "Mark", tooltip="Mark or unmark the run (for compare and report)"),
        Binding("u", "clear_marks", "Unmark", tooltip="Unmark every run"),
        Binding("enter", "open_run", "Scenes", tooltip="Open the run's scenes in the inspector"),
        Binding("c", "compare", "Compare",
                tooltip=f"Compare the marked runs, else the 2 to {FILTERED_COMPARE_MAX} the filter shows"),
        Binding("y", "copy", "Copy", tooltip="Copy the run id, folder, MLflow URL or align-app command"),
        Binding("escape", "clear_filter", "Clear filter", show=False,
                tooltip="In the filter box: clear the filter and go back to the table"),
        Binding("down", "leave_filter", "To the table", show=False,
                tooltip="In the filter box: go to the table, keeping the filter"),
    ]
    DEFAULT_CSS = """
    RunsPane #runs-bar { height: 1; }
    RunsPane #filter-mode { width: auto; padding: 0 1; background: $primary; color: $text; }
    RunsPane #filter-mode:ansi { background: ansi_blue; color: ansi_bright_white; }
    RunsPane #runs-filter { width: 1fr; }
    RunsPane #runs-count { width: auto; padding: 0 1; }
    RunsPane #runs-mlflow {
        width: 1fr; height: auto; max-height: 2; color: $text-warning; padding: 0 1; display: none;
    }
    RunsPane #runs-mlflow.-on { display: block; }
    RunsPane #runs-details { height: auto; min-height: 4; max-height: 8; padding: 0 1; background: $boost; }
    RunsPane #runs-details.-empty { display: none; }
    RunsPane #runs-details:ansi { background: ansi_default; }
    """

    def __init__(self, selection: Selection, **kwargs) -> None:
        super().__init__(**kwargs)
        self.selection = selection
        self.model = RunsModel.from_runs([])
        self.mode = TEXT
        self.mlflow_text = ""
        self._details_floor = (0, 4)
        """(width, rows): the details strip's height holds at the most rows a run has needed at this width."""
        self.filter_error = ""
        """Why the MLflow filter was refused: shown where its results would be, not 'no runs match'."""
        self.filtering = ""
        """What the MLflow filter is doing while its worker runs (the first waits seconds for ``import mlflow``):
        shown beside the filter until its results arrive, so Enter never seems to do nothing."""

    @property
    def snapshot(self) -> RunsSnapshot | None:
        return self.selection.snapshot

    @property
    def marked_ids(self) -> set[str]:
        """Marks are by run id, so they survive filtering, sorting and reloads."""
        return self.selection.marked_ids

    def compose(self) -> ComposeResult:
        with Horizontal(id="runs-bar"):
            yield Label("/", id="filter-mode")
            yield FastInput(placeholder=PLACEHOLDER[TEXT], id="runs-filter", compact=True,
                            on_change=self.typed, on_submit=self.submit_filter)
            yield Label("", id="runs-count")
        yield Label("", id="runs-mlflow")
        yield VirtualTable(RUN_COLUMNS, markable=True, id="runs-table", empty_text="connecting…")
        yield Static("", id="runs-details")

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#runs-table", VirtualTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#runs-filter", Input)

    def focus_default(self) -> None:
        self.focus_now(self.table)

    def on_mount(self) -> None:
        self.table.sorter = self._sort  # a column's key sorts the model (every run, not just those shown)

    # ------------------------------------------------------------------ data

    def set_snapshot(self, snapshot: RunsSnapshot) -> None:
        """New runs from the store: rebuild the model, keep text filter, sort, marks and the cursor's run."""
        self.selection.snapshot = snapshot
        old = self.model
        current = self.current_run_id if self.is_mounted else None
        built = snapshot.table  # built by the thread that read the runs
        self.model = built if built is not None and built is not old else RunsModel.from_runs(
            snapshot.runs, states=snapshot.states)
        self.model.text = old.text
        self.model.sort(old.sort_column, old.sort_reverse)
        if self.marked_ids:
            self.selection.marked_ids &= set(self.model.run_ids)
        table = self.table
        table.empty_text = self._empty_text() if snapshot.runs else "no runs yet: press 4 to ingest a folder"
        table.set_data(self.model.columns, self.model.cells, self.model.view(), natural=self.model.natural,
                       keep=self.model.keep)
        table.marked = self.model.rows_for(self.marked_ids) if self.marked_ids else set()
        table.sort_column, table.sort_reverse = self.model.sort_column, self.model.sort_reverse
        if self.mlflow_text:
            self.apply_mlflow_filter(self.mlflow_text)
        if current is not None:  # a refresh keeps the cursor on the run it was on, wherever it moved
            for row in self.model.rows_for([current]):
                table.move_to_row(row)
        self.update_count()

    @on(VirtualTable.Highlighted, "#runs-table")
    def _highlighted(self, event: VirtualTable.Highlighted) -> None:
        event.stop()
        self.show_details()

    def show_details(self) -> None:
        """The highlighted run in full: what the columns cut, one field per line pair."""
        details = self.query_one("#runs-details", Static)
        run_id = self.current_run_id
        self.selection.current_id = run_id
        run = self.selection.run(run_id) if run_id is not None else None
        # No run highlighted (none match): the strip's four lines go to the table, where an error is said.
        details.set_class(run is None or self.snapshot is None, "-empty")
        if run is None or self.snapshot is None:
            details.update("")
            return
        details.update(details_text(run, self.snapshot.shown_state(run.run_id),
                                    width=details.content_size.width or None))
        self.call_after_refresh(self._hold_details_height)

    def _hold_details_height(self) -> None:
        """The strip grows to hold a run's fields and keeps that height while the width stays: shrinking back for
        the next run made the table jump a row as the cursor moved (and a page down, then up, land elsewhere)."""
        details = self.query_one("#runs-details", Static)
        width, rows = self._details_floor
        if details.size.width != width:
            rows = 4
        rows = max(rows, details.size.height)
        self._details_floor = (details.size.width, rows)
        if details.styles.min_height is None or details.styles.min_height.value != rows:
            details.styles.min_height = rows

    def on_resize(self) -> None:
        """Another width wraps the fields otherwise: measure the strip again from its smallest."""
        self._details_floor = (0, 4)
        self.query_one("#runs-details", Static).styles.min_height = 4
        self.call_after_refresh(self.show_details)

    def show_empty_store(self) -> None:
        self.table.empty_text = "no runs yet: press 4 to ingest a folder"
        self.table.refresh()

    def show_error(self, message: str) -> None:
        self.table.empty_text = f"cannot load runs: {message}"
        self.table.refresh()

    def refresh_view(self, keep_row: bool = True) -> None:
        """Show the model's rows; the cursor stays on its run (sorting) or goes to the top match (filtering)."""
        self.table.set_view(self.model.view(), keep_row=keep_row)
        self.update_count()

    def update_count(self) -> None:
        self.selection.set_shown(self.model.run_ids, self.table.view)
        shown, total = len(self.table.view), len(self.model)
        parts = [f"{shown}/{total} runs"]
        if self.marked_ids:
            parts.append(f"{len(self.marked_ids)} marked")
        if self.model.sort_column is not None:
            col = self.model.columns[self.model.sort_column]
            parts.append(f"by {col.label}{'▼' if self.model.sort_reverse else '▲'}")
        # Relayout (a screen-wide cost) only when the text's width changes, not on every keystroke.
        count = self.query_one("#runs-count", Label)
        text = " · ".join(parts)
        count.update(text, layout=len(text) != len(str(count.content)))
        flt = self.query_one("#runs-mlflow", Label)
        text = f"mlflow filter: {self.mlflow_text}" if self.mlflow_text else ""
        if text and self.filtering:
            text += f" · {self.filtering}"
        if str(flt.content) != text:
            flt.set_class(bool(self.mlflow_text), "-on")
            flt.update(text)

    @property
    def shown_run_ids(self) -> list[str]:
        return [self.model.run_ids[i] for i in self.table.view]

    @property
    def current_run_id(self) -> str | None:
        row = self.table.current_row
        return None if row is None else self.model.run_ids[row]

    # ------------------------------------------------------------------ filtering

    def _set_mode(self, mode: str) -> None:
        self.mode = mode
        box = self.filter_input
        box.placeholder = PLACEHOLDER[mode]
        box.value = self.model.text if mode == TEXT else self.mlflow_text
        self.query_one("#filter-mode", Label).update("/" if mode == TEXT else "mlflow")
        self.focus_now(box)
        box.cursor_position = len(box.value)

    def action_filter_text(self) -> None:
        self._set_mode(TEXT)

    def action_filter_mlflow(self) -> None:
        self._set_mode(MLFLOW)

    def typed(self, value: str) -> None:
        """Filter on every change of the box, in the keystroke's own turn."""
        if self.mode == TEXT and value != self.model.text:
            self.model.text = value
            self.refresh_view(keep_row=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Escape and down act on the filter box only while it has focus; elsewhere they keep
        their usual meaning. (``screen.focused``: the widget's own flag lags a focus change.)"""
        if action in ("clear_filter", "leave_filter"):
            return self.screen.focused is self.filter_input
        return True

    def submit_filter(self, value: str) -> None:
        """Enter in the filter box: apply an MLflow filter, go back to the table (in enter's own turn); a text
        filter that leaves one run opens it. An incomplete MLflow filter (a dangling AND, an open quote) is
        refused at once and the box keeps focus to fix it."""
        if self.mode == MLFLOW:
            from align_track.query.filter_check import incomplete_reason

            text = value.strip()
            reason = incomplete_reason(text)
            if reason is not None:
                self.mlflow_text, self.filtering = text, ""
                self.model.allowed = set()
                self._show_filter_error(f"incomplete filter {text!r}: {reason}")
                self.refresh_view()
                return
            self.apply_mlflow_filter(text, announce=True)
        self.focus_now(self.table)
        if self.mode == TEXT and value.strip() and len(self.table.view) == 1:
            self.action_open_run()  # one match: what the user was looking for (enter again would open it)

    def action_clear_filter(self) -> None:
        """Escape in the filter box clears that filter and returns to the table."""
        self.filter_input.value = ""
        if self.mode == MLFLOW:
            self.apply_mlflow_filter("")
        self.focus_now(self.table)

    def action_leave_filter(self) -> None:
        self.focus_now(self.table)

    def _empty_text(self) -> str:
        return f"✖ {self.filter_error}" if self.filter_error else "no runs match the filter"

    def _show_filter_error(self, message: str) -> None:
        self.filter_error = message
        self.set_error(message)
        if self.snapshot is not None and self.snapshot.runs:
            self.table.empty_text = self._empty_text()

    def apply_mlflow_filter(self, text: str, announce: bool = False) -> None:
        """Filter in a worker; ``announce`` (the user's Enter) says 'filtering…' until the results arrive, as
        does any filter that must first wait for ``import mlflow`` (a refresh's quick re-filter does not flash)."""
        from align_track.tui.models.data import mlflow_filter_ready

        self.mlflow_text = text
        if not text:
            self.filtering = ""
            self.model.allowed = None
            self._show_filter_error("")
            self.refresh_view()
            return
        if self.snapshot is not None:
            ready = mlflow_filter_ready()
            if announce or not ready:
                self.filtering = "filtering…" if ready else "filtering… (loading MLflow, first time only)"
                self.update_count()
            self._run_mlflow_filter(text, self.snapshot)

    @work(thread=True, exclusive=True, group="mlflow-filter")
    def _run_mlflow_filter(self, text: str, snapshot: RunsSnapshot) -> None:
        from align_track.query.select import QueryError
        from align_track.tui.models.data import mlflow_filter

        try:
            ids = mlflow_filter(snapshot.runs, text)
        except QueryError as exc:
            self.post_ui(self._filter_failed, text, str(exc))
            return
        except Exception as exc:  # whatever MLflow's matcher trips on is a bad filter to the user, not a crash
            self.post_ui(self._filter_failed, text, f"cannot apply filter {text!r}: {type(exc).__name__}: {exc}")
            return
        self.post_ui(self._filter_applied, text, ids)

    def _filter_applied(self, text: str, ids: set[str]) -> None:
        if text != self.mlflow_text:
            return
        self.filtering = ""
        self.model.allowed = self.model.rows_for(ids)
        self._show_filter_error("")
        self.refresh_view(keep_row=False)

    def _filter_failed(self, text: str, message: str) -> None:
        if text != self.mlflow_text:
            return
        self.filtering = ""
        self.model.allowed = set()
        self._show_filter_error(message)
        self.refresh_view()

    # ------------------------------------------------------------------ sorting

    def _sort(self, column: int | None, reverse: bool) -> None:
        self.model.sort(column, reverse)
        self.table.sort_column, self.table.sort_reverse = column, reverse
        self.refresh_view()

    def action_sort_next(self) -> None:
        """Cycle the sort column: each named column in turn, then the store's order (newest first)."""
        sortable = [i for i, c in enumerate(self.model.columns) if c.label]
        current = self.model.sort_column
        later = [i for i in sortable if current is None or i > current]
        self._sort(later[0] if later else None, False)

    def action_sort_reverse(self) -> None:
        self._sort(self.model.sort_column, not self.model.sort_reverse)

    # ------------------------------------------------------------------ marks and actions

    def action_toggle_mark(self) -> None:
        row = self.table.current_row
        if row is None:
            return
        run_id = self.model.run_ids[row]
        if run_id in self.marked_ids:
            self.marked_ids.discard(run_id)
            self.table.marked.discard(row)
        else:
            self.marked_ids.add(run_id)
            self.table.marked.add(row)
        self.table.cursor += 1
        self.table.refresh()
        self.update_count()

    def action_clear_marks(self) -> None:
        self.marked_ids.clear()
        self.table.marked.clear()
        self.table.refresh()
        self.update_count()

    def action_open_run(self) -> None:
        if self.current_run_id is not None:
            self.tell_app(OpenRun(self.current_run_id))

    def action_copy(self) -> None:
        run_id = self.current_run_id
        self.offer_copy(self.selection.copy_items(run_id) if run_id else [])

    def action_compare(self) -> None:
        """The marked runs; none marked, the runs a filter shows if they are few (``FILTERED_COMPARE_MAX``)."""
        run_ids = [r for r in self.model.run_ids if r in self.marked_ids]
        shown = self.shown_run_ids
        filtered = bool(self.model.text.strip() or self.mlflow_text)
        few = filtered and 2 <= len(shown) <= FILTERED_COMPARE_MAX
        if not run_ids and few:
            run_ids = shown
            self.notify(f"none marked: comparing the {len(shown)} runs the filter shows")
        elif len(run_ids) == 1 and few:  # marks come first: say how to get the filter's runs instead
            self.notify(f"1 run marked: mark another with space, or u (unmark) then c compares the {len(shown)} "
                        "runs the filter shows", severity="warning")
            return
        self.tell_app(CompareRuns(run_ids))
