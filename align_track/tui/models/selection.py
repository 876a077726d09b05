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
    marked_ids: set[str] = field(default_factory=set)
    _ids: list[str] = field(default_factory=list)
    _view: list[int] = field(default_factory=list)

    def set_shown(self, run_ids: list[str], view: list[int]) -> None:
        """What the Runs pane shows: rows ``view`` of ``run_ids`` (kept by reference: called per keystroke)."""
        self._ids, self._view = run_ids, view

    @property
    def shown_ids(self) -> list[str]:
        return [self._ids[i] for i in self._view]

    def run(self, run_id: str) -> RunRow | None:
        if self.snapshot is None:
            return None
        return next((r for r in self.snapshot.runs if r.run_id == run_id), None)

    def runs(self, run_ids: list[str] | set[str]) -> list[RunRow]:
        """The runs with these ids, in the store's order."""
        if self.snapshot is None:
            return []
        wanted = set(run_ids)
        return [r for r in self.snapshot.runs if r.run_id in wanted]

    def report_runs(self) -> tuple[list[RunRow], bool]:
        """The runs a report uses: the marked ones if any (True), else the shown ones (False)."""
        if self.marked_ids:
            return self.runs(self.marked_ids), True
        return self.runs(self.shown_ids), False
