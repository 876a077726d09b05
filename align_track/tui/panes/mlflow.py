"""MLflow pane: the state of the MLflow web UI the app started, its URL and, over SSH, the tunnel to open."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from align_track.tui.panes.base import Pane


class MlflowPane(Pane):
    """Shows what ``m`` did; the server itself is owned by the app so quitting always stops it."""

    TITLE = "MLflow"
    KEY = "6"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "app.toggle_ui", "Web UI", tooltip="Start or stop the MLflow web UI"),
    ]
    DEFAULT_CSS = "MlflowPane #mlflow-status { padding: 1 2; height: auto; }"

    def compose(self) -> ComposeResult:
        yield Static(id="mlflow-status")

    def on_mount(self) -> None:
        self.show_state("stopped")

    def show_state(self, state: str, url: str = "", hint: str | None = None, detail: str = "") -> None:
        text = Text()
        text.append("MLflow web UI: ", "bold")
        style = {"running": "bold green", "failed": "bold red"}.get(state, "bold yellow")
        text.append(state, style)
        if url:
            text.append("\n\nOpen ")
            text.append(url, "bold underline")
            text.append(" in a browser.")
        if hint:
            text.append("\nOver SSH, run this on your laptop first, then open the URL there:\n  ")
            text.append(hint, "bold")
        if detail:
            text.append(f"\n\n{detail}", "red" if state == "failed" else "")
        if state.endswith("…"):
            text.append(f"\n\nOne moment: the server is {state.rstrip('…')} (MLflow takes several seconds); "
                        "keep working meanwhile.", "dim")
        else:
            text.append(f"\n\nPress m to {'stop' if state == 'running' else 'start'} it (any pane). "
                        "Quitting the app stops it.", "dim")
        self.query_one("#mlflow-status", Static).update(text)
