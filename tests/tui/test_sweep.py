"""The Sweep pane (scenes across runs) driven by keys, against the demo store filled by the real ingest."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from align_track.demo.store import scenes_loaded, settle, swept, wait_until
from align_track.query.scene_index import build_index
from align_track.query.select import load_complete_runs
from align_track.tui.screens.compare_scene import CompareSceneScreen
from tests.support.tui_fixtures import app_on, static_text, table_text

SIZE = (100, 30)


@pytest.mark.asyncio
async def test_8_lists_every_scene_with_the_index_s_counts_and_the_highlighted_scene_s_decisions(demo_store):
    uri, _ = demo_store
    uri, eid, runs = load_complete_runs(uri)
    expected = {r.key: r for r in build_index(uri, eid, runs).rows()}
    async with app_on(uri, SIZE) as (app, pilot):
        await pilot.press("8")
        await wait_until(pilot, lambda: swept(app), what="sweep")
        pane = app.sweep_pane
        assert app.active_pane == "sweep"
        assert [r.key for r in pane.rows] == list(expected)
        for row in pane.rows:
            want = expected[row.key]
            assert (row.runs, row.choices, row.agreement, row.hit_rate) == (want.runs, want.choices, want.agreement,
                                                                              want.hit_rate)
            assert row.distance == pytest.approx(want.distance)
        row = pane.current_row
        assert [d.run_id for d in pane.decisions] and len(pane.decisions) == row.runs
        text = table_text(pane.decisions_table)
        assert row.choices[0][0][:10] in text
        # s cycles the sort: runs, choices, agreement (ascending: the scenes that split the runs first)
        await pilot.press("s", "s", "s")
        agreements = [pane.rows[i].agreement for i in pane.scenes_table.view]
        assert agreements == sorted(agreements) and "by agreement" in static_text(pane.query_one("#sweep-summary"))
        # d: only the scenes where the runs split
        await pilot.press("d")
        assert all(pane.rows[i].split for i in pane.scenes_table.view)
        await pilot.press("d")
        # / filters by scenario, scene id, state text
        await pilot.press("slash", *"mj5 p3", "enter")
        assert [pane.rows[i].key for i in pane.scenes_table.view] == [k for k in expected
                                                                      if k == ("DryRunEval.MJ5", "P3")]
        await pilot.press("slash", "ctrl+u", *"army medic", "enter")  # words of the state text only
        assert pane.scenes_table.view
        states = [pane.index.texts[pane.rows[i].key].lower() for i in pane.scenes_table.view]
        assert all("army" in t and "medic" in t for t in states)  # every word, anywhere (as the runs filter)
        assert len(pane.scenes_table.view) == sum(1 for k, t in pane.index.texts.items()
                                                 if "army" in t.lower() and "medic" in t.lower())
        await pilot.press("slash", "escape")
        assert len(pane.scenes_table.view) == len(expected)


@pytest.mark.asyncio
async def test_enter_shows_the_decisions_side_by_side_and_o_opens_the_run_at_that_scene(demo_store):
    uri, _ = demo_store
    async with app_on(uri, SIZE) as (app, pilot):
        await pilot.press("8")
        await wait_until(pilot, lambda: swept(app), what="sweep")
        pane = app.sweep_pane
        await pilot.press("tab", "down")
        decision = pane.current_decision
        assert decision is pane.decisions[1]
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareSceneScreen)
        text = static_text(screen.query_one("#compare-scene"), 100)
        assert f"scene {pane.current_row.key[1]}" in text and "why" in text
        await pilot.press("escape")
        await pilot.press("o")
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        await settle(pilot)
        assert app.active_pane == "scenes"
        assert app.scenes_pane.run_row.run_id == decision.run_id
        assert app.scenes_pane.current.trace_id == decision.trace_id


@pytest.mark.asyncio
async def test_marked_runs_are_the_runs_the_scenes_are_counted_over(demo_store):
    uri, _ = demo_store
    async with app_on(uri, SIZE) as (app, pilot):
        await pilot.press("space", "space", "8")
        await wait_until(pilot, lambda: swept(app), what="sweep")
        pane = app.sweep_pane
        marked = set(app.runs_pane.marked_ids)
        assert len(marked) == 2 and pane.run_ids == marked
        assert pane.rows and all(r.runs <= 2 for r in pane.rows)
        assert {d.run_id for r in pane.rows for d in pane.index.decisions_of(r.key, marked)} == marked
        assert "2 marked runs" in static_text(pane.query_one("#sweep-summary"))
        await pilot.press("1", "u", "8")  # unmarked: every run again, without reading the store again
        index = pane.index
        assert pane.run_ids == {r.run_id for r in app.snapshot.runs} and pane.index is index
        assert sum(r.runs for r in pane.rows) == len(index)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_pane_driven_by_keys_in_tmux_at_80x24(demo_store):
    """The real `align-track tui` in a tmux pane of 80x24, keys sent as a user types them."""
    uri, exps = demo_store
    session = f"align-track-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    exe = Path(sys.executable).with_name("align-track")  # this environment's, not one on PATH
    command = f"{shlex.quote(str(exe))} tui --mlflow-uri {shlex.quote(uri)} --refresh 0; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command], check=True,
                   cwd=exps.parent)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout

    def until(condition, what: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = screen()
            if condition(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}:\n{screen()}")

    def keys(*typed: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", session, *typed], check=True)

    try:
        until(lambda t: re.search(r"align-system-experiments +\d+ runs", t) is not None, "the runs")
        keys("8")
        text = until(lambda t: "scenes · over every run" in t, "the scene list")
        lines = text.splitlines()
        assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
        assert "8 Sweep" in lines[0] and "choices taken" in text and "ADM" in text
        keys("/", "M", "J", "5", " ", "P", "3", "Enter")
        text = until(lambda t: "1/" in t.splitlines()[1], "the filter")
        assert "DryRunEval.MJ5" in text and "scene P3 · DryRunEval.MJ5" in text
        keys("Enter")
        text = until(lambda t: "next/previous runs" in t, "side by side")
        assert "chose" in text
        keys("Escape")
        until(lambda t: "next/previous runs" not in t, "back from side by side")
        keys("Tab", "o")
        text = until(lambda t: "2 Scenes" in t and "scene P3  ·  DryRunEval.MJ5" in t, "the run's scene")
        keys("q")
        until(lambda t: "8 Sweep" not in t, "quit", timeout=20)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@pytest.mark.asyncio
async def test_the_justifications_read_after_the_decisions_get_the_room_the_screen_has(demo_store):
    """The why and KDMA columns were measured on their '…' placeholders and kept that width once the details were
    read: 'Because Patient B…' with 30 empty columns beside it at 200x50."""
    from rich.cells import cell_len

    uri, _ = demo_store
    async with app_on(uri, (200, 50)) as (app, pilot):
        await pilot.press("8")
        await wait_until(pilot, lambda: swept(app), what="sweep")
        pane = app.sweep_pane
        table = pane.decisions_table
        keys = [c.key for c in table.columns]
        why, kdma = keys.index("why"), keys.index("kdma")
        await wait_until(pilot, lambda: pane.decisions and all(d.trace_id in pane.details for d in pane.decisions),
                         what="details")
        await settle(pilot)
        longest = max(cell_len(row[why]) for row in table.rows)
        assert longest > cell_len("why (first line)") + 2  # the demo's justifications are longer than the header
        assert table.widths[why] == min(table.columns[why].max_width, longest)
        assert table.widths[kdma] == min(table.columns[kdma].max_width, max(cell_len(r[kdma]) for r in table.rows))
