"""Pilot tests of the TUI against real SQLite stores filled by the real ingest."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path

import pytest

from align_track.demo.store import compared, loaded, scenes_loaded, settle, wait_until
from align_track.ingest.pipeline import ingest
from align_track.query.formats import REPORT_FORMATS, suffixes
from align_track.query.select import load_complete_runs
from align_track.tui.app import AlignTrackApp
from align_track.tui.models.runs import RUN_COLUMNS
from align_track.tui.panes.compare import ComparePane
from align_track.tui.panes.report import ReportPane
from align_track.tui.screens.confirm import ConfirmScreen
from align_track.tui.screens.help import HelpScreen
from tests.support.factory import scene, write_run_folder
from tests.support.tui_fixtures import app_on, opened, static_text, table_text

pytestmark = pytest.mark.asyncio
SIZE = (100, 30)


async def send_keys(app: AlignTrackApp, *keys: str, gap: float = 0.1) -> None:
    """Keys as a terminal sends them, ``gap`` seconds apart (no wait for an idle CPU, unlike Pilot)."""
    from textual import events

    for key in keys:
        char = {"space": " ", "slash": "/"}.get(key, key if len(key) == 1 else None)
        app._driver.send_message(events.Key(key, char))
        if gap:
            await asyncio.sleep(gap)
    await asyncio.sleep(0.3)


def count_text(app: AlignTrackApp) -> str:
    return str(app.runs_pane.query_one("#runs-count").render())


def shown(app: AlignTrackApp) -> list:
    pane = app.runs_pane
    by_id = {r.run_id: r for r in app.snapshot.runs}
    return [by_id[pane.model.run_ids[i]] for i in pane.table.view]


# --------------------------------------------------------------------------- runs pane


async def test_first_paint_says_connecting_then_lists_every_complete_run(demo_store):
    uri, _ = demo_store
    app = AlignTrackApp(uri)
    async with app.run_test(size=SIZE) as pilot:
        assert app.status.state in ("connecting…", f"{len(load_complete_runs(uri)[2])} runs")
        await opened(app, pilot)
        total = len(load_complete_runs(uri)[2])
        assert total >= 12
        assert count_text(app) == f"{total}/{total} runs"
        assert app.status.state == f"{total} runs"
        assert "pipeline_" in table_text(app.runs_pane.table)


async def test_filter_narrows_rows_as_you_type_and_escape_clears(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        total = len(app.snapshot.runs)
        await pilot.press("slash", *"MERIT")
        merit = [r for r in app.snapshot.runs if "merit" in r.params["alignment_target_id"].lower()
                 or "merit" in r.run_name.lower()]
        assert 0 < len(merit) < total
        assert {r.run_id for r in shown(app)} == {r.run_id for r in merit}
        assert count_text(app) == f"{len(merit)}/{total} runs"
        await pilot.press(*" baseline")  # every word must match
        both = [r for r in merit if "baseline" in r.params["adm"]]
        assert {r.run_id for r in shown(app)} == {r.run_id for r in both}
        await pilot.press("escape")
        assert count_text(app) == f"{total}/{total} runs"
        assert app.focused is app.runs_pane.table


async def test_mlflow_filter_mode_applies_mlflow_semantics_and_reports_bad_filters(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        total = len(app.snapshot.runs)
        await pilot.press("f", *"metrics.`timing.avg_seconds` < 15 AND params.adm LIKE 'pipeline%'", "enter")
        await wait_until(pilot, lambda: app.runs_pane.model.allowed is not None, what="mlflow filter")
        expected = {r.run_id for r in app.snapshot.runs
                    if r.metrics.get("timing.avg_seconds", 1e9) < 15 and r.params["adm"].startswith("pipeline")}
        assert 0 < len(expected) < total
        assert {r.run_id for r in shown(app)} == expected
        assert count_text(app) == f"{len(expected)}/{total} runs"
        assert "mlflow filter: metrics" in str(app.runs_pane.query_one("#runs-mlflow").render())

        await pilot.press("f", "ctrl+u", *"params.adm >> 'x'", "enter")
        await wait_until(pilot, lambda: app.status.error != "", what="filter error")
        assert "invalid filter" in app.status.error
        assert count_text(app) == f"0/{total} runs"
        await pilot.press("f", "escape")  # clears the MLflow filter
        await pilot.pause()
        assert count_text(app) == f"{total}/{total} runs"
        assert app.status.error == ""


async def test_sort_cycles_columns_reverses_and_keeps_missing_values_last(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("s")  # first column: ADM
        adms = [r.params["adm"].lower() for r in shown(app)]
        assert adms == sorted(adms)
        await pilot.press("S")
        assert [r.params["adm"].lower() for r in shown(app)] == sorted(adms, reverse=True)
        assert "by ADM▼" in count_text(app)
        keys = [c.key for c in RUN_COLUMNS]
        await pilot.press(*["s"] * (keys.index("score") - keys.index("adm")))  # s moves one column on
        scores = [r.metrics.get("score.alignment_score") for r in shown(app)]
        present = [s for s in scores if s is not None]
        assert present and present == sorted(present)
        assert scores == present + [None] * (len(scores) - len(present))
        await pilot.press("S")
        scores = [r.metrics.get("score.alignment_score") for r in shown(app)]
        assert scores[: len(present)] == sorted(present, reverse=True)
        assert "score▼" in table_text(app.runs_pane.table).splitlines()[0]


async def test_space_marks_runs_with_a_visible_mark_and_u_clears(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        first, second = shown(app)[:2]
        await pilot.press("space", "space")
        assert app.runs_pane.marked_ids == {first.run_id, second.run_id}
        assert "2 marked" in count_text(app)
        lines = table_text(app.runs_pane.table).splitlines()
        assert lines[1].startswith("●") and lines[2].startswith("●") and not lines[3].startswith("●")
        await pilot.press("slash", *"zzz-no-such-run", "escape")  # marks survive filtering
        assert app.runs_pane.marked_ids == {first.run_id, second.run_id}
        await pilot.press("u")
        assert app.runs_pane.marked_ids == set()
        assert "marked" not in count_text(app)


async def test_keys_typed_ahead_in_one_burst_all_land_where_meant(demo_store):
    """'/merit', enter, down, enter arriving in one read (a paste, tmux send-keys, a fast typist)."""
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await send_keys(app, "slash", *"merit", "enter", "down", "enter", gap=0)
        assert app.runs_pane.filter_input.value == "merit"
        second = shown(app)[1]
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        assert app.scenes_pane.run_row.run_id == second.run_id
        await send_keys(app, "escape", "home", "space", "space", "c", gap=0)  # back, mark two, compare
        assert app.active_pane == "compare"
        assert len(app.runs_pane.marked_ids) == 2


# --------------------------------------------------------------------------- scene inspector


async def test_enter_opens_scenes_n_p_move_and_r_shows_raw_json(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        run = shown(app)[0]
        await pilot.press("enter")
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        pane = app.scenes_pane
        assert app.active_pane == "scenes"
        assert len(pane.scenes) == int(run.params["num_scenarios"])
        assert [s.index for s in pane.scenes] == sorted(s.index for s in pane.scenes)
        detail = pane.query_one("#scene-detail-box")
        first = pane.current
        text = static_text(detail, 100)
        assert "Justification" in text and "KDMA values: true vs predicted" in text
        justification = first.outputs["action"]["justification"]
        assert justification.split()[0] in text
        await pilot.press("n", "n")
        assert pane.current is pane.scenes[2]
        assert f"scene {pane.scenes[2].scene_id}" in static_text(detail, 100)
        await pilot.press("p")
        assert pane.current is pane.scenes[1]
        await pilot.press("r")
        await settle(pilot)  # the trace is read and serialised by a worker
        raw = static_text(detail, 100)
        assert pane.scenes[1].trace_id in raw and '"spans"' in raw
        await pilot.press("r")
        assert "Justification" in static_text(detail, 100)
        await pilot.press("escape")
        assert app.active_pane == "runs"


async def test_a_scene_list_read_through_mlflow_says_so_and_why_while_it_waits(demo_store, monkeypatch):
    """Issue 21: the first run of an upstream-written store stayed at 'loading 0/4 scenes…' for 30 s: its traces
    went to MLflow's client (the direct reader refused them), whose first use imports mlflow (tens of seconds on a
    loaded machine), and the title never said so. The refusal is forced and MLflow's client held back until the
    title has been read: it must name the wait and its reason, then the scenes arrive."""
    import threading

    from align_track.store import spans_reader
    from align_track.tui.models import data

    async with app_on(demo_store[0], SIZE) as (app, pilot):
        reason = "trace tr-1 keeps its spans outside the tracking store"

        def unreadable(*args, **kwargs):
            raise spans_reader.Unreadable(reason)

        gate = threading.Event()
        client = data._client

        def slow_client(uri):  # the import of mlflow on a loaded machine: held until the title was read
            gate.wait(30)
            return client(uri)

        monkeypatch.setattr(spans_reader, "read_run_traces", unreadable)
        monkeypatch.setattr(data, "_client", slow_client)
        run = shown(app)[0]
        await pilot.press("enter")
        pane = app.scenes_pane
        title = pane.query_one("#scenes-title")
        try:
            await wait_until(pilot, lambda: "MLflow" in str(title.render()), timeout=10, what="the title's reason")
            text = str(title.render())
            assert f"0/{run.params['num_scenarios']}" in text and "spans outside the tracking store" in text
        finally:
            gate.set()
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        assert len(pane.scenes) == int(run.params["num_scenarios"])
        assert "MLflow" not in str(title.render())


async def test_scenes_of_a_1000_scene_run_arrive_in_pages_without_blocking(tmp_path, store_uri):
    scenes = 1000

    write_run_folder(tmp_path / "exps" / "big", scenes=[scene(f"S{i}", choice=i % 2) for i in range(scenes)])
    assert not ingest(tmp_path / "exps", store_uri).failures
    app = AlignTrackApp(store_uri)
    async with app.run_test(size=SIZE) as pilot:
        await opened(app, pilot)
        pane = app.scenes_pane
        first: list[tuple[int, bool]] = []

        def first_page() -> bool:
            if pane.scenes and not first:
                first.append((len(pane.scenes), pane.fetching))
            return bool(first)

        app.runs_pane.action_open_run()  # what enter does; Pilot's press would wait for the whole load
        while not first_page():
            await asyncio.sleep(0.005)
        assert first[0] == (50, True)  # the first page is on screen before the rest is read
        await wait_until(pilot, lambda: scenes_loaded(app), timeout=60, what="all scenes")
        await pilot.press("n")
        assert len(pane.scenes) == scenes
        assert [s.index for s in pane.scenes] == list(range(scenes))
        assert pane.current is pane.scenes[1]


# --------------------------------------------------------------------------- compare


async def test_compare_lines_up_scenes_and_counts_agreement(tmp_path, store_uri):
    from tests.support.tui_fixtures import write_choices

    exps = tmp_path / "exps"
    write_choices(exps / "a", "adm_a", [0, 1, 0, 1])
    write_choices(exps / "b", "adm_b", [0, 0, 0, 1])
    write_choices(exps / "c", "adm_c", [0, 1, 1], scene_ids=["S0", "S1", "S2"])
    assert not ingest(exps, store_uri).failures
    app = AlignTrackApp(store_uri)
    async with app.run_test(size=SIZE) as pilot:
        await opened(app, pilot)
        await pilot.press("c")  # nothing marked: a warning, no compare
        assert app.active_pane == "runs"
        # down leaves the filter for the table (enter would open the one run left)
        await pilot.press("slash", *"adm_a", "down", "space", "slash", "ctrl+u", *"adm_b", "down", "space")
        await pilot.press("c")
        await wait_until(pilot, lambda: compared(app), what="compare")
        pane = app.query_one(ComparePane)
        assert app.active_pane == "compare"
        assert str(pane.query_one("#compare-summary").render()) == "by scene (o) · 3 of 4 scenes agree"
        text = table_text(pane.table)
        assert "≠" in text and "Treat Patient B" in text
        await pilot.press("d")  # only the disagreement
        assert len(pane.table.view) == 1
        assert pane.comparison.keys[pane.table.view[0]][1] == "S1"

        await pilot.press("1", "slash", "ctrl+u", *"adm_c", "down", "space", "c")
        await wait_until(pilot, lambda: compared(app) and len(pane.runs) == 3, what="compare of three")
        # S3 is missing from adm_c: 3 comparable scenes, of which S0 agrees in all three runs.
        summary = str(pane.query_one("#compare-summary").render())
        assert summary == "by scene (o) · 1 of 3 scenes agree · 1 scene missing from some run (—)"


# --------------------------------------------------------------------------- ingest


async def test_missing_store_says_how_to_start_then_the_ingest_pane_fills_it(tmp_path, store_uri):
    exps = tmp_path / "exps"
    for i in range(3):
        write_run_folder(exps / f"e{i}")
    db = Path(store_uri.split(":///", 1)[1])
    app = AlignTrackApp(store_uri, experiments_dir=exps)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: loaded(app), what="load attempt")
        await settle(pilot)
        assert app.status.error == "" and app.status.state == "no store yet"  # nothing wrong: nothing yet
        assert "no runs yet: press 4 to ingest a folder" in table_text(app.runs_pane.table)
        assert not db.exists()  # reading never creates an empty store
        await pilot.press("2", "1")  # still responsive
        assert app.active_pane == "runs"

        await pilot.press("4", "e")
        box = app.ingest_pane.query_one("#ingest-path")
        assert app.focused is box and box.value == str(exps)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.ingest_pane.summary is not None, timeout=120, what="ingest")
        log = app.ingest_pane.query_one("#ingest-log")
        assert [row[0] for row in log.rows] == ["ingested"] * 3
        assert "done · 3 ingested" in str(app.ingest_pane.query_one("#ingest-stats").render())
        await wait_until(pilot, lambda: app.snapshot is not None, what="refresh")
        assert count_text(app) == "3/3 runs"
        assert app.status.error == ""


def one_scene_folders(exps: Path, count: int) -> Path:
    """``count`` one-scene run folders: more than the first batches of the bulk path."""
    for i in range(count):
        write_run_folder(exps / f"e{i:03d}", scenes=[scene(f"S{i}")])
    return exps


def hold_after_first_batch(monkeypatch: pytest.MonkeyPatch, app: AlignTrackApp) -> None:
    """The app's ingest writes its first batch of run folders, then its thread waits (at most 60 s) until the app
    cancels it: the keys the test sends always reach a running ingest, however fast this machine writes (on a
    loaded machine the whole ingest once finished before the quit was confirmed)."""
    from align_track.ingest import pipeline

    write_batch, calls = pipeline.write_batch, []

    def held(*args: object, **kwargs: object) -> object:
        calls.append(None)
        if len(calls) > 1 and (cancel := app.ingest_pane.cancel_event) is not None:
            cancel.wait(timeout=60)
        return write_batch(*args, **kwargs)

    monkeypatch.setattr(pipeline, "write_batch", held)


async def test_ingest_can_be_cancelled_and_quit_asks_first(tmp_path, store_uri, monkeypatch):
    exps = one_scene_folders(tmp_path / "exps", 250)
    async with app_on(store_uri, SIZE, experiments_dir=exps) as (app, pilot):
        hold_after_first_batch(monkeypatch, app)  # still busy at ctrl+g
        # Keys go straight to the driver, as from a terminal: Pilot's press waits for the CPU to go
        # idle, which it does not while the ingest runs.
        await send_keys(app, "4", "e", "enter")
        assert app.ingest_pane.running
        await send_keys(app, "escape", "q")  # leave the path box, then try to quit
        assert isinstance(app.screen, ConfirmScreen)
        await send_keys(app, "n")
        assert not isinstance(app.screen, ConfirmScreen) and app.is_running
        said: list[str] = []
        stats = app.ingest_pane._stats
        app.ingest_pane._stats = lambda text, error=False: (said.append(text), stats(text, error))
        await send_keys(app, "ctrl+g")
        await wait_until(pilot, lambda: app.ingest_pane.summary is not None, timeout=120, what="cancel")
        after = said[said.index("cancelling: finishing the current run folder…"):-1]  # up to the summary
        assert all(text.startswith("cancelling") for text in after), said  # not written over by the progress
        summary = app.ingest_pane.summary
        assert summary.cancelled and len(summary.outcomes) < 250
        assert "cancelled" in str(app.ingest_pane.query_one("#ingest-stats").render())
        runs = load_complete_runs(store_uri)[2]
        assert len(runs) == len([o for o in summary.outcomes if o.status == "ingested"])


async def test_quit_while_ingesting_cancels_it_after_the_current_run_folder(tmp_path, store_uri, monkeypatch):
    exps = one_scene_folders(tmp_path / "exps", 150)
    async with app_on(store_uri, SIZE, experiments_dir=exps) as (app, pilot):
        hold_after_first_batch(monkeypatch, app)  # still busy when q arrives
        await send_keys(app, "4", "e", "enter")
        log = app.ingest_pane.query_one("#ingest-log")
        while not log.rows:
            await asyncio.sleep(0.01)
        cancel = app.ingest_pane.cancel_event  # read before q: it is cleared once the ingest ends
        assert cancel is not None
        await send_keys(app, "escape", "q")
        assert isinstance(app.screen, ConfirmScreen)
        await send_keys(app, "y")
        assert cancel.is_set()
    from align_track.store.runs_reader import get_experiment_id, load_runs

    complete = load_complete_runs(store_uri)[2]
    every = load_runs(store_uri, get_experiment_id(store_uri, "align-system-experiments"))
    assert 0 < len(complete) < 150  # cancelled part way, after at least one run folder
    assert len(every) == len(complete)  # the app waited for the run folder in hand: nothing half-written


# --------------------------------------------------------------------------- report


async def test_report_preview_follows_the_selects_and_exports(demo_store, tmp_path):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("5")
        pane = app.query_one(ReportPane)
        await wait_until(pilot, lambda: pane.pivot is not None, what="pivot")
        assert pane.pivot.title.startswith("mean of timing.avg_seconds by alignment_target_id")
        targets = {r.params["alignment_target_id"] for r in app.snapshot.runs}
        assert len(pane.query_one("#report-preview").rows) == len(targets)
        assert f"all {len(app.snapshot.runs)} runs shown" in str(pane.query_one("#report-title").render())

        # aggregation -> count, with the keyboard: focus the select, open it, pick "count".
        agg = pane.query_one("#report-agg")
        agg.focus()
        await pilot.press("enter", "end", "enter")
        await wait_until(pilot, lambda: pane.pivot is not None and pane.pivot.agg == "count", what="count pivot")
        counts = [v for row in pane.pivot.cells() for v in row[1:]]
        assert sum(counts) == len([r for r in app.snapshot.runs if "timing.avg_seconds" in r.metrics])

        out = tmp_path / "pivot.csv"
        await pilot.press("escape", "e", "ctrl+u", *str(out), "enter")
        await wait_until(pilot, lambda: out.exists(), what="export")
        header = out.read_text().splitlines()[0]
        assert header.startswith("alignment_target_id \\ adm")
        await pilot.press("ctrl+u", *str(tmp_path / "pivot.xlsx"), "enter")
        await wait_until(pilot, lambda: (tmp_path / "pivot.xlsx").exists(), what="xlsx")
        from openpyxl import load_workbook

        assert load_workbook(tmp_path / "pivot.xlsx")["report"]["A1"].value.startswith("count of")
        await pilot.press("ctrl+u", *str(tmp_path / "pivot.txt"), "enter")
        status = str(pane.query_one("#report-status").render())
        assert f"end the path in {', '.join(suffixes(REPORT_FORMATS))}" in status


async def test_report_export_writes_exactly_the_path_sent_in_one_burst(demo_store, tmp_path):
    """ctrl+u, a path and enter in one burst (tmux send-keys, a paste, a fast typist): the report is written to
    that path. The stock Input ran ctrl+u a turn late, after the first characters were typed: 'c-out/r.csv'."""
    from textual import events

    out = tmp_path / "burst" / "pivot.csv"
    out.parent.mkdir()
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("5")
        pane = app.query_one(ReportPane)
        await wait_until(pilot, lambda: pane.pivot is not None, what="pivot")
        await pilot.press("e")
        await settle(pilot)
        for key in ["ctrl+u", *str(out), "enter"]:  # straight to the driver: no pause at all between the keys
            app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
        await wait_until(pilot, lambda: out.exists() or "✖" in str(pane.query_one("#report-status").render()),
                         what="export")
        assert pane.query_one("#report-path").value == str(out)
        assert out.read_text().startswith("alignment_target_id \\ adm")


async def test_report_preview_names_what_it_leaves_out(demo_store):
    """Issue 21: no row of '-' only, and the runs without the metric are counted with their reason."""
    from align_track.query.coverage import UNALIGNED

    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("5")
        pane = app.query_one(ReportPane)
        await wait_until(pilot, lambda: pane.pivot is not None, what="pivot")
        pane.query_one("#report-values").value = "metrics.alignment.oracle_hit_rate"
        await wait_until(pilot, lambda: pane.pivot is not None and "oracle_hit_rate" in pane.pivot.values,
                         what="hit-rate pivot")
        assert "unaligned" not in [row[0] for row in pane.pivot.cells()]
        assert all(any(v is not None for v in row[1:]) for row in pane.pivot.cells())
        notes = " ".join(str(pane.query_one("#report-notes").render()).split())
        unaligned = sum(1 for r in app.snapshot.runs if r.params.get("alignment_target_id") == "unaligned")
        assert re.search(r"\d rows? with no alignment.oracle_hit_rate not shown: [^\n]*unaligned", notes), notes
        assert f"{unaligned} runs without alignment.oracle_hit_rate: {UNALIGNED}" in notes


async def test_report_uses_marked_runs_when_some_are_marked(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("space", "space", "space", "5")
        pane = app.query_one(ReportPane)
        await wait_until(pilot, lambda: pane.pivot is not None, what="pivot")
        assert len(pane.pivot.runs) == 3
        assert "3 marked runs" in str(pane.query_one("#report-title").render())


# --------------------------------------------------------------------------- MLflow web UI


@pytest.mark.server
async def test_m_starts_and_stops_the_mlflow_ui_and_quit_stops_it(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("6", "m")
        assert "starting" in app.status.ui
        await wait_until(pilot, lambda: not app.ui_busy, timeout=120, what="web UI start")
        server = app.ui_server
        assert server is not None and server.alive()
        with urllib.request.urlopen(server.url + "/health", timeout=5) as resp:
            assert resp.status == 200
        assert server.url in app.status.ui
        assert server.url in str(app.mlflow_pane.query_one("#mlflow-status").render())
        await pilot.press("m")
        await wait_until(pilot, lambda: not app.ui_busy, timeout=60, what="web UI stop")
        assert app.ui_server is None and server.process.poll() is not None

        await pilot.press("m")
        await wait_until(pilot, lambda: not app.ui_busy, timeout=120, what="web UI restart")
        second = app.ui_server
        assert second is not None and second.alive()
        await pilot.press("q")
    assert second.process.poll() is not None  # quitting stopped it


# --------------------------------------------------------------------------- keys


async def test_help_lists_every_binding(demo_store):
    uri, _ = demo_store
    app = AlignTrackApp(uri)
    async with app.run_test(size=(100, 60)) as pilot:
        await opened(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = static_text(app.screen.query_one("#help-keys"), 100)
        actions = app.key_actions()
        assert len(actions) >= 25
        for item in actions:
            assert " ".join(item.help.split()) in " ".join(text.split()), item
        for section in ("Global", "1 Runs", "2 Scenes", "3 Compare", "4 Ingest", "5 Report", "6 MLflow"):
            assert section in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_finds_and_runs_pane_actions(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("enter")
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        await pilot.press("1", "ctrl+p", *"raw json")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.scenes_pane.raw, what="raw via palette")
        assert app.active_pane == "scenes"


async def test_number_keys_switch_panes_and_q_quits(demo_store):
    uri, _ = demo_store
    app = AlignTrackApp(uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(app, pilot)
        panes = ("scenes", "compare", "ingest", "report", "mlflow", "analysis", "runs")
        for key, pane in zip("2345671", panes, strict=True):
            await pilot.press("escape", key)  # escape first: the ingest pane focuses its path box
            assert app.active_pane == pane
        await pilot.press("q")
    assert not app.is_running


async def test_sixteen_colour_mode_uses_the_ansi_theme(demo_store):
    uri, _ = demo_store
    app = AlignTrackApp(uri, ansi=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(app, pilot)
        assert app.theme == "ansi-dark"
        assert "●" not in table_text(app.runs_pane.table)
        await pilot.press("space")
        assert table_text(app.runs_pane.table).splitlines()[1].startswith("●")




# --------------------------------------------------------------------------- a server that never answers


@pytest.mark.parametrize("how", ["q", "sigint", "q-during-probe"])
async def test_quit_on_a_hung_server_is_prompt_and_quiet(how):
    """The real app on its own pty against a server that accepts and never answers: its read is hung (in
    MLflow's client, 60 s a try; or in the /health probe), yet ``q`` (or a SIGINT, Ctrl-C outside raw mode)
    ends the process within a generous 10 s, with no traceback."""
    from tests.support.hung_server import HungServer, TuiProcess

    server = HungServer(answer_health=how != "q-during-probe")
    tui = TuiProcess("--mlflow-uri", server.url, "--refresh", "0")
    try:
        hung = server.api_requests if server.answer_health else lambda: server.requests
        await asyncio.to_thread(tui.wait_for, lambda: "connecting" in tui.screen and bool(hung()), 120,
                                "hung read")
        if how == "sigint":
            import os
            import signal

            os.kill(tui.pid, signal.SIGINT)
        else:
            tui.press(b"q")
        status = await asyncio.to_thread(tui.wait_exit, 10)
        assert status is not None, f"still running 10 s after {how}: {server.requests}"
        assert "Traceback" not in tui.screen, tui.screen[-3000:]
        assert status in (0, 130), status
    finally:
        tui.kill()
        server.close()


async def test_the_ingest_pane_says_a_new_store_is_being_created(tmp_path, store_uri):
    """On a new store the first seconds are MLflow creating it: the pane says so, then lists the folders."""
    exps = tmp_path / "exps"
    for i in range(3):
        write_run_folder(exps / f"e{i}", scenes=[scene(f"S{i}")])
    async with app_on(store_uri, SIZE, experiments_dir=exps) as (app, pilot):
        await send_keys(app, "4", "e", "enter")
        stats = app.ingest_pane.query_one("#ingest-stats")
        seen: list[str] = []
        while app.ingest_pane.summary is None:
            text = str(stats.render())
            if not seen or seen[-1] != text.split("…")[0]:
                seen.append(text.split("…")[0])
            await asyncio.sleep(0.02)
        assert any("creating the MLflow store" in line for line in seen), seen
        assert app.ingest_pane.summary.count("ingested") == 3


async def test_the_ingest_pane_says_what_it_is_doing_and_estimates_from_folders_written(tmp_path, store_uri):
    """Before the folders are known the stats line says what the ingest does (scanning with its count, the store's
    runs, the configs), never an ETA; once writing, no ETA until three folders are written (it used to come
    from the scan's time: '8/200 folders … ETA 11:36', done 19 s later; issue 25 item 9)."""
    exps = one_scene_folders(tmp_path / "exps", 40)
    async with app_on(store_uri, SIZE, experiments_dir=exps) as (app, pilot):
        pane = app.ingest_pane
        lines: list[str] = []
        stats = pane._stats

        def seen(text: str, error: bool = False) -> None:
            lines.append(text)
            stats(text, error)

        pane._stats = seen
        await send_keys(app, "4", "e", "enter")
        await wait_until(pilot, lambda: pane.summary is not None, timeout=120, what="ingest")
    first_write = next((i for i, line in enumerate(lines) if line.startswith("writing ")), None)
    assert first_write is not None, lines
    before = lines[:first_write]
    assert any(re.search(r"scanning: \d+ folders? seen, \d+ run folders?, now in ", line) for line in before), before
    assert any("reading the store's runs (40 run folders found)" in line for line in before), before
    assert any("reading configs: 0/40 run folders" in line for line in before), before
    assert not any("ETA" in line for line in before)
    writing = [line for line in lines if line.startswith("writing ")]
    for line in writing:
        done = int(re.match(r"writing (\d+)/40 folders", line).group(1))
        eta = line.rsplit("ETA ", 1)[1]
        assert (eta == "–") == (done < 3) or done == 40, line
    assert pane.summary.count("ingested") == 40


def _age(folder: Path, seconds: float) -> None:
    """Every file of a run folder last changed ``seconds`` ago."""
    import os
    import time

    when = time.time() - seconds
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (when, when))


async def test_a_folder_without_timing_shows_no_timing_or_may_still_be_running_not_done(tmp_path, store_uri):
    """A folder without timing.json is not shown as done like a finished one (issue 25 item 7): 'no timing', and
    'may still be running' when its files changed within the stall window before the ingest; readers count all
    of them complete, as before."""
    exps = tmp_path / "exps"
    write_run_folder(exps / "finished")
    write_run_folder(exps / "untimed", timing=False)
    write_run_folder(exps / "writing", timing=False)
    _age(exps / "finished", 3600)
    _age(exps / "untimed", 3600)
    _age(exps / "writing", 30)
    async with app_on(store_uri, SIZE, experiments_dir=exps) as (app, pilot):
        await send_keys(app, "4", "e", "enter")
        await wait_until(pilot, lambda: app.ingest_pane.summary is not None, timeout=120, what="ingest")
        log = app.ingest_pane.query_one("#ingest-log")
        notes = {row[2]: (row[0], row[3]) for row in log.rows}
        assert notes["finished"] == ("ingested", "")
        assert notes["untimed"][0] == "ingested" and notes["untimed"][1].startswith("no timing: no timing.json")
        assert notes["writing"][0] == "ingested" and notes["writing"][1].startswith("may still be running: ")
        assert "1 may still be running" in str(app.ingest_pane.query_one("#ingest-stats").render())
        await wait_until(pilot, lambda: app.snapshot is not None and len(app.snapshot.runs) == 3, what="runs")
        await pilot.press("1")
        model = app.runs_pane.model
        keys = [c.key for c in model.columns]
        states = {row[keys.index("folder")]: (row[keys.index("state")], row[keys.index("marker")])
                  for row in model.cells}
        assert states == {"finished": ("done", " "), "untimed": ("no timing", " "),
                          "writing": ("may still be running", "▷")}
        assert app.snapshot.status == {}  # none of them is live: the sweep line and scenes view treat them as done
        for folder, word in (("untimed", "no timing"), ("writing", "may still be running")):
            row = next(i for i, r in enumerate(model.cells) if r[keys.index("folder")] == folder)
            app.runs_pane.table.move_to_row(model.view().index(row))
            await settle(pilot)
            assert f"state {word}" in static_text(app.runs_pane.query_one("#runs-details")), folder
    assert len(load_complete_runs(store_uri)[2]) == 3


def _ingested_paths(uri: str) -> list[str]:
    return sorted(r.tags["experiment_path"] for r in load_complete_runs(uri)[2])


@pytest.mark.parametrize("how", ["typed", "pasted"])
async def test_enter_ingests_exactly_what_the_path_box_shows(tmp_path, store_uri, how):
    """ctrl+u, a path and enter in one burst (a fast typist, tmux send-keys), or a paste then enter: the folder in
    the box is ingested, never the box's earlier value nor the current directory (issue 20, item 2)."""
    import os

    from textual import events

    cwd = Path(os.getcwd())
    write_run_folder(cwd / "here")  # what an empty box used to ingest
    exps = tmp_path / "exps"
    write_run_folder(exps / "wanted")
    write_run_folder(exps / "wanted-too")  # completion would offer 'wanted-too/' after 'wanted'
    typed = str(exps / "wanted")
    async with app_on(store_uri, SIZE, experiments_dir=cwd) as (app, pilot):
        await pilot.press("4", "e")
        await settle(pilot)
        assert app.focused is app.ingest_pane.query_one("#ingest-path")
        keys = ["ctrl+u"] if how == "pasted" else ["ctrl+u", *typed, "enter"]
        for key in keys:  # straight to the driver, as from a terminal: no pause at all between the keys
            app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
        if how == "pasted":
            app._driver.send_message(events.Paste(typed))
            app._driver.send_message(events.Key("enter", None))
        await wait_until(pilot, lambda: app.ingest_pane.summary is not None, timeout=120, what="ingest")
        assert app.ingest_pane.root == typed
        assert app.ingest_pane.query_one("#ingest-path").value == typed  # completion did not change the box
        assert _ingested_paths(store_uri) == ["."], "the folder in the box, not the cwd or a completion"


async def test_a_pane_key_in_the_ingest_pane_switches_panes_and_e_edits_the_path(tmp_path, store_uri):
    """``4`` then ``1`` shows the Runs pane and leaves the path as it was (it used to type ``1`` into the path box,
    issue 25 item 2); ``4``, ``e``, a path and enter ingests exactly that path."""
    exps = tmp_path / "exps"
    write_run_folder(exps / "wanted")
    other = tmp_path / "other"
    write_run_folder(other / "not-this")
    async with app_on(store_uri, SIZE, experiments_dir=other) as (app, pilot):
        box = app.ingest_pane.query_one("#ingest-path")
        await pilot.press("4", "1")
        assert app.active_pane == "runs"
        assert box.value == str(other)
        for key in ("2", "3", "5", "6", "7", "8"):  # every pane key leaves the Ingest pane the same way
            await pilot.press("4", key)
            assert app.active_pane != "ingest", key
            assert box.value == str(other)
        await pilot.press("4", "e")
        assert app.focused is box
        assert "esc" in str(app.ingest_pane.query_one("#ingest-hint").render())
        await pilot.press("ctrl+u", *str(exps), "enter")
        await wait_until(pilot, lambda: app.ingest_pane.summary is not None, timeout=120, what="ingest")
        assert app.ingest_pane.root == str(exps)
        assert _ingested_paths(store_uri) == ["wanted"]
        await pilot.press("1")  # after the ingest focus is on its log: a pane key switches again
        assert app.active_pane == "runs"


async def test_ingest_pane_keys_in_one_burst_switch_or_edit_as_typed(tmp_path, store_uri):
    """The same keys sent in one burst (tmux send-keys, a fast typist): ``4 1`` switches, ``4 e <path> enter``
    ingests that path."""
    from textual import events

    exps = tmp_path / "exps"
    write_run_folder(exps / "wanted")
    async with app_on(store_uri, SIZE, experiments_dir=tmp_path / "nothing") as (app, pilot):
        await send_keys(app, "4", "1", gap=0)
        assert app.active_pane == "runs"
        assert app.ingest_pane.query_one("#ingest-path").value == str(tmp_path / "nothing")
        for key in ["4", "e", "ctrl+u", *str(exps), "enter"]:
            app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
        await wait_until(pilot, lambda: app.ingest_pane.summary is not None, timeout=120, what="ingest")
        assert app.ingest_pane.root == str(exps)
        assert _ingested_paths(store_uri) == ["wanted"]


async def test_enter_on_an_empty_path_box_ingests_nothing_and_says_why(tmp_path, store_uri):
    import os

    write_run_folder(Path(os.getcwd()) / "here")
    async with app_on(store_uri, SIZE, experiments_dir=tmp_path) as (app, pilot):
        await pilot.press("4", "e", "ctrl+u", "enter")
        await settle(pilot)
        assert not app.ingest_pane.running and app.ingest_pane.summary is None
        assert "type the experiments folder" in str(app.ingest_pane.query_one("#ingest-stats").render())
        assert not Path(store_uri.split(":///", 1)[1]).exists()  # nothing written, no store created
