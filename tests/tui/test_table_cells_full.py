"""Issue 25, left over: with `f` (full text) on, the cells of the scene's tables stayed cut: a choice's text at
TEXT_CAP, a word wider than its column (an unstructured KDMA value) at '…'. Only the raw JSON showed them whole.
Now every cell reads whole with `f`: wrapped in its cell, or, for a table too big to draw in one piece, the
table as rows of texts drawn where they are read."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from align_track.schema import ATTR_PREDICTED_KDMA, ATTR_TRUE_KDMA
from align_track.tui.models.scenes import Scene
from align_track.tui.widgets.scene_reader import SceneReader
from align_track.tui.widgets.scene_view import TEXT_CAP, scene_document

pytestmark = pytest.mark.asyncio
SIZES = [(60, 20), (80, 24), (120, 40), (36, 20)]  # 36: the reader beside the scene list in a 60-column split


class ReaderApp(App):
    def compose(self) -> ComposeResult:
        yield SceneReader()


def scene(long_choice: str) -> Scene:
    """A choice whose text is ``long_choice``; unstructured KDMA values (a word wider than any column, a
    sentence) in the choices table and the true-vs-predicted one; a character described at length."""
    kdma = {"merit": 0.3, "note": "Ж" * 300}
    return Scene("t1", "P1", "scenario", 0, 1.0, 0, long_choice,
                 inputs={"state": "the state", "characters": [{"name": "Pat", "unstructured": "Я" * 5000}],
                         "choices": [{"unstructured": long_choice, "kdma_association": kdma},
                                     {"unstructured": "wait", "kdma_association": {"merit": "Ф" * 250}}]},
                 outputs={"action": {"justification": "because"}},
                 attributes={ATTR_TRUE_KDMA: {long_choice: {"merit": 0.2}, "wait": "unstructured " + "Щ" * 400},
                             ATTR_PREDICTED_KDMA: {long_choice: {"merit": [0.25]}, "wait": {"merit": "Ю" * 220}}})


async def drawn(document, size: tuple[int, int]) -> str:
    """Every line of the document as the reader draws it (one line at a time, as on screen)."""
    app = ReaderApp()
    async with app.run_test(size=size) as pilot:
        reader = app.query_one(SceneReader)
        reader.show(document)
        await pilot.pause()
        width = reader._text_width()
        lines, y = [], 0
        while y < reader.total:
            lines.append(reader.text_line(y, width).text)
            y += 1
        return "\n".join(lines)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("choice_chars", [TEXT_CAP // 2, TEXT_CAP * 3])
async def test_with_f_every_table_cell_reads_whole(size, choice_chars):
    words = ("q" * 7 + " ") * (choice_chars // 8)
    text = await drawn(scene_document(scene(words), full=True), size)
    assert text.count("q") == 3 * words.count("q")  # the choices, the decision and the true-vs-predicted table
    for letter, count in (("Ж", 300), ("Ф", 250), ("Щ", 400), ("Ю", 220), ("Я", 5000)):
        assert text.count(letter) == count, letter
    assert "more characters" not in text and "…" not in text


async def test_without_f_cells_are_cut_and_say_how_to_see_them_whole():
    words = ("q" * 7 + " ") * (TEXT_CAP * 3 // 8)
    text = await drawn(scene_document(scene(words), full=False), (80, 24))
    assert text.count("q") <= words.count("q") + 2 * TEXT_CAP  # whole only in the decision line
    shown = " ".join(text.split())
    assert shown.count("more characters: press f for the full text") == 3  # choice, KDMA table, character
