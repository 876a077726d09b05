"""Read a whole store back through MLflow's public APIs, and spy on which write path ingest took.

Shared by the bulk-vs-public equivalence test and the server-vs-SQLite test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient

from align_track import schema
from align_track.store import open_store
from align_track.store.provenance import provenance
from align_track.store.uri import DEFAULT_EXPERIMENT

VOLATILE_TAGS = {"align_track.claim", schema.TAG_INGEST_TIME}
"""Who wrote the run and when: differs between two writes of the same data."""


def snapshot(uri: str, volatile: set[str] = frozenset(), experiment_name: str = DEFAULT_EXPERIMENT) -> dict[str, Any]:
    """Every run and trace field that is not an id or the write's time, keyed by the run's identity (``volatile``:
    run tags left out besides the claim and ingest time, e.g. a live run's heartbeat time). The run's start and
    end times are the experiment's: the same on every write path."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(experiment_name)
    out: dict[str, Any] = {}
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        key = run.data.tags["align_track.key"]
        artifacts = sorted(f.path for f in client.list_artifacts(run.info.run_id))
        hydra = sorted(f.path for f in client.list_artifacts(run.info.run_id, ".hydra"))
        contents = {p: Path(client.download_artifacts(run.info.run_id, p)).read_bytes() for p in artifacts
                    if not p.startswith(".hydra")}
        mlflow.set_tracking_uri(uri)
        traces = mlflow.search_traces(locations=[experiment.experiment_id], run_id=run.info.run_id,
                                      return_type="list")
        trace_view = []
        # Every trace here was found by its run link (search_traces(run_id=...)).
        for trace in sorted(traces, key=lambda t: t.data.spans[0].attributes[schema.ATTR_SCENE_INDEX]):
            full = client.get_trace(trace.info.trace_id)
            span = full.data.spans[0]
            run_id = run.info.run_id
            # The run link in all three places the data model puts it; then one placeholder for it.
            assert full.info.tags[schema.TRACE_TAG_RUN_ID] == run_id
            assert full.info.trace_metadata[schema.META_SOURCE_RUN] == run_id
            assert set(full.info.trace_metadata) == set(schema.TRACE_METADATA)
            trace_view.append({
                "state": full.info.state, "tags": {k: "<run>" if v == run_id else v
                                                   for k, v in full.info.tags.items()
                                                   if k != "mlflow.artifactLocation"},
                "metadata": _sizes_less_experiment_id(
                    {k: "<run>" if v == run_id else v for k, v in full.info.trace_metadata.items()},
                    len(experiment.experiment_id)),
                "request_preview": full.info.request_preview, "response_preview": full.info.response_preview,
                "span": (span.name, span.span_type, span.status.status_code, span.inputs, span.outputs,
                         span.parent_id, len(full.data.spans)),
                "attributes": {k: span.attributes.get(k) for k in schema.TRACE_ATTRIBUTES},
                "times": (span.start_time_ns, span.end_time_ns),
            })
        assert {k: run.data.tags.get(k) for k in schema.PROVENANCE} == provenance()  # who ingested it
        out[key] = {
            "name": run.info.run_name, "status": run.info.status, "lifecycle": run.info.lifecycle_stage,
            "times": (run.info.start_time, run.info.end_time),
            "params": run.data.params, "metrics": run.data.metrics,
            "tags": {k: v for k, v in run.data.tags.items() if k not in VOLATILE_TAGS | volatile},
            "artifacts": artifacts, "hydra": hydra, "contents": contents, "traces": trace_view,
        }
    return out


def _sizes_less_experiment_id(metadata: dict[str, str], digits: int) -> dict[str, str]:
    """MLflow's size stats count the experiment id's digits (once in the span's ``mlflow.experimentId``, once more
    in the trace's location): a store whose experiment is "10", not "1", is a byte bigger per span. Less those
    digits, sizes compare exactly across stores (a shared PostgreSQL had made this differ by test order)."""
    out = dict(metadata)
    if schema.META_SIZE_BYTES in out:
        out[schema.META_SIZE_BYTES] = str(int(out[schema.META_SIZE_BYTES]) - 2 * digits)
    if schema.META_SIZE_STATS in out:
        stats = json.loads(out[schema.META_SIZE_STATS])
        stats["total_size_bytes"] -= 2 * digits
        for key in ("max", "p25", "p50", "p75"):
            if key in stats:
                stats[key] -= digits
        out[schema.META_SIZE_STATS] = json.dumps(stats)
    return out


WRITE_PATHS = {"direct": {}, "bulk": {"ALIGN_TRACK_DIRECT": "0"}, "public": {"ALIGN_TRACK_BULK": "0"}}
"""Each write path and the environment that picks it: without MLflow (the default on SQL stores), MLflow's store
with the bulk rows (today's path before the no-mlflow writer, ``ALIGN_TRACK_DIRECT=0``), MLflow's public API."""
SERVER_WRITE_PATHS = {"direct": {}, "public": {"ALIGN_TRACK_DIRECT": "0"}}
"""The same for a tracking server: its REST and OTLP protocols spoken without MLflow (the default), MLflow's client."""


def spy_write_path(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record, per store an ingest opens, which write path it took ("direct", "bulk" or "public"): proves which
    path a test exercised."""
    used: list[str] = []
    original = open_store.open_run_store

    def spy(*args, **kwargs):
        store = original(*args, **kwargs)
        used.append("direct" if store.direct else "bulk" if store.bulk else "public")
        return store

    monkeypatch.setattr(open_store, "open_run_store", spy)
    return used
