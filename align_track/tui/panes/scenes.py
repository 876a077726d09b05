"""Scene inspector: a run's scenes, streamed in pages from a worker, and the highlighted scene in full."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.widgets import Label
from textual.worker import get_current_worker

from align_track.errors import printable
from align_track.query.textfit import cut_middle
from align_track.schema import PARAM_NUM_SCENES
from align_track.tui.messages import ShowPane
from align_track.tui.models.runs import FINISHED, RUNNING
from align_track.tui.models.scenes import SCENE_COLUMNS, Scene, raw_json, sort_scenes
from align_track.tui.models.selection import Selection
from align_track.tui.panes.base import Pane
from align_track.tui.widgets.long_text import LongText
from align_track.tui.widgets.scene_reader import Document, SceneReader
from align_track.tui.widgets.scene_view import scene_document, scene_header
from align_track.tui.widgets.vtable import VirtualTable

if TYPE_CHECKING:
    from align_track.store.runs_reader import RunRow
    from align_track.tui.models.data import Quiet, RunsSnapshot


RAW_CAP = 200_000
"""Characters of raw JSON shown by default ('f': all of it; either way only the lines on screen are drawn)."""

SECTION_GROUP = Binding.Group("Section")
SECTION_NAMES = {"state": "state", "choices": "choices", "justification": "justification",
                 "kdma": "KDMA table"}


class ScenesPane(Pane):
    """Pages of traces arrive while you read; moving the cursor never waits for the store.

    Side by side from 110 columns (the screen's ``-wide`` class), list above detail below that.
    """

    TITLE = "Scenes"
    SHORT = "Scn"
    KEY = "2"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next_scene", "Next", tooltip="Next scene"),
        Binding("p", "previous_scene", "Prev", tooltip="Previous scene"),
        Binding("r", "toggle_raw", "Raw JSON", tooltip="Show the trace's raw JSON (again: the readable view)"),
        Binding("f", "toggle_full", "Full text",
                tooltip="Long texts in full, in every scene until pressed again"),
        Binding("y", "copy", "Copy", tooltip="Copy run id, folder, MLflow URL (run or trace), align-app command"),
        Binding("s", "section('state')", "State", group=SECTION_GROUP,
                tooltip="Scene text at the state; n/p keep to the section"),
        Binding("c", "section('choices')", "Choices", group=SECTION_GROUP, tooltip="Scene text at the choices"),
        Binding("w", "section('justification')", "Why", group=SECTION_GROUP,
                tooltip="Scene text at the justification (why it chose)"),
        Binding("t", "section('kdma')", "KDMA", group=SECTION_GROUP,
                tooltip="Scene text at the KDMA table: true vs predicted"),
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
    Screen.-short.-narrow ScenesPane #scenes-table { height: 5; }
    ScenesPane #scene-detail-box { height: 1fr; border-top: solid $primary; padding: 0 1; }
    ScenesPane #scene-detail-box:focus { border-top: thick $accent; }
    Screen.-zoom ScenesPane #scenes-table { display: none; }
    Screen.-zoom ScenesPane #scene-detail-box { width: 1fr; border-left: none; }
    """

    def __init__(self, selection: Selection, quiet: Quiet | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.selection = selection
        self.quiet = quiet
        """Held from Enter until the first scenes are painted, so no background import slows them down."""
        self._holding = False
        self.full = False
        self.run_row: RunRow | None = None
        self.scenes: list[Scene] = []
        self.expected = 0
        self.fetching = False
        self.raw = False
        self.live = ""
        """RUNNING or STALLED while the open run is being written (its view grows on each refresh), else ''."""
        self.at_trace: str | None = None
        """The scene the cursor goes to when its page arrives (opened from Sweep at a scene)."""
        self._live_reading = False
        self.waiting_on = ""
        """What a scene list still loading waits on, when not the store's SQL (shown in the title)."""
        self.section: str | None = None
        """The section of the scene text the reader is at; the next scene shown opens there (None: its top)."""
        self._placed_at = -1.0
        self._raw: tuple[str, str] | None = None
        """(trace id, raw JSON) of the last trace shown raw: only one is kept (a trace can be 12 MB)."""
        """Where the scene text was put by n/p or a section key: scrolled elsewhere since, the section follows."""

    def compose(self) -> ComposeResult:
        yield Label("no run open: press enter on a run in Runs (1)", id="scenes-title")
        with Container(id="scenes-body"):
            yield VirtualTable(SCENE_COLUMNS, id="scenes-table", empty_text="no scenes")
            yield SceneReader(id="scene-detail-box")

    @property
    def reader(self) -> SceneReader:
        return self.query_one("#scene-detail-box", SceneReader)

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

    def open_run(self, uri: str, experiment_id: str, run: RunRow, status: str = FINISHED,
                 at_trace: str | None = None) -> None:
        """Show ``run``'s scenes (the cursor on ``at_trace``'s scene once it arrives); any page still arriving for a
        previous run is dropped. A run still being written (``status`` RUNNING/STALLED) grows as
        :meth:`runs_refreshed` finds new scenes."""
        self.at_trace = at_trace
        self.run_row = run
        self.scenes = []
        self.fetching = True
        self.waiting_on = ""
        self.live = "" if status == FINISHED else status
        self._live_reading = False
        if self.quiet is not None and not self._holding:
            self._holding = True
            self.quiet.hold()
        try:
            self.expected = int(run.params.get(PARAM_NUM_SCENES) or 0)
        except ValueError:
            self.expected = 0
        self.table.empty_text = "loading scenes…"
        self.table.set_data(SCENE_COLUMNS, [])
        self.section = None  # a run opens at its first scene's top
        self.reader.show(Document())
        self._update_title()
        self._load(uri, experiment_id, run.run_id)

    @work(thread=True, exclusive=True, group="scenes")
    def _load(self, uri: str, experiment_id: str, run_id: str) -> None:
        from align_track.tui.models.data import scene_pages

        worker = get_current_worker()
        try:
            for page in scene_pages(uri, experiment_id, run_id,
                                    fallback=lambda why: self.post_ui(self._through_mlflow, run_id, why)):
                if worker.is_cancelled:
                    return
                self.post_ui(self._add_page, run_id, page)
        except Exception as exc:  # the store went away mid-read: say so, keep the scenes we have
            self.post_ui(self._failed, run_id, f"cannot load scenes: {exc}")
            return
        self.post_ui(self._done, run_id)

    def _through_mlflow(self, run_id: str, why: str) -> None:
        """The scenes are read through MLflow's client (its first use imports mlflow: seconds, more on a loaded
        machine): the title says so and why, instead of a bare 'loading 0/N'."""
        if self.run_row is not None and run_id == self.run_row.run_id and self.fetching:
            self.waiting_on = f"through MLflow (first use imports it: seconds) because {why}"
            self.table.empty_text = f"loading scenes {self.waiting_on}…"
            self.table.refresh()
            self._update_title()

    def _add_page(self, run_id: str, page: list[Scene]) -> None:
        if self.run_row is None or run_id != self.run_row.run_id:
            return
        table = self.table
        keep = self.current.trace_id if self.current is not None else None
        self.scenes = sort_scenes(self.scenes + page)
        table.set_data(SCENE_COLUMNS, [s.cells() for s in self.scenes])
        if self.at_trace is not None and any(s.trace_id == self.at_trace for s in page):
            keep, self.at_trace = self.at_trace, None
        if keep is not None:
            table.move_to_row(next(i for i, s in enumerate(self.scenes) if s.trace_id == keep))
        self._update_title()
        self.call_after_refresh(self._release_quiet)  # once these scenes are on screen

    def _release_quiet(self) -> None:
        if self._holding and self.quiet is not None:
            self._holding = False
            self.quiet.release()

    def _done(self, run_id: str) -> None:
        self._release_quiet()
        if self.run_row is not None and run_id == self.run_row.run_id:
            self.fetching = False
            self.table.empty_text = "this run has no scenes"
            self.table.refresh()
            self._update_title()

    def _failed(self, run_id: str, message: str) -> None:
        self._release_quiet()
        if self.run_row is not None and run_id == self.run_row.run_id:
            self.fetching = False
            self.table.empty_text = message
            self.table.refresh()
            self.set_error(message)
            self._update_title()

    # ------------------------------------------------------------------ live

    def runs_refreshed(self, snapshot: RunsSnapshot) -> None:
        """The app's live refresh read the store: while the open run is being written, read its new scenes
        (only those written since the newest one shown); when it has finished, read it once more in full (the
        writer times every scene at the end). Cursor, detail and scroll positions stay where they are."""
        if self.run_row is None or self.fetching or self._live_reading:
            return
        run_id = self.run_row.run_id
        row = snapshot.run(run_id)
        if row is None:  # deleted, or replaced by a newer run of its folder: keep what is shown
            return
        was_live, self.run_row = self.live, row
        self.live = "" if snapshot.status_of(run_id) == FINISHED else snapshot.status_of(run_id)
        if not was_live and not self.live:
            return
        self._live_reading = True
        if self.live:
            since = max((s.timestamp_ms for s in self.scenes if s.timestamp_ms is not None), default=None)
            known = {s.trace_id for s in self.scenes}
            self._read_new(snapshot.uri, snapshot.experiment_id, run_id, since, known)
        else:
            self._read_all(snapshot.uri, snapshot.experiment_id, run_id)
        self._update_title()

    @work(thread=True, exclusive=True, group="scenes-live")
    def _read_new(self, uri: str, experiment_id: str, run_id: str, since: int | None, known: set[str]) -> None:
        from align_track.tui.models.data import new_scenes

        try:
            found = new_scenes(uri, experiment_id, run_id, since, known)
        except Exception:  # noqa: BLE001 - a missed refresh is retried on the next tick
            found = []
        self.post_ui(self._merge, run_id, found, False)

    @work(thread=True, exclusive=True, group="scenes-live")
    def _read_all(self, uri: str, experiment_id: str, run_id: str) -> None:
        from align_track.tui.models.data import all_scenes

        try:
            found = all_scenes(uri, experiment_id, run_id)
        except Exception:  # noqa: BLE001 - keep the scenes shown; ctrl+r or reopening reads again
            found = None
        self.post_ui(self._merge, run_id, found or [], found is not None)

    def _merge(self, run_id: str, found: list[Scene], whole: bool) -> None:
        """Add ``found`` (or, ``whole``, replace every scene with it) without moving the cursor, the list's
        scroll or the scene text's scroll; new scenes at the end are appended row by row."""
        self._live_reading = False
        if self.run_row is None or run_id != self.run_row.run_id or (not found and not whole):
            self._update_title()
            return
        table = self.table
        current = self.current
        merged = sort_scenes(found if whole else self.scenes + found)
        if not whole and all(a is b for a, b in zip(merged, self.scenes, strict=False)):
            shown, self.scenes = len(self.scenes), merged
            for scene in merged[shown:]:
                table.append_row(scene.cells())
        else:
            top = table.scroll_y
            self.scenes = merged
            with self.prevent(VirtualTable.Highlighted):
                table.set_data(SCENE_COLUMNS, [s.cells() for s in merged])
                table.scroll_to(y=top, animate=False, immediate=True)
                if current is not None:
                    table.cursor = _same_scene(merged, current, table.cursor)
        if current is None and self.scenes:
            self.show_current()  # the first scene of a run opened before it had any
        elif current is not None:
            self.show_current(keep_scroll=True)  # its "i of N" (and, at the end, its timing) changed
        self._update_title()

    def on_resize(self) -> None:
        """The title is fitted to the width: fit it again (shown at last, a resize, a zoom)."""
        self._update_title()

    def _update_title(self) -> None:
        if self.run_row is None:
            return
        count = f"{len(self.scenes)} scenes"
        if self.fetching:
            count = f"loading {len(self.scenes)}/{self.expected or '?'} scenes…"
            if self.waiting_on:
                count = f"loading {len(self.scenes)}/{self.expected or '?'} scenes {self.waiting_on}…"
        elif self.live:
            count = f"{len(self.scenes)} scenes so far, {'running' if self.live == RUNNING else 'stalled'}"
        # A hidden pane has no width yet: the screen's, not 80 (a 60-column title then lost its end to the crop)
        room = max((self.size.width or self.app.size.width) - len(count) - 7, 12)  # the variant matters too
        name = cut_middle(printable(self.run_row.run_name), room)
        self.query_one("#scenes-title", Label).update(f"{name}  ·  {count}")

    # ------------------------------------------------------------------ showing

    @on(VirtualTable.Highlighted, "#scenes-table")
    def _highlighted(self, event: VirtualTable.Highlighted) -> None:
        event.stop()
        self.show_current()

    def show_current(self, keep_scroll: bool = False) -> None:
        """Draw the highlighted scene at the section the reader was at in the scene before (issue 25: reading
        one table across scenes); where it was unless ``keep_scroll`` is False (a live refresh redrew it)."""
        reader = self.reader
        scene = self.current
        if not keep_scroll and reader.document.sections and reader.scroll_y != self._placed_at:
            self.section = reader.section_in_view()  # scrolled since placed: where the reader went
        if scene is None:
            reader.show(Document())
            return
        if self.raw:
            header = scene_header(scene, self.table.cursor, len(self.scenes), self.full, "raw JSON (r: readable)")
            if self._raw is None or self._raw[0] != scene.trace_id:
                reader.show(Document(header, [Text("reading the trace…", "dim")]))
                self._read_raw(scene)
                return
            text = self._raw[1]
            more = len(text) - RAW_CAP
            blocks: list = [LongText(text if self.full or more <= 0 else text[:RAW_CAP], lexer="json")]
            if more > 0 and not self.full:
                blocks.append(Text(f"… {more:,} more characters: press f for the full JSON", "bold yellow"))
            reader.show(Document(header, blocks), keep_scroll=keep_scroll)
        else:
            reader.show(scene_document(scene, self.table.cursor, len(self.scenes), full=self.full),
                        section=self.section, keep_scroll=keep_scroll)
            self._placed_at = reader.scroll_y

    @work(thread=True, exclusive=True, group="scene-raw")
    def _read_raw(self, scene: Scene) -> None:
        """The trace's JSON, read and serialised off the UI thread (a 12 MB trace: a fifth of a second)."""
        try:
            text = raw_json(scene)
        except Exception as exc:  # noqa: BLE001 - the store went away: say so where the JSON would be
            text = f"cannot read the trace: {exc}"
        self.post_ui(self._raw_read, scene.trace_id, text)

    def _raw_read(self, trace_id: str, text: str) -> None:
        self._raw = (trace_id, text)
        if self.raw and self.current is not None and self.current.trace_id == trace_id:
            self.show_current()

    def action_next_scene(self) -> None:
        self.table.cursor += 1

    def action_previous_scene(self) -> None:
        self.table.cursor -= 1

    def action_scroll_detail(self, direction: int) -> None:
        reader = self.reader
        reader.scroll_relative(y=direction * max(reader.scrollable_content_region.height // 2, 1), animate=False,
                               immediate=True)

    def action_section(self, name: str) -> None:
        """Scene text at section ``name``; the scenes after keep to it (n/p, the cursor)."""
        if self.current is None:
            return
        self.section = name
        if self.raw:
            self.raw = False
            self.show_current()
        elif not self.reader.go_to(name):
            self.notify(f"scene {self.current.scene_id} has no {SECTION_NAMES.get(name, name)}", timeout=3)
        self._placed_at = self.reader.scroll_y

    def action_toggle_full(self) -> None:
        """Stays on for the next scenes (cheap at any size: only what is on screen is drawn), said in the header."""
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
            self.focus_now(self.reader)
        elif self.screen.focused is self.query_one("#scene-detail-box"):
            self.focus_now(self.table)

    def action_toggle_raw(self) -> None:
        self.raw = not self.raw
        self.show_current()

    def action_back(self) -> None:
        self.tell_app(ShowPane("runs"))


def _same_scene(scenes: list[Scene], scene: Scene, fallback: int) -> int:
    """Where ``scene`` is in a re-read list: the same trace, else the same (scenario, scene id), else in place."""
    for match in (lambda s: s.trace_id == scene.trace_id, lambda s: s.key == scene.key):
        found = next((i for i, s in enumerate(scenes) if match(s)), None)
        if found is not None:
            return found
    return min(fallback, max(len(scenes) - 1, 0))
