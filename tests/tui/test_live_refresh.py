"""The runs table refreshes itself while open (issue 13): new, finished and live runs appear without ctrl+r,
and the cursor, marks, filter and sort stay where the user left them. Real SQLite stores, real ingests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mlflow import MlflowClient

from align_track.demo.store import loaded, settle, wait_until
from align_track.ingest.pipeline import ingest
from align_track.schema import TAG_CLAIM, TAG_KEY, TAG_PATH
from align_track.store.uri import DEFAULT_EXPERIMENT
from align_track.tui.app import AlignTrackApp
from align_track.tui.models.data import changed_runs, load_runs
from tests.support.factory import config, merit_target, scene, write_run_folder

SIZE = (100, 30)


def _folder(root: Path, name: str, adm: str) -> Path:
    return write_run_folder(root / name, [scene(f"S{i}", choice=i % 2) for i in range(2)],
                            cfg=config(adm=adm, target=merit_target()))


def _ingested(tmp_path: Path, **folders: str) -> tuple[Path, str]:
    """A tree of run folders (name -> ADM) ingested into a fresh SQLite store."""
    tree = tmp_path / "tree"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name, adm in folders.items():
        _folder(tree, name, adm)
    assert not ingest(tree, uri).failures
    return tree, uri


@pytest.mark.asyncio
async def test_new_runs_appear_while_open_and_the_cursor_marks_and_filter_stay(tmp_path: Path) -> None:
    tree, uri = _ingested(tmp_path, a="pipeline_alpha", b="pipeline_beta")
    app = AlignTrackApp(uri, refresh=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: loaded(app), what="runs")
        await settle(pilot)
        pane = app.runs_pane
        await pilot.press("/")
        await pilot.press(*"pipeline")
        await pilot.press("down")  # leave the filter box for the table, filter kept
        await pilot.press("j")  # cursor on the second run
        await pilot.press("space")  # and mark it
        before_cursor = pane.current_run_id
        marked = set(app.selection.marked_ids)
        assert before_cursor is not None and marked

        _folder(tree, "c", "pipeline_gamma")
        summary = await asyncio.to_thread(ingest, tree, uri)
        assert summary.count("ingested") == 1 and summary.count("skipped") == 2

        await wait_until(pilot, lambda: len(pane.model.run_ids) == 3, timeout=30, what="the new run")
        await pilot.pause(0.3)
        assert pane.current_run_id == before_cursor  # still on the run it was on
        assert app.selection.marked_ids == marked
        assert pane.model.text == "pipeline"  # the filter stayed, and the new run matches it
        assert len(pane.shown_run_ids) == 3
        assert app.status.state.startswith("3 runs")
        assert app.snapshot.runs[0].params["adm"] == "pipeline_gamma"  # store order: newest first, as on load


@pytest.mark.asyncio
async def test_a_run_being_written_shows_as_running_then_finished(tmp_path: Path) -> None:
    tree, uri = _ingested(tmp_path, a="pipeline_alpha")
    app = AlignTrackApp(uri, refresh=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: loaded(app), what="runs")
        await settle(pilot)
        client = MlflowClient(uri)
        experiment_id = client.get_experiment_by_name(DEFAULT_EXPERIMENT).experiment_id
        from align_track.store.run_writer import claim_token

        live = await asyncio.to_thread(
            lambda: client.create_run(experiment_id, run_name="live",
                                      tags={TAG_KEY: "k-live", TAG_CLAIM: claim_token(), TAG_PATH: "live/run"}
                                      ).info.run_id)
        await wait_until(pilot, lambda: live in app.runs_pane.model.run_ids, timeout=30, what="the live run")
        assert app.snapshot.status[live] == "running"
        assert "1 running" in app.status.state
        # its writer finishes it as ingest does: FINISHED, then the complete tag
        await asyncio.to_thread(client.set_terminated, live, "FINISHED")
        await asyncio.to_thread(client.set_tag, live, "align_track.complete", "true")
        await wait_until(pilot, lambda: live not in app.snapshot.status, timeout=30, what="the finish")
        assert app.status.state.startswith("2 runs") and "running" not in app.status.state


@pytest.mark.asyncio
async def test_refresh_off_reads_nothing_new(tmp_path: Path) -> None:
    tree, uri = _ingested(tmp_path, a="pipeline_alpha")
    app = AlignTrackApp(uri, refresh=0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: loaded(app), what="runs")
        _folder(tree, "b", "pipeline_beta")
        await asyncio.to_thread(ingest, tree, uri)
        await pilot.pause(1.0)
        assert len(app.runs_pane.model.run_ids) == 1  # no timer: the user's ctrl+r decides
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: len(app.runs_pane.model.run_ids) == 2, what="the reload")


def test_changed_runs_reports_nothing_when_nothing_changed(tmp_path: Path) -> None:
    """The incremental read is cheap and quiet: an unchanged store gives no new snapshot (no repaint)."""
    tree, uri = _ingested(tmp_path, a="pipeline_alpha")
    snapshot = load_runs(uri, DEFAULT_EXPERIMENT)
    merged, as_of = changed_runs(snapshot, 0)
    assert merged is None and as_of > 0
    _folder(tree, "b", "pipeline_beta")
    assert not ingest(tree, uri).failures
    merged, _ = changed_runs(snapshot, as_of)
    assert merged is not None and len(merged.runs) == 2
