"""Ingest pane: run align_track.ingest.pipeline in a thread, show its events live, cancel between folders."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Checkbox, Input, Label, ProgressBar, Static

from align_track.errors import printable
from align_track.ingest.outcomes import note_text
from align_track.tui.messages import RunsChanged, Status
from align_track.tui.models.ingest_log import elapsed_text, readable_error, summary_text
from align_track.tui.panes.base import Pane
from align_track.tui.widgets.fast_input import FastInput
from align_track.tui.widgets.path_suggester import PathSuggester
from align_track.tui.widgets.vtable import Column, VirtualTable

if TYPE_CHECKING:
    from textual.timer import Timer

    from align_track.ingest.pipeline import Event, Summary

# The folder takes the room the reasons leave (no failure: the whole width); both give way evenly when long.
LOG_COLUMNS = (Column("status", "status", 8, essential=True),
               Column("traces", "traces", 6, numeric=True, essential=True),
               Column("path", "folder", 200, middle=True, grow=True, min_width=24, essential=True),
               Column("error", "reason", 200, essential=True, grow=True, min_width=12))


ETA_AFTER = 3
"""Run folders written before an ETA is given: one folder's time (the first batch's, with its start-up) says
little about the rest."""


def eta_text(written: int, to_write: int, writing_for: float) -> str:
    """Remaining time at the pace of the folders written so far, over the time spent writing them (not the scan's,
    nor the plan's; folders skipped as unchanged take no time and are not counted): '–' until :data:`ETA_AFTER`
    are written."""
    if to_write <= written:
        return "0:00"
    if written < ETA_AFTER or writing_for <= 0:
        return "–"
    return elapsed_text(writing_for / written * (to_write - written))


HINT_BROWSING = "e: edit the path · ctrl+s: start · ctrl+g: cancel"
HINT_EDITING = "enter: start · esc: leave the path · →: accept completion"


class IngestPane(Pane):
    """The same ingest as ``align-track ingest``; cancel stops after the current folder, so nothing is half-written."""

    TITLE = "Ingest"
    SHORT = "Ing"
    KEY = "4"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "edit_path", "Edit path", tooltip="Edit the folder to ingest (enter there starts it)"),
        Binding("ctrl+s", "start", "Start", tooltip="Ingest the folder (enter in the path does the same)"),
        Binding("ctrl+g", "cancel", "Cancel", tooltip="Cancel the ingest after the current run folder"),
        Binding("enter", "show_error", "Error in full",
                tooltip="Show the highlighted folder's error in full (no error there: edit the path)"),
        Binding("escape", "leave_input", "Leave path", tooltip="Leave the path box (then number keys, q and ? work)"),
    ]
    MORE_KEYS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("tab", "", "from the path to 'force' (re-ingest unchanged folders too), then to the log"),
        ("space,enter", "", "on 'force': tick / untick it"),
        ("right", "", "in the path: accept the suggested completion"),
    )
    DEFAULT_CSS = """
    IngestPane #ingest-bar { height: 1; }
    IngestPane #ingest-bar Label { width: auto; padding: 0 1; }
    IngestPane #ingest-path { width: 1fr; }
    IngestPane #ingest-force { width: auto; }
    IngestPane #ingest-progress { height: 1; padding: 0 1; }
    IngestPane #ingest-stats { height: auto; max-height: 6; padding: 0 1; width: 1fr; }
    IngestPane #ingest-stats.-error { color: $text-error; text-style: bold; }
    IngestPane #ingest-hint { height: auto; max-height: 2; padding: 0 1; color: $text-muted; width: 1fr; }
    IngestPane #ingest-detail { height: auto; max-height: 4; padding: 0 1; background: $boost; }
    """

    def __init__(self, mlflow_uri: str, experiment_name: str, experiments_dir: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.mlflow_uri = mlflow_uri
        self.experiment_name = experiment_name
        self.experiments_dir = experiments_dir
        self.cancel_event: threading.Event | None = None
        self.finished = threading.Event()
        self.finished.set()
        self.summary: Summary | None = None
        self.root = ""
        self.errors: list[str] = []
        """Full error per log row ('' for a folder that did not fail)."""
        self.started = 0.0
        self.progress = (0, 0)
        self.writing = (0, 0)
        """(written, to write): the folders with runs to write, done and in all."""
        self.planned_at = 0.0
        """When the plan was known: writing starts, and with it the clock the ETA is measured on."""
        self.scenes = 0
        self.stage = ""
        """What the ingest is busy with before its folders are known (e.g. creating a new store)."""
        self._clock: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="ingest-bar"):
            yield Label("Folder")
            yield FastInput(self.experiments_dir, placeholder="experiments folder (→ completes)", id="ingest-path",
                            suggester=PathSuggester(), compact=True, on_submit=self.start_folder)
            yield Checkbox("force", id="ingest-force", compact=True)
        yield Label(HINT_BROWSING, id="ingest-hint")
        yield ProgressBar(total=1, id="ingest-progress", show_eta=False)  # indeterminate only while scanning
        yield Label("idle", id="ingest-stats")
        yield VirtualTable(LOG_COLUMNS, id="ingest-log", empty_text="no ingest yet")
        yield Static("", id="ingest-detail")

    def focus_default(self) -> None:
        """The log, not the path box: a pane key pressed next (``4`` then ``1``) switches panes instead of
        typing into the path; ``e`` (or enter) edits it, as in the Report pane."""
        self.focus_now(self.query_one("#ingest-log", VirtualTable))

    def action_edit_path(self) -> None:
        self.focus_now(self.query_one("#ingest-path", Input))

    @on(events.DescendantFocus)
    @on(events.DescendantBlur)
    def _focus_moved(self) -> None:
        """The hint line says the keys of where focus is: the path box's, or the pane's."""
        editing = self.screen.focused is self.query_one("#ingest-path", Input)
        self.query_one("#ingest-hint", Label).update(HINT_EDITING if editing else HINT_BROWSING)

    @property
    def running(self) -> bool:
        return self.cancel_event is not None

    def action_leave_input(self) -> None:
        self.focus_now(self.query_one("#ingest-log", VirtualTable))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """enter shows an error only from the log (in the path box it starts the ingest); escape leaves the box;
        ``e`` types an e in the box."""
        if action == "show_error":
            return self.screen.focused is self.query_one("#ingest-log", VirtualTable)
        if action in ("leave_input", "edit_path"):
            return (self.screen.focused is self.query_one("#ingest-path", Input)) == (action == "leave_input")
        return True

    @on(VirtualTable.Highlighted, "#ingest-log")
    def _highlighted(self, event: VirtualTable.Highlighted) -> None:
        """The highlighted folder in full under the log: its path, then why it failed (wrapped, not cut)."""
        event.stop()
        log = self.query_one("#ingest-log", VirtualTable)
        text = Text()
        if event.row is not None and event.row < len(log.rows):
            status, _, rel, reason = log.rows[event.row]
            failed = event.row < len(self.errors) and bool(self.errors[event.row])
            text.append(rel, "bold")
            text.append(f"  {status}", "bold red" if failed else "bold yellow" if reason else "green")
            if reason:
                text.append(f"\n{reason}")
        self.query_one("#ingest-detail", Static).update(text)

    def action_show_error(self) -> None:
        from align_track.tui.screens.message import MessageScreen

        log = self.query_one("#ingest-log", VirtualTable)
        row = log.current_row
        if row is None or row >= len(self.errors) or not self.errors[row]:
            self.action_edit_path()  # nothing to show here: enter edits the path (as before the first ingest)
            return
        rel = log.rows[row][2]
        self.app.push_screen(MessageScreen(f"{rel}: {log.rows[row][0]}",
                                           f"{log.rows[row][3]}\n\nfolder: {self.root.rstrip('/')}/{rel}"))

    def action_start(self) -> None:
        self.start_folder(self.query_one("#ingest-path", Input).value)

    def start_folder(self, typed: str) -> None:
        """Ingest ``typed``: the box's value as enter found it (handled in that key's turn, so keys typed behind
        cannot change it first). An empty box ingests nothing: it used to mean the current directory."""
        if self.running:
            self.notify("an ingest is already running", severity="warning")
            return
        if not typed.strip():
            self._stats("type the experiments folder to ingest (the box is empty)", error=True)
            return
        folder = Path(typed.strip()).expanduser()
        if not folder.is_dir():
            self._stats(f"not a folder: {folder}", error=True)
            return
        force = self.query_one("#ingest-force", Checkbox).value
        log = self.query_one("#ingest-log", VirtualTable)
        log.set_data(LOG_COLUMNS, [])
        self.errors = []
        self.root = str(folder.resolve())
        self.started = time.monotonic()
        self.progress = (0, 0)
        self.writing = (0, 0)
        self.planned_at = 0.0
        self.scenes = 0
        self.stage = ""
        log.empty_text = "looking for run folders…"
        self.query_one("#ingest-progress", ProgressBar).update(total=None, progress=0)
        self.cancel_event = threading.Event()
        self.finished.clear()
        self.summary = None
        self._stats(f"starting: {folder}…")
        self._clock = self.set_interval(1.0, self._tick)
        self.tell_app(Status("ingest", "ingest: starting"))
        self.focus_now(log)
        self._ingest(folder, force, self.cancel_event)

    def action_cancel(self) -> None:
        if self.cancel_event is None:
            return
        self.cancel_event.set()
        self._stats("cancelling: finishing the current run folder…")

    @work(thread=True, exclusive=True, group="ingest")
    def _ingest(self, folder: Path, force: bool, cancel: threading.Event) -> None:
        from align_track.ingest.pipeline import ingest

        def on_event(event: Event) -> None:
            try:
                self.post_ui(self._event, event)
            except Exception:  # a display problem must never break the ingest itself
                pass

        try:
            summary = ingest(folder, self.mlflow_uri, self.experiment_name, force=force,
                             on_event=on_event, cancel=cancel)
        except Exception as exc:  # store missing/unreachable: shown in the pane, the app keeps running
            self.post_ui(self._finished, None, str(exc))
            return
        finally:
            self.finished.set()
        self.post_ui(self._finished, summary, "")

    def _stats(self, text: str, error: bool = False) -> None:
        label = self.query_one("#ingest-stats", Label)
        label.update(text)
        label.set_class(error, "-error")

    def _event(self, event: Event) -> None:
        bar = self.query_one("#ingest-progress", ProgressBar)
        log = self.query_one("#ingest-log", VirtualTable)
        if event.kind == "planned":
            self.planned_at = time.monotonic()
            bar.update(total=max(event.total, 1), progress=0)
            log.empty_text = "no run folders found" if event.total == 0 else "working…"
            log.refresh()
        elif event.kind == "run_folder" and event.outcome is not None:
            o = event.outcome
            self.errors.append(o.error or "")
            reason = readable_error(o.error, self.root, o.path) if o.error else note_text(o.note)
            log.append_row((o.status, str(o.traces) if o.traces else "", printable(o.path), reason))
            log.cursor = len(log.view) - 1
            bar.update(total=max(event.total, 1), progress=event.done)
        elif event.kind == "message":
            self.notify(printable(event.message), severity="warning", timeout=4)
            return
        elif event.kind in ("stage", "activity"):  # e.g. creating a store, scanning: said until the plan is known
            self.stage = printable(event.message)
            self._tick()
            return
        if event.kind in ("planned", "run_folder"):
            self.progress = (event.done, event.total)
            self.writing = (event.written, event.to_write)
            self.scenes = event.scenes
            self._tick()
            self.tell_app(Status("ingest", f"ingest {event.done}/{event.total}"))

    def _tick(self) -> None:
        """Elapsed and ETA from the pane's own clock, every second and on every folder (the pipeline's
        clock reaches the pane only with an event, so it would stand still between folders)."""
        if not self.running:
            return
        if self.cancel_event is not None and self.cancel_event.is_set():  # said by ctrl+g until the ingest ends
            return
        done, total = self.progress
        elapsed = time.monotonic() - self.started
        if not self.planned_at:
            doing = self.stage or f"starting: {self.root}"
            self._stats(f"{elapsed_text(elapsed)} {doing}…")  # the time first: a long scan line is cut at its end
            return
        written, to_write = self.writing
        writing_for = time.monotonic() - self.planned_at
        rate = self.scenes / writing_for if writing_for > 0 else 0.0
        # Folders the plan decided (unchanged, busy, unreadable) are reported at once: the ETA counts the others.
        head = (f"{done}/{total} folders · writing {written}/{to_write}" if total > to_write
                else f"writing {done}/{total} folders")
        self._stats(f"{head} · {self.scenes} scenes · {rate:.0f}/s · {elapsed_text(elapsed)} · "
                    f"ETA {eta_text(written, to_write, writing_for)}")

    def _finished(self, summary: Summary | None, error: str) -> None:
        self.cancel_event = None
        if self._clock is not None:
            self._clock.stop()
            self._clock = None
        self.summary = summary
        self.tell_app(Status("ingest", ""))
        if summary is None:
            self._stats(f"ingest failed: {error}", error=True)
            self.set_error(error)
            return
        self._stats(summary_text(summary), error=bool(summary.failures))
        log = self.query_one("#ingest-log", VirtualTable)
        failed = next((i for i, e in enumerate(self.errors) if e), None)
        if failed is not None:
            log.move_to_row(failed)  # the first failure under the cursor, its reason in full below
        self.tell_app(RunsChanged())
