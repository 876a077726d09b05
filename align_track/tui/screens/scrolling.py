"""The dialog every scrolling screen is (help, a compared scene, a long message): its text moves with the keys
of ``widgets.key_scroll.SCROLL_BINDINGS``, the same list the scene text uses."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.screen import ModalScreen

from align_track.tui.widgets.key_scroll import SCROLL_BINDINGS, ScrollKeys

__all__ = ["SCROLL_BINDINGS", "ScrollingScreen"]


class ScrollingScreen(ScrollKeys, ModalScreen[None]):
    """A dialog whose VerticalScroll moves with j/k, arrows, ctrl+d/ctrl+u, page keys, g/G and home/end."""

    def scroll_box(self) -> VerticalScroll:
        return self.query_one(VerticalScroll)
