"""Issue 25 item 14: 60x20 is a real tmux split; every pane is reachable by name and nothing essential is cut.

Driven through Textual's pilot on the demo store (real ingest, real SQLite).
"""

from __future__ import annotations

import pytest

from align_track.demo.store import settle, wait_until
from align_track.schema import RunSummary
from align_track.tui.app import PANES
from align_track.tui.widgets.panebar import PaneBar
from tests.support.tui_fixtures import app_on, static_text, table_text

pytestmark = pytest.mark.asyncio

SMALL = (60, 20)
SCENE_LINES = 8
"""Lines of the scene's text at 60x20 (pane bar, status and three lines of keys leave the pane 15): the scene's
heading and six lines of its state, where a 6-row list (and a status wrapped onto a second row by a long store
path) left it 5 in all, the state its first three lines. The list keeps 4 scenes (n/p walk the rest). Zoomed
(z), the list and bars give way."""
ZOOMED_LINES = 14


async def test_the_pane_bar_names_every_pane_at_60_columns(demo_store):
    async with app_on(demo_store[0], SMALL) as (app, pilot):
        bar = app.query_one(PaneBar)
        for pane_id, cls in PANES:
            await pilot.press("escape")  # out of any text box (the Ingest path) first
            await pilot.press(cls.KEY)
            await settle(pilot)
            assert app.active_pane == pane_id
            shown = bar.render().plain[:bar.size.width]
            assert f" {cls.KEY} {cls.TITLE} " in shown, shown  # the pane shown: its full title
            for _, other in PANES:  # the others: title or its deliberate short form, never a bare number
                assert f" {other.KEY} {other.TITLE}" in shown or f" {other.KEY} {other.SHORT}" in shown, shown


async def test_the_runs_table_and_details_fit_60x20(demo_store):
    async with app_on(demo_store[0], SMALL) as (app, pilot):
        table = app.query_one("#runs-table")
        header = table_text(table).splitlines()[0]
        for label in ("ADM", "target", "score", "avg s", "scenes"):  # whole words, not 'scen'
            assert f" {label} " in f" {header} ", header
        details = app.query_one("#runs-details")
        lines = static_text(details).rstrip("\n").splitlines()
        assert len(lines) <= details.content_size.height, (lines, details.content_size)  # nothing below the strip
        text = "\n".join(lines)
        status = app.query_one("#status")  # a store path longer than the line: cut in the middle, one row
        line = status.render().plain
        assert status.size.height == 1 and len(line) <= status.content_size.width, line
        assert "align-system-experiments" in line and demo_store[0].rsplit("/", 1)[1] in line
        assert "…" in line and demo_store[0].split(":///", 1)[1] not in line  # the path did need cutting
        path = RunSummary.of(app.selection.run(app.selection.current_id)).path
        assert path and f"folder {path}" in text.replace("\n", "") and "\nstate " in text, text


async def test_the_scene_text_gets_a_useful_number_of_lines_at_60x20(demo_store):
    async with app_on(demo_store[0], SMALL) as (app, pilot):
        await pilot.press("enter")
        pane = app.scenes_pane
        await wait_until(pilot, lambda: pane.current is not None, what="scenes")
        await settle(pilot)
        box = pane.query_one("#scene-detail-box")
        assert box.scrollable_content_region.height >= SCENE_LINES, box.scrollable_content_region
        assert pane.table.size.height >= 4  # the list still shows a few scenes (n/p walk the rest)
        await pilot.press("z")
        await settle(pilot)
        assert box.scrollable_content_region.height >= ZOOMED_LINES, box.scrollable_content_region


@pytest.mark.parametrize("size", [(80, 24), SMALL])
async def test_the_runs_table_keeps_its_height_as_the_cursor_moves(demo_store, size):
    """The details strip grows for a run whose fields need more lines; it shrank back for the next one, so the
    table jumped a row up and down as j moved through the runs (and ctrl+d then ctrl+u landed a row off)."""
    async with app_on(demo_store[0], size) as (app, pilot):
        table = app.runs_pane.table
        heights = []
        for _ in range(len(table.view)):
            await pilot.press("j")
            await pilot.pause()
            heights.append(table.size.height)
        assert heights == sorted(heights, reverse=True), heights  # it may shrink as the strip grows, never jump back
        assert len(set(heights)) <= 3


async def test_the_analysis_legends_fit_60x20_whole(demo_store):
    """The curve's legend took 7 of the pane's rows at 60x20 (the plot kept 2) and still lost its 'left out' notes;
    the hit-rate notes were cut too. Whole now, and the plot keeps its rows."""
    from align_track.tui.panes.analysis import AnalysisPane

    async with app_on(demo_store[0], SMALL) as (app, pilot):
        await pilot.press("7")
        pane = app.query_one(AnalysisPane)
        await wait_until(pilot, lambda: pane.ready, what="plots mounted")
        await settle(pilot)
        for view, legend_id in (("a", "#curve-legend"), ("o", "#hits-legend")):
            await pilot.press(view)
            await settle(pilot)
            legend = pane.query_one(legend_id)
            lines = static_text(legend).rstrip("\n").splitlines()
            text = " ".join(" ".join(lines).split())
            assert "left out" in text and "(no scalar target value)" in text, lines
            assert len(lines) <= legend.content_size.height, (lines, legend.content_size)
        await pilot.press("a")
        await settle(pilot)
        assert pane.query_one("#curve-plot").size.height >= 8  # axes, labels and a few rows of points


async def test_the_hit_rate_table_refits_when_the_split_is_widened(demo_store):
    """Drawn at 60 columns, the target names kept their 60-column cuts when the terminal grew to 200."""
    from textual.widgets import DataTable

    from align_track.tui.panes.analysis import AnalysisPane

    async with app_on(demo_store[0], SMALL) as (app, pilot):
        await pilot.press("7")
        pane = app.query_one(AnalysisPane)
        await wait_until(pilot, lambda: pane.ready, what="plots mounted")
        await pilot.press("o", "right", "down")
        table = pane.query_one("#analysis-hits", DataTable)
        where = table.cursor_coordinate
        target = pane.hit_rates.targets[where.row - 1]
        assert "…" in str(table.get_row_at(where.row)[0]) or len(target) < 20
        await pilot.resize_terminal(200, 50)
        await settle(pilot)
        await wait_until(pilot, lambda: "…" not in str(table.get_row_at(where.row)[0]), what="names refitted")
        assert target.endswith(str(table.get_row_at(where.row)[0])) and table.cursor_coordinate == where
