"""What panes ask of the app: they post these messages and the app, which owns the store, the panes and
the web UI, acts on them (as toolong and harlequin do). Panes never call the app or each other.

``Pane.tell_app`` runs the app's ``on_*`` handler within the current key's turn rather than queueing the
message, so keys typed ahead (a paste, tmux send-keys) land in the pane the message switched to."""

from __future__ import annotations

from textual.message import Message


class OpenRun(Message):
    """Show the scenes of ``run_id`` (Runs pane's enter), at the scene of ``trace_id`` if given (Sweep's o)."""

    def __init__(self, run_id: str, trace_id: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.trace_id = trace_id


class CompareRuns(Message):
    """Compare these runs scene by scene (Runs pane's c); fewer than two asks the user to mark more."""

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = run_ids


class RunsChanged(Message):
    """The store's runs changed (an ingest finished): reload them."""


class ShowPane(Message):
    """Switch to a pane (e.g. escape back to the runs)."""

    def __init__(self, pane_id: str) -> None:
        super().__init__()
        self.pane_id = pane_id


class Status(Message):
    """Set one field of the status bar: ``error`` (a store or filter problem) or ``ingest`` (its progress)."""

    def __init__(self, field: str, text: str) -> None:
        super().__init__()
        self.field = field
        self.text = text
