"""Issue 25 item 5: Compare matches scenes by (scenario, scene), as the Sweep pane's scene index does, and shows a
scene one run never met as missing (—), counted apart from the agreement, never as a difference (≠).

Real ingest into SQLite, real Textual pilot.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from align_track.demo.store import compared, wait_until
from align_track.ingest.pipeline import ingest
from align_track.query.scene_index import build_index
from align_track.tui.panes.compare import DIFF, MISSING, SAME
from tests.support.factory import config, write_run_folder
from tests.support.tui_fixtures import app_on, choosing_scene, static_text

pytestmark = pytest.mark.asyncio


def run_folder(path: Path, adm: str, scenario: str, choices: dict[str, int]) -> None:
    scenes = [choosing_scene(sid, c, scenario=scenario) for sid, c in choices.items()]
    write_run_folder(path, scenes=scenes, cfg=config(adm=adm))


@pytest.fixture
def store(tmp_path: Path) -> str:
    exps = tmp_path / "exps"
    # x and y: the same scene ids and the same choices, in different scenarios: no scene in common
    run_folder(exps / "x", "adm_x", "June2025-AF-eval", {"S0": 0, "S1": 1, "S2": 0})
    run_folder(exps / "y", "adm_y", "June2025-MF-eval", {"S0": 0, "S1": 1, "S2": 0})
    # z: x's scenario without S1; S0 as x chose, S2 not
    run_folder(exps / "z", "adm_z", "June2025-AF-eval", {"S0": 0, "S2": 1})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        assert not ingest(exps, uri).failures
    return uri


async def compare_runs(app, pilot, *adms: str):
    await pilot.press("1", "escape")
    for adm in adms:
        await pilot.press("slash", "ctrl+u", *adm, "down", "space")  # down: to the table (enter opens a lone match)
    await pilot.press("c")
    await wait_until(pilot, lambda: compared(app) and len(app.compare_pane.runs) == len(adms), what="compare")
    pane = app.compare_pane
    return pane, str(pane.query_one("#compare-summary").render())


def marks(pane) -> dict[tuple[str, str], str]:
    return {pane.comparison.keys[i]: pane.table.rows[i][0] for i in range(len(pane.comparison.keys))}


async def test_scenes_of_different_scenarios_sharing_ids_are_not_matched(store):
    async with app_on(store, (60, 20)) as (app, pilot):
        pane, summary = await compare_runs(app, pilot, "adm_x", "adm_y")
        assert sorted(pane.comparison.keys) == sorted((sc, s) for sc in ("June2025-AF-eval", "June2025-MF-eval")
                                                      for s in ("S0", "S1", "S2"))
        assert set(marks(pane).values()) == {MISSING}  # each met by one run only: missing, not ≠
        assert summary == "by scene (o) · no scene in common · 6 scenes missing from some run (—)"
        assert "0 of 0" not in summary
        label = pane.query_one("#compare-summary")  # whole at 60 columns: wrapped, not cut
        shown = static_text(label).splitlines()
        assert len(shown) <= label.content_size.height and " ".join(" ".join(shown).split()) == summary, shown
        # the same keys the Sweep pane's scene index files these runs' traces under
        index = build_index(app.snapshot.uri, app.snapshot.experiment_id, pane.runs)
        assert set(index.by_key) == set(pane.comparison.keys)


async def test_a_scene_one_run_lacks_is_missing_and_left_out_of_the_agreement(store):
    async with app_on(store, (100, 30)) as (app, pilot):
        pane, summary = await compare_runs(app, pilot, "adm_x", "adm_z")
        af = "June2025-AF-eval"
        assert marks(pane) == {(af, "S0"): SAME, (af, "S1"): MISSING, (af, "S2"): DIFF}
        assert summary == "by scene (o) · 1 of 2 scenes agree · 1 scene missing from some run (—)"
        s1 = pane.comparison.keys.index((af, "S1"))
        assert MISSING in pane.table.rows[s1][3:]  # z's cell: missing
        await pilot.press("d")  # differences only: S2, not the missing S1
        assert [pane.comparison.keys[i] for i in pane.table.view] == [(af, "S2")]
        await pilot.press("d", "o")  # by disagreement: the difference, then the missing scene, then agreement
        assert [pane.comparison.keys[i][1] for i in pane.table.view] == ["S2", "S1", "S0"]
        await pilot.press("j", "enter")  # S1 side by side: z's column says it is missing
        await pilot.pause()
        shown = " ".join(static_text(app.screen.query_one("#compare-scene"), 100).split())
        assert "scene S1" in shown and "never met this scene" in shown, shown
