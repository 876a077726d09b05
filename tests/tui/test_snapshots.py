"""Snapshots of every pane at 60x20 (a tmux split), 80x24, 120x40 and 200x50 (pytest-textual-snapshot; update
with --snapshot-update).

Deterministic by construction: a fixed demo seed, start times pinned from the data, times shown
in UTC, paths relative to the store's folder, cursors that do not blink.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from align_track.demo.store import compared, loaded, scenes_loaded, settle, swept, wait_until
from align_track.tui.app import AlignTrackApp
from align_track.tui.panes.analysis import AnalysisPane

SIZES = {"60x20": (60, 20), "80x24": (80, 24), "120x40": (120, 40), "200x50": (200, 50)}


def _ready(app: AlignTrackApp, pane: str):
    return {
        "scenes": lambda: scenes_loaded(app),
        "scene-zoom": lambda: scenes_loaded(app),
        "compare": lambda: compared(app),
        "compare-scene": lambda: compared(app),
        "report": lambda: app.report_pane.pivot is not None,
        "analysis": lambda: app.query_one(AnalysisPane).ready,
        "sweep": lambda: swept(app),
        "sweep-scene": lambda: swept(app),
    }.get(pane, lambda: True)


KEYS = {
    "runs": ["slash", *"merit", "enter", "s", "s", "s", "S", "home", "space"],
    "scenes": ["enter", "n", "n"],
    "scene-zoom": ["enter", "n"],
    "compare": ["slash", *"merit-0.5", "enter", "space", "space", "c"],
    "compare-scene": ["slash", *"merit-0.5", "enter", "space", "space", "c"],
    "ingest": ["4", "escape"],
    "report": ["5"],
    "mlflow": ["6"],
    "help": ["question_mark"],
    "analysis": ["7"],
    "sweep": ["8", "s", "s", "s", "down"],
    "sweep-scene": ["8", "tab"],
}
THEN = {"scene-zoom": ["z"], "compare-scene": ["enter"], "sweep-scene": ["enter"]}
"""Keys pressed once the pane is ready (zoom the loaded scene, open the compared scene side by side)."""


@pytest.fixture
def in_store_dir(demo_store, monkeypatch: pytest.MonkeyPatch, utc) -> tuple[str, str]:
    """Run from the store's folder so the status line and the ingest path show no temp dir."""
    uri, exps = demo_store
    monkeypatch.chdir(Path(exps).parent)
    return uri, "exps"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("pane", KEYS)
def test_pane(snap_compare, in_store_dir, pane: str, size: str) -> None:
    uri, exps = in_store_dir
    app = AlignTrackApp(uri, experiments_dir=exps)

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: loaded(app), what="runs")
        await settle(pilot)
        for box in app.query(Input):
            box.cursor_blink = False
        await pilot.press(*KEYS[pane])
        await wait_until(pilot, _ready(app, pane), what=pane)
        await settle(pilot)
        if pane in THEN:
            await pilot.press(*THEN[pane])
            await settle(pilot)

    assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)


def test_runs_in_16_colours(snap_compare, in_store_dir) -> None:
    uri, exps = in_store_dir
    app = AlignTrackApp(uri, experiments_dir=exps, ansi=True)

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: loaded(app), what="runs")
        await settle(pilot)
        await pilot.press("space", "space")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_ingest_in_16_colours(snap_compare, in_store_dir) -> None:
    """The force checkbox and the focused path box stand out with only the terminal's 16 colours."""
    uri, exps = in_store_dir
    app = AlignTrackApp(uri, experiments_dir=exps, ansi=True)

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: loaded(app), what="runs")
        await settle(pilot)
        for box in app.query(Input):
            box.cursor_blink = False
        await pilot.press("4", "e")  # the path box focused: it must stand out
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
