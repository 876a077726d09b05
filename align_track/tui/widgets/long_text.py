"""Text of any length, wrapped only where it is read.

Wrapping is sequential: to know where line 100,000 of a 12 MB justification starts, every line before it must
be wrapped (minutes in Rich). So the text is cut once, whatever the width, into pieces of at most ``PIECE``
characters (after a line break where there is one, else after a space), and each piece is wrapped on its own
when it is first drawn. A piece not yet drawn counts an estimate of its height; drawing it makes its height
exact. Drawing a screen therefore wraps a few pieces, never the whole text.

A cut inside a paragraph must not show: a piece cut there keeps back the last line it wraps to (that line's
end depends on the text after the cut) and the next piece starts with it, so the lines drawn are the lines of
the whole text wrapped in one go. Where the line before a piece was never drawn (a jump to the text's end),
the piece starts where the piece before it, wrapped from its own start, leaves its last line: wrapping
re-synchronises within a few lines of ordinary text, so that start is almost always the true one, and when
the piece before is drawn and proves otherwise the piece is drawn again.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from itertools import accumulate

from rich._wrap import divide_line
from rich.cells import cell_len
from rich.console import RenderableType
from rich.control import strip_control_codes
from rich.syntax import Syntax
from rich.text import Text
from textual.strip import Strip

PIECE = 8192
"""Characters wrapped at once: a piece of plain text wraps in about 3 ms, a screen needs one or two."""
LEXED_PIECE = 2048
"""Characters highlighted at once (raw JSON): highlighting costs five times what wrapping does."""
KEPT_PIECES = 64
"""Drawn pieces whose lines are kept (paging back is free); older ones are drawn again when read again, so
paging through all 12 MB does not keep 12 MB of drawn lines. Their heights, once known, are kept."""
CARRIED = 4 * PIECE
"""Characters of one line carried from a piece into the next at most: a line that long (a run of spaces, or a
width in the tens of thousands) is cut where the piece ends, so no draw is ever much more than a piece."""
TAB_SIZE = 8
"""Rich's tab stops for text (the console's default)."""
CONTROL = "\x07\x08\x0b\x0c\r"
"""Characters Rich drops from a text before wrapping it (a '\\r\\n' line end draws as '\\n')."""

Render = Callable[[RenderableType, int], list[Strip]]
"""Draws a renderable at a width into lines (the widget's console, style and theme)."""


def cuts(text: str, size: int = PIECE) -> list[tuple[int, int]]:
    """(start, end) of the pieces of ``text``: at most ``size`` characters, ended by a line break (dropped) in
    their second half, else after a space, else where the size is reached (a word longer than a piece). Only a
    dropped line break separates two pieces: elsewhere a piece starts where the one before it ends."""
    out: list[tuple[int, int]] = []
    pos, n = 0, len(text)
    while pos < n or not out:
        end = pos + size
        if end >= n:
            out.append((pos, n))
            break
        half = pos + size // 2
        cut = text.rfind("\n", half, end)
        if cut >= 0:
            out.append((pos, cut))
            pos = cut + 1
            continue
        cut = text.rfind(" ", half, end - 1)
        end = end if cut < 0 else cut + 1
        out.append((pos, end))
        pos = end
    return out


def plain(text: str) -> str:
    """The text as Rich wraps it: control characters dropped and tabs expanded (tab stops count from the start
    of each paragraph, so a piece starting mid-paragraph could not expand them itself)."""
    if any(c in text for c in CONTROL):
        text = strip_control_codes(text)
    if "\t" in text:
        paragraphs = text.split("\n")
        for i, paragraph in enumerate(paragraphs):
            if "\t" in paragraph:
                expanded = Text(paragraph)
                expanded.expand_tabs(TAB_SIZE)
                paragraphs[i] = expanded.plain
        text = "\n".join(paragraphs)
    return text


def _fresh_start(line: str, offset: int, width: int) -> bool:
    """Whether the text of ``line`` from the line start ``offset`` on wraps as it does following what is before
    it: at a word's start; or inside a word folded over lines, where what is left of the word (as far as
    ``line`` shows it) is still wider than a line, so it folds at the same places. Not at a space, nor inside a
    character cluster (an emoji sequence folded apart measures otherwise afresh), nor in a word's last part
    (alone, its trailing spaces would stay on its line instead of folding onto the next)."""
    char = line[offset]
    if char.isspace() or _joins(line[offset - 1], char):
        return False
    if line[offset - 1].isspace():
        return True
    stop = offset
    while stop < len(line) and not line[stop].isspace():
        stop += 1
    return cell_len(line[offset:stop]) > width


def _joins(before: str, char: str) -> bool:
    """Whether ``char`` is drawn as one with the character before it (a joiner, a modifier, an emoji's tail)."""
    return cell_len(before + char) != cell_len(before) + cell_len(char)


class LongText:
    """A text drawn piece by piece (optionally highlighted as ``lexer``, e.g. 'json'); ``wrapped`` counts the
    characters it has drawn so far, so a test can check that drawing a screen never wraps the whole text."""

    def __init__(self, text: str, style: str = "", lexer: str | None = None, piece: int | None = None) -> None:
        self.text = text if lexer else plain(text)
        self.style = style
        self.lexer = lexer
        self.size = piece or (LEXED_PIECE if lexer else PIECE)
        self.pieces = cuts(self.text, self.size)
        self._breaks = [self.text.count("\n", start, end) for start, end in self.pieces]
        self._width = -1
        self._heights: list[int] = []
        self._starts: list[int] = []
        self._lines: OrderedDict[int, tuple[int, list[Strip]]] = OrderedDict()
        """Drawn pieces: (where the piece's drawing began, its lines)."""
        self._begins: list[int] = []
        """Where each piece's drawing begins at this width: its start, or earlier (the line carried over)."""
        self._ends: dict[int, tuple[int, int]] = {}
        """Where each piece's drawing ends (the last line it keeps back), with the begin that was found from."""
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
        self._ends = {}
        self._begins = [start for start, _ in self.pieces]
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

    def _carries(self, piece: int) -> bool:
        """Whether the piece's last paragraph goes on in the next piece (it was not cut at a line break)."""
        return piece + 1 < len(self.pieces) and self.pieces[piece][1] == self.pieces[piece + 1][0]

    def _end(self, piece: int) -> int:
        """Where the drawing of ``piece`` (begun at its begin) stops: the start of its last line when the paragraph
        goes on in the next piece, for where that line ends depends on what follows; or of an earlier line, where
        that one would not wrap afresh as it does in the whole text (see _fresh_start)."""
        begin, end = self._begins[piece], self.pieces[piece][1]
        if not self._carries(piece):
            return end
        known = self._ends.get(piece)
        if known is not None and known[0] == begin:
            return known[1]
        paragraph = self.text.rfind("\n", begin, end) + 1 or begin
        line = self.text[paragraph:end]
        stop = paragraph
        width = max(self._width, 1)
        for offset in reversed(divide_line(line, width, fold=True)):
            if _fresh_start(line, offset, width):
                stop = paragraph + offset
                break
        if self.pieces[piece + 1][0] - stop > CARRIED:  # a line longer than CARRIED: cut it, visibly
            stop = end
        self._ends[piece] = (begin, stop)
        return stop

    def _draw(self, piece: int, render: Render) -> list[Strip]:
        """The lines of ``piece``, drawn again when the line carried into it has changed."""
        if piece and self._carries(piece - 1):
            self._begins[piece] = self._end(piece - 1)
        begin = self._begins[piece]
        kept = self._lines.get(piece)
        if kept is not None and kept[0] == begin:
            self._lines.move_to_end(piece)
            return kept[1]
        end = self._end(piece)
        if end == begin and self._carries(piece):  # all of it one line, carried on
            lines: list[Strip] = []
        else:
            stop = end - 1 if self._carries(piece) and self.text[end - 1] == "\n" else end  # a paragraph carried whole
            lines = render(self.renderable(begin, stop), self._width) or [Strip.blank(self._width)]
            self.wrapped += stop - begin
        self._lines[piece] = (begin, lines)
        if len(self._lines) > KEPT_PIECES:
            self._lines.popitem(last=False)
        if self._carries(piece) and self._begins[piece + 1] != end:
            self._begins[piece + 1] = end
            if not self._heights[piece + 1]:  # all of it was carried on before: now it may have a line to draw
                self._heights[piece + 1] = 1
                self._starts = []
        return lines

    def line(self, y: int, width: int, render: Render) -> Strip | None:
        """Line ``y`` at ``width`` (None past the end); draws only the piece it is in. Drawing a piece can change
        the heights after it, never before it, so the lines above ``y`` stay where they were."""
        self._layout(width)
        self._index()
        while True:
            if y < 0 or y >= self._starts[-1]:
                return None
            piece = bisect_right(self._starts, y) - 1
            lines = self._draw(piece, render)
            if len(lines) != self._heights[piece]:  # the estimate was off: y may now be in another piece
                self._heights[piece] = len(lines)
                self._starts = []
            self._index()
            if y < self._starts[piece] or y >= self._starts[piece + 1]:
                continue
            return lines[y - self._starts[piece]]
