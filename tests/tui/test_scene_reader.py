"""The Scenes pane's reader (issue 25): full text drawn only where it is read, whatever the scene's size, and the
reader kept at its section (state, choices, justification, KDMA table) from one scene to the next."""

from __future__ import annotations

import os
from typing import Any

import pytest
from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from align_track.demo.store import scenes_loaded, settle, wait_until
from align_track.schema import ATTR_PREDICTED_KDMA, ATTR_TRUE_KDMA
from align_track.tui.keys import key_actions
from align_track.tui.models.scenes import choice_texts, kdma_rows
from align_track.tui.panes.scenes import ScenesPane
from align_track.tui.widgets.long_text import PIECE, LongText, cuts
from align_track.tui.widgets.scene_reader import SceneReader, document_text
from tests.support.huge_scene import HUGE_SCENE, build_huge_store
from tests.support.tui_fixtures import app_on

pytestmark = pytest.mark.asyncio
SIZE = (80, 24)
LARGEST_DRAW = 50_000
"""Characters one call to the console's render_lines may be given: far above any table or cut text a scene
holds, far below the 12 MB that froze the app when drawn in one call."""


@pytest.fixture(scope="module")
def huge_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    return build_huge_store(tmp_path_factory.mktemp("huge-scene"))


def characters(renderable: Any) -> int:
    """The characters a Rich renderable holds (text, highlighted code, groups and tables of them)."""
    if isinstance(renderable, str):
        return len(renderable)
    if isinstance(renderable, Text):
        return len(renderable.plain)
    if isinstance(renderable, Syntax):
        return len(renderable.code)
    if isinstance(renderable, Group):
        return sum(characters(r) for r in renderable.renderables)
    if isinstance(renderable, Table):
        return sum(characters(cell) for column in renderable.columns for cell in column._cells)
    return 0


def spy_on_drawing(app) -> list[int]:
    """Every call to the console's render_lines records the characters it was given (the call still happens);
    one over LARGEST_DRAW fails at once, instead of freezing the test for minutes as it froze the app."""
    sizes: list[int] = []
    draw = app.console.render_lines

    def render_lines(renderable, *args, **kwargs):
        sizes.append(characters(renderable))
        assert sizes[-1] <= LARGEST_DRAW, f"one draw of {sizes[-1]:,} characters"
        return draw(renderable, *args, **kwargs)

    app.console.render_lines = render_lines
    return sizes


def lines(reader: SceneReader) -> list[str]:
    return document_text(reader).splitlines()


def the_long_text(reader: SceneReader, size: int) -> LongText:
    (found,) = [t for t in reader.long_texts if len(t) == size]
    return found


async def test_a_text_is_cut_into_pieces_after_line_breaks_or_spaces_and_none_is_lost():
    text = ("word " * 5000) + "\n\n" + ("x" * 20_000) + "\nend"
    pieces = cuts(text, 1000)
    assert all(end - start <= 1000 for start, end in pieces)
    rebuilt = ""
    for (start, end), (next_start, _) in zip(pieces, [*pieces[1:], (len(text), 0)], strict=True):
        rebuilt += text[start:end] + text[end:next_start]  # the dropped break (or nothing, inside a long word)
        assert text[end:next_start] in ("", " ", "\n")
    assert rebuilt == text
    assert cuts("", 1000) == [(0, 0)]


async def test_full_text_of_a_12mb_justification_draws_a_screen_and_keys_after_it_are_handled(huge_store,
                                                                                                 monkeypatch):
    """Issue 25: `f` on a scene with a 12 MB justification froze the app for four minutes (the whole text wrapped
    in one draw), and passing that scene again with `f` still on took 313 s."""
    uri, justification = huge_store
    async with app_on(uri, SIZE) as (app, pilot):
        drawn = spy_on_drawing(app)
        import threading

        from align_track.tui.panes import scenes as scenes_module

        read_in: list[str] = []
        real_raw_json = scenes_module.raw_json

        def raw_json(scene):  # the real one, noting the thread it runs in
            read_in.append(threading.current_thread().name)
            return real_raw_json(scene)

        monkeypatch.setattr(scenes_module, "raw_json", raw_json)
        await pilot.press("enter")
        await wait_until(pilot, lambda: scenes_loaded(app), timeout=60, what="scenes")
        pane = app.scenes_pane
        reader = pane.reader
        await pilot.press("n", "n", "w")
        assert pane.current.scene_id == HUGE_SCENE
        await settle(pilot)
        assert any("press f for the full text" in b.plain for b in reader.document.blocks if isinstance(b, Text))

        await pilot.press("f", "f", "f")  # on, off, on: each redraws the scene
        await settle(pilot)
        screen = lines(reader)
        assert screen[0].startswith(f"scene {HUGE_SCENE}") and "full text (f: cut)" in screen[0]  # f says it is on
        assert screen[1].strip() == "Justification" and screen[2].startswith(justification[:20])
        text = the_long_text(reader, len(justification))
        assert text.wrapped <= 2 * PIECE  # a screen of it wrapped, not 12 MB
        assert reader.virtual_size.height > len(justification) // 80  # yet every line of it can be scrolled to

        await pilot.press("G")  # the table has the focus: its last scene; back, and the text to its end
        await pilot.press("g", "n", "n")
        assert pane.current.scene_id == HUGE_SCENE
        reader.action_scroll_edge(1)
        await settle(pilot)
        screen = document_text(reader)
        assert "KDMA values: true vs predicted" in screen and "Timing:" in screen
        assert justification[-12:] in screen.replace("\n", " ")
        text = the_long_text(reader, len(justification))
        assert text.wrapped <= 3 * PIECE

        before = lines(reader)
        await pilot.press("u")  # half a page up, into lines whose height was only estimated: nothing jumps
        await settle(pilot)
        after = lines(reader)
        half = reader.scrollable_content_region.height // 2
        assert after[1 + half:] == before[1:len(after) - half]

        await pilot.press("n")  # f stays on, and says so; the next scene opens at once at the same section
        assert pane.current.scene_id != HUGE_SCENE
        await settle(pilot)
        assert "full text (f: cut)" in lines(reader)[0]
        await pilot.press("p", "r")  # the raw JSON in full: highlighted piece by piece too
        await settle(pilot)
        assert pane.raw and "raw JSON" in lines(reader)[0] and '"trace_id"' in document_text(reader)
        assert read_in and threading.main_thread().name not in read_in  # 12 MB read and serialised off the UI
        assert max(t.wrapped for t in reader.long_texts) <= 2 * PIECE
        await pilot.press("G")
        assert pane.current.scene_id != HUGE_SCENE  # keys after it are still handled
    assert max(drawn) <= LARGEST_DRAW


async def test_p3_true_vs_predicted_table_is_three_keys_from_an_open_run(demo_store):
    """Issue 25's target at 80x24: from an open run to scene P3's true-vs-predicted table in 3 keys (n n t)."""
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("enter")
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        await settle(pilot)
        pane = app.scenes_pane
        assert [s.scene_id for s in pane.scenes[:3]] == ["P1", "P2", "P3"] and pane.current is pane.scenes[0]
        keys = ["n", "n", "t"]
        await pilot.press(*keys)
        await settle(pilot)
        assert len(keys) == 3
        p3 = pane.scenes[2]
        screen = lines(pane.reader)
        assert screen[0].startswith("scene P3")
        table = "\n".join(screen[1:])
        assert "KDMA values: true vs predicted" in table
        rows = kdma_rows(p3.attributes.get(ATTR_TRUE_KDMA), p3.attributes.get(ATTR_PREDICTED_KDMA), choice_texts(p3))
        assert rows
        for _, true_text, predicted_text in rows:
            assert true_text in table and predicted_text in table


async def test_the_reader_stays_at_its_section_from_scene_to_scene(demo_store):
    """Issue 25: the scene text went back to its top on n/p, so reading the KDMA table across scenes cost five
    `d` a scene. Now n/p (and the cursor) keep the section, whether reached by its key or by scrolling."""
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("enter")
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        await settle(pilot)
        pane = app.scenes_pane
        reader = pane.reader

        def top() -> str:
            return lines(reader)[1].strip()

        assert top() == "State"
        await pilot.press("w")
        assert top() == "Justification"
        for key in ("n", "n", "p"):
            await pilot.press(key)
            await settle(pilot)
            assert top() == "Justification", key
        await pilot.press("s")
        assert top() == "State"
        await pilot.press("c", "n")
        await settle(pilot)
        assert top().startswith("Choices")
        await pilot.press("t", "n", "down")  # the cursor keys of the scene list too
        await settle(pilot)
        assert pane.current is pane.scenes[4]
        assert "KDMA values: true vs predicted" in document_text(reader)
        assert reader.section_in_view() == "kdma"
        await pilot.press("r", "r")  # the raw JSON and back: still at the table
        await settle(pilot)
        assert "KDMA values: true vs predicted" in document_text(reader)

        await pilot.press("s")  # scrolled by hand into the choices: the next scene opens at its choices
        for _ in range(10):
            if reader.section_in_view() == "choices":
                break
            await pilot.press("d")
        assert reader.section_in_view() == "choices"
        await pilot.press("n")
        await settle(pilot)
        assert top().startswith("Choices")

        await pilot.press("escape", "enter")  # a run opens at its top
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        await settle(pilot)
        assert top() == "State"


async def test_every_section_key_is_listed_with_what_it_does():
    listed = {a.key: a for a in key_actions([], [ScenesPane])}
    for key, section in (("s", "state"), ("c", "choices"), ("w", "justification"), ("t", "kdma")):
        assert listed[key].action == f"section('{section}')" and listed[key].description and listed[key].help


async def test_a_theme_change_restyles_the_long_texts_too(demo_store):
    """The long texts' lines are kept once drawn: a new theme must draw them again, as it does the tables."""
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("enter")
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        await settle(pilot)
        reader = app.scenes_pane.reader
        state = reader.section_line("state") + 2  # the state's first line (+1 for the header, +1 past the heading)
        before = reader.render_line(state)
        assert before.text.strip() and reader.long_texts[0].wrapped
        app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
        await settle(pilot)
        after = reader.render_line(state)
        assert after.text == before.text
        assert {s.style.bgcolor for s in after if s.style} != {s.style.bgcolor for s in before if s.style}


async def test_side_by_side_says_where_a_cut_justification_is_read_whole():
    """Compare and Sweep's side by side cut a justification at TEXT_CAP; `f` does nothing there, so the hint
    names the Scenes pane, where `f` shows it whole."""
    from align_track.tui.models.scenes import Scene
    from align_track.tui.screens.compare_scene import side_by_side
    from align_track.tui.widgets.scene_view import TEXT_CAP

    scene = Scene("t1", "P3", "June2025-MF-eval", 2, 1.0, 0, "Treat Patient A",
                  outputs={"action": {"justification": "why " * TEXT_CAP}})
    from rich.console import Console

    group = side_by_side(scene.key, ["A"], [scene], set())
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(group)
    shown = console.export_text().replace("\n", " ")
    assert "press f" not in shown and "Scenes (2), then f" in " ".join(shown.split())


async def test_paging_through_a_long_text_keeps_a_bounded_number_of_drawn_pieces():
    """Reading all of a 12 MB text must not keep all of it drawn; heights once known stay exact."""
    from textual.strip import Strip

    from align_track.tui.widgets.long_text import KEPT_PIECES
    from tests.support.huge_scene import huge_justification

    text = LongText(huge_justification(3 * KEPT_PIECES * PIECE))
    calls = []

    def draw(renderable, width):
        calls.append(width)
        return [Strip.blank(width)] * 3  # three lines a piece: every estimate proves wrong

    y = 0
    while (line := text.line(y, 80, draw)) is not None:
        assert line.cell_length == 80
        y += 1
    assert y == 3 * len(text.pieces) == text.height(80)
    assert len(text._lines) <= KEPT_PIECES
    assert text.line(0, 80, draw) is not None and len(calls) == len(text.pieces) + 1  # the first, drawn again
    assert text.height(80) == y


async def test_a_resize_keeps_the_reader_where_it_was(demo_store):
    """A new width rewraps the text; the view stays at the part that was read, not at a line number."""
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("enter")
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        await settle(pilot)
        reader = app.scenes_pane.reader
        await pilot.press("z", "c")  # zoomed: the list's height does not change with the terminal's
        assert lines(reader)[1].strip() == "Choices (▶ chosen)"
        for size in ((60, 20), (100, 30), (60, 20)):
            await pilot.resize_terminal(*size)
            await settle(pilot)
            assert [line.strip() for line in lines(reader)[1:3]].count("Choices (▶ chosen)") == 1, size


async def test_the_section_keys_take_one_item_of_the_key_bar(demo_store):
    """Four keys, one item ('s/c/w/t Section'): the key bar stays at two lines at 80 columns, so the scene text
    loses no line to them."""
    from align_track.tui.widgets.keybar import KeyBar

    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("enter")
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        await settle(pilot)
        bar = app.query_one("#keys", KeyBar)
        items = bar.items()
        assert ("s/c/w/t", "Section") in items
        assert not {"State", "Choices", "Why", "KDMA"} & {label for _, label in items}
        assert len(bar.lines(80)) == 2 and bar.size.height == 2
