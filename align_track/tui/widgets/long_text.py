"""Text of any length, wrapped only where it is read.

Wrapping is sequential: to know where line 100,000 of a 12 MB justification starts, every line before it must
be wrapped (minutes in Rich). So the text is cut once, whatever the width, into pieces of at most ``PIECE``
characters (after a line break where there is one, else after a space), and each piece is wrapped on its own
when it is first drawn. A piece not yet drawn counts an estimate of its height; drawing it makes its height
exact. Drawing a screen therefore wraps a few pieces, never the whole text.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from itertools import accumulate

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual.strip import Strip

PIECE = 8192
"""Characters wrapped at once: a piece of plain text wraps in about 3 ms, a screen needs one or two; a piece
ends one line early (where it was cut) about every hundred lines of a text without line breaks."""
LEXED_PIECE = 2048
"""Characters highlighted at once (raw JSON): highlighting costs five times what wrapping does."""
KEPT_PIECES = 64
"""Drawn pieces whose lines are kept (paging back is free); older ones are drawn again when read again, so
paging through all 12 MB does not keep 12 MB of drawn lines. Their heights, once known, are kept."""

Render = Callable[[RenderableType, int], list[Strip]]
"""Draws a renderable at a width into lines (the widget's console, style and theme)."""


def cuts(text: str, size: int = PIECE) -> list[tuple[int, int]]:
    """(start, end) of the pieces of ``text``: at most ``size`` characters, ended by a line break (dropped) in
    their second half, else by a space (dropped), else cut where the size is reached (a word longer than a piece)."""
    out: list[tuple[int, int]] = []
    pos, n = 0, len(text)
    while pos < n or not out:
        end = pos + size
        if end >= n:
            out.append((pos, n))
            break
        half = pos + size // 2
        cut = text.rfind("\n", half, end)
        if cut < 0:
            cut = text.rfind(" ", half, end)
        if cut < 0:
            out.append((pos, end))
            pos = end
        else:
            out.append((pos, cut))
            pos = cut + 1
    return out


class LongText:
    """A text drawn piece by piece (optionally highlighted as ``lexer``, e.g. 'json'); ``wrapped`` counts the
    characters it has wrapped so far, so a test can check that drawing a screen never wraps the whole text."""

    def __init__(self, text: str, style: str = "", lexer: str | None = None) -> None:
        self.text = text
        self.style = style
        self.lexer = lexer
        self.pieces = cuts(text, LEXED_PIECE if lexer else PIECE)
        self._breaks = [text.count("\n", start, end) for start, end in self.pieces]
        self._width = -1
        self._heights: list[int] = []
        self._starts: list[int] = []
        self._lines: OrderedDict[int, list[Strip]] = OrderedDict()
        self.wrapped = 0

    def forget(self) -> None:
        """Drop the drawn lines (a theme change restyles them)."""
        self._width = -1

    def __len__(self) -> int:
        return len(self.text)

    def _layout(self, width: int) -> None:
        if width == self._width:
            return
        self._width = width
        self._lines = OrderedDict()
        room = max(width, 1)
        self._heights = [breaks + 1 + (end - start - breaks) // room
                         for (start, end), breaks in zip(self.pieces, self._breaks, strict=True)]
        self._starts = []

    def height(self, width: int) -> int:
        """Lines at ``width``: exact for the pieces drawn so far, estimated for the others."""
        self._layout(width)
        self._index()
        return self._starts[-1]

    def _index(self) -> None:
        if not self._starts:
            self._starts = [0, *accumulate(self._heights)]

    def renderable(self, start: int = 0, end: int | None = None) -> RenderableType:
        """The text (or a slice of it) as Rich draws it."""
        text = self.text[start:end]
        if self.lexer:
            return Syntax(text, self.lexer, theme="ansi_dark", background_color="default", word_wrap=True)
        return Text(text, style=self.style)

    def line(self, y: int, width: int, render: Render) -> Strip | None:
        """Line ``y`` at ``width`` (None past the end); draws only the piece it is in. Drawing a piece can change
        the heights after it, never before it, so the lines above ``y`` stay where they were."""
        self._layout(width)
        self._index()
        if y < 0 or y >= self._starts[-1]:
            return None
        while True:
            if y >= self._starts[-1]:
                return None
            piece = bisect_right(self._starts, y) - 1
            lines = self._lines.get(piece)
            if lines is not None:
                self._lines.move_to_end(piece)
                return lines[y - self._starts[piece]]
            start, end = self.pieces[piece]
            lines = render(self.renderable(start, end), width) or [Strip.blank(width)]
            self.wrapped += end - start
            self._lines[piece] = lines
            if len(self._lines) > KEPT_PIECES:
                self._lines.popitem(last=False)
            if len(lines) != self._heights[piece]:  # the estimate was off: y may now be in another piece
                self._heights[piece] = len(lines)
                self._starts = []
                self._index()
