"""The first MLflow filter waits seconds for ``import mlflow``; the Runs pane says so at once, and says nothing
once the results are in (issue 25: Enter seemed to do nothing for 2-3 s)."""

from __future__ import annotations

import threading

import pytest

from align_track.demo.store import wait_until
from align_track.tui.models import data
from tests.support.tui_fixtures import app_on

pytestmark = pytest.mark.asyncio
SIZE = (80, 24)
FILTER = "params.adm = 'pipeline_baseline'"
LOADING = "loading MLflow, first time only"


def filter_line(app) -> str:
    return str(app.runs_pane.query_one("#runs-mlflow").render())


@pytest.fixture
def gated_filter(monkeypatch):
    """The real ``mlflow_filter``, held at a gate the test opens: what the user sees while it works is read
    before the results can arrive, whatever the machine's speed."""
    gate, entered = threading.Event(), threading.Event()
    real = data.mlflow_filter

    def held(runs, text):
        entered.set()
        assert gate.wait(30), "the test never opened the gate"
        return real(runs, text)

    monkeypatch.setattr(data, "mlflow_filter", held)
    yield gate, entered
    gate.set()


async def test_the_first_mlflow_filter_says_it_is_loading_mlflow_until_its_results_arrive(
        demo_store, gated_filter, monkeypatch):
    gate, entered = gated_filter
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        monkeypatch.setattr(data, "_FILTER_READY", threading.Event(), raising=False)  # as before mlflow's import
        pane, table = app.runs_pane, app.runs_pane.table
        total = len(table.view)
        await pilot.press("f", *FILTER, "enter")
        assert LOADING in filter_line(app)  # in Enter's own turn, before any result
        await wait_until(pilot, entered.is_set, what="the filter's worker")
        assert pane.model.allowed is None and len(table.view) == total  # no results yet
        cursor = table.cursor
        await pilot.press("j")  # the event loop is free meanwhile
        assert table.cursor == cursor + 1 and LOADING in filter_line(app)
        gate.set()
        await wait_until(pilot, lambda: pane.model.allowed is not None, what="the filter's results")
        expected = {r.run_id for r in app.snapshot.runs if r.params.get("adm") == "pipeline_baseline"}
        assert 0 < len(expected) < total and set(pane.shown_run_ids) == expected
        assert "filtering" not in filter_line(app) and FILTER in filter_line(app)
        assert data.mlflow_filter_ready()


async def test_a_later_filter_says_filtering_without_the_first_time_note_and_a_refresh_says_nothing(
        demo_store, gated_filter):
    gate, entered = gated_filter
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        pane = app.runs_pane  # the warm-up has imported mlflow (app_on waits for it)
        await pilot.press("f", *FILTER, "enter")
        assert "filtering…" in filter_line(app) and LOADING not in filter_line(app)
        gate.set()
        await wait_until(pilot, lambda: pane.model.allowed is not None, what="the filter's results")
        assert "filtering" not in filter_line(app)
        pane.set_snapshot(app.snapshot)  # a live refresh filters again, quietly
        assert "filtering" not in filter_line(app)
