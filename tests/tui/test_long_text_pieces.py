"""Issue 25, left over: the scene reader wraps a long text piece by piece, and a text without line breaks
ended a line early (mid-sentence, or mid-word) wherever a piece was cut. The cuts must not show: the lines the
reader draws are the lines of the whole text wrapped in one go, whatever the text and the width.

Examples per run: ALIGN_TRACK_HYPOTHESIS=pieces-long (300) or ALIGN_TRACK_PIECES_EXAMPLES=N; CI keeps a few,
derandomized, so a failure here is the same failure on every machine."""

from __future__ import annotations

import json
import os
from unittest.mock import patch

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual.strip import Strip

from align_track.tui.widgets import long_text
from align_track.tui.widgets.long_text import LongText
from tests.support.hypothesis_profiles import profile

PROFILE = profile("pieces", ci=40, long=300, examples_env="ALIGN_TRACK_PIECES_EXAMPLES")

WIDE = "漢字仮名交じり文한국어"
EMOJI = ["😀", "👍🏽", "👩‍🔬", "🇫🇷", "❤️"]
words = st.one_of(
    st.text("abcdefghij", min_size=1, max_size=9),
    st.text("xyz", min_size=20, max_size=400),  # longer than a line, sometimes than a piece
    st.text(WIDE, min_size=1, max_size=30),
    st.lists(st.sampled_from(EMOJI), min_size=1, max_size=6).map("".join),
    st.text("é,.;-'\"", min_size=1, max_size=3),
)
gaps = st.sampled_from([" ", " ", " ", "  ", "     ", "\n", "\r\n", "\n\n", "\t", " \t ", ""])
texts = st.one_of(
    st.lists(st.tuples(words, gaps).map("".join), max_size=400).map("".join),  # words and spaces
    st.lists(words, max_size=60).map("".join),  # no spaces at all
    st.text(max_size=2000),  # anything
)


def console_render(console: Console) -> long_text.Render:
    """Draws as the reader does (SceneReader._draw): the console's options at the width, padded lines."""

    def render(renderable: RenderableType, width: int) -> list[Strip]:
        options = console.options.update(width=width, highlight=False)
        return [Strip(line, width) for line in console.render_lines(renderable, options, pad=True)]

    return render


def drawn(text: LongText, width: int, render: long_text.Render, order: list[int] | None = None) -> list[str]:
    """The lines the reader draws, top to bottom (after drawing the lines of ``order`` first: a jump)."""
    for y in order or []:
        text.line(y, width, render)
    out, y = [], 0
    while (line := text.line(y, width, render)) is not None:
        out.append(line.text)
        y += 1
    assert text.height(width) == y
    return out


def whole(renderable: RenderableType, width: int, render: long_text.Render) -> list[str]:
    return [line.text for line in render(renderable, width)]


@PROFILE
@given(text=texts, width=st.integers(20, 200), piece=st.sampled_from([16, 50, 97, 256, 1000]),
       jumps=st.lists(st.integers(0, 400), max_size=4))
def test_the_lines_drawn_piece_by_piece_are_the_lines_of_the_whole_text(text, width, piece, jumps):
    console = Console(width=width, file=open(os.devnull, "w"), color_system=None)  # noqa: SIM115
    render = console_render(console)
    expected = whole(Text(text), width, render)
    with patch.object(long_text, "PIECE", piece):
        assert drawn(LongText(text), width, render) == expected
        jumped = LongText(text)
        jumped.line(0, width, render)  # lines drawn out of order first (G, the scrollbar), then read from the top
        assert drawn(jumped, width, render, [*jumps, jumped.height(width) - 1]) == expected


def unclustered(text: str) -> bool:
    """No character drawn as one with the one before it (a joiner, a modifier): Rich measures a highlighted line
    token by token, so such a cluster split between two tokens draws a cell or two wider or narrower, and a
    piece of JSON lexed from mid-string has other tokens than the whole."""
    return "\u200d" not in text and not any(cell_len(a + b) != cell_len(a) + cell_len(b)
                                            for a, b in zip(text, text[1:], strict=False))


@PROFILE
@given(text=texts.filter(unclustered), width=st.integers(20, 120), piece=st.sampled_from([64, 200, 700]))
def test_the_raw_json_drawn_piece_by_piece_wraps_as_a_whole(text, width, piece):
    """The raw JSON view (`r f`): a 12 MB justification is one JSON line, highlighted and wrapped in pieces."""
    console = Console(width=width, file=open(os.devnull, "w"), color_system=None)  # noqa: SIM115
    render = console_render(console)
    code = json.dumps({"action": {"justification": text, "choice": 1}}, indent=2, ensure_ascii=False)
    expected = whole(Syntax(code, "json", theme="ansi_dark", background_color="default", word_wrap=True),
                     width, render)
    with patch.object(long_text, "LEXED_PIECE", piece):
        assert drawn(LongText(code, lexer="json"), width, render) == expected


def test_a_sentence_cut_between_two_pieces_reads_on_the_same_line():
    """The case seen in the TUI: a text with no line breaks, and a short line wherever a piece ended."""
    sentence = "Because others may be dying unseen, searching serves the principle better. "
    text = sentence * 400
    console = Console(width=80, file=open(os.devnull, "w"), color_system=None)  # noqa: SIM115
    render = console_render(console)
    lines = drawn(LongText(text), 76, render)
    assert lines == whole(Text(text), 76, render)
    assert all(len(line.rstrip()) > 60 for line in lines[:-1])  # no short line mid-text


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [(60, 20), (80, 24), (200, 50)])
async def test_the_scene_reader_draws_a_text_without_line_breaks_as_one_wrap(size):
    """Through the widget itself: a justification of three pieces and no line break, read line by line by the
    reader (its console, its width), is the whole text wrapped in one draw by the same reader."""
    from textual.app import App, ComposeResult

    from align_track.tui.widgets.scene_reader import Document, SceneReader
    from tests.support.huge_scene import huge_justification

    class ReaderApp(App):
        def compose(self) -> ComposeResult:
            yield SceneReader()

    text = huge_justification(3 * long_text.PIECE).replace("\n\n", " ")
    app = ReaderApp()
    async with app.run_test(size=size) as pilot:
        reader = app.query_one(SceneReader)
        reader.show(Document(Text("header"), [LongText(text)]))
        await pilot.pause()
        width = reader._text_width()
        lines, y = [], 0
        while y < reader.total:  # the total is exact once every piece is drawn
            lines.append(reader.text_line(y, width).text)
            y += 1
        assert lines == [strip.text for strip in reader._draw(Text(text), width)]
