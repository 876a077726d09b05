"""The bulk SQL write path reads back exactly as MLflow's public API path, through MLflow's own read APIs."""

from __future__ import annotations

from pathlib import Path

import pytest

from align_track import schema
from align_track.demo.generate import generate_demo
from align_track.ingest.pipeline import ingest
from align_track.store import run_writer, trace_writer
from tests.support.readback import snapshot, spy_bulk


def test_bulk_and_public_paths_read_back_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "exps"
    generate_demo(corpus, run_folders=24, scenes=3, seed=11)
    bulk_uri = f"sqlite:///{tmp_path / 'bulk' / 'mlflow.db'}"
    public_uri = f"sqlite:///{tmp_path / 'public' / 'mlflow.db'}"

    bulk_summary = ingest(corpus, bulk_uri)
    monkeypatch.setenv("ALIGN_TRACK_BULK", "0")
    used = spy_bulk(monkeypatch)
    public_summary = ingest(corpus, public_uri)
    assert used == [False]
    assert bulk_summary.traces == public_summary.traces > 0

    bulk, public = snapshot(bulk_uri), snapshot(public_uri)
    assert set(bulk) == set(public) and len(bulk) >= 24
    for key in bulk:
        b, p = bulk[key], public[key]
        assert b["artifacts"] == p["artifacts"] and b["hydra"] == p["hydra"]
        for field in ("name", "status", "lifecycle", "params", "metrics", "tags", "contents"):
            assert b[field] == p[field], (key, field)
        assert len(b["traces"]) == len(p["traces"]) == int(b["params"]["num_scenarios"])
        for tb, tp in zip(b["traces"], p["traces"], strict=True):
            assert tb == tp
            assert tb["tags"]["mlflow.traceName"] == tb["span"][0]  # named by its scene
            # The full data model: every tag, metadata key, input, output and attribute the README lists.
            assert tb["tags"]["scene_id"] == tb["span"][3]["scene_id"] == tb["span"][0]
            assert tb["tags"]["mlflow.runId"] == tb["metadata"]["mlflow.sourceRun"] == "<run>"
            assert set(tb["metadata"]) == set(schema.TRACE_METADATA)
            assert set(tb["span"][3]) == set(schema.TRACE_INPUTS) and set(tb["span"][4]) == set(schema.TRACE_OUTPUTS)
            assert None not in (tb["attributes"][schema.ATTR_SCENE_INDEX], tb["attributes"][schema.ATTR_ADM])


def test_bulk_is_used_only_where_tested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = run_writer.RunStore(uri, "x")
    assert store.bulk is True
    monkeypatch.setattr(trace_writer, "_mlflow_version", lambda: "9.9.9")
    assert run_writer.RunStore(uri, "x").bulk is False
    monkeypatch.undo()
    assert trace_writer.bulk_supported("http://127.0.0.1:5000") is False


def test_mapping_in_worker_processes_writes_what_the_thread_writes(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Big ingests map folders and build trace rows in forked workers; the rows must be the same."""
    from align_track.ingest import batched, pipeline

    corpus = tmp_path / "exps"
    generate_demo(corpus, run_folders=10, scenes=3, seed=4)
    pools: list[object] = []
    original = pipeline.mapping_pool
    monkeypatch.setattr(pipeline, "mapping_pool", lambda n: pools.append(original(n)) or pools[-1])
    monkeypatch.setattr(batched, "MAP_PROCESSES_MIN_RUNS", 1)
    monkeypatch.setattr(batched, "_fork_is_safe", lambda: True)  # earlier tests may leave threads behind
    monkeypatch.setenv("ALIGN_TRACK_MAP_PROCESSES", "2")
    forked_uri = f"sqlite:///{tmp_path / 'forked' / 'mlflow.db'}"
    forked = ingest(corpus, forked_uri)
    monkeypatch.setenv("ALIGN_TRACK_MAP_PROCESSES", "0")
    threaded_uri = f"sqlite:///{tmp_path / 'threaded' / 'mlflow.db'}"
    threaded = ingest(corpus, threaded_uri)
    assert pools[0] is not None and pools[1] is None  # each path really ran
    assert forked.traces == threaded.traces > 0 and not forked.failures
    assert snapshot(forked_uri) == snapshot(threaded_uri)
