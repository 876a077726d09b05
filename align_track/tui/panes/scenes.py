"""Scene inspector: a run's scenes, streamed in pages from a worker, and the highlighted scene in full."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.syntax import Syntax
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, VerticalScroll
from textual.widgets import Label, Static
from textual.worker import get_current_worker

from align_track.errors import printable
from align_track.query.textfit import cut_middle
from align_track.schema import PARAM_NUM_SCENES
from align_track.tui.messages import ShowPane
from align_track.tui.models.scenes import SCENE_COLUMNS, Scene, raw_json, sort_scenes
from align_track.tui.models.selection import Selection
from align_track.tui.panes.base import Pane
from align_track.tui.widgets.key_scroll import KeyScroll
from align_track.tui.widgets.scene_view import render_scene
from align_track.tui.widgets.vtable import VirtualTable

if TYPE_CHECKING:
    from align_track.store.runs_reader import RunRow


RAW_CAP = 200_000
"""Characters of raw JSON highlighted by default (a 10 MB trace would freeze the screen)."""


class ScenesPane(Pane):
    """Pages of traces arrive while you read; moving the cursor never waits for the store.

    Side by side from 110 columns (the screen's ``-wide`` class), list above detail below that.
    """

    TITLE = "Scenes"
    KEY = "2"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next_scene", "Next", tooltip="Next scene"),
        Binding("p", "previous_scene", "Prev", tooltip="Previous scene"),
        Binding("r", "toggle_raw", "Raw JSON", tooltip="Show the trace's raw JSON (again: the readable view)"),
        Binding("f", "toggle_full", "Full text", tooltip="Show long texts in full (a huge state is cut at first)"),
        Binding("y", "copy", "Copy", tooltip="Copy run id, folder, MLflow URL (run or trace), align-app command"),
        Binding("d", "scroll_detail(1)", "Read ↓", tooltip="Scroll the scene's text down half a page"),
        Binding("u", "scroll_detail(-1)", "Read ↑", tooltip="Scroll the scene's text up half a page"),
        Binding("escape", "back", "Runs", tooltip="Back to the runs"),
    ]
    SCOPED_CSS = False  # the -wide rules start at the Screen
    DEFAULT_CSS = """
    Screen.-wide ScenesPane #scenes-body { layout: horizontal; }
    Screen.-wide ScenesPane #scenes-table { height: 1fr; width: 2fr; }
    Screen.-wide ScenesPane #scene-detail-box { width: 3fr; border-top: none; border-left: solid $primary; }
    ScenesPane #scenes-title { height: 1; width: 1fr; padding: 0 1; background: $boost; text-style: bold; }
    ScenesPane #scenes-body { layout: vertical; height: 1fr; }
    ScenesPane #scenes-table { height: 7; }
    ScenesPane #scene-detail-box { height: 1fr; border-top: solid $primary; padding: 0 1; }
    ScenesPane #scene-detail-box:focus { border-top: thick $accent; }
    Screen.-zoom ScenesPane #scenes-table { display: none; }
    Screen.-zoom ScenesPane #scene-detail-box { width: 1fr; border-left: none; }
    """

    def __init__(self, selection: Selection, **kwargs) -> None:
        super().__init__(**kwargs)
        self.selection = selection
        self.full = False
        self.run_row: RunRow | None = None
        self.scenes: list[Scene] = []
        self.expected = 0
        self.fetching = False
        self.raw = False

    def compose(self) -> ComposeResult:
        yield Label("no run open: press enter on a run in Runs (1)", id="scenes-title")
        with Container(id="scenes-body"):
            yield VirtualTable(SCENE_COLUMNS, id="scenes-table", empty_text="no scenes")
            with KeyScroll(id="scene-detail-box"):
                yield Static("", id="scene-detail")

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#scenes-table", VirtualTable)

    def focus_default(self) -> None:
        self.focus_now(self.table)

    @property
    def current(self) -> Scene | None:
        row = self.table.current_row
        return None if row is None else self.scenes[row]

    # ------------------------------------------------------------------ loading

    def open_run(self, uri: str, experiment_id: str, run: RunRow) -> None:
        """Show ``run``'s scenes; any page still arriving for a previous run is dropped."""
        self.run_row = run
        self.scenes = []
        self.fetching = True
        try:
            self.expected = int(run.params.get(PARAM_NUM_SCENES) or 0)
        except ValueError:
            self.expected = 0
        self.table.empty_text = "loading scenes…"
        self.table.set_data(SCENE_COLUMNS, [])
        self.query_one("#scene-detail", Static).update("")
        self._update_title()
        self._load(uri, experiment_id, run.run_id)

    @work(thread=True, exclusive=True, group="scenes")
    def _load(self, uri: str, experiment_id: str, run_id: str) -> None:
        from align_track.tui.models.data import scene_pages

        worker = get_current_worker()
        try:
            for page in scene_pages(uri, experiment_id, run_id):
                if worker.is_cancelled:
                    return
                self.post_ui(self._add_page, run_id, page)
        except Exception as exc:  # the store went away mid-read: say so, keep the scenes we have
            self.post_ui(self._failed, run_id, f"cannot load scenes: {exc}")
            return
        self.post_ui(self._done, run_id)

    def _add_page(self, run_id: str, page: list[Scene]) -> None:
        if self.run_row is None or run_id != self.run_row.run_id:
            return
        table = self.table
        keep = self.current.trace_id if self.current is not None else None
        self.scenes = sort_scenes(self.scenes + page)
        table.set_data(SCENE_COLUMNS, [s.cells() for s in self.scenes])
        if keep is not None:
            table.move_to_row(next(i for i, s in enumerate(self.scenes) if s.trace_id == keep))
        self._update_title()

    def _done(self, run_id: str) -> None:
        if self.run_row is not None and run_id == self.run_row.run_id:
            self.fetching = False
            self.table.empty_text = "this run has no scenes"
            self.table.refresh()
            self._update_title()

    def _failed(self, run_id: str, message: str) -> None:
        if self.run_row is not None and run_id == self.run_row.run_id:
            self.fetching = False
            self.table.empty_text = message
            self.table.refresh()
            self.set_error(message)
            self._update_title()

    def _update_title(self) -> None:
        if self.run_row is None:
            return
        count = f"{len(self.scenes)} scenes"
        if self.fetching:
            count = f"loading {len(self.scenes)}/{self.expected or '?'} scenes…"
        room = max((self.size.width or 80) - len(count) - 7, 12)  # the name's end (its variant) matters too
        name = cut_middle(printable(self.run_row.run_name), room)
        self.query_one("#scenes-title", Label).update(f"{name}  ·  {count}")

    # ------------------------------------------------------------------ showing

    @on(VirtualTable.Highlighted, "#scenes-table")
    def _highlighted(self, event: VirtualTable.Highlighted) -> None:
        event.stop()
        self.show_current()

    def show_current(self) -> None:
        detail = self.query_one("#scene-detail", Static)
        scene = self.current
        if scene is None:
            detail.update("")
            return
        if self.raw:
            text = raw_json(scene)
            more = len(text) - RAW_CAP
            if more > 0 and not self.full:
                text = text[:RAW_CAP] + f"\n… {more:,} more characters: press f for the full JSON"
            detail.update(Syntax(text, "json", theme="ansi_dark", background_color="default", word_wrap=True))
        else:
            detail.update(render_scene(scene, self.table.cursor, len(self.scenes), full=self.full))
        self.query_one("#scene-detail-box", VerticalScroll).scroll_home(animate=False)

    def action_next_scene(self) -> None:
        self.table.cursor += 1

    def action_previous_scene(self) -> None:
        self.table.cursor -= 1

    def action_scroll_detail(self, direction: int) -> None:
        box = self.query_one("#scene-detail-box", VerticalScroll)
        box.scroll_relative(y=direction * max(box.size.height // 2, 1), animate=False, immediate=True)

    def action_toggle_full(self) -> None:
        self.full = not self.full
        self.show_current()

    def action_copy(self) -> None:
        if self.run_row is None:
            self.offer_copy([])
            return
        scene = self.current
        self.offer_copy(self.selection.copy_items(self.run_row.run_id, scene.trace_id if scene else None))

    def set_zoom(self, zoomed: bool) -> None:
        """Zoomed, the scene's text gets the whole screen (n/p still move between scenes)."""
        if zoomed:
            self.focus_now(self.query_one("#scene-detail-box", VerticalScroll))
        elif self.screen.focused is self.query_one("#scene-detail-box"):
            self.focus_now(self.table)

    def action_toggle_raw(self) -> None:
        self.raw = not self.raw
        self.show_current()

    def action_back(self) -> None:
        self.tell_app(ShowPane("runs"))
