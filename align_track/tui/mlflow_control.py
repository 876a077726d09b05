"""The MLflow web UI's lifecycle for the TUI: start and stop it off the UI thread, report each state.

The app owns one :class:`WebUiControl`; the MLflow pane and the status bar only show the states it
reports, so quitting (or the terminal closing) stops the one server there is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from align_track.store.uri import StoreError

if TYPE_CHECKING:
    from align_track.mlflow_ui import UiServer

UI_HOST = "127.0.0.1"


@dataclass(frozen=True)
class UiState:
    """What the pane shows: 'stopped', 'starting…', 'running', 'stopping…' or 'failed'."""

    state: str
    url: str = ""
    hint: str | None = None
    detail: str = ""


class WebUiControl:
    """Starts and stops ``mlflow ui`` for one store; ``on_change`` is called from a worker thread."""

    def __init__(self, tracking_uri: str, on_change: Callable[[UiState], object]) -> None:
        self.tracking_uri = tracking_uri
        self.on_change = on_change
        self.server: UiServer | None = None
        self.busy = False
        self._lock = threading.Lock()

    def toggle(self) -> UiState | None:
        """Start the server if stopped, else stop it; None while a start or stop is still under way."""
        with self._lock:
            if self.busy:
                return None
            self.busy = True
            server = self.server
        if server is None:
            threading.Thread(target=self._start, name="mlflow-ui-start", daemon=True).start()
            return UiState("starting…")
        threading.Thread(target=self._stop, args=(server,), name="mlflow-ui-stop", daemon=True).start()
        return UiState("stopping…")

    def _start(self) -> None:
        from align_track import mlflow_ui

        try:
            port = mlflow_ui.find_free_port(UI_HOST, 5000)
            server = mlflow_ui.start_ui(self.tracking_uri, UI_HOST, port)
        except StoreError as exc:
            self._done(None, UiState("failed", detail=str(exc)))
            return
        except Exception as exc:  # e.g. the mlflow executable cannot be run
            self._done(None, UiState("failed", detail=f"{type(exc).__name__}: {exc}"))
            return
        state = UiState("running", server.url, mlflow_ui.ssh_forward_hint(server.port, server.host))
        if not self._done(server, state):
            mlflow_ui.stop_ui(server)  # the app closed while the server started

    def _stop(self, server: UiServer) -> None:
        from align_track.mlflow_ui import stop_ui

        stop_ui(server)
        self._done(None, UiState("stopped"))

    def _done(self, server: UiServer | None, state: UiState) -> bool:
        with self._lock:
            self.server = server
            self.busy = False
        return self.on_change(state) is not False

    def stop(self) -> None:
        """Stop the server we started (blocking); called on quit so no server outlives the app."""
        with self._lock:
            server, self.server = self.server, None
        if server is not None:
            from align_track.mlflow_ui import stop_ui

            stop_ui(server)
