"""What every pane shares: a title, the number key that shows it, where focus goes when shown, and the
way back to the UI thread from a worker. Panes talk to the app only through ``tui.messages``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual.containers import Container
from textual.message import Message
from textual.widget import Widget

from align_track.tui.messages import Status


class Pane(Container):
    """A tab's content. ``BINDINGS`` of each pane feed the footer, the help screen and the command palette."""

    TITLE: ClassVar[str] = ""
    SHORT: ClassVar[str] = ""
    """The title where the pane bar is short of room (60 columns): a deliberate abbreviation, not a cut."""
    KEY: ClassVar[str] = ""
    MORE_KEYS: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    """Keys the pane's widgets (a plot, a dropdown) or its key handlers answer outside ``BINDINGS``, for the help
    screen: (Textual key names joined by commas, how help shows them or '' to show the keys, what they do)."""
    DEFAULT_CSS = "Pane { height: 1fr; }"

    def focus_default(self) -> None:
        """Focus the pane's main widget (called when the pane is shown)."""
        self.focus_now(self)

    def focus_now(self, widget: Widget) -> None:
        """Move focus before the next key is handled: ``Widget.focus()`` waits a turn, so keys typed
        right after '/' (typeahead, a paste, tmux send-keys) would still reach the old widget."""
        self.screen.set_focus(widget)

    def set_zoom(self, zoomed: bool) -> None:
        """Called when ``z`` zooms this pane to the whole screen (or back); panes hide what they can spare."""

    def post_ui(self, callback: Callable[..., Any], *args: Any) -> bool:
        """Run ``callback`` on the UI thread from a worker thread; False once the app is closing."""
        return post_ui(self, callback, *args)

    def tell_app(self, message: Message) -> None:
        """Hand ``message`` to the app's ``on_*`` handler within this key's turn: a posted message would
        arrive after keys already typed (typeahead, a paste, tmux send-keys), which would then land in
        the pane being left. Without such a handler it is posted and bubbles up as usual."""
        handler = getattr(self.app, message.handler_name, None)
        if callable(handler):
            handler(message)
        else:
            self.post_message(message)

    def offer_copy(self, items: list) -> None:
        """``y``: let the user pick one of ``items`` (CopyItem) and put it on the clipboard by OSC 52."""
        from align_track.tui.screens.copy import CopyScreen

        if not items:
            self.notify("nothing to copy here yet", severity="warning")
            return

        def chosen(item) -> None:
            if item is not None:
                self.app.copy_to_clipboard(item.text)
                self.notify(f"copied {item.label}", timeout=3)

        self.app.push_screen(CopyScreen(items), chosen)

    def set_error(self, text: str) -> None:
        """Show (or with '' clear) an error in the status bar."""
        self.tell_app(Status("error", text))


def post_ui(widget: Widget, callback: Callable[..., Any], *args: Any) -> bool:
    """``call_from_thread`` that returns False instead of raising once the app is closing."""
    app = widget.app
    if not app.is_running or app._closing:
        return False
    try:
        app.call_from_thread(callback, *args)
    except Exception:
        if app.is_running and not app._closing:
            raise
        return False
    return True
