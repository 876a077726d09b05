"""The keys every scrolling dialog shares (help, a compared scene, a long message): one list, one place."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen

SCROLL_BINDINGS = [
    Binding("j,down", "scroll(1)", show=False),
    Binding("k,up", "scroll(-1)", show=False),
    Binding("ctrl+d,pagedown", "page(1)", show=False),
    Binding("ctrl+u,pageup", "page(-1)", show=False),
    Binding("g,home", "edge(0)", show=False),
    Binding("G,end", "edge(1)", show=False),
]


class ScrollingScreen(ModalScreen[None]):
    """A dialog whose VerticalScroll moves with j/k, arrows, ctrl+d/ctrl+u, page keys, g/G and home/end."""

    def _box(self) -> VerticalScroll:
        return self.query_one(VerticalScroll)

    def action_scroll(self, lines: int) -> None:
        self._box().scroll_relative(y=lines, animate=False)

    def action_page(self, direction: int) -> None:
        box = self._box()
        box.scroll_relative(y=direction * max(box.size.height - 2, 1), animate=False)

    def action_edge(self, end: int) -> None:
        box = self._box()
        if end:
            box.scroll_end(animate=False)
        else:
            box.scroll_home(animate=False)
