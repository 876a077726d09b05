"""The align-track TUI application: eight panes behind number keys, a status line and a key bar.

Only textual and light align_track modules are imported here, so the first frame is drawn
at once; the store is read (and mlflow/pandas imported) by thread workers whose results
come back to the UI thread through :meth:`AlignTrackApp.post_ui`.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Input

from align_track.store.uri import DEFAULT_EXPERIMENT, StoreError, resolve_tracking_uri
from align_track.tui.commands import ActionsProvider
from align_track.tui.keys import KeyAction, key_actions
from align_track.tui.messages import CompareRuns, OpenRun, RunsChanged, ShowPane, Status
from align_track.tui.mlflow_control import UiState, WebUiControl
from align_track.tui.models.data import Quiet, display_uri, sweep_line
from align_track.tui.models.message_log import MessageLog
from align_track.tui.models.selection import Selection
from align_track.tui.option_list_fix import apply as guard_option_list_pages
from align_track.tui.panes.analysis import AnalysisPane
from align_track.tui.panes.base import Pane, post_ui
from align_track.tui.panes.compare import ComparePane
from align_track.tui.panes.ingest import IngestPane
from align_track.tui.panes.mlflow import MlflowPane
from align_track.tui.panes.report import ReportPane
from align_track.tui.panes.runs import FILTERED_COMPARE_MAX, RunsPane
from align_track.tui.panes.scenes import ScenesPane
from align_track.tui.panes.sweep import SweepPane
from align_track.tui.screens.confirm import ConfirmScreen
from align_track.tui.screens.help import HelpScreen
from align_track.tui.screens.messages import MessagesScreen
from align_track.tui.widgets.keybar import KeyBar
from align_track.tui.widgets.panebar import PaneBar
from align_track.tui.widgets.status import StatusBar

guard_option_list_pages()

if TYPE_CHECKING:
    from align_track.mlflow_ui import UiServer
    from align_track.tui.models.data import RunsSnapshot

PANES: tuple[tuple[str, type[Pane]], ...] = (
    ("runs", RunsPane), ("scenes", ScenesPane), ("compare", ComparePane),
    ("ingest", IngestPane), ("report", ReportPane), ("mlflow", MlflowPane), ("analysis", AnalysisPane),
    ("sweep", SweepPane),
)


def _shown(widget: Widget) -> bool:
    """Shown on the current screen as of now: neither it nor a parent hidden (a pane not switched to). Not
    ``is_on_screen``, which asks the last paint: keys typed right after a pane switch (``4 e /path``) precede it."""
    return widget.screen is widget.app.screen and all(
        node.display for node in widget.ancestors_with_self if isinstance(node, Widget))


class AlignTrackApp(App[None]):
    """Runs, scenes, compare, ingest, report and the MLflow web UI of one experiment in one store."""

    TITLE = "align-track"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (24, "-tall")]
    """Under 24 rows (a 60x20 tmux split) panes give their lists fewer rows and the text more."""
    COMMANDS = App.COMMANDS | {ActionsProvider}
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(cls.KEY, f"show_pane('{pid}')", cls.TITLE, show=False,
                tooltip=f"Show the {cls.TITLE} pane") for pid, cls in PANES),
        Binding("ctrl+q", "quit", "Quit", show=False, tooltip="Quit, also while typing in a text box"),
        Binding("question_mark", "help", "Help", tooltip="List every key"),
        Binding("exclamation_mark", "messages", "Messages", show=False,
                tooltip="Every error and notice so far, in full"),
        Binding("z", "zoom", "Zoom", tooltip="Zoom the pane to the whole screen (again: back)"),
        Binding("m", "toggle_ui", "Web UI", tooltip="Start or stop the MLflow web UI (any pane)"),
        Binding("ctrl+r", "reload", "Reload", tooltip="Reload the runs from the store"),
        Binding("q", "quit", "Quit", tooltip="Quit (asks first while an ingest runs; stops the web UI)"),
    ]
    CSS = """
    Screen { layout: vertical; }
    VirtualTable, VerticalScroll { scrollbar-size-vertical: 1; scrollbar-size-horizontal: 1; }
    #panes { height: 1fr; }
    Screen.-zoom #panebar, Screen.-zoom #keys { display: none; }
    Screen.-zoom RunsPane #runs-details { display: none; }
    /* 16 colours: a checkbox's state and the focused widget must not depend on shades the palette lacks. */
    Checkbox:ansi > .toggle--button { color: ansi_black; background: ansi_white; }
    Checkbox.-on:ansi > .toggle--button { color: ansi_bright_white; background: ansi_green; text-style: bold; }
    Checkbox:ansi:focus, Input:ansi:focus, Select:ansi:focus > SelectCurrent {
        background: ansi_blue; color: ansi_bright_white; text-style: bold;
    }
    VerticalScroll:ansi:focus { border-left: thick ansi_bright_yellow; }
    """

    def __init__(
        self,
        mlflow_uri: str | None = None,
        experiment_name: str = DEFAULT_EXPERIMENT,
        experiments_dir: str | Path | None = None,
        ansi: bool = False,
        notice: str | None = None,
        refresh: float = 0.0,
    ) -> None:
        super().__init__()
        self.mlflow_uri = resolve_tracking_uri(mlflow_uri)
        self.experiment_name = experiment_name
        self.experiments_dir = "" if experiments_dir is None else str(experiments_dir)
        self.ansi = ansi
        self.notice = notice
        self.refresh_seconds = refresh
        """Seconds between incremental reads of the store while the app is open (0: only on ctrl+r)."""
        self._live_since: int | None = None
        self._live_timer: Any = None
        self.selection = Selection()
        self.quiet = Quiet()
        """Held by the scene view while a run's first scenes are read and painted; mlflow's warm-up waits."""
        self.web_ui = WebUiControl(self.mlflow_uri, self._ui_changed_from_thread)
        self.messages = MessageLog()
        """Every error and notice shown, in full, for the messages screen (``!``)."""

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield PaneBar([(pane_id, cls.KEY, cls.TITLE, cls.SHORT or cls.TITLE) for pane_id, cls in PANES],
                      id="panebar")
        with ContentSwitcher(id="panes", initial="runs"):
            for pane_id, cls in PANES:
                yield self._make_pane(pane_id, cls)
        yield StatusBar(id="status")
        yield KeyBar(id="keys")

    def _make_pane(self, pane_id: str, cls: type[Pane]) -> Pane:
        """Each pane gets what it needs from the app at construction, never the app itself."""
        if cls is ScenesPane:
            return ScenesPane(self.selection, self.quiet, id=pane_id)
        if cls in (RunsPane, MlflowPane, SweepPane):
            return cls(self.selection, id=pane_id)
        if cls is IngestPane:
            return IngestPane(self.mlflow_uri, self.experiment_name, self.experiments_dir, id=pane_id)
        if cls is ReportPane:
            return ReportPane(self.selection, self.experiment_name, id=pane_id)
        return cls(id=pane_id)

    def on_load(self) -> None:
        # Thread workers run in the loop's default executor, which asyncio joins when the app ends: a read
        # stuck on a server that never answers (MLflow waits 60 s a try) would hold q and Ctrl-C for minutes.
        asyncio.get_running_loop().set_default_executor(_DetachedExecutor(thread_name_prefix="align-track-tui"))

    def on_mount(self) -> None:
        if self.ansi:
            self.theme = "ansi-dark"
        self.status.store = f"{display_uri(self.mlflow_uri)} · {self.experiment_name}"
        self._ingest_finished = self.ingest_pane.finished  # the pane is gone by the time the app unmounts
        self.query_one(PaneBar).active = "runs"
        self.watch(self.status, "error", lambda text: self.messages.add("error", text), init=False)
        self.runs_pane.focus_default()
        self.watch(self.screen, "focused", self._focus_moved, init=False)
        self.reload_runs()
        if self.notice:  # what happened just before the app took the screen (make demo: the ingest summary)
            self.notify(self.notice, title="before this", timeout=30)

    @property
    def status(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    @property
    def runs_pane(self) -> RunsPane:
        return self.query_one(RunsPane)

    @property
    def scenes_pane(self) -> ScenesPane:
        return self.query_one(ScenesPane)

    @property
    def compare_pane(self) -> ComparePane:
        return self.query_one(ComparePane)

    @property
    def ingest_pane(self) -> IngestPane:
        return self.query_one(IngestPane)

    @property
    def report_pane(self) -> ReportPane:
        return self.query_one(ReportPane)

    @property
    def sweep_pane(self) -> SweepPane:
        return self.query_one(SweepPane)

    @property
    def mlflow_pane(self) -> MlflowPane:
        return self.query_one(MlflowPane)

    def pane(self, pane_id: str) -> Pane:
        return self.query_one(f"#{pane_id}", Pane)

    @property
    def active_pane(self) -> str:
        return self.query_one(ContentSwitcher).current or ""

    def action_zoom(self) -> None:
        """``z``: the pane takes the whole screen (pane bar and key bar hidden); again: back."""
        zoomed = not self.screen.has_class("-zoom")
        self.screen.set_class(zoomed, "-zoom")
        self.pane(self.active_pane).set_zoom(zoomed)
        self.status.zoom = zoomed

    def action_show_pane(self, pane_id: str) -> None:
        self.show_pane(pane_id)

    def show_pane(self, pane_id: str) -> None:
        """Switch now (not via messages), so keys typed right after land in the new pane."""
        self.query_one(ContentSwitcher).current = pane_id
        self.query_one(PaneBar).active = pane_id
        if pane_id == "report":
            self.report_pane.refresh_source()
        if pane_id == "sweep":
            self.sweep_pane.refresh_source()
        self.pane(pane_id).focus_default()
        if self.screen.has_class("-zoom"):
            self.pane(pane_id).set_zoom(True)

    def on_show_pane(self, message: ShowPane) -> None:
        self.show_pane(message.pane_id)

    def on_status(self, message: Status) -> None:
        setattr(self.status, message.field, message.text)

    def on_runs_changed(self, _message: RunsChanged) -> None:
        self.reload_runs()

    def on_open_run(self, message: OpenRun) -> None:
        self.open_run(message.run_id, message.trace_id)

    def on_compare_runs(self, message: CompareRuns) -> None:
        self.compare_runs(message.run_ids)

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        """Back on the main screen (palette, help or a dialog closed): focus is inside the pane on show, so
        keys never go to a widget of a hidden pane (e.g. the runs filter while the MLflow pane shows)."""
        if self.screen is not self.screen_stack[0] or not self.active_pane:
            return
        pane = self.pane(self.active_pane)
        focused = self.screen.focused
        if focused is None or pane not in focused.ancestors_with_self:
            pane.focus_default()

    def _focus_moved(self, focused: Widget | None) -> None:
        """Focus never rests in a hidden pane. A widget may take focus a turn after asking (Textual's
        ``focus()`` waits; a Select opens its list that way), after a pane key typed right behind it (a
        burst, tmux send-keys) has already shown another pane: keys would then go to the hidden widget unseen,
        and ``pageup`` in a hidden dropdown crashed the app. Focus goes back into the pane on show, at once,
        so the next key of the burst is routed there."""
        if focused is None or self.screen is not self.screen_stack[0] or not self.active_pane:
            return
        panes = self.query_one("#panes", ContentSwitcher)
        active = self.pane(self.active_pane)
        if panes in focused.ancestors and active not in focused.ancestors_with_self:
            active.focus_default()

    def _on_key(self, event: events.Key) -> None:
        """Typeahead: a printable key only bubbles up to the app while an Input has focus if it was
        typed before that Input got it ('/merit' in one read, a paste, tmux send-keys) and went to the
        widget focused before. It belongs in the Input, not to a binding. (Textual runs App's own
        key handler after this one unless the default is prevented.)"""
        focused = self.focused
        if event.is_printable and isinstance(focused, Input) and _shown(focused):
            event.prevent_default()
            event.stop()
            focused.insert_text_at_cursor(event.character or "")

    # ------------------------------------------------------------------ threads

    def post_ui(self, callback: Callable[..., Any], *args: Any) -> bool:
        """Run ``callback`` on the UI thread from a worker thread; False once the app is closing."""
        return post_ui(self, callback, *args)

    # ------------------------------------------------------------------ runs

    def action_reload(self) -> None:
        self.reload_runs()

    def reload_runs(self) -> None:
        self.status.state = "connecting…" if self.snapshot is None else "reloading…"
        self._load_runs()

    @work(thread=True, exclusive=True, group="runs")
    def _load_runs(self) -> None:
        from align_track.tui.models.data import load_runs, warm_up

        started = _now_ms()  # the next incremental read asks for what changed from here on
        try:
            snapshot = load_runs(self.mlflow_uri, self.experiment_name)
        except StoreError as exc:
            self.post_ui(self._runs_failed, str(exc))
            return
        except Exception as exc:  # a store we cannot even talk to: show it, keep the UI alive
            self.post_ui(self._runs_failed, f"{type(exc).__name__}: {exc}")
            return
        if self.post_ui(self._runs_loaded, snapshot, started):
            warm_up(self.mlflow_uri, self.quiet)  # import mlflow now, not when it is first needed
            gc.freeze()

    @property
    def snapshot(self) -> RunsSnapshot | None:
        return self.selection.snapshot

    def _runs_loaded(self, snapshot: RunsSnapshot, since_ms: int | None = None) -> None:
        if since_ms is not None:
            self._live_since = since_ms
            self._start_live()
        self.status.error = ""
        self.status.state = sweep_line(snapshot)
        self.runs_pane.set_snapshot(snapshot)
        # Long-lived data (and later mlflow's modules) leave the garbage collector's sight: a full
        # collection over 10,000 runs costs a keystroke 100+ ms, and none of it is garbage.
        gc.freeze()
        if self.active_pane == "report":
            self.report_pane.refresh_source()
        if self.active_pane == "sweep":
            self.sweep_pane.refresh_source()

    # ------------------------------------------------------------------ live refresh

    def _start_live(self) -> None:
        """Every ``refresh_seconds``, merge in the runs that changed (new, finished, live): a sweep being
        ingested or watched shows up while the table is open, with cursor, marks, filter and sort kept."""
        if self.refresh_seconds > 0 and self._live_timer is None:
            self._live_timer = self.set_interval(self.refresh_seconds, self._live_tick, name="live-refresh")

    def _live_tick(self) -> None:
        if self.snapshot is not None and self._live_since is not None:
            self._read_changes(self.snapshot, self._live_since)
        elif self.snapshot is None and self.status.state == "no store yet":
            self._load_runs()  # opened before the first ingest (or watcher) created the store: look again

    @work(thread=True, exclusive=True, group="live")
    def _read_changes(self, snapshot: RunsSnapshot, since_ms: int) -> None:
        from align_track.tui.models.data import changed_runs

        try:
            merged, as_of = changed_runs(snapshot, since_ms)
        except Exception:  # noqa: BLE001 - a missed refresh is retried on the next tick; ctrl+r shows errors
            return
        self.post_ui(self._changes_read, snapshot, merged, as_of)

    def _changes_read(self, based_on: RunsSnapshot, merged: RunsSnapshot | None, as_of: int) -> None:
        if self.snapshot is not based_on:  # a full reload (or another refresh) landed meanwhile: it wins
            return
        self._live_since = as_of
        if merged is not None:
            self._runs_loaded(merged)
        self.scenes_pane.runs_refreshed(self.snapshot)  # an open run still being written gains its new scenes
        if self.active_pane == "sweep" and self.snapshot is not None:
            self.sweep_pane.runs_refreshed(self.snapshot)  # new runs' scenes, live runs' new scenes

    def _runs_failed(self, message: str) -> None:
        from align_track.store.uri import sqlite_path, store_kind

        path = sqlite_path(self.mlflow_uri) if store_kind(self.mlflow_uri) == "sqlite" else None
        if path is not None and not path.exists():  # a fresh store: nothing is wrong, nothing is ingested yet
            self.status.state = "no store yet"
            self.runs_pane.show_empty_store()
            self._start_live()
            return
        self.status.state = "not connected"
        self.status.error = message
        self.runs_pane.show_error(message)

    def open_run(self, run_id: str, trace_id: str | None = None) -> None:
        """Show the scenes of a run (Runs pane's enter), at the scene of ``trace_id`` if given (Sweep's o)."""
        run = self.selection.run(run_id)
        if run is None or self.snapshot is None:
            return
        self.scenes_pane.open_run(self.snapshot.uri, self.snapshot.experiment_id, run, self.snapshot.status_of(run_id),
                                  at_trace=trace_id)
        self.show_pane("scenes")

    def compare_runs(self, run_ids: list[str]) -> None:
        """Compare these runs (Runs pane's c: the marked ones, or the few a filter shows); at least two are needed."""
        if len(run_ids) < 2 or self.snapshot is None:
            self.notify(f"mark at least two runs with space first (or filter down to 2 to {FILTERED_COMPARE_MAX} runs)",
                        severity="warning")
            return
        runs = self.selection.runs(run_ids)
        scenes = self.scenes_pane
        reading = scenes.current if scenes.run_row is not None and scenes.run_row.run_id in run_ids else None
        self.compare_pane.start(self.snapshot.uri, self.snapshot.experiment_id, runs,
                                at=reading.key if reading is not None else None)
        self.show_pane("compare")

    # ------------------------------------------------------------------ MLflow web UI

    @property
    def ui_server(self) -> UiServer | None:
        return self.web_ui.server

    @property
    def ui_busy(self) -> bool:
        return self.web_ui.busy

    def action_toggle_ui(self) -> None:
        state = self.web_ui.toggle()
        if state is None:
            self.notify("the MLflow UI is starting or stopping; one moment", severity="warning")
            return
        self._ui_changed(state)

    def _ui_changed_from_thread(self, state: UiState) -> bool:
        return self.post_ui(self._ui_changed, state)

    def _ui_changed(self, state: UiState) -> None:
        """Show a web UI state in the MLflow pane and the status bar."""
        self.selection.web_ui_url = state.url if state.state == "running" else ""
        self.mlflow_pane.show_state(state.state, state.url, state.hint, state.detail)
        if state.state == "running":
            self.status.ui = f"web UI {state.url}"
        elif state.state.endswith("…"):
            self.status.ui = f"web UI {state.state}"
        else:
            self.status.ui = ""
        if state.state == "failed":
            self.notify(state.detail, severity="error", timeout=8)

    def stop_ui_server(self) -> None:
        """Stop the web UI we started (blocking); called on quit so no server outlives the app."""
        self.web_ui.stop()

    async def on_unmount(self) -> None:
        """No server or half-written run outlives the app: quitting during an ingest has
        cancelled it, and the run folder in hand is finished before the process exits. Waited for
        off the event loop, so a worker blocked in ``call_from_thread`` meanwhile is not deadlocked."""
        await asyncio.to_thread(self.stop_ui_server)
        await asyncio.to_thread(self._ingest_finished.wait)

    # ------------------------------------------------------------------ help, palette, quit

    def key_actions(self) -> list[KeyAction]:
        return key_actions(self.BINDINGS, [cls for _, cls in PANES])

    def get_key_display_for(self, keys: str) -> str:
        return "/".join(self.get_key_display(Binding(k.strip(), "")) for k in keys.split(","))

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Every notice is kept for the messages screen: a toast fades after seconds, often unread. Never markup:
        notices carry folders, paths and store errors, whose [brackets] are text (``[/x]`` broke the toast)."""
        self.messages.add(str(severity), f"{title}: {message}" if title else str(message))
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def action_messages(self) -> None:
        if not isinstance(self.screen, MessagesScreen):
            self.push_screen(MessagesScreen(self.messages.items))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.key_actions(), self.get_key_display_for))

    def run_key_action(self, item: KeyAction) -> None:
        """Run an action found in the command palette, in its own pane."""
        if not item.pane:
            self.call_later(self.run_action, item.action, self)
            return
        pane_id = next(pid for pid, cls in PANES if cls.__name__ == item.pane)
        self.show_pane(pane_id)
        self.call_later(self.run_action, item.action, self.pane(pane_id))

    async def action_quit(self) -> None:
        """Quit; while an ingest runs, ask first (it then stops after the current run folder)."""
        if self.ingest_pane.running:
            def answered(yes: bool | None) -> None:
                if yes:
                    self.ingest_pane.action_cancel()
                    self.exit()

            self.push_screen(ConfirmScreen("An ingest is running. Cancel it after the current run folder "
                                           "and quit?"), answered)
            return
        self.exit()


class _DetachedExecutor(ThreadPoolExecutor):
    """The executor of the app's thread workers: shutting it down never waits for a thread still blocked in a
    read; :func:`run_app` then ends the process without it. Writes are not left behind this way: quitting
    waits for the ingest's run folder in hand (``on_unmount``), and awaited work is done before the loop ends."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)


def wants_ansi() -> bool:
    """16-colour terminals (or TEXTUAL_COLOR_SYSTEM=standard) get the ANSI theme, which uses their own palette."""
    system = os.environ.get("TEXTUAL_COLOR_SYSTEM", "auto").lower()
    if system in ("standard", "windows"):
        return True
    if system != "auto":
        return False
    from rich.console import Console

    return Console().color_system == "standard"


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def run_app(mlflow_uri: str | None = None, experiment_name: str = DEFAULT_EXPERIMENT,
            experiments_dir: str | Path | None = None, notice: str | None = None, refresh: float = 2.0) -> None:
    """Entry point of ``align-track tui``; ``notice`` (e.g. the ingest summary) is shown as the app opens."""
    app = AlignTrackApp(mlflow_uri, experiment_name, experiments_dir, ansi=wants_ansi(), notice=notice,
                        refresh=refresh)
    try:
        app.run()
    except KeyboardInterrupt:  # Ctrl-C before the app took the terminal (or after it gave it back)
        pass
    finally:
        app.stop_ui_server()
    # A store read still blocked on a server that never answers must not keep the process alive after q:
    # every write has finished (quitting waits for the ingest), so what is left is only reading.
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(app.return_code or 0)
