"""The scene's text as a line-API scroll view: only the lines on screen are drawn, whatever the scene's size.

A scene is a list of blocks: small Rich renderables (headings, tables), drawn whole once per width, and long
texts (:class:`LongText`), drawn a piece at a time where they are read. The first line is the scene's header,
kept in view while the rest scrolls, so a reader far down a scene still sees which scene it is. Named sections
(state, choices, justification, KDMA table) can be jumped to, and a scene shown after another opens at the
section the reader was in.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual.binding import BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from align_track.tui.widgets.key_scroll import SCROLL_BINDINGS, ScrollKeys
from align_track.tui.widgets.long_text import LongText

Block = RenderableType | LongText


@dataclass
class Document:
    """What the reader shows: a one-line header, the blocks, and where each named section starts (block index)."""

    header: Text = field(default_factory=Text)
    blocks: list[Block] = field(default_factory=list)
    sections: dict[str, int] = field(default_factory=dict)

    def renderable(self) -> RenderableType:
        """The whole document as one Rich renderable (the tests print it; the reader never draws it whole)."""
        return Group(self.header, *(b.renderable() if isinstance(b, LongText) else b for b in self.blocks))


class SceneReader(ScrollKeys, ScrollView):
    """Draws line ``y`` of a :class:`Document` on demand (Textual asks only for the lines on screen); each long
    text's ``wrapped`` counts the characters drawn, so a test can check that a screen costs a screen."""

    BINDINGS: ClassVar[list[BindingType]] = SCROLL_BINDINGS
    DEFAULT_CSS = "SceneReader { scrollbar-gutter: stable; overflow-x: hidden; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.document = Document()
        self._width = -1
        self._rich: dict[int, list[Strip]] = {}
        self._starts: list[int] = [0]
        self._syncing = False

    # ------------------------------------------------------------------ content

    @property
    def content(self) -> RenderableType:
        return self.document.renderable()

    def show(self, document: Document, section: str | None = None, keep_scroll: bool = False) -> None:
        """Show ``document`` at ``section`` (its top when it has no such section), or where the view was."""
        top = self.scroll_y
        self.document = document
        self._width = -1
        self._rich = {}
        self._sync_size()
        if keep_scroll:
            self.scroll_to(y=top, animate=False, immediate=True)
        else:
            self.scroll_to(y=self.section_line(section) or 0, animate=False, immediate=True)
        self.refresh()

    def scroll_box(self) -> ScrollView:
        return self

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._width = -1  # a theme change restyles every line
        for text in self.long_texts:
            text.forget()

    @property
    def long_texts(self) -> list[LongText]:
        return [b for b in self.document.blocks if isinstance(b, LongText)]

    # ------------------------------------------------------------------ sections

    def section_line(self, name: str | None) -> int | None:
        """The document line where section ``name`` starts (None when the scene has no such section)."""
        block = self.document.sections.get(name or "")
        if block is None:
            return None
        return self._layout(self._text_width())[block]

    def section_at(self, y: int | None = None) -> str | None:
        """The section the top line of the view (or line ``y``) is in."""
        y = round(self.scroll_y) if y is None else y
        starts = self._layout(self._text_width())
        found = None
        for name, block in sorted(self.document.sections.items(), key=lambda item: item[1]):
            if starts[block] <= y:
                found = name
        return found

    def section_in_view(self) -> str | None:
        """The section being read: the one at the top line, or at the end of the text the last one begun on screen
        (a short last section, the KDMA table, never reaches the top)."""
        y = round(self.scroll_y)
        if y and y >= self.max_scroll_y:
            y += self.scrollable_content_region.height - 2  # the last line of text on screen (header excluded)
        return self.section_at(y)

    def go_to(self, name: str) -> bool:
        """Scroll so section ``name`` starts at the top of the view; False when the scene has none."""
        line = self.section_line(name)
        if line is None:
            return False
        self.scroll_to(y=line, animate=False, immediate=True)
        return True

    # ------------------------------------------------------------------ drawing

    def _text_width(self) -> int:
        return max(self.scrollable_content_region.width, 1)

    def _draw(self, renderable: RenderableType, width: int) -> list[Strip]:
        options = self.app.console_options.update(width=width, highlight=False)
        lines = self.app.console.render_lines(renderable, options, style=self.rich_style, pad=True)
        return [Strip(line, width) for line in lines]

    def _layout(self, width: int) -> list[int]:
        """Start line of each block at ``width`` (and the total at the end)."""
        if width != self._width:
            self._width = width
            self._rich = {}
            self._starts = []
        if not self._starts:
            heights = []
            for i, block in enumerate(self.document.blocks):
                if isinstance(block, LongText):
                    heights.append(block.height(width))
                else:
                    if i not in self._rich:
                        self._rich[i] = self._draw(block, width)
                    heights.append(len(self._rich[i]))
            self._starts = [0, *accumulate(heights)]
        return self._starts

    @property
    def total(self) -> int:
        return self._layout(self._text_width())[-1]

    def text_line(self, y: int, width: int) -> Strip:
        """Line ``y`` of the document (without the header) at ``width``."""
        while True:
            starts = self._layout(width)
            if y < 0 or y >= starts[-1]:
                return Strip.blank(width, self.rich_style)
            i = bisect_right(starts, y) - 1
            block = self.document.blocks[i]
            if not isinstance(block, LongText):
                return self._rich[i][y - starts[i]]
            before = block.height(width)
            strip = block.line(y - starts[i], width, self._draw)
            if block.height(width) != before:
                self._starts = []  # the blocks after it moved
            if strip is not None:
                return strip

    def _prepare(self, top: int) -> int:
        """Draw the long-text pieces of the view starting at document line ``top`` before it is painted, and
        return where the view must start so that what was on screen stays put: a piece above the top whose
        estimated height proves wrong moves every line after it."""
        width = self._text_width()
        starts = self._layout(width)
        if top < starts[-1]:
            i = bisect_right(starts, top) - 1
            block = self.document.blocks[i]
            if isinstance(block, LongText):
                before = starts[-1]
                self.text_line(top, width)
                top += self._layout(width)[-1] - before if top > starts[i] else 0
        for y in range(top, top + self.scrollable_content_region.height):
            self.text_line(y, width)
        return top

    def _sync_size(self) -> None:
        self._syncing = False
        size = Size(self._text_width(), self.total + 1)  # + the header line
        if size != self.virtual_size:
            self.virtual_size = size

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        if self.document.blocks and round(old_value) != round(new_value):
            top = self._prepare(round(new_value))
            self._sync_size()
            top = min(top, self.max_scroll_y)
            if top != round(new_value):
                self.set_scroll(None, top)
                new_value = top
        super().watch_scroll_y(old_value, new_value)

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True) -> bool:
        """A new width rewraps everything: the view keeps to the block it was in, as far into it (a share of its
        height), instead of to a line number that now shows something else. Done here, in the layout pass,
        before any line is drawn at the new width."""
        old, top, was = self._starts, round(self.scroll_y), self._width
        changed = super()._size_updated(size, virtual_size, container_size, layout)
        width = self._text_width()
        if was in (-1, width) or len(old) < 2 or not top:
            return changed
        block = min(bisect_right(old, top) - 1, len(old) - 2)
        share = (top - old[block]) / max(old[block + 1] - old[block], 1)
        starts = self._layout(width)
        self._sync_size()
        self.set_scroll(None, min(starts[block] + round(share * (starts[block + 1] - starts[block])),
                                  self.max_scroll_y))
        return changed

    def on_resize(self) -> None:
        self._prepare(round(self.scroll_y))
        self._sync_size()

    def action_scroll_edge(self, end: int) -> None:
        """``G``: the end as it is once the last screen is drawn (the estimate of a long text above may change)."""
        if end:
            for _ in range(3):
                total = self.total
                self._prepare(max(total - self.scrollable_content_region.height + 1, 0))
                if self.total == total:
                    break
            self._sync_size()
        super().action_scroll_edge(end)

    def render_line(self, y: int) -> Strip:
        width = self._text_width()
        if y == 0:
            header = Text(no_wrap=True, overflow="ellipsis")
            header.append_text(self.document.header)
            return self._draw(header, width)[0] if self.document.header else Strip.blank(width, self.rich_style)
        strip = self.text_line(round(self.scroll_y) + y - 1, width)
        if not self._syncing and self._starts and self._starts[-1] + 1 != self.virtual_size.height:
            self._syncing = True  # a drawn piece proved its estimate wrong: the scroll range follows, once
            self.call_after_refresh(self._sync_size)
        return strip


def document_text(reader: SceneReader, lines: Sequence[int] | None = None) -> str:
    """What the reader shows on screen, top to bottom, as plain text (how the tests read the screen)."""
    height = reader.scrollable_content_region.height
    return "\n".join(reader.render_line(y).text.rstrip() for y in (lines or range(height)))
