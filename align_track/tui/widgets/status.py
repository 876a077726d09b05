"""The one-line status bar: which store, how many runs, errors, a running ingest and the web UI's URL."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from align_track.errors import printable


class StatusBar(Static):
    """Always visible, so a store error or a running server is never hidden behind another pane."""

    DEFAULT_CSS = """
    StatusBar { height: auto; max-height: 3; background: $panel; color: $foreground; padding: 0 1; }
    StatusBar:ansi { background: ansi_default; }
    """

    store: reactive[str] = reactive("")
    state: reactive[str] = reactive("connecting…")
    error: reactive[str] = reactive("")
    ingest: reactive[str] = reactive("")
    ui: reactive[str] = reactive("")
    zoom: reactive[bool] = reactive(False)

    def render(self) -> Text:
        # One line normally; an error wraps (up to 3 lines) rather than being cut mid-sentence. Every field may
        # hold user data (a store path, an experiment name, a folder in an error): shown escaped, never interpreted.
        text = Text(no_wrap=not self.error, overflow="fold" if self.error else "ellipsis")
        if self.zoom:
            text.append("zoomed: z to unzoom  ", "reverse")
        if self.store and not self.error:
            text.append(printable(self.store), "bold")
            text.append("  ")
        if self.error:
            text.append(f"✖ {printable(self.error)}", "bold red")
        else:
            text.append(printable(self.state))
        if self.ingest:
            text.append("  │ ", "dim")
            text.append(printable(self.ingest), "yellow")
        if self.ui:
            text.append("  │ ", "dim")
            text.append(printable(self.ui), "green")
        return text
