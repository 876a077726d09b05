"""Issue 25's targets at 80x24, counted from the runs table on the store ``make demo`` builds (24 run folders of
8 scenes, seed 0): each test presses a task's exact keys with a Textual pilot, then reads the outcome off the screen
and checks the count against the target. The README's "Targets at 80x24" table quotes these keys.

How long the web UI takes to serve is a speed figure (benchmarks), not asserted here."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from align_track.demo.store import build_demo_store, compared, scenes_loaded, settle, wait_until
from align_track.schema import ATTR_PREDICTED_KDMA, ATTR_TRUE_KDMA, TAG_PATH
from align_track.tui.app import AlignTrackApp
from align_track.tui.models.runs import RunsModel
from align_track.tui.models.scenes import choice_texts, kdma_rows
from align_track.tui.screens.compare_scene import CompareSceneScreen
from tests.support.tui_fixtures import app_on, shortest_unique_part

pytestmark = pytest.mark.asyncio
SIZE = (80, 24)
OPEN_RUN, P3_TABLE, P3_SIDE_BY_SIDE, WEB_UI = 6, 3, 8, 2
"""The targets: keys to open a run by part of its folder, from an open run to P3's true-vs-predicted table, from
the filter to two runs' P3 justifications side by side, to the web UI's URL."""


@pytest.fixture(scope="module")
def make_demo_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The store ``make demo`` builds: 24 run folders of 8 scenes, seed 0 (27 runs: a multirun folder holds 4)."""
    return build_demo_store(tmp_path_factory.mktemp("key-counts-demo"), run_folders=24, scenes=8, seed=0)


def screen_lines(app: AlignTrackApp) -> list[str]:
    """The screen as the terminal shows it, line by line."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def table_columns(app: AlignTrackApp) -> list[str]:
    """Each column of the table on screen (cells between │ bars), its lines joined as they read, spaces made one."""
    cells: dict[int, list[str]] = {}
    for line in screen_lines(app):
        if "│" in line:
            for i, cell in enumerate(line.split("│")):
                cells.setdefault(i, []).append(cell.strip())
    return [re.sub(r"\s+", " ", " ".join(cells[i])) for i in sorted(cells)]


def typed(text: str) -> list[str]:
    """The keys that type ``text``."""
    return ["space" if c == " " else c for c in text]


def words(text: str, count: int) -> str:
    return " ".join(text.split()[:count])


# --------------------------------------------------------------------------- (a) open a run by part of its folder


def assert_open(app: AlignTrackApp, run) -> None:
    """The run's scenes are on screen: its folder's last part (the title cuts a long folder in the middle) and
    its first scene."""
    assert app.active_pane == "scenes" and app.scenes_pane.run_row.run_id == run.run_id
    lines = screen_lines(app)
    assert run.tags[TAG_PATH].rsplit("/", 1)[-1] in lines[1], lines[1]
    assert any(line.strip().startswith("scene P1") for line in lines), "\n".join(lines)


async def test_open_a_run_by_part_of_its_folder_in_six_keys(make_demo_store):
    """``/``, the shortest part of the folder that only this run's folder has (4 characters at most on this
    store), ``enter``: the run's scenes are open."""
    async with app_on(make_demo_store[0], SIZE) as (app, pilot):
        model = RunsModel.from_runs(app.snapshot.runs, states=app.snapshot.status)
        row = len(model.run_ids) // 2
        run = app.selection.run(model.run_ids[row])
        part = shortest_unique_part(model, row, run.tags[TAG_PATH])
        assert part and len(part) <= OPEN_RUN - 2, part
        keys = ["slash", *part, "enter"]
        await pilot.press(*keys)
        await wait_until(pilot, lambda: scenes_loaded(app), what="the run's scenes")
        await settle(pilot)
        assert_open(app, run)
        assert len(keys) <= OPEN_RUN


# --------------------------------------------------------------------------- (b) P3's true-vs-predicted table


async def test_p3_true_vs_predicted_table_in_three_keys_from_an_open_run(make_demo_store):
    """From the first run opened (its scenes P1 to P8): ``n n t``; the table's rows are on screen."""
    async with app_on(make_demo_store[0], SIZE) as (app, pilot):
        await pilot.press("enter")  # open the run: not counted ("from an open run")
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        await settle(pilot)
        pane = app.scenes_pane
        assert [s.scene_id for s in pane.scenes[:3]] == ["P1", "P2", "P3"]
        keys = ["n", "n", "t"]
        await pilot.press(*keys)
        await settle(pilot)
        p3 = pane.scenes[2]
        assert pane.current is p3
        screen = screen_lines(app)
        text = "\n".join(screen)
        assert "scene P3" in text and "KDMA values: true vs predicted" in text
        rows = kdma_rows(p3.attributes.get(ATTR_TRUE_KDMA), p3.attributes.get(ATTR_PREDICTED_KDMA), choice_texts(p3))
        assert rows
        for _, true_text, predicted_text in rows:
            assert true_text in text and predicted_text in text, (true_text, predicted_text, text)
        assert len(keys) <= P3_TABLE


# --------------------------------------------------------------------------- (c) P3 side by side


async def side_by_side_p3(app: AlignTrackApp, pilot, to_compare: list[str], to_p3: list[str]) -> None:
    """Press ``to_compare`` (ending in c), then ``to_p3`` (in Compare): both runs' P3 justifications on screen."""
    keys = to_compare + to_p3
    await pilot.press(*to_compare)
    await wait_until(pilot, lambda: compared(app), timeout=10, what="compare")
    await settle(pilot)
    pane = app.compare_pane
    assert len(pane.runs) == 2
    await pilot.press(*to_p3)
    await settle(pilot)
    assert isinstance(app.screen, CompareSceneScreen)
    i = pane.table.view[pane.table.cursor]
    assert pane.comparison.keys[i][1] == "P3"
    assert any(line.startswith("scene P3") for line in screen_lines(app))
    columns = table_columns(app)  # the labels' column, then one per run
    assert len(columns) >= 4, columns
    for scene, column in zip(pane.comparison.scenes[i], columns[2:], strict=False):
        assert scene is not None
        why = scene.outputs["action"]["justification"]
        assert words(why, 8) in column, (words(why, 8), column)
    assert len(keys) <= P3_SIDE_BY_SIDE


async def test_two_runs_p3_side_by_side_when_the_filter_leaves_just_them(make_demo_store):
    """The filter names the two runs (the comparative ADM across the temperature sweep): ``enter`` leaves the box,
    ``c`` with nothing marked compares the few runs the filter shows, ``j j`` to P3, ``enter``: 5 keys."""
    async with app_on(make_demo_store[0], SIZE) as (app, pilot):
        await pilot.press("slash", *typed("comp temp"))  # the filter: not counted
        assert len(app.runs_pane.table.view) == 2 and not app.runs_pane.marked_ids
        await side_by_side_p3(app, pilot, ["enter", "c"], ["j", "j", "enter"])


async def test_compare_opens_at_the_scene_being_read(make_demo_store):
    """Reading run A's P3 first, then comparing: Compare opens on P3, so ``enter`` shows it side by side
    (after the filter: ``enter`` ``enter`` open A, ``n n`` its P3, ``esc`` back, ``c``, ``enter``: 7 keys)."""
    async with app_on(make_demo_store[0], SIZE) as (app, pilot):
        await pilot.press("slash", *typed("comp temp"))
        await pilot.press("enter", "enter")
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        await settle(pilot)
        await pilot.press("n", "n")
        assert app.scenes_pane.current.scene_id == "P3"
        await side_by_side_p3(app, pilot, ["escape", "c"], ["enter"])


async def test_c_without_marks_still_asks_for_marks_when_the_filter_shows_many(make_demo_store):
    """Unfiltered (27 runs) or a filter showing more than four: ``c`` compares nothing, it asks for marks; a
    single mark is not mixed with the filter's runs (``u`` then ``c`` compares those)."""
    async with app_on(make_demo_store[0], SIZE) as (app, pilot):
        await pilot.press("c")
        await settle(pilot)
        assert app.active_pane == "runs" and not app.compare_pane.runs
        await pilot.press("slash", *"temperature", "enter", "c")
        await settle(pilot)
        assert app.active_pane == "runs" and not app.compare_pane.runs
        await pilot.press("space", "c")  # one mark is not two, and marks are never mixed with the filter's runs
        await settle(pilot)
        assert app.active_pane == "runs" and not app.compare_pane.runs
        await pilot.press("slash", "ctrl+u", *typed("comp temp"), "enter", "c")  # a run marked: marks come first
        await settle(pilot)
        assert app.active_pane == "runs" and not app.compare_pane.runs
        assert "1 run marked: mark another" in [n.message for n in app._notifications][-1]
        await pilot.press("u", "c")
        await wait_until(pilot, lambda: compared(app), timeout=10, what="compare")
        assert app.active_pane == "compare" and len(app.compare_pane.runs) == 2


# --------------------------------------------------------------------------- (d) the web UI's URL


@pytest.mark.server
async def test_the_web_ui_url_in_two_keys(make_demo_store):
    """``m`` starts the web UI, ``6`` shows the MLflow pane: the URL to open, which answers."""
    keys = ["m", "6"]
    async with app_on(make_demo_store[0], SIZE) as (app, pilot):
        await pilot.press(*keys)
        await wait_until(pilot, lambda: not app.ui_busy, timeout=120, what="web UI start")
        server = app.ui_server
        assert server is not None and server.alive(), app.mlflow_pane.state
        await pilot.pause()
        assert app.active_pane == "mlflow"
        assert f"Open {server.url} in a browser." in "\n".join(screen_lines(app))
        with urllib.request.urlopen(server.url + "/health", timeout=5) as resp:
            assert resp.status == 200
        assert len(keys) <= WEB_UI
        await pilot.press("q")
    assert not app.web_ui.server
