"""Trace writer: the bulk SQL rows must read back exactly like MLflow's own (public-path) writes.

Every comparison reads through MLflow's public read APIs (search_traces, get_trace, filter
strings, the server's REST endpoints the web UI calls), plus one raw-row diff of every table that
is the reason the bulk path may claim "the same rows MLflow's store writes".

Run as a script for the speed comparison:  .venv/bin/python -m tests.store.test_trace_writer --traces 2000 --naive 200
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient
from mlflow.entities import SpanStatusCode, Trace, TraceState
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from align_track import schema
from align_track.records import TraceRecord
from align_track.store import trace_writer
from align_track.store.provenance import provenance
from align_track.store.trace_writer import (
    bulk_supported,
    delete_run_traces,
    write_traces,
    write_traces_bulk,
    write_traces_public,
)
from tests.support.server_fixtures import pg_base, pg_unavailable
from tests.support.upstream import write_trace_fluent

GIT_METADATA_PREFIX = "mlflow.source.git."
T0 = 1_760_000_000_123_456_789
LONG = "Zwei Verletzte nach der Explosion – 日本語 ✓ " * 300  # > 10k chars, non-ASCII

RECORDS = [
    TraceRecord(
        name="scene-ünï-1",
        inputs={
            "scenario_id": "June2025-AF-eval",
            "state": "Two casualties – Patient A is ✓ conscious",
            "choices": [
                {"action_id": "treat_a", "kdma_association": {"merit": 0.2}, "unstructured": "Treat A"},
                {"action_id": "treat_b", "kdma_association": {"merit": 0.8}, "character_id": None},
            ],
            "nothing": None,
        },
        outputs={"choice_index": 1, "action": {"action_id": "treat_b", "justification": "B bleeds more"}},
        attributes={
            "scene_index": 0,
            "timing_seconds": 1.25,
            "adm": "pipeline_baseline",
            "llm": None,
            "kdmas": ["merit", "affiliation"],
            "true_kdma_values": {"Treat A": {"merit": 0.2}},
            "rows": [{"a": 1}, {"b": [1.5, None]}],
        },
        tags={"scene_id": "scene-ünï-1", "adm": "pipeline_baseline"},
        start_ns=T0,
        end_ns=T0 + 1_234_567_891,
    ),
    TraceRecord(
        name="S2-long",
        inputs={"unstructured": LONG},
        outputs={"choice_index": None, "justification": LONG[::-1]},
        attributes={"scene_index": 1, "text": LONG},
        tags={"scene_id": "S2-long"},
        start_ns=T0 + 5_000_000_000,
        end_ns=T0 + 5_000_000_000,  # zero duration
    ),
    TraceRecord(
        name="S3-chat",
        inputs={"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "Which one?"}]},
        outputs={"choices": [{"message": {"role": "assistant", "content": "Patient B"}}]},
        attributes={"big": 2**53 + 1, "neg": -3, "tiny": 1e-9, "flag": True, "empty": [], "nested": {"x": {}}},
        tags={"scene_id": "S3-chat"},
        start_ns=T0 + 7_000_000_001,
        end_ns=T0 + 9_999_999_999,
    ),
    TraceRecord(
        name="S4-empty",
        inputs={},
        outputs={},
        attributes={},
        tags={"scene_id": "S4-empty"},
        start_ns=T0 + 10_000_000_000,
        end_ns=T0 + 10_000_000_500,
    ),
]


# --------------------------------------------------------------------------- stores


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated empty store, copied per test: migrating a fresh SQLite file costs ~2.5 s."""
    root = tmp_path_factory.mktemp("template")
    old_cwd = os.getcwd()
    os.chdir(root)  # the Default experiment records ./mlruns of the cwd
    try:
        MlflowClient(f"sqlite:///{root / 'mlflow.db'}").search_experiments()
    finally:
        os.chdir(old_cwd)
    return root / "mlflow.db"


def new_store(template: Path, directory: Path) -> tuple[str, str, str]:
    """A fresh SQLite store with one experiment (artifacts beside it) and one run: (uri, exp id, run id)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, directory / "mlflow.db")
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("scenes", artifact_location=(directory / "artifacts").as_uri())
    return uri, experiment_id, client.create_run(experiment_id).info.run_id


@pytest.fixture
def store_a(template_db: Path, tmp_path: Path) -> tuple[str, str, str]:
    return new_store(template_db, tmp_path / "a")


@pytest.fixture
def store_b(template_db: Path, tmp_path: Path) -> tuple[str, str, str]:
    return new_store(template_db, tmp_path / "b")


# --------------------------------------------------------------------------- reading back


def search_run(uri: str, experiment_id: str, run_id: str, **kwargs: Any) -> list[Trace]:
    with _use_tracking_uri(uri):
        return mlflow.search_traces(locations=[experiment_id], run_id=run_id, return_type="list", **kwargs)


def by_name(traces: list[Trace]) -> dict[str, Trace]:
    return {trace.info.tags["mlflow.traceName"]: trace for trace in traces}


def canonical(trace: Trace, run_id: str, artifact_root: str) -> str:
    """Every field of the trace (info and spans) as JSON, with per-store ids replaced by placeholders."""
    text = json.dumps(trace.to_dict(), sort_keys=True, ensure_ascii=False)
    hex_trace = trace.info.trace_id.removeprefix("tr-")
    replacements = {
        trace.info.trace_id: "<trace>",
        hex_trace: "<trace-hex>",
        base64.b64encode(bytes.fromhex(hex_trace)).decode(): "<trace-b64>",
        run_id: "<run>",
        artifact_root: "<artifacts>",
    }
    for span in trace.data.spans:
        replacements[span.span_id] = "<span>"
        replacements[base64.b64encode(bytes.fromhex(span.span_id)).decode()] = "<span-b64>"
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def artifact_root(uri: str, experiment_id: str) -> str:
    return MlflowClient(uri).get_experiment(experiment_id).artifact_location


def assert_matches_record(trace: Trace, record: TraceRecord, experiment_id: str, run_id: str) -> None:
    """The stored trace carries exactly the record's content, as the README's data model says."""
    info = trace.info
    assert info.state == TraceState.OK
    assert info.trace_location.mlflow_experiment.experiment_id == experiment_id
    assert info.request_time == record.start_ns // 1_000_000
    assert info.execution_duration == record.end_ns // 1_000_000 - record.start_ns // 1_000_000
    assert info.assessments == []
    assert info.client_request_id is None
    tags = dict(info.tags)
    assert tags.pop("mlflow.artifactLocation").endswith(f"/traces/{info.trace_id}/artifacts")
    assert tags == {
        **record.tags,
        schema.TRACE_TAG_RUN_ID: run_id,
        "mlflow.traceName": record.name,
        "mlflow.trace.spansLocation": "TRACKING_STORE",
    }
    metadata = info.trace_metadata
    assert set(metadata) == set(schema.TRACE_METADATA)
    assert metadata[schema.META_SOURCE_RUN] == run_id
    assert metadata[schema.META_SCHEMA_VERSION] == "3"
    assert {key: metadata[key] for key in schema.PROVENANCE} == provenance()
    assert metadata[schema.USER] == getpass.getuser()
    for key, value in ((schema.META_INPUTS, record.inputs), (schema.META_OUTPUTS, record.outputs)):
        text = json.dumps(value, ensure_ascii=False)
        assert metadata[key] == (text if len(text) <= 250 else text[:247] + "...")
    stats = json.loads(metadata[schema.META_SIZE_STATS])
    assert stats["num_spans"] == 1 and stats["total_size_bytes"] == int(metadata[schema.META_SIZE_BYTES]) > 0
    assert metadata[schema.META_INFO_FINALIZED] == "true"

    [span] = trace.data.spans
    assert span.name == record.name
    assert span.parent_id is None
    assert span.span_type == "UNKNOWN"
    assert span.status.status_code == SpanStatusCode.OK
    assert span.inputs == record.inputs
    assert span.outputs == record.outputs
    assert span.start_time_ns == record.start_ns
    assert span.end_time_ns == record.end_ns
    assert span.events == []
    assert {k: span.attributes[k] for k in record.attributes} == record.attributes
    assert span.trace_id == info.trace_id


def assert_same_traces(
    public: tuple[str, str, str], public_ids: list[str], bulk: tuple[str, str, str], bulk_ids: list[str]
) -> None:
    """Read both stores through every public read API and require identical content."""
    (uri_a, exp_a, run_a), (uri_b, exp_b, run_b) = public, bulk
    root_a, root_b = artifact_root(uri_a, exp_a), artifact_root(uri_b, exp_b)

    found_a, found_b = search_run(uri_a, exp_a, run_a), search_run(uri_b, exp_b, run_b)
    assert len(found_a) == len(found_b) == len(RECORDS)
    assert {t.info.trace_id for t in found_a} == set(public_ids)
    assert {t.info.trace_id for t in found_b} == set(bulk_ids)
    named_a, named_b = by_name(found_a), by_name(found_b)

    for index, record in enumerate(RECORDS):
        got_a = MlflowClient(uri_a).get_trace(public_ids[index])
        got_b = MlflowClient(uri_b).get_trace(bulk_ids[index])
        assert_matches_record(got_a, record, exp_a, run_a)
        assert_matches_record(got_b, record, exp_b, run_b)
        assert canonical(got_a, run_a, root_a) == canonical(got_b, run_b, root_b), record.name
        # search_traces returns the same full traces as get_trace
        assert canonical(named_a[record.name], run_a, root_a) == canonical(got_a, run_a, root_a)
        assert canonical(named_b[record.name], run_b, root_b) == canonical(got_b, run_b, root_b)

        for uri, exp, trace_id in ((uri_a, exp_a, public_ids[index]), (uri_b, exp_b, bulk_ids[index])):
            scene = record.tags["scene_id"]
            hits = MlflowClient(uri).search_traces(locations=[exp], filter_string=f"tags.scene_id = '{scene}'")
            assert [t.info.trace_id for t in hits] == [trace_id]
            named = MlflowClient(uri).search_traces(locations=[exp], filter_string=f"trace.name = '{record.name}'")
            assert [t.info.trace_id for t in named] == [trace_id]


# --------------------------------------------------------------------------- tests


def test_bulk_reads_back_identically_to_public(store_a: tuple, store_b: tuple) -> None:
    public_ids = write_traces_public(*store_a, RECORDS)
    bulk_ids = write_traces_bulk(*store_b, RECORDS)
    assert len(set(public_ids)) == len(set(bulk_ids)) == len(RECORDS)
    assert_same_traces(store_a, public_ids, store_b, bulk_ids)

    by_scene = by_name(search_run(*store_b))
    long_info, chat_info = by_scene["S2-long"].info, by_scene["S3-chat"].info
    # Previews as MLflow derives them: truncated JSON, or the chat message text.
    assert len(long_info.request_preview) == 1000 and long_info.request_preview.endswith("...")
    assert chat_info.request_preview == "Which one?"
    assert chat_info.response_preview == "Patient B"
    assert by_scene["S4-empty"].info.request_preview == "{}"


def dump_rows(uri: str, experiment_id: str, ids: dict[str, str]) -> dict[str, list[str]]:
    """Every row of every table except the run/experiment bookkeeping, ids replaced, sorted."""
    engine = sa.create_engine(uri)
    skip = {"alembic_version", "experiments", "runs", "tags", "workspaces", "experiment_tags"}
    out: dict[str, list[str]] = {}
    try:
        with engine.connect() as conn:
            for table in sa.inspect(engine).get_table_names():
                if table in skip:
                    continue
                rows = []
                # A run link's own id and creation time are random/clock values on both paths.
                columns = ("source_type, source_id, destination_type, destination_id"
                           if table == "entity_associations" else "*")
                for row in conn.execute(sa.text(f'SELECT {columns} FROM "{table}"')):
                    text = json.dumps([str(value) for value in row], ensure_ascii=False)
                    for old, new in ids.items():
                        text = text.replace(old, new)
                    rows.append(text)
                if rows:
                    out[table] = sorted(rows)
    finally:
        engine.dispose()
    return out


def id_placeholders(uri: str, experiment_id: str, run_id: str, trace_ids: list[str]) -> dict[str, str]:
    ids = {run_id: "<run>", artifact_root(uri, experiment_id): "<artifacts>"}
    for index, trace_id in enumerate(trace_ids):
        [span] = MlflowClient(uri).get_trace(trace_id).data.spans
        hex_id = trace_id.removeprefix("tr-")
        ids[trace_id] = f"<trace{index}>"
        ids[hex_id] = f"<trace{index}>"
        ids[base64.b64encode(bytes.fromhex(hex_id)).decode()] = f"<trace{index}-b64>"
        ids[span.span_id] = f"<span{index}>"
        ids[base64.b64encode(bytes.fromhex(span.span_id)).decode()] = f"<span{index}-b64>"
    return ids


def test_bulk_writes_the_same_rows_as_the_store(store_a: tuple, store_b: tuple) -> None:
    public_ids = write_traces_public(*store_a, RECORDS)
    bulk_ids = write_traces_bulk(*store_b, RECORDS)
    rows_a = dump_rows(store_a[0], store_a[1], id_placeholders(*store_a, public_ids))
    rows_b = dump_rows(store_b[0], store_b[1], id_placeholders(*store_b, bulk_ids))
    assert set(rows_a) == {"trace_info", "trace_tags", "trace_request_metadata", "spans", "entity_associations"}
    assert rows_a["entity_associations"] == sorted(
        json.dumps(["trace", f"<trace{i}>", "run", "<run>"]) for i in range(len(RECORDS))
    )
    for table in rows_a:
        assert rows_a[table] == rows_b.get(table), table
    assert set(rows_b) == set(rows_a)


def test_both_paths_write_what_mlflows_own_start_span_writes(store_a: tuple, store_b: tuple, template_db: Path,
                                                             tmp_path: Path) -> None:
    """The reference is MLflow's fluent path (``start_run`` + ``start_span``, as the upstream tool writes):
    every tag, metadata key, input, output and attribute the writers store, and the same values."""
    fluent_store = new_store(template_db, tmp_path / "fluent")
    records = [RECORDS[0], RECORDS[1]]  # nested values with None, and > 250 chars (truncated metadata)
    fluent_ids = write_trace_fluent(*fluent_store, records)
    written = {"public": (store_a, write_traces_public(*store_a, records)),
               "bulk": (store_b, write_traces_bulk(*store_b, records))}
    for index, record in enumerate(records):
        reference = MlflowClient(fluent_store[0]).get_trace(fluent_ids[index])
        ref_info, [ref_span] = reference.info, reference.data.spans
        for path, ((uri, experiment_id, run_id), ids) in written.items():
            got = MlflowClient(uri).get_trace(ids[index])
            info, [span] = got.info, got.data.spans
            assert set(info.tags) == set(ref_info.tags), path
            # MLflow also records the git commit/branch/URL of the writing process's working directory
            # (empty outside a checkout); they say nothing about a run folder, so align-track leaves
            # them out. Every other key is the same.
            ref_keys = {k for k in ref_info.trace_metadata if not k.startswith(GIT_METADATA_PREFIX)}
            assert set(info.trace_metadata) == ref_keys == set(schema.TRACE_METADATA), path
            for key in (*record.tags, "mlflow.traceName", "mlflow.trace.spansLocation"):
                assert info.tags[key] == ref_info.tags[key], (path, key)
            assert info.tags[schema.TRACE_TAG_RUN_ID] == info.trace_metadata[schema.META_SOURCE_RUN] == run_id
            assert ref_info.tags[schema.TRACE_TAG_RUN_ID] == ref_info.trace_metadata[schema.META_SOURCE_RUN] \
                == fluent_store[2]
            for key in (schema.META_SCHEMA_VERSION, schema.META_INPUTS, schema.META_OUTPUTS,
                        schema.META_INFO_FINALIZED, *schema.PROVENANCE):
                assert info.trace_metadata[key] == ref_info.trace_metadata[key], (path, key)
            assert (info.request_preview, info.response_preview) == (ref_info.request_preview,
                                                                     ref_info.response_preview), path
            assert (span.name, span.inputs, span.outputs) == (ref_span.name, ref_span.inputs, ref_span.outputs)
            assert {k: span.attributes[k] for k in record.attributes} == \
                {k: ref_span.attributes.get(k) for k in record.attributes}, path
            assert_matches_record(got, record, experiment_id, run_id)
        # Found the same ways as MLflow's own traces: by run, by scene id tag, by name.
        for uri, experiment_id, run_id in (fluent_store, store_a, store_b):
            client = MlflowClient(uri)
            assert len(client.search_traces(locations=[experiment_id], run_id=run_id)) == len(records)
            hits = client.search_traces(locations=[experiment_id],
                                        filter_string=f"tags.scene_id = '{record.tags['scene_id']}'")
            assert len(hits) == 1


def test_runs_are_kept_apart_and_delete_removes_only_one_run(store_b: tuple) -> None:
    uri, experiment_id, run_1 = store_b
    run_2 = MlflowClient(uri).create_run(experiment_id).info.run_id
    ids_1 = write_traces(uri, experiment_id, run_1, RECORDS)
    ids_2 = write_traces_public(uri, experiment_id, run_2, RECORDS[:2])
    assert {t.info.trace_id for t in search_run(uri, experiment_id, run_1)} == set(ids_1)
    assert {t.info.trace_id for t in search_run(uri, experiment_id, run_2)} == set(ids_2)
    hits = MlflowClient(uri).search_traces(locations=[experiment_id], filter_string="tags.scene_id = 'S2-long'")
    assert {t.info.trace_id for t in hits} == {ids_1[1], ids_2[1]}

    assert delete_run_traces(uri, experiment_id, run_1) == len(RECORDS)
    assert search_run(uri, experiment_id, run_1) == []
    assert {t.info.trace_id for t in search_run(uri, experiment_id, run_2)} == set(ids_2)
    with pytest.raises(MlflowException):
        MlflowClient(uri).get_trace(ids_1[0])
    # no orphan span rows left behind by the cascade
    engine = sa.create_engine(uri)
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT COUNT(*) FROM spans WHERE trace_id IN :ids").bindparams(
            sa.bindparam("ids", expanding=True)), {"ids": ids_1}).scalar()
    engine.dispose()
    assert left == 0
    assert delete_run_traces(uri, experiment_id, run_1) == 0
    assert delete_run_traces(uri, experiment_id, run_2) == 2


def test_bulk_supported_only_for_verified_stores_and_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bulk_supported("sqlite:////tmp/x/mlflow.db")
    assert bulk_supported("postgresql://u@h/db")
    assert bulk_supported("postgresql+psycopg2://u@h/db")
    for uri in ("http://127.0.0.1:5000", "https://mlflow.example", "mysql://u@h/db", "file:///tmp/mlruns", "./mlruns"):
        assert not bulk_supported(uri), uri
    with pytest.raises(ValueError, match="not supported"):
        write_traces_bulk("http://127.0.0.1:9", "1", "r", RECORDS)

    monkeypatch.setattr(mlflow, "__version__", "3.17.3")
    assert not bulk_supported("sqlite:////tmp/x/mlflow.db")
    monkeypatch.setattr(mlflow, "__version__", trace_writer.BULK_TESTED_MLFLOW_VERSIONS[0])
    assert bulk_supported("sqlite:////tmp/x/mlflow.db")
    monkeypatch.setenv("MLFLOW_SQL_TRACE_ROLLUPS_ENABLED", "true")  # writes would also touch rollup queues
    assert not bulk_supported("sqlite:////tmp/x/mlflow.db")


def test_write_traces_picks_the_path(store_b: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_public, real_bulk = trace_writer._write_public, trace_writer._write_bulk
    monkeypatch.setattr(trace_writer, "_write_public", lambda *a: calls.append("public") or real_public(*a))
    monkeypatch.setattr(trace_writer, "_write_bulk", lambda *a: calls.append("bulk") or real_bulk(*a))
    uri, experiment_id, run_id = store_b

    write_traces(uri, experiment_id, run_id, RECORDS[:1])
    assert calls == ["bulk"]

    # an attribute the store derives a column from (user.id -> mlflow.trace.user): public path
    calls.clear()
    special = TraceRecord("S9", {"q": 1}, {"a": 2}, {"user.id": "alice"}, {"scene_id": "S9"}, T0, T0 + 1)
    [trace_id] = write_traces(uri, experiment_id, run_id, [special])
    assert calls == ["bulk", "public"]
    assert MlflowClient(uri).get_trace(trace_id).info.trace_metadata["mlflow.trace.user"] == "alice"
    with pytest.raises(ValueError, match="write_traces_public"):
        write_traces_bulk(uri, experiment_id, run_id, [special])

    calls.clear()
    monkeypatch.setattr(mlflow, "__version__", "9.9.9")
    write_traces(uri, experiment_id, run_id, RECORDS[:1])
    assert calls == ["public"]
    assert len(search_run(uri, experiment_id, run_id)) == 3


def test_writers_leave_no_global_state(store_a: tuple, store_b: tuple, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with _use_tracking_uri(other):
        write_traces_public(*store_a, RECORDS[:2])
        write_traces_bulk(*store_b, RECORDS[:2])
        assert mlflow.get_tracking_uri() == other
        assert mlflow.active_run() is None
        assert mlflow.get_current_active_span() is None
    assert not (tmp_path / "other.db").exists()  # nothing was written through the global URI
    # written synchronously: visible to a fresh reader right away
    assert len(search_run(*store_a)) == 2


def test_bad_input_is_refused_before_writing(store_b: tuple) -> None:
    uri, experiment_id, run_id = store_b
    backwards = TraceRecord("S", {}, {}, {}, {"scene_id": "S"}, T0 + 10, T0)
    with pytest.raises(ValueError, match="before start_ns"):
        write_traces(uri, experiment_id, run_id, [RECORDS[0], backwards])
    assert search_run(uri, experiment_id, run_id) == []
    MlflowClient(uri).delete_experiment(experiment_id)
    with pytest.raises(MlflowException, match="active"):
        write_traces_bulk(uri, experiment_id, run_id, RECORDS[:1])
    assert write_traces(uri, experiment_id, run_id, []) == []


# --------------------------------------------------------------------------- PostgreSQL



@pytest.fixture
def pg_stores(tmp_path: Path) -> Iterator[tuple[tuple[str, str, str], tuple[str, str, str]]]:
    """Two throw-away databases on the local PostgreSQL (the second cloned from the migrated first)."""
    psycopg2 = pytest.importorskip("psycopg2")
    base = pg_base()
    try:
        admin = psycopg2.connect(base.replace("+psycopg2", ""), connect_timeout=3)
    except Exception as exc:
        pg_unavailable(f"no PostgreSQL at {base}: {exc}")
    admin.autocommit = True
    names = [f"align_track_tw_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    uris = [base.rsplit("/", 1)[0] + f"/{name}" for name in names]
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{names[0]}"')
            MlflowClient(uris[0]).search_experiments()  # migrate once
            trace_writer.TracingClient(uris[0]).store.engine.dispose()
            cur.execute(f'CREATE DATABASE "{names[1]}" TEMPLATE "{names[0]}"')
        stores = []
        for index, uri in enumerate(uris):
            client = MlflowClient(uri)
            exp = client.create_experiment("scenes", artifact_location=(tmp_path / f"art{index}").as_uri())
            stores.append((uri, exp, client.create_run(exp).info.run_id))
        yield stores[0], stores[1]
    finally:
        for uri in uris:
            trace_writer.TracingClient(uri).store.engine.dispose()
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.mark.postgres
def test_postgres_bulk_equals_public(pg_stores: tuple) -> None:
    store_a, store_b = pg_stores
    assert bulk_supported(store_b[0])
    public_ids = write_traces_public(*store_a, RECORDS)
    bulk_ids = write_traces_bulk(*store_b, RECORDS)
    assert_same_traces(store_a, public_ids, store_b, bulk_ids)
    rows_a = dump_rows(store_a[0], store_a[1], id_placeholders(*store_a, public_ids))
    rows_b = dump_rows(store_b[0], store_b[1], id_placeholders(*store_b, bulk_ids))
    assert rows_a == rows_b
    assert delete_run_traces(*store_b) == len(RECORDS)
    assert search_run(*store_b) == []


# --------------------------------------------------------------------------- mlflow server (web UI)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mlflow_server(backend_uri: str, artifact_root: str, log: Path) -> Iterator[str]:
    """``mlflow server`` in its own process group; the whole group is killed on exit."""
    port = _free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(mlflow_bin), "server", "--backend-store-uri", backend_uri, "--default-artifact-root",
             artifact_root, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            # no background job runner: one process less to start (and to kill)
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass
        try:  # stragglers (uvicorn workers, job runner) in the same group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def otlp_value(value: dict[str, Any]) -> Any:
    """Decode an OTLP JSON AnyValue (how GetTrace returns span attributes) into Python."""
    if "kvlist_value" in value:
        return {kv["key"]: otlp_value(kv.get("value", {})) for kv in value["kvlist_value"].get("values", [])}
    if "array_value" in value:
        return [otlp_value(item) for item in value["array_value"].get("values", [])]
    if "int_value" in value:
        return int(value["int_value"])
    for kind in ("string_value", "double_value", "bool_value"):
        if kind in value:
            return value[kind]
    return None


@pytest.mark.server
def test_web_ui_endpoints_see_bulk_traces_and_http_public_path_matches(store_b: tuple, tmp_path: Path) -> None:
    import httpx

    sql_uri, experiment_id, run_id = store_b
    bulk_ids = write_traces_bulk(sql_uri, experiment_id, run_id, RECORDS)
    with mlflow_server(sql_uri, (tmp_path / "srv-artifacts").as_uri(), tmp_path / "server.log") as url:
        # The run page's Traces tab: POST traces/search filtered on the run's metadata, which the
        # server also matches against run links.
        found = httpx.post(f"{url}/ajax-api/3.0/mlflow/traces/search", json={
            "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}],
            "filter": f"request_metadata.\"mlflow.sourceRun\" = '{run_id}'",
            "max_results": 100,
        }, timeout=30)
        assert found.status_code == 200, found.text
        infos = {info["trace_id"]: info for info in found.json()["traces"]}
        assert set(infos) == set(bulk_ids)
        chat = infos[bulk_ids[2]]
        assert chat["request_preview"] == "Which one?" and chat["state"] == "OK"
        assert chat["tags"]["mlflow.traceName"] == "S3-chat"

        # The trace drawer: trace info, then the trace with its spans.
        info = httpx.get(f"{url}/ajax-api/3.0/mlflow/traces/{bulk_ids[0]}", timeout=30)
        assert info.status_code == 200, info.text
        assert info.json()["trace"]["trace_info"]["tags"]["scene_id"] == "scene-ünï-1"
        full = httpx.get(f"{url}/ajax-api/3.0/mlflow/traces/get", params={"trace_id": bulk_ids[0]}, timeout=30)
        assert full.status_code == 200, full.text
        [span] = full.json()["trace"]["spans"]
        assert span["name"] == "scene-ünï-1"
        attributes = {a["key"]: otlp_value(a.get("value", {})) for a in span["attributes"]}
        assert attributes["mlflow.spanInputs"] == RECORDS[0].inputs
        assert attributes["mlflow.spanOutputs"] == RECORDS[0].outputs
        assert {k: attributes[k] for k in RECORDS[0].attributes} == RECORDS[0].attributes

        # The public path over http (bulk is refused there) stores the same content.
        assert not bulk_supported(url)
        http_run = MlflowClient(url).create_run(experiment_id).info.run_id
        http_ids = write_traces(url, experiment_id, http_run, RECORDS)
        root = artifact_root(sql_uri, experiment_id)
        for http_id, bulk_id, record in zip(http_ids, bulk_ids, RECORDS, strict=True):
            over_http = MlflowClient(url).get_trace(http_id)
            assert_matches_record(over_http, record, experiment_id, http_run)
            assert canonical(over_http, http_run, root) == canonical(
                MlflowClient(sql_uri).get_trace(bulk_id), run_id, root
            )
        assert len(MlflowClient(url).search_traces(locations=[experiment_id], run_id=http_run)) == len(RECORDS)
        assert delete_run_traces(url, experiment_id, http_run) == len(RECORDS)
        assert MlflowClient(url).search_traces(locations=[experiment_id], run_id=http_run) == []


# --------------------------------------------------------------------------- benchmark


def _naive_writer(uri: str, experiment_id: str, run_id: str, records: list[TraceRecord]) -> None:
    """The plain way (as /work/shared/bench/naive_ingest.py): start_trace/end_trace per scene."""
    mlflow.set_tracking_uri(uri)  # the tracer exports to the global URI; fine in this throw-away process
    client = MlflowClient(uri)
    for record in records:
        span = client.start_trace(name=record.name, inputs=record.inputs, attributes=record.attributes,
                                  tags={**record.tags, "mlflow.runId": run_id}, experiment_id=experiment_id,
                                  start_time_ns=record.start_ns, run_id=run_id)
        client.end_trace(span.trace_id, outputs=record.outputs, end_time_ns=record.end_ns)
    mlflow.flush_trace_async_logging()


def _bench(total: int, per_run: int, naive: int) -> None:
    """traces/s of each writer into fresh SQLite stores, ``per_run`` traces per call (one call per run)."""
    import tempfile

    def record(i: int) -> TraceRecord:
        start = T0 + i * 1_000_000_000
        return TraceRecord(
            name=f"scene-{i}",
            inputs={"scenario_id": "June2025-AF-eval", "state": "State text " * 30,
                    "choices": [{"action_id": f"a{j}", "unstructured": "Treat patient " * 5} for j in range(4)]},
            outputs={"choice_index": 1, "action": {"action_id": "a1", "justification": "because " * 20}},
            attributes={"scene_index": i, "adm": "pipeline", "timing_seconds": 1.5, "kdma": {"merit": 0.2}},
            tags={"scene_id": f"scene-{i}"},
            start_ns=start,
            end_ns=start + 1_500_000_000,
        )

    records = [record(i) for i in range(total)]
    writers = [("public", write_traces_public, total), ("bulk", write_traces_bulk, total)]
    if naive:
        writers.insert(0, ("naive", _naive_writer, naive))
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        template = Path(tmp) / "template.db"
        MlflowClient(f"sqlite:///{template}").search_experiments()
        for name, writer, count in writers:
            uri, experiment_id, _ = new_store(template, Path(tmp) / name)
            client = MlflowClient(uri)
            runs = [client.create_run(experiment_id).info.run_id for _ in range(0, count, per_run)]
            started = time.perf_counter()
            for index, run_id in enumerate(runs):
                writer(uri, experiment_id, run_id, records[index * per_run : min((index + 1) * per_run, count)])
            seconds = time.perf_counter() - started
            written = len(MlflowClient(uri).search_traces(locations=[experiment_id], max_results=count + 1,
                                                         include_spans=False))
            assert written == count, (name, written)
            print(f"{name:6s}: {count} traces ({per_run}/run) in {seconds:.2f} s = {count / seconds:.0f} traces/s"
                  f" ({1000 * seconds / count:.3f} ms/trace)")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--per-run", type=int, default=20)
    parser.add_argument("--naive", type=int, default=200, help="traces for the start_trace/end_trace baseline")
    args = parser.parse_args()
    _bench(args.traces, args.per_run, args.naive)
