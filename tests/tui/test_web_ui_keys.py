"""The web UI from the runs table at 80x24 (issue 25's target: its URL in 2 keys, serving soon after), driven by
the keys a user presses, against a real ``mlflow server`` subprocess. How long it takes to serve is measured in
``tests/benchmarks/bench_web_ui.py``, not asserted here."""

from __future__ import annotations

import urllib.request

import pytest

from align_track.demo.store import wait_until
from align_track.tui.app import AlignTrackApp
from tests.support.tui_fixtures import app_on

pytestmark = [pytest.mark.asyncio, pytest.mark.server]


def screen_lines(app: AlignTrackApp) -> list[str]:
    """The screen as the terminal shows it, line by line."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


async def serving(app: AlignTrackApp, pilot) -> str:
    await wait_until(pilot, lambda: not app.ui_busy, timeout=120, what="web UI start")
    server = app.ui_server
    assert server is not None and server.alive(), app.mlflow_pane.state
    with urllib.request.urlopen(server.url + "/health", timeout=5) as resp:
        assert resp.status == 200
    return server.url


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_m_on_the_runs_table_shows_the_whole_url_in_the_status_line(demo_store, size) -> None:
    """The URL is what ``m`` is for: the status line used to end in ``│ web UI`` at 80 columns, the URL cut off
    behind the store's name. The store's name now gives way."""
    async with app_on(demo_store[0], size) as (app, pilot):
        await pilot.press("m")
        url = await serving(app, pilot)
        await pilot.pause()
        status = screen_lines(app)[-1 - app.query_one("#keys").size.height]
        assert f"web UI {url}" in status, status
        assert app.active_pane == "runs"  # the table stays where it was


async def test_the_web_ui_url_and_the_highlighted_runs_page_in_two_keys(demo_store) -> None:
    """Counted from the runs table at 80x24: ``m`` starts the server (its URL in the status line once it
    serves), ``6`` shows the MLflow pane: the URL, the highlighted run's page and, over SSH, the tunnel."""
    keys = ["m", "6"]
    async with app_on(demo_store[0], (80, 24)) as (app, pilot):
        run_id = app.selection.current_id
        await pilot.press(keys[0])
        url = await serving(app, pilot)
        await pilot.press(*keys[1:])
        await pilot.pause()
        screen = "\n".join(screen_lines(app))
        assert f"Open {url} in a browser." in screen, screen
        assert f"{url}/#/experiments/" in screen and run_id[:20] in screen, screen
        with urllib.request.urlopen(app.selection.current_run_url(), timeout=5) as resp:
            assert resp.status == 200
        assert len(keys) <= 2
        await pilot.press("q")
    assert not app.web_ui.server
