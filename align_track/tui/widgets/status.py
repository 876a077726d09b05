"""The status bar: which store, how many runs, errors, a running ingest and the web UI's URL."""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text
from textual._context import NoActiveAppError
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


MAX_LINES = 3
MORE = " … ! shows all"
"""Ends the last line when a message needs more than MAX_LINES: the messages screen (``!``) keeps it in full."""


class StatusBar(Static):
    """Always visible, so a store error or a running server is never hidden behind another pane. Wraps onto up
    to three lines rather than cutting a message at the terminal's edge (only the store's path is cut, in the
    middle, to keep the usual status on one line)."""

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
    """A change relayouts the screen only when the bar's number of rows changes (see ``_changed``)."""

    def full_text(self, width: int) -> Text:
        """Every field, unwrapped, for a bar ``width`` wide. Every field may hold user data (a store path, an
        experiment name, a folder in an error): shown escaped, never interpreted."""
        text = Text()
        if self.zoom:
            text.append("zoomed: z to unzoom  ", "reverse")
        if self.store and not self.error:
            # the store (often a long path) gives way first, cut in the middle, so the line stays one line at 60
            # columns: the state, a running ingest and the web UI's URL are read in full, and a 20-row split
            # keeps the row
            rest = sum(cell_len(printable(x)) + 4 for x in (self.state, self.ingest, self.ui) if x)
            room = width - text.cell_len - rest - 2
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

    def lines(self, width: int) -> list[Text]:
        """The text wrapped at ``width``, at most MAX_LINES: the last one ends with MORE when some is left out."""
        width = max(width, len(MORE) + 1)
        lines = list(self.full_text(width).wrap(self._console(), width, overflow="fold"))
        if len(lines) > MAX_LINES:
            lines = lines[:MAX_LINES]
            last = lines[-1]
            last.rstrip()
            last.truncate(width - len(MORE))
            last.append(MORE, "bold")
        return lines

    def _console(self) -> Console:
        """The app's console; a plain one for a bar read before (or without) an app, as a test or a report does."""
        try:
            return self.app.console
        except NoActiveAppError:
            return Console()

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.lines(width))

    def render(self) -> Text:
        return Text("\n", no_wrap=True, overflow="crop").join(self.lines(self.content_size.width or 80))

    def _changed(self) -> None:
        """Relayout (a screen-wide cost) only when the number of lines changes, not on every progress tick."""
        if not self.is_mounted:
            return
        self.refresh(layout=len(self.lines(self.content_size.width or 80)) != self.content_size.height)

    def watch_store(self) -> None:
        self._changed()

    def watch_state(self) -> None:
        self._changed()

    def watch_error(self) -> None:
        self._changed()

    def watch_ingest(self) -> None:
        self._changed()

    def watch_ui(self) -> None:
        self._changed()

    def watch_zoom(self) -> None:
        self._changed()
