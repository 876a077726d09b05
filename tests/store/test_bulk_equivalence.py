"""Every write path reads back the same through MLflow's own read APIs: the no-mlflow writer (the default on SQL
stores), MLflow's store with the bulk rows (ALIGN_TRACK_DIRECT=0) and MLflow's public API (ALIGN_TRACK_BULK=0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from align_track import schema
from align_track.demo.generate import generate_demo
from align_track.ingest.pipeline import ingest
from align_track.store import run_writer, trace_writer
from tests.support.readback import WRITE_PATHS, snapshot, spy_write_path


def test_every_write_path_reads_back_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "exps"
    generate_demo(corpus, run_folders=24, scenes=3, seed=11)
    used = spy_write_path(monkeypatch)
    stores, summaries = {}, {}
    for path, env in WRITE_PATHS.items():
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            stores[path] = f"sqlite:///{tmp_path / path / 'mlflow.db'}"
            summaries[path] = ingest(corpus, stores[path])
    assert used == list(WRITE_PATHS)  # each path really ran
    assert summaries["direct"].traces == summaries["bulk"].traces == summaries["public"].traces > 0

    direct, bulk, public = (snapshot(stores[path]) for path in WRITE_PATHS)
    assert set(direct) == set(bulk) == set(public) and len(direct) >= 24
    for key in direct:
        d, b, p = direct[key], bulk[key], public[key]
        assert d["artifacts"] == b["artifacts"] == p["artifacts"] and d["hydra"] == b["hydra"] == p["hydra"]
        for field in ("name", "status", "lifecycle", "params", "metrics", "tags", "contents"):
            assert d[field] == b[field] == p[field], (key, field)
        assert len(d["traces"]) == len(p["traces"]) == int(d["params"]["num_scenarios"])
        for td, tb, tp in zip(d["traces"], b["traces"], p["traces"], strict=True):
            assert td == tb == tp
            assert td["tags"]["mlflow.traceName"] == td["span"][0]  # named by its scene
            # The full data model: every tag, metadata key, input, output and attribute the README lists.
            assert td["tags"]["scene_id"] == td["span"][3]["scene_id"] == td["span"][0]
            assert td["tags"]["mlflow.runId"] == td["metadata"]["mlflow.sourceRun"] == "<run>"
            assert set(td["metadata"]) == set(schema.TRACE_METADATA)
            assert set(td["span"][3]) == set(schema.TRACE_INPUTS) and set(td["span"][4]) == set(schema.TRACE_OUTPUTS)
            assert None not in (td["attributes"][schema.ATTR_SCENE_INDEX], td["attributes"][schema.ATTR_ADM])


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
