"""The keys every scrolling text here takes (j/k, ctrl+d/ctrl+u, g/G and their arrow/page/home/end twins):
one list, used by the scene text (``KeyScroll``) and by every scrolling dialog (``screens.scrolling``)."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll

SCROLL_BINDINGS: list[BindingType] = [
    Binding("j,down", "scroll_lines(1)", show=False),
    Binding("k,up", "scroll_lines(-1)", show=False),
    Binding("ctrl+d,pagedown", "scroll_page(1)", show=False),
    Binding("ctrl+u,pageup", "scroll_page(-1)", show=False),
    Binding("g,home", "scroll_edge(0)", show=False),
    Binding("G,end", "scroll_edge(1)", show=False),
]


class ScrollKeys:
    """The actions of SCROLL_BINDINGS, applied to ``scroll_box()`` (the widget itself, or a dialog's text)."""

    def scroll_box(self) -> VerticalScroll:
        raise NotImplementedError

    def action_scroll_lines(self, lines: int) -> None:
        self.scroll_box().scroll_relative(y=lines, animate=False)

    def action_scroll_page(self, direction: int) -> None:
        box = self.scroll_box()
        box.scroll_relative(y=direction * max(box.size.height - 2, 1), animate=False)

    def action_scroll_edge(self, end: int) -> None:
        box = self.scroll_box()
        if end:
            box.scroll_end(animate=False)
        else:
            box.scroll_home(animate=False)


class KeyScroll(ScrollKeys, VerticalScroll):
    """A VerticalScroll that moves with the keys every list here takes."""

    BINDINGS: ClassVar[list[BindingType]] = SCROLL_BINDINGS

    def scroll_box(self) -> VerticalScroll:
        return self
