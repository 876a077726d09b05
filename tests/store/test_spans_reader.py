"""spans_reader.read_run_traces must report what MlflowClient.search_traces + get_trace report, on stores
ingested by align-track (SQLite, PostgreSQL) and on stores MLflow's fluent tracing wrote itself."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities.entity_type import EntityAssociationType
from mlflow.tracing.constant import SpanAttributeKey, SpansLocation, TraceMetadataKey, TraceSizeStatsKey, TraceTagKey
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from align_track.store import spans_reader
from align_track.store.runs_reader import get_experiment_id, load_runs
from align_track.store.spans_reader import Unreadable, read_run_traces
from align_track.tui.models.data import _mlflow_scene_pages, scene_pages
from align_track.tui.models.scenes import raw_json, scene_from_row, scene_from_trace
from tests.support import server_fixtures
from tests.support.query_fixtures import EXPECTED, build_tree, ingest_tree

pg_db = server_fixtures.pg_db  # a fresh PostgreSQL database per test (skips, or fails in CI, without one)

EXPERIMENT = "align-system-experiments"


def mlflow_view(uri: str, experiment_id: str, run_id: str, ascending: bool = True,
                since_ms: int | None = None) -> list[dict]:
    """What MLflow reports for the run: every page of search_traces, each trace's root span via get_trace."""
    client = MlflowClient(tracking_uri=uri)
    order = ["timestamp_ms ASC"] if ascending else None
    where = None if since_ms is None else f"trace.timestamp_ms >= {since_ms}"
    out, token = [], None
    while True:
        page = client.search_traces(locations=[experiment_id], run_id=run_id, max_results=3, page_token=token,
                                    order_by=order, filter_string=where)
        for searched in page:
            trace = client.get_trace(searched.info.trace_id)
            assert [s.span_id for s in trace.data.spans] == [s.span_id for s in searched.data.spans]
            root = trace.data.spans[0]
            assert root.parent_id is None
            info = trace.info
            out.append({
                "trace_id": info.trace_id, "name": info.tags.get(TraceTagKey.TRACE_NAME),
                "request_time": info.request_time, "execution_duration": info.execution_duration,
                "state": info.state.value, "tags": dict(info.tags), "span_id": root.span_id,
                "span_name": root.name, "start_time_ns": root.start_time_ns, "end_time_ns": root.end_time_ns,
                "status": root.status.status_code.value, "inputs": root.inputs, "outputs": root.outputs,
                "attributes": dict(root.attributes),
            })
        token = page.token
        if not token:
            return out


def fast_view(uri: str, experiment_id: str, run_id: str, ascending: bool = True, size: int = 2,
              since_ms: int | None = None) -> list[dict]:
    out: list[dict] = []
    while page := read_run_traces(uri, experiment_id, run_id, offset=len(out), limit=size, ascending=ascending,
                                  since_ms=since_ms):
        out += page
    return out


def assert_same_everywhere(uri: str, experiment: str, min_traces: int) -> int:
    """Every run of the experiment reads the same both ways, in both orders; returns the traces compared."""
    eid = get_experiment_id(uri, experiment)
    runs = load_runs(uri, eid)
    assert len(runs) >= 2
    total = 0
    for run in runs:
        for ascending in (True, False):
            expected = mlflow_view(uri, eid, run.run_id, ascending)
            assert fast_view(uri, eid, run.run_id, ascending) == expected
        total += len(expected)
        # a live view's refresh: only the traces from a time on (here the middle one's), as MLflow filters them
        since = expected[len(expected) // 2]["request_time"]
        newer = mlflow_view(uri, eid, run.run_id, since_ms=since)
        assert fast_view(uri, eid, run.run_id, since_ms=since) == newer
        assert 0 < len(newer) <= len(expected) and all(t["request_time"] >= since for t in newer)
        scenes = [scene_from_row(row) for row in fast_view(uri, eid, run.run_id)]
        mlflow_scenes = [scene_from_trace(t) for page in _mlflow_scene_pages(uri, eid, run.run_id, 50, 200, set())
                         for t in [p.trace for p in page]]
        for s in scenes + mlflow_scenes:
            s.trace = s.load_trace = None
        assert scenes == mlflow_scenes
    assert total >= min_traces
    return total


def test_mlflow_names_the_reader_writes_into_sql_are_mlflow_s_own():
    assert spans_reader.SPANS_LOCATION_TAG == TraceTagKey.SPANS_LOCATION
    assert spans_reader.TRACKING_STORE == SpansLocation.TRACKING_STORE.value
    assert spans_reader.TRACE_NAME_TAG == TraceTagKey.TRACE_NAME
    assert spans_reader.SOURCE_RUN_METADATA == TraceMetadataKey.SOURCE_RUN
    assert spans_reader.SIZE_STATS_METADATA == TraceMetadataKey.SIZE_STATS
    assert spans_reader.SIZE_STATS_NUM_SPANS == TraceSizeStatsKey.NUM_SPANS
    assert spans_reader.TRACE_ENTITY == EntityAssociationType.TRACE
    assert spans_reader.RUN_ENTITY == EntityAssociationType.RUN
    assert spans_reader.INPUTS_ATTRIBUTE == SpanAttributeKey.INPUTS
    assert spans_reader.OUTPUTS_ATTRIBUTE == SpanAttributeKey.OUTPUTS
    assert mlflow.__version__ in spans_reader.TESTED_MLFLOW_SCHEMAS


def test_supported_only_for_sql_stores_of_a_tested_mlflow(monkeypatch: pytest.MonkeyPatch):
    assert spans_reader.supported("sqlite:////tmp/x.db")
    assert spans_reader.supported("postgresql://u@h/db")
    assert not spans_reader.supported("http://127.0.0.1:5000")
    assert not spans_reader.supported("file:///tmp/mlruns")
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    assert not spans_reader.supported("sqlite:////tmp/x.db")
    monkeypatch.delenv("MLFLOW_ENABLE_WORKSPACES")
    monkeypatch.setattr(spans_reader, "TESTED_MLFLOW_SCHEMAS", {"0.0.1": "x"})
    assert not spans_reader.supported("sqlite:////tmp/x.db")


def test_ingested_sqlite_store_reads_as_mlflow_reads_it(tmp_path: Path, store_uri: str):
    ingest_tree(build_tree(tmp_path / "exps"), store_uri)
    total = assert_same_everywhere(store_uri, EXPERIMENT, sum(max(len(e.times), 2) for e in EXPECTED))
    assert total == sum(len(e.times) or 2 for e in EXPECTED)


def test_ingested_postgresql_store_reads_as_mlflow_reads_it(tmp_path: Path, pg_db: str):
    ingest_tree(build_tree(tmp_path / "exps"), pg_db)
    assert assert_same_everywhere(pg_db, EXPERIMENT, 10) == sum(len(e.times) or 2 for e in EXPECTED)


def write_fluent(uri: str) -> list[str]:
    """Two runs of scenes traced the upstream tool's way: mlflow.start_span inside mlflow.start_run."""
    run_ids = []
    with _use_tracking_uri(uri):
        mlflow.set_experiment("fluent")
        for r in range(2):
            with mlflow.start_run() as run:
                for i in range(3):
                    with mlflow.start_span(f"scene-{r}-{i}") as span:
                        span.set_inputs({"scene_id": f"S{i}", "scenario_id": "June2025", "choices": ["a", "b"]})
                        span.set_attributes({"scene_index": i, "choice_index": i % 2, "note": "", "ü": "ß"})
                        with mlflow.start_span("llm") as child:
                            child.set_inputs({"prompt": "why"})
                            child.set_outputs("because")
                        span.set_outputs({"action": {"unstructured": f"treat {i}"}, "choice_index": i % 2})
            run_ids.append(run.info.run_id)
    with _use_tracking_uri(uri):
        with mlflow.start_span("outside any run"):
            pass
    return run_ids


def test_fluent_sqlite_store_reads_as_mlflow_reads_it(store_uri: str):
    write_fluent(store_uri)
    assert assert_same_everywhere(store_uri, "fluent", 6) == 6


def test_fluent_postgresql_store_reads_as_mlflow_reads_it(pg_db: str):
    write_fluent(pg_db)
    assert assert_same_everywhere(pg_db, "fluent", 6) == 6


def test_a_trace_mlflow_would_skip_sends_the_scene_list_through_mlflow(store_uri: str):
    run_id = write_fluent(store_uri)[0]
    eid = get_experiment_id(store_uri, "fluent")
    before = read_run_traces(store_uri, eid, run_id)
    trace_ids = [r["trace_id"] for r in before]
    # The last trace loses its child span: its size stats say 2 spans, MLflow no longer returns it.
    db = sqlite3.connect(store_uri.removeprefix("sqlite:///"))
    with db:
        db.execute("DELETE FROM spans WHERE trace_id = ? AND parent_span_id IS NOT NULL", (trace_ids[-1],))
    db.close()
    with pytest.raises(Unreadable):
        read_run_traces(store_uri, eid, run_id)
    assert read_run_traces(store_uri, eid, run_id, limit=2) == before[:2]
    shown = [s.trace_id for page in scene_pages(store_uri, eid, run_id, first=1, size=1) for s in page]
    assert shown == trace_ids[:-1]  # the first two read fast, then MLflow: nothing repeated, nothing lost


def test_a_run_of_another_experiment_is_left_to_mlflow(store_uri: str):
    run_id = write_fluent(store_uri)[0]
    with pytest.raises(Unreadable):
        read_run_traces(store_uri, "0", run_id)


def test_scenes_read_fast_still_show_the_whole_trace_as_raw_json(store_uri: str):
    run_id = write_fluent(store_uri)[0]
    eid = get_experiment_id(store_uri, "fluent")
    (page,) = list(scene_pages(store_uri, eid, run_id))
    assert [s.trace for s in page] == [None] * 3
    text = raw_json(page[0])
    assert page[0].trace is not None
    assert page[0].trace.info.trace_id == page[0].trace_id
    assert '"llm"' in text  # the child span too, which the fast reader never read


def test_a_store_of_another_schema_revision_is_left_to_mlflow(store_uri: str):
    run_id = write_fluent(store_uri)[0]
    eid = get_experiment_id(store_uri, "fluent")
    assert read_run_traces(store_uri, eid, run_id)
    db = sqlite3.connect(store_uri.removeprefix("sqlite:///"))
    with db:
        db.execute("UPDATE alembic_version SET version_num = 'f00dfeed'")
    db.close()
    with pytest.raises(Unreadable, match="schema revision"):
        read_run_traces(store_uri, eid, run_id)
