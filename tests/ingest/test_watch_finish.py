"""Finishing a live run (timing.json landed) while a reader polls its traces: the reader sees the run's scenes,
never a scene twice (its live trace and its timed one) and never one missing. Each scene keeps its trace id: the
run is finished in place. On SQLite and PostgreSQL (one transaction), and through a tracking server (each trace
updated in place), on every write path."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.tracing.client import TracingClient

from align_track.ingest.watch import Watcher
from align_track.schema import TAG_COMPLETE
from align_track.store.uri import DEFAULT_EXPERIMENT
from tests.support import live_writer as lw
from tests.support import server_fixtures
from tests.support.readback import SERVER_WRITE_PATHS, WRITE_PATHS

pg_db = server_fixtures.pg_db

SCENES = 12


def _trace_ids(uri: str, experiment_id: str, run_id: str) -> list[str]:
    page = TracingClient(uri).search_traces(locations=[experiment_id], run_id=run_id, include_spans=False,
                                            max_results=500)
    assert not page.token
    return [t.info.trace_id for t in page]


def _finish_under_a_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uri: str, experiment: str,
                           env: dict[str, str], transactional: bool = True, change_scene: int | None = None) -> None:
    """``change_scene``: that scene's content changes after it was appended (its trace id with it): its old trace
    is stale. ``transactional`` stores never show it missing either; through a server it may be, for a moment."""
    folder = lw.start(tmp_path / "exp" / "job")
    with monkeypatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        watcher = Watcher(tmp_path / "exp", uri, experiment, stall_after=3600)
    lw.write_scenes(folder, SCENES)
    watcher.poll()
    experiment_id = MlflowClient(uri).get_experiment_by_name(experiment).experiment_id
    (live_run,) = watcher.live.values()
    run_id = live_run.run_id
    live = _trace_ids(uri, experiment_id, run_id)
    assert len(live) == SCENES

    if change_scene is not None:
        import json

        rewritten = lw.scenes(SCENES)
        rewritten[change_scene]["output"]["choice"] = 1 - rewritten[change_scene]["output"]["choice"]
        (folder / "input_output.json").write_text(json.dumps(rewritten, indent=2))
    lw.finish(folder, SCENES)
    seen: list[int] = []
    stop, reading = threading.Event(), threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.append(len(_trace_ids(uri, experiment_id, run_id)))
            reading.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    assert reading.wait(60)
    watcher.poll()
    assert watcher.summary.counts["finished"] == 1
    polls = len(seen)
    while len(seen) < polls + 2:  # and a read or two after
        stop.wait(0.01)
    stop.set()
    thread.join(60)
    watcher.close()
    assert max(seen) == SCENES, sorted(set(seen))
    assert set(seen) == {SCENES} if transactional else min(seen) >= SCENES - 1, sorted(set(seen))
    run = MlflowClient(uri).get_run(run_id)
    assert run.data.tags[TAG_COMPLETE] == "true" and run.info.status == "FINISHED"
    now = _trace_ids(uri, experiment_id, run_id)
    kept = set(now) & set(live)
    assert len(now) == SCENES and len(kept) == SCENES - (change_scene is not None), \
        "finished in place: the same trace ids (but the changed scene's)"
    timed = TracingClient(uri).search_traces(locations=[experiment_id], run_id=run_id, max_results=500)
    assert sorted(t.data.spans[0].attributes["timing_seconds"] for t in timed) == lw.finish(folder, SCENES)


@pytest.mark.parametrize("path", list(WRITE_PATHS))
def test_finishing_on_sqlite_never_shows_a_scene_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str):
    _finish_under_a_reader(tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
                           DEFAULT_EXPERIMENT, WRITE_PATHS[path])


@pytest.mark.parametrize("path", list(WRITE_PATHS))
def test_finishing_on_postgresql_never_shows_a_scene_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           pg_db: str, path: str):
    _finish_under_a_reader(tmp_path, monkeypatch, pg_db, DEFAULT_EXPERIMENT, WRITE_PATHS[path])


@pytest.mark.parametrize("path", list(SERVER_WRITE_PATHS))
def test_finishing_through_a_server_never_shows_a_scene_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              http_server: str, path: str):
    _finish_under_a_reader(tmp_path, monkeypatch, http_server, f"finish-{os.getpid()}-{path}",
                           SERVER_WRITE_PATHS[path], transactional=False)


@pytest.mark.parametrize("path", list(WRITE_PATHS))
def test_a_scene_changed_since_it_was_appended_is_replaced_never_shown_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str):
    _finish_under_a_reader(tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
                           DEFAULT_EXPERIMENT, WRITE_PATHS[path], transactional=path != "public", change_scene=4)


def test_a_scene_changed_since_it_was_appended_is_replaced_through_a_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_server: str):
    _finish_under_a_reader(tmp_path, monkeypatch, http_server, f"changed-{os.getpid()}", {}, transactional=False,
                           change_scene=4)
