"""The one-line status bar: which store, how many runs, errors, a running ingest and the web UI's URL."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from align_track.errors import printable
from align_track.query.textfit import cut_middle


def fit_store(store: str, width: int) -> str:
    """``path · experiment`` in ``width``: the path cut in the middle first (its file name and top stay), the
    experiment's name kept whole while there is room for it."""
    path, sep, experiment = store.rpartition(" · ")
    if cell_len(store) <= width or not sep:
        return cut_middle(store, width)
    room = width - cell_len(sep + experiment)
    return cut_middle(path, room) + sep + experiment if room >= 12 else cut_middle(store, width)


class StatusBar(Static):
    """Always visible, so a store error or a running server is never hidden behind another pane."""

    DEFAULT_CSS = """
    StatusBar { height: auto; max-height: 3; background: $panel; color: $foreground; padding: 0 1; }
    StatusBar:ansi { background: ansi_default; }
    """

    # layout=True: an error wraps onto more rows, and the bar must grow for it (a repaint alone kept one row)
    store: reactive[str] = reactive("", layout=True)
    state: reactive[str] = reactive("connecting…", layout=True)
    error: reactive[str] = reactive("", layout=True)
    ingest: reactive[str] = reactive("", layout=True)
    ui: reactive[str] = reactive("", layout=True)
    zoom: reactive[bool] = reactive(False, layout=True)

    def render(self) -> Text:
        # One line normally; an error wraps (up to 3 lines) rather than being cut mid-sentence. Every field may
        # hold user data (a store path, an experiment name, a folder in an error): shown escaped, never interpreted.
        text = Text(no_wrap=not self.error, overflow="fold" if self.error else "ellipsis")
        if self.zoom:
            text.append("zoomed: z to unzoom  ", "reverse")
        if self.store and not self.error:
            # the store (often a long path) gives way first, cut in the middle, so the line stays one line at 60
            # columns: Textual wraps it regardless of no_wrap, and a 20-row split cannot spare the row
            rest = sum(cell_len(printable(x)) + 4 for x in (self.state, self.ingest, self.ui) if x)
            room = (self.content_size.width or 10_000) - text.cell_len - rest - 2
            text.append(fit_store(printable(self.store), max(room, 12)), "bold")
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
