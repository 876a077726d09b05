"""Target of issue 25 at 80x24 on the demo store (``make demo``'s): open a run by part of its folder name in 6 keys
or fewer from the runs table, counted by driving the keys (README, The terminal UI)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from align_track.demo.store import build_demo_store, scenes_loaded, settle, wait_until
from align_track.schema import TAG_PATH
from align_track.tui.models.runs import RunsModel
from tests.support.tui_fixtures import app_on, shortest_unique_part

pytestmark = pytest.mark.asyncio
TARGET = 6


@pytest.fixture(scope="module")
def make_demo_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The store ``make demo`` builds: 24 run folders of 8 scenes, seed 0."""
    return build_demo_store(tmp_path_factory.mktemp("key-count-demo"), run_folders=24, scenes=8, seed=0)


async def test_open_a_run_by_part_of_its_folder_in_six_keys(make_demo_store):
    async with app_on(make_demo_store[0], (80, 24)) as (app, pilot):
        pane = app.runs_pane
        model = RunsModel.from_runs(app.snapshot.runs, states=app.snapshot.status)
        runs = {r.run_id: r for r in app.snapshot.runs}
        folders = Counter(r.tags[TAG_PATH] for r in runs.values())
        counts = {}
        for row, run_id in enumerate(model.run_ids):
            if folders[runs[run_id].tags[TAG_PATH]] > 1:
                continue  # a folder with runs for several targets: no part of the folder tells them apart
            part = shortest_unique_part(model, row, runs[run_id].tags[TAG_PATH])
            counts[run_id] = (part, 1 + len(part) + 1)  # "/", the part, enter
        assert len(counts) >= 20 and max(n for _, n in counts.values()) <= TARGET, counts

        for run_id in list(counts)[::6]:  # drive the keys for a few of them
            part, _ = counts[run_id]
            keys = ["slash", *part, "enter"]
            await pilot.press(*keys)
            await wait_until(pilot, lambda: scenes_loaded(app), what="the run's scenes")
            assert len(keys) <= TARGET
            assert app.active_pane == "scenes" and app.scenes_pane.run_row.run_id == run_id
            await pilot.press("escape")  # back to the runs; the filter is still there
            assert app.active_pane == "runs" and pane.filter_input.value == part
            await pilot.press("slash", "ctrl+u", "escape")
            await settle(pilot)
            assert len(pane.table.view) == len(runs)


async def test_enter_with_several_matches_goes_to_the_table_and_opens_nothing(make_demo_store):
    async with app_on(make_demo_store[0], (80, 24)) as (app, pilot):
        await pilot.press("slash", *"pipeline", "enter")
        assert len(app.runs_pane.table.view) > 1
        assert app.active_pane == "runs" and app.focused is app.runs_pane.table
        await pilot.press("slash", "ctrl+u", *"no-such-folder", "enter")
        assert not app.runs_pane.table.view and app.active_pane == "runs"
