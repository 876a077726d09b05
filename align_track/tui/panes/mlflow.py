"""MLflow pane: the state of the MLflow web UI the app started, its URL, the highlighted run's page and,
over SSH, the tunnel to open (directly or through a login/jump host)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from align_track.tui.models.selection import Selection
from align_track.tui.panes.base import Pane


def jump_host_hint(hint: str) -> str:
    """``ssh -N -L 5000:localhost:5000 me@node`` -> the same through a login host: ``ssh -N -J me@LOGIN-HOST ...``."""
    user = hint.rsplit(" ", 1)[-1].split("@", 1)[0] if "@" in hint else ""
    login = f"{user}@LOGIN-HOST" if user else "LOGIN-HOST"
    return hint.replace("ssh -N ", f"ssh -N -J {login} ", 1)


class MlflowPane(Pane):
    """Shows what ``m`` did; the server itself is owned by the app so quitting always stops it."""

    TITLE = "MLflow"
    SHORT = "MLf"
    KEY = "6"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "app.toggle_ui", "Web UI", tooltip="Start or stop the MLflow web UI"),
        Binding("y", "copy", "Copy", tooltip="Copy the highlighted run's MLflow URL (and more)"),
    ]
    DEFAULT_CSS = """
    MlflowPane #mlflow-box { height: 1fr; }
    MlflowPane #mlflow-status { padding: 1 2; height: auto; }
    """

    def __init__(self, selection: Selection, **kwargs) -> None:
        super().__init__(**kwargs)
        self.selection = selection
        self.state: tuple[str, str, str | None, str] = ("stopped", "", None, "")

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="mlflow-box"):
            yield Static(id="mlflow-status")

    def on_mount(self) -> None:
        self.show_state("stopped")

    def focus_default(self) -> None:
        self.show_state(*self.state)  # the highlighted run may have changed since
        self.focus_now(self.query_one("#mlflow-box", VerticalScroll))

    def action_copy(self) -> None:
        run_id = self.selection.current_id
        self.offer_copy(self.selection.copy_items(run_id) if run_id else [])

    def show_state(self, state: str, url: str = "", hint: str | None = None, detail: str = "") -> None:
        self.state = (state, url, hint, detail)
        text = Text()
        text.append("MLflow web UI: ", "bold")
        style = {"running": "bold green", "failed": "bold red"}.get(state, "bold yellow")
        text.append(state, style)
        if url:
            text.append("\n\nOpen ")
            text.append(url, "bold underline")
            text.append(" in a browser.")
            run_url = self.selection.current_run_url()
            if run_url:
                text.append("\nThe highlighted run (y copies it):\n  ")
                text.append(run_url, "bold")
        if hint:
            text.append("\nOver SSH, run this on your laptop first, then open the URL there:\n  ")
            text.append(hint, "bold")
            text.append("\nThrough a login (jump) host, put its name in:\n  ")
            text.append(jump_host_hint(hint), "bold")
        if detail:
            text.append(f"\n\n{detail}", "red" if state == "failed" else "")
        if state.endswith("…"):
            text.append(f"\n\nOne moment: the server is {state.rstrip('…')} (MLflow takes several seconds); "
                        "keep working meanwhile.", "dim")
        else:
            text.append(f"\n\nPress m to {'stop' if state == 'running' else 'start'} it (any pane). "
                        "Quitting the app stops it.", "dim")
        self.query_one("#mlflow-status", Static).update(text)
