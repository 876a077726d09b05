"""The MLflow web UI shows the ingested store, checked in a real browser (headless Chromium).

Skipped where /usr/bin/chromium is missing; required in CI (ALIGN_TRACK_REQUIRE_CHROMIUM=1, .ci/run installs it).
URL forms are MLflow 3.17's React routes (hash router): ``#/experiments/<id>/runs``,
``#/experiments/<id>/runs/<run>/traces``, ``#/experiments/<id>/traces`` with ``q=`` (the traces search box)
and ``selectedEvaluationId=<trace>`` (a trace opened). Set ALIGN_TRACK_SCREENSHOTS=DIR to also save the
README's screenshots of those pages there.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
from mlflow import MlflowClient

from align_track import schema
from align_track.demo.generate import generate_demo
from align_track.ingest.pipeline import ingest
from align_track.mlflow_ui import start_ui, stop_ui
from align_track.store.uri import DEFAULT_EXPERIMENT
from tests.support.browser import page_text, require_chromium, screenshot
from tests.support.server_fixtures import free_port

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory):
    require_chromium()
    root = tmp_path_factory.mktemp("web-ui")
    generate_demo(root / "exps", run_folders=3, scenes=3, seed=0)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    assert not ingest(root / "exps", uri).failures
    server = start_ui(uri, port=free_port(), log_path=root / "ui.log")
    try:
        yield server.url, uri
    finally:
        stop_ui(server)


def shoot(url: str, name: str) -> None:
    if directory := os.environ.get("ALIGN_TRACK_SCREENSHOTS"):
        screenshot(url, Path(directory) / name)


def store_view(uri: str) -> tuple[str, list, dict[str, list]]:
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(DEFAULT_EXPERIMENT).experiment_id
    runs = client.search_runs([experiment_id])
    traces = {run.info.run_id: client.search_traces(locations=[experiment_id], run_id=run.info.run_id)
              for run in runs}
    return experiment_id, runs, traces


def test_runs_table_lists_every_run(ui: tuple[str, str]) -> None:
    url, uri = ui
    experiment_id, runs, _ = store_view(uri)
    page = f"{url}/#/experiments/{experiment_id}/runs"
    text = page_text(page, lambda text: f"{len(runs)} matching runs" in text)
    assert f"{len(runs)} matching runs" in text, text[:3000]
    for run in runs:
        assert run.info.run_name in text
    shoot(page, "mlflow-runs.png")


def test_run_traces_tab_lists_its_scenes(ui: tuple[str, str]) -> None:
    url, uri = ui
    experiment_id, runs, traces = store_view(uri)
    run = max(runs, key=lambda r: len(traces[r.info.run_id]))
    scenes = traces[run.info.run_id]
    page = f"{url}/#/experiments/{experiment_id}/runs/{run.info.run_id}/traces"
    text = page_text(page, lambda text: f"{len(scenes)} of {len(scenes)}" in text)
    assert run.info.run_name in text
    assert f"{len(scenes)} of {len(scenes)}" in text, text[:3000]  # found by the run's mlflow.sourceRun
    for trace in scenes:  # each row: the trace id and its request, which names the scene
        assert trace.info.trace_id[:11] in text
    for scene_id in {t.info.tags[schema.TRACE_TAG_SCENE_ID] for t in scenes}:
        assert f'"scene_id": "{scene_id}"' in text
    shoot(page, "mlflow-run-traces.png")


def test_experiment_traces_list_and_scene_search(ui: tuple[str, str]) -> None:
    url, uri = ui
    experiment_id, runs, traces = store_view(uri)
    every = [t for scenes in traces.values() for t in scenes]
    page = f"{url}/#/experiments/{experiment_id}/traces"
    text = page_text(page, lambda text: f"{len(every)} of {len(every)}" in text)
    assert f"{len(every)} of {len(every)}" in text, text[:3000]
    by_scene = Counter(t.info.tags[schema.TRACE_TAG_SCENE_ID] for t in every)
    for scene_id, count in by_scene.items():  # the Tags column: scene_id chips
        assert len(re.findall(rf"scene_id: {re.escape(scene_id)}\b", text)) >= count
    shoot(page, "mlflow-traces.png")

    scene_id, count = sorted(by_scene.items())[-1]
    searched = f"{page}?q={quote(scene_id)}"
    text = page_text(searched, lambda text: f"{count} of {len(every)}" in text)
    assert f"{count} of {len(every)}" in text, text[-3000:]  # shown of all traces in the experiment
    assert count < len(every)
    assert len(re.findall(rf"scene_id: {re.escape(scene_id)}\b", text)) >= count
    for other in set(by_scene) - {scene_id}:
        assert f"scene_id: {other} " not in text + " "
    shoot(searched, "mlflow-traces-search.png")


def test_trace_opens_to_its_inputs_and_outputs(ui: tuple[str, str]) -> None:
    url, uri = ui
    experiment_id, runs, traces = store_view(uri)
    trace = MlflowClient(uri).get_trace(next(t for scenes in traces.values() for t in scenes).info.trace_id)
    [span] = trace.data.spans
    page = f"{url}/#/experiments/{experiment_id}/traces?selectedEvaluationId={trace.info.trace_id}"
    text = page_text(page, lambda text: "Inputs / Outputs" in text and "Attributes" in text)
    assert "Inputs / Outputs" in text and "Attributes" in text, text[:3000]
    for key in schema.TRACE_INPUTS:
        assert key in text
    assert " ".join(span.inputs[schema.IN_STATE].split()) in text
    assert " ".join(span.outputs[schema.OUT_ACTION]["justification"].split()) in text
    shoot(page, "mlflow-trace.png")
