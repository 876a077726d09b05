"""The runs the user has in hand: owned by the app, written by the Runs pane, read by the Report pane.

Panes share this object instead of reading each other's fields, so a pane can change inside without
breaking another."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from align_track.store.runs_reader import RunRow
    from align_track.tui.models.data import RunsSnapshot


@dataclass
class Selection:
    """The loaded snapshot, the marked run ids and the run ids the Runs pane shows (filtered, in order)."""

    snapshot: RunsSnapshot | None = None
    web_ui_url: str = ""
    """The MLflow web UI the app started ('' when none runs)."""
    marked_ids: set[str] = field(default_factory=set)
    current_id: str | None = None
    """The run under the Runs pane's cursor."""
    _ids: list[str] = field(default_factory=list)
    _view: list[int] = field(default_factory=list)

    def set_shown(self, run_ids: list[str], view: list[int]) -> None:
        """What the Runs pane shows: rows ``view`` of ``run_ids`` (kept by reference: called per keystroke)."""
        self._ids, self._view = run_ids, view

    @property
    def shown_ids(self) -> list[str]:
        return [self._ids[i] for i in self._view]

    def ui_base(self) -> str:
        """Where MLflow URLs point: the web UI the app runs, else an http store itself, else ``align-track ui``'s."""
        from align_track.tui.models.links import DEFAULT_UI_URL

        if self.web_ui_url:
            return self.web_ui_url
        uri = self.snapshot.uri if self.snapshot is not None else ""
        return uri if uri.startswith(("http://", "https://")) else DEFAULT_UI_URL

    def copy_items(self, run_id: str, trace_id: str | None = None) -> list:
        """What ``y`` offers for a run (and a scene's trace)."""
        from align_track.tui.models.links import copy_items

        run = self.run(run_id)
        if run is None or self.snapshot is None:
            return []
        return copy_items(self.ui_base(), self.snapshot.experiment_id, run_id, run.tags, trace_id)

    def current_run_url(self) -> str | None:
        """The MLflow web UI page of the highlighted run."""
        from align_track.tui.models.links import run_url

        if self.current_id is None or self.snapshot is None:
            return None
        return run_url(self.ui_base(), self.snapshot.experiment_id, self.current_id)

    def run(self, run_id: str) -> RunRow | None:
        if self.snapshot is None:
            return None
        return self.snapshot.run(run_id)

    def runs(self, run_ids: list[str] | set[str]) -> list[RunRow]:
        """The runs with these ids, in the store's order."""
        if self.snapshot is None:
            return []
        wanted = set(run_ids)
        return [r for r in self.snapshot.runs if r.run_id in wanted]

    def report_runs(self) -> tuple[list[RunRow], bool]:
        """The complete runs a report uses: the marked ones if any (True), else the shown ones (False)."""
        finished = self.snapshot.status if self.snapshot is not None else {}
        if self.marked_ids:
            return [r for r in self.runs(self.marked_ids) if r.run_id not in finished], True
        return [r for r in self.runs(self.shown_ids) if r.run_id not in finished], False
