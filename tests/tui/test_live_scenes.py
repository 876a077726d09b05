"""An open scene view of a running run grows as scenes land (issue 13): a real watcher appends traces to a
real SQLite store while the TUI shows the run; the new scene appears without a key, the cursor stays on its
scene, the title says how far the run is, and when the run finishes the view says so (timed scenes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from align_track.demo.store import loaded, scenes_loaded, settle, wait_until
from align_track.ingest.watch import Watcher
from align_track.store import spans_reader
from align_track.tui.app import AlignTrackApp
from tests.support import live_writer as lw
from tests.support.tui_fixtures import static_text

SIZE = (100, 30)


async def _open_live_run(tmp_path: Path, pilot, app: AlignTrackApp) -> None:
    await wait_until(pilot, lambda: loaded(app), what="runs")
    await settle(pilot)
    assert list(app.snapshot.status.values()) == ["running"]
    await pilot.press("enter")  # the running run is listed first
    await wait_until(pilot, lambda: scenes_loaded(app) and len(app.scenes_pane.scenes) == 2, what="scenes")
    await settle(pilot)


@pytest.mark.asyncio
@pytest.mark.parametrize("reader", ["sql", "mlflow"])
async def test_new_scenes_of_a_running_run_appear_and_the_cursor_stays(tmp_path: Path, reader: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if reader == "mlflow":  # the path http stores take: MLflow's search_traces with a timestamp filter
        monkeypatch.setattr(spans_reader, "supported", lambda uri: False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    folder = lw.start(tmp_path / "exp" / "sweep" / "job0")
    lw.write_scenes(folder, 2)
    watcher = Watcher(tmp_path / "exp", uri, stall_after=3600)
    await asyncio.to_thread(watcher.poll)

    app = AlignTrackApp(uri, refresh=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await _open_live_run(tmp_path, pilot, app)
        pane = app.scenes_pane
        title = static_text(pane.query_one("#scenes-title"))
        assert "2 scenes so far, running" in title
        await pilot.press("j")  # the user reads the second scene
        assert pane.current.scene_id == "S1"
        await pilot.press("d")  # and has scrolled its text down
        detail_top = pane.query_one("#scene-detail-box").scroll_y
        list_top = pane.table.scroll_y
        assert detail_top > 0

        lw.write_scenes(folder, 3)
        await asyncio.to_thread(watcher.poll)
        await wait_until(pilot, lambda: len(pane.scenes) == 3, timeout=30, what="the new scene")
        await settle(pilot)
        assert [s.scene_id for s in pane.scenes] == ["S0", "S1", "S2"]
        assert pane.table.cursor == 1 and pane.current.scene_id == "S1"  # no key pressed, cursor unchanged
        assert pane.query_one("#scene-detail-box").scroll_y == detail_top
        assert pane.table.scroll_y == list_top
        assert "3 scenes so far, running" in static_text(pane.query_one("#scenes-title"))
        assert "2 of 3" in static_text(pane.query_one("#scene-detail-box"))
        assert len(pane.table.rows) == 3

        lw.finish(folder, 3)
        await asyncio.to_thread(watcher.poll)
        await wait_until(pilot, lambda: not pane.live and not pane._live_reading, timeout=30, what="the finish")
        await settle(pilot)
        title = static_text(pane.query_one("#scenes-title"))
        assert "3 scenes" in title and "so far" not in title
        assert pane.current.scene_id == "S1"
        assert [s.seconds for s in pane.scenes] == [1.0, 1.5, 2.0]  # timing.json's times, read at the finish


@pytest.mark.asyncio
async def test_a_tui_opened_before_the_store_exists_shows_the_run_once_a_watcher_creates_it(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    app = AlignTrackApp(uri, refresh=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status.state == "no store yet", what="the empty state")
        folder = lw.start(tmp_path / "exp" / "job0")
        lw.write_scenes(folder, 1)
        await asyncio.to_thread(Watcher(tmp_path / "exp", uri, stall_after=3600).poll)
        await wait_until(pilot, lambda: app.snapshot is not None and len(app.snapshot.runs) == 1, timeout=30,
                         what="the watcher's run, without ctrl+r")
        assert list(app.snapshot.status.values()) == ["running"]
