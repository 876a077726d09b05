"""What every pane shares: a title, the number key that shows it, and where focus goes when shown."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.containers import Container
from textual.widget import Widget

if TYPE_CHECKING:
    from align_track.tui.app import AlignTrackApp


class Pane(Container):
    """A tab's content. ``BINDINGS`` of each pane feed the footer, the help screen and the command palette."""

    TITLE: ClassVar[str] = ""
    KEY: ClassVar[str] = ""
    DEFAULT_CSS = "Pane { height: 1fr; }"

    @property
    def tui(self) -> AlignTrackApp:
        return cast("AlignTrackApp", self.app)

    def focus_default(self) -> None:
        """Focus the pane's main widget (called when the pane is shown)."""
        self.focus_now(self)

    def focus_now(self, widget: Widget) -> None:
        """Move focus before the next key is handled: ``Widget.focus()`` waits a turn, so keys typed
        right after '/' (typeahead, a paste, tmux send-keys) would still reach the old widget."""
        self.screen.set_focus(widget)
