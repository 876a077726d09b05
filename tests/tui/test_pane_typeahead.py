"""Keys typed in one burst right after a pane key (a paste, tmux send-keys, a fast typist) are not lost."""

from __future__ import annotations

import pytest

from align_track.demo.store import compared, settle, wait_until
from tests.support.tui_fixtures import app_on
from tests.tui.test_app import send_keys

pytestmark = pytest.mark.asyncio


async def test_filter_typed_right_after_switching_back_to_runs_lands_in_the_box(demo_store):
    """``1 f <filter> enter`` from Compare: the box is shown but not yet painted when the filter's first keys
    arrive; they were dropped, and enter applied what was left (one letter)."""
    async with app_on(demo_store[0], (80, 24)) as (app, pilot):
        await pilot.press("space", "space", "c")
        await wait_until(pilot, lambda: compared(app), what="compare")
        text = "params.adm = 'pipeline_baseline'"
        await send_keys(app, "1", "f", *text, "enter", gap=0)
        await wait_until(pilot, lambda: app.runs_pane.mlflow_text, what="filter applied")
        await settle(pilot)
        assert app.runs_pane.mlflow_text == text and app.status.error == ""
        adms = {app.selection.run(r).params["adm"] for r in app.runs_pane.shown_run_ids}
        assert adms == {"pipeline_baseline"}
