"""The status line on its own: an error set after the first paint still wraps, whatever else is laid out."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from align_track.tui.widgets.status import StatusBar

pytestmark = pytest.mark.asyncio


class StatusApp(App[None]):
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")


async def test_an_error_after_the_first_paint_wraps_to_more_lines() -> None:
    """The bar's height is cached per width: an error arriving once the one-line bar was painted stayed on one
    line (cut), unless something else happened to lay the screen out again (the runs pane did, by luck)."""
    app = StatusApp()
    async with app.run_test(size=(80, 24)) as pilot:
        bar = app.query_one(StatusBar)
        bar.store, bar.state = "mlflow.db · Default", "14 runs"
        await pilot.pause()
        assert bar.size.height == 1
        bar.error = "invalid filter \"params.adm = 'x' AND nonsense\": Invalid clause(s) in filter string: 'nonsense'"
        await pilot.pause()
        assert bar.size.height == 2
        bar.error = ""
        await pilot.pause()
        assert bar.size.height == 1
