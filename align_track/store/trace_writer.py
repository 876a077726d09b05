"""Write scenes as MLflow traces: one trace with one root span per ``TraceRecord``, linked to its run.

Two writers produce the same stored trace:

* the *public* path builds finished spans and trace infos itself, links the trace ids to the run
  (``link_traces_to_run``, up to 100 per call), creates each trace with its tags and metadata
  (``start_trace``: StartTraceV3 on a server, the only request through which MLflow's server stores
  trace metadata; these go out concurrently) and hands the chunk's spans to one ``log_spans`` (one
  batched OTLP ``/v1/traces`` request on a server). It skips the live-span/OTel machinery of
  ``MlflowClient.start_trace`` (~75 ms a trace) and works against any tracking backend;
* the *bulk* path inserts the rows that path makes MLflow's SQL store write, in one transaction
  with ``executemany``. It relies on store internals, so it is used only for the MLflow versions
  the equivalence test (tests/store/test_trace_writer.py) covers, and only for records whose spans
  carry none of the attributes that make ``log_spans`` derive extra columns or rows.

Trace shape, as MLflow's ``start_span`` inside an active run stores it (tests/store/test_trace_writer.py
compares the two): name = record.name (the scene id); root span inputs/outputs/attributes from the
record; tags ``scene_id`` (record.tags) and ``mlflow.runId``; metadata ``mlflow.sourceRun``,
``mlflow.trace_schema.version``, ``mlflow.traceInputs``/``traceOutputs``, ``mlflow.user``,
``mlflow.source.name``/``type`` and size stats; previews derived from the root span. Besides
``mlflow.sourceRun`` the run link is an entity association, which ``search_traces(run_id=...)`` and
the run page's Traces tab also match.

mlflow is imported only in this store layer; the CLI imports this module lazily.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import mlflow
from mlflow.entities import Span, SpanType, Trace, TraceData, TraceInfo, TraceLocation, TraceState
from mlflow.exceptions import MlflowException
from mlflow.tracing.client import TracingClient
from mlflow.tracing.constant import (
    MAX_CHARS_IN_TRACE_INFO_METADATA,
    TRACE_SCHEMA_VERSION,
    TRUNCATION_SUFFIX,
    SpanAttributeKey,
    TraceTagKey,
)
from mlflow.tracing.utils import (
    add_size_stats_to_trace_metadata,
    dump_span_attribute_value,
    generate_mlflow_trace_id_from_otel_trace_id,
)
from mlflow.tracing.utils.truncation import _get_truncated_preview

from align_track.records import TraceRecord
from align_track.schema import (
    META_INFO_FINALIZED,
    META_INPUTS,
    META_OUTPUTS,
    META_SCHEMA_VERSION,
    META_SOURCE_RUN,
    TRACE_TAG_RUN_ID,
)
from align_track.store.provenance import provenance
from align_track.store.sql_rows import TraceRows, new_span_id
from align_track.store.uri import store_kind

BULK_TESTED_MLFLOW_VERSIONS = ("3.17.2",)
"""MLflow versions whose SQL store the bulk rows were diffed against (tests/store/test_trace_writer.py)."""

BULK_KINDS = ("sqlite", "postgresql")
"""Store kinds the bulk path was verified on; anything else (http, mysql, file) uses the public path."""

_CHUNK = 100
"""Traces per link + log_spans round: the most one run-link request may carry (MLflow's limit)."""

_PARALLEL_CHUNKS = 4
"""Chunks in flight against a tracking server, where each is a round trip and a server transaction."""

_TRACES_IN_FLIGHT = 8
"""``start_trace`` requests of one write in flight against a tracking server (one per trace)."""

_SIDE_EFFECT_ATTRIBUTES = frozenset({
    SpanAttributeKey.SESSION_ID,
    "gen_ai.conversation.id",
    "user.id",
    SpanAttributeKey.CHAT_USAGE,
    SpanAttributeKey.LLM_COST,
    SpanAttributeKey.MODEL,
    SpanAttributeKey.MODEL_PROVIDER,
})
"""Span attributes from which the SQL store's log_spans derives session/user/token/cost/model
columns or metadata; the bulk path does not reproduce those, so such records go the public way."""

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# Building the trace objects (shared by both paths, so both store the same content)
# --------------------------------------------------------------------------------------------


def _build_trace(record: TraceRecord, experiment_id: str, run_id: str,
                 ids: tuple[int, int] | None = None) -> Trace:
    """A finished trace with one OK root span, its info as MLflow's ``start_span`` in an active run makes it.

    Tags: the record's (``scene_id``), ``mlflow.runId`` and the name (``mlflow.traceName``).
    Metadata: ``mlflow.sourceRun``, the schema version, who wrote it (``mlflow.user``,
    ``mlflow.source.*``), the truncated inputs/outputs and the size stats, computed with MLflow's
    own helpers. ``info`` is what ``start_trace`` sends and what the bulk rows are made of.
    """
    if record.end_ns < record.start_ns:
        raise ValueError(f"trace {record.name!r}: end_ns {record.end_ns} is before start_ns {record.start_ns}")
    if reserved := [key for key in record.attributes if key.startswith(SpanAttributeKey.TRACE_TAG_PREFIX)]:
        raise ValueError(f"trace {record.name!r}: attribute names {reserved} are reserved for trace tags")
    # ``ids`` (OTel trace id, span id) makes a rewrite of the same scene land on the same rows: a live
    # run's appends are idempotent (see store/run_appender.py). Otherwise fresh random ids.
    otel_trace_id, span_id = ids if ids is not None else (uuid.uuid4().int, new_span_id())
    trace_id = generate_mlflow_trace_id_from_otel_trace_id(otel_trace_id)

    tags = {**record.tags, TRACE_TAG_RUN_ID: run_id, TraceTagKey.TRACE_NAME: record.name}
    # Record attributes first; MLflow's reserved keys win on a clash so the span stays readable.
    attributes = {key: dump_span_attribute_value(value) for key, value in record.attributes.items()}
    attributes.update({
        SpanAttributeKey.REQUEST_ID: dump_span_attribute_value(trace_id),
        SpanAttributeKey.EXPERIMENT_ID: dump_span_attribute_value(str(experiment_id)),
        SpanAttributeKey.SPAN_TYPE: dump_span_attribute_value(SpanType.UNKNOWN),
        SpanAttributeKey.INPUTS: dump_span_attribute_value(record.inputs),
        SpanAttributeKey.OUTPUTS: dump_span_attribute_value(record.outputs),
    })
    span = Span.from_dict({
        "trace_id": _b64(otel_trace_id.to_bytes(16, "big")),
        "span_id": _b64(span_id.to_bytes(8, "big")),
        "parent_span_id": None,
        "name": record.name,
        "start_time_unix_nano": record.start_ns,
        "end_time_unix_nano": record.end_ns,
        "events": [],
        "status": {"code": "STATUS_CODE_OK", "message": ""},
        "attributes": attributes,
        "links": [],
    })
    metadata = {
        META_SCHEMA_VERSION: str(TRACE_SCHEMA_VERSION),
        META_SOURCE_RUN: run_id,
        **provenance(),
        META_INPUTS: _truncate_metadata(attributes[SpanAttributeKey.INPUTS]),
        META_OUTPUTS: _truncate_metadata(attributes[SpanAttributeKey.OUTPUTS]),
    }
    info = TraceInfo(
        trace_id=trace_id,
        trace_location=TraceLocation.from_experiment_id(str(experiment_id)),
        request_time=record.start_ns // 1_000_000,
        # end_ms - start_ms (not (end - start) // 1e6), as log_spans() derives it from the span times.
        execution_duration=record.end_ns // 1_000_000 - record.start_ns // 1_000_000,
        state=TraceState.OK,
        # As log_spans() derives them: from the root span's serialized inputs/outputs.
        request_preview=_get_truncated_preview(attributes[SpanAttributeKey.INPUTS], role="user"),
        response_preview=_get_truncated_preview(attributes[SpanAttributeKey.OUTPUTS], role="assistant"),
        trace_metadata=metadata,
        tags=tags,
    )
    trace = Trace(info=info, data=TraceData(spans=[span]))
    add_size_stats_to_trace_metadata(trace)  # mlflow.trace.sizeBytes / sizeStats, as MLflow's exporter adds them
    return trace


def _truncate_metadata(value: str) -> str:
    """``mlflow.traceInputs``/``traceOutputs`` as MLflow's span processor truncates them."""
    if len(value) > MAX_CHARS_IN_TRACE_INFO_METADATA:
        return value[: MAX_CHARS_IN_TRACE_INFO_METADATA - len(TRUNCATION_SUFFIX)] + TRUNCATION_SUFFIX
    return value


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------------------------
# Public path
# --------------------------------------------------------------------------------------------


def write_traces_public(
    tracking_uri: str, experiment_id: str, run_id: str, traces: list[TraceRecord],
    ids: Sequence[tuple[int, int]] | None = None,
) -> list[str]:
    """Write through MLflow's public client API (``TracingClient``). Returns trace ids in order.

    Synchronous store calls only, so nothing is left in an async export queue when this returns,
    and no global MLflow state (tracking URI, active run/experiment, tracer) is touched. A trace whose id
    (``ids``) exists is updated in place: MLflow's ``start_trace`` rewrites its info, tags and metadata,
    ``log_spans`` its spans, and the run link is kept.
    """
    built = [_build_trace(record, experiment_id, run_id, ids[i] if ids else None) for i, record in enumerate(traces)]
    _write_public(tracking_uri, str(experiment_id), run_id, built)
    return [trace.info.trace_id for trace in built]


def _write_public(tracking_uri: str, experiment_id: str, run_id: str, built: list[Trace]) -> None:
    """Per chunk of 100: link the trace ids to the run, create each trace with its info (tags and
    metadata: one ``start_trace``, StartTraceV3 on a server, the only way a server stores metadata),
    then one ``log_spans`` (the OTLP ``/v1/traces`` request on a server) with all the chunk's spans.

    Against a server the ``start_trace`` calls go out :data:`_TRACES_IN_FLIGHT` at a time, and the
    chunks of a run overlap. Linking first means a trace never exists unlinked: an interrupted write
    leaves at most links to traces that were never created, or traces of the unfinished run (which
    the next ingest deletes with it), never an orphan trace outside every run.
    """
    if not built:
        return
    client = TracingClient(tracking_uri)
    remote = store_kind(tracking_uri) == "http"
    pool = ThreadPoolExecutor(_TRACES_IN_FLIGHT, thread_name_prefix="align-track-traces") if remote else None

    def write(chunk: Sequence[Trace]) -> None:
        client.store.link_traces_to_run([trace.info.trace_id for trace in chunk], run_id)
        if pool is None:
            for trace in chunk:
                client.store.start_trace(trace.info)
        else:
            for future in [pool.submit(client.store.start_trace, trace.info) for trace in chunk]:
                future.result()
        spans = [span for trace in chunk for span in trace.data.spans]
        try:
            client.log_spans(experiment_id, spans)
        except NotImplementedError:  # a version probe that timed out on a busy server: ask again, once
            if not _server_version_known(client.store):
                raise
            client.log_spans(experiment_id, spans)

    if remote:
        _server_version_known(client.store)

    chunks = list(_chunks(built, _CHUNK))
    try:
        if pool is None or len(chunks) == 1:
            for chunk in chunks:
                write(chunk)
            return
        chunk_pool = ThreadPoolExecutor(_PARALLEL_CHUNKS, thread_name_prefix="align-track-chunks")
        try:
            for future in [chunk_pool.submit(write, chunk) for chunk in chunks]:
                future.result()
        finally:  # on a failure, do not start the queued calls: each would retry a dead server first
            chunk_pool.shutdown(cancel_futures=True)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _server_version_known(store: Any, attempts: int = 5) -> bool:
    """Make MLflow's cached answer to "which server version?" a real one; False if the server never says.

    ``RestStore.log_spans`` asks the server's ``/version`` once per process, with a 3 s timeout, and caches a
    failure for good: on a busy server (many StartTraceV3 requests in flight) one slow answer would make every
    later ``log_spans`` of the process refuse. So ask before the traces go out, and ask again after a miss.
    """
    from mlflow.store.tracking.rest_store import RestStore

    if not isinstance(store, RestStore):
        return True
    for attempt in range(attempts):
        if RestStore._get_server_version(store.get_host_creds()) is not None:
            return True
        RestStore._get_server_version.cache_clear()
        time.sleep(1 + attempt)
    return False


# --------------------------------------------------------------------------------------------
# Bulk path
# --------------------------------------------------------------------------------------------


def _mlflow_version() -> str:
    return mlflow.__version__


def bulk_supported(tracking_uri: str) -> bool:
    """True only for a SQL store kind the bulk rows were verified on, with an MLflow version the
    equivalence test covers, and with no opt-in store feature that makes writes touch more tables
    (trace rollups, workspaces)."""
    if store_kind(tracking_uri) not in BULK_KINDS:
        return False
    if _mlflow_version() not in BULK_TESTED_MLFLOW_VERSIONS:
        return False
    from mlflow import environment_variables as env

    for flag in ("MLFLOW_SQL_TRACE_ROLLUPS_ENABLED", "MLFLOW_ENABLE_WORKSPACES"):
        variable = getattr(env, flag, None)
        if variable is None or variable.get():
            return False
    return True


def write_traces_bulk(
    tracking_uri: str, experiment_id: str, run_id: str, traces: list[TraceRecord]
) -> list[str]:
    """Insert the rows MLflow's own store writes for the public path, in one transaction with
    executemany (~10-20x faster than the public path on SQLite: no per-trace transactions).

    Tables: trace_info, trace_tags, spans, entity_associations (nothing else is touched by
    link_traces_to_run + log_spans unless rollups/workspaces are on, which bulk_supported refuses).
    Raises ValueError where ``bulk_supported`` is false or a record carries span attributes the
    store would derive extra columns from (``write_traces`` sends those the public way).
    """
    if not bulk_supported(tracking_uri):
        raise ValueError(f"bulk trace writing is not supported for {tracking_uri!r} with mlflow "
                         f"{_mlflow_version()}")
    built = [_build_trace(record, experiment_id, run_id) for record in traces]
    if not _write_bulk(tracking_uri, str(experiment_id), run_id, built):
        raise ValueError("these records cannot be written in bulk (span attributes the store derives "
                         "columns from, or not an MLflow SQL store); use write_traces_public")
    return [trace.info.trace_id for trace in built]


def write_traces(tracking_uri: str, experiment_id: str, run_id: str, traces: list[TraceRecord],
                 ids: Sequence[tuple[int, int]] | None = None) -> list[str]:
    """Bulk when supported (and the records allow it), else the public path; trace ids in order.

    ``ids``: one (OTel trace id, span id) per record, for writes that must be idempotent.
    """
    built = [_build_trace(record, experiment_id, run_id, ids[i] if ids else None) for i, record in enumerate(traces)]
    if not (bulk_supported(tracking_uri) and _write_bulk(tracking_uri, str(experiment_id), run_id, built)):
        _write_public(tracking_uri, str(experiment_id), run_id, built)
    return [trace.info.trace_id for trace in built]


def sql_store(tracking_uri: str) -> Any:
    """MLflow's SQL store for a database URI (cached per URI; its init verified the schema version)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = TracingClient(tracking_uri).store
    if not isinstance(store, SqlAlchemyStore):
        raise ValueError(f"{tracking_uri!r} is not an MLflow SQL store")
    return store


def begin_write(conn: Any, db_type: str) -> None:
    """Session settings MLflow's own sessions use; on SQLite also take the write lock up front.

    ``BEGIN IMMEDIATE`` takes SQLite's write lock before the first statement, so whatever the
    transaction reads (the bulk run writer's "is this run already there?") cannot change until it
    commits: two processes writing one file are serialised, and the second sees the first's run.
    (pysqlite's default deferred BEGIN would take the lock only at the first INSERT, after the check.)
    The SQLite lock wait is short (3 s): a writer held up by another one longer than that gets
    "database is locked", and the ingest's ``with_retries`` says so and waits, instead of
    hanging silently.
    """
    if db_type == "sqlite":
        # foreign_keys must be set before the transaction starts, as MLflow's sessions do.
        conn.exec_driver_sql("PRAGMA foreign_keys = ON")
        conn.exec_driver_sql("PRAGMA busy_timeout = 3000")
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # pysqlite sees the open transaction and adds no BEGIN


def insert_traces(conn: Any, store: Any, experiment_id: str, run_id: str, traces: list[TraceRecord],
                  ids: Sequence[tuple[int, int]] | None = None) -> list[str]:
    """Insert ``traces`` for ``run_id`` inside the caller's transaction (see ``write_traces_bulk``)."""
    built = [_build_trace(record, experiment_id, run_id, ids[i] if ids else None) for i, record in enumerate(traces)]
    if not _insert_built(conn, experiment_id, run_id, built):
        raise ValueError("records carry span attributes the bulk path does not reproduce")
    return [trace.info.trace_id for trace in built]


def drop_traces(conn: Any, experiment_id: str, run_id: str, trace_ids: Sequence[str]) -> None:
    """Delete these traces (tags, metadata and spans by the schema's cascades) and their links to ``run_id`` in the
    caller's transaction (``begin_write``), so traces written anew under their ids link again."""
    from mlflow.entities.entity_type import EntityAssociationType
    from mlflow.store.tracking.dbmodels.models import SqlEntityAssociation, SqlTraceInfo
    from sqlalchemy import delete

    infos, links = SqlTraceInfo.__table__, SqlEntityAssociation.__table__
    for chunk in _chunks(list(dict.fromkeys(trace_ids)), 500):
        conn.execute(delete(infos).where(infos.c.experiment_id == int(experiment_id),
                                         infos.c.request_id.in_(list(chunk))))
        conn.execute(delete(links).where(links.c.source_type == EntityAssociationType.TRACE,
                                         links.c.destination_type == EntityAssociationType.RUN,
                                         links.c.destination_id == run_id, links.c.source_id.in_(list(chunk))))


def _write_bulk(tracking_uri: str, experiment_id: str, run_id: str, built: list[Trace]) -> bool:
    """Insert ``built`` in one transaction; False (nothing written) when a span needs store-side
    derivations the bulk rows do not reproduce, or the store is not MLflow's SQL store."""
    if not built:
        return True
    try:
        store = sql_store(tracking_uri)
    except ValueError:
        return False
    with store.engine.begin() as conn:
        begin_write(conn, store.db_type)
        return _insert_built(conn, experiment_id, run_id, built)


def _insert_built(conn: Any, experiment_id: str, run_id: str, built: list[Trace]) -> bool:
    """The rows of ``built`` into trace_info, trace_tags, spans and entity_associations (run links)."""
    if not built:
        return True
    rows = _built_rows(built, experiment_id, run_id, experiment_location(conn, experiment_id))
    if rows is None:
        return False
    insert_rows(conn, [rows])
    return True


def trace_rows(experiment_id: str, run_id: str, traces: Sequence[TraceRecord], artifact_location: str,
               ids: Sequence[tuple[int, int]] | None = None) -> TraceRows:
    """The bulk rows of ``traces`` for ``run_id``, built without a connection (``artifact_location``: the
    experiment's, from ``experiment_location``), so several runs can go into one transaction and one
    statement per table. ValueError where the records need the public path."""
    built = [_build_trace(record, experiment_id, run_id, ids[i] if ids else None) for i, record in enumerate(traces)]
    rows = _built_rows(built, str(experiment_id), run_id, artifact_location)
    if rows is None:
        raise ValueError("records carry span attributes the bulk path does not reproduce")
    return rows


def experiment_location(conn: Any, experiment_id: str) -> str:
    """The experiment's artifact location, read in the caller's transaction; a missing or deleted experiment
    is refused as MLflow's start_trace() refuses it. (store.get_experiment() would cost a second transaction
    plus tag/retention loading, ~5 ms a batch.)"""
    from mlflow.entities import LifecycleStage
    from mlflow.exceptions import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
    from mlflow.store.tracking.dbmodels.models import SqlExperiment
    from sqlalchemy import select

    experiments = SqlExperiment.__table__
    experiment = conn.execute(
        select(experiments.c.artifact_location, experiments.c.lifecycle_stage).where(
            experiments.c.experiment_id == int(experiment_id)
        )
    ).one_or_none()
    if experiment is None:
        raise MlflowException(f"No Experiment with id={experiment_id} exists", RESOURCE_DOES_NOT_EXIST)
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise MlflowException(
            f"The experiment {experiment_id} must be in the 'active' state. "
            f"Current state is {experiment.lifecycle_stage}.",
            INVALID_PARAMETER_VALUE,
        )
    return experiment.artifact_location


def _built_rows(built: list[Trace], experiment_id: str, run_id: str, artifact_location: str) -> TraceRows | None:
    """trace_info, trace_tags, trace_request_metadata, spans and entity_associations rows of ``built``;
    None when a span or its metadata needs store-side derivations the bulk rows do not reproduce."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION
    from mlflow.utils.uri import append_to_uri_path

    span_rows = _span_rows(built, experiment_id)
    if span_rows is None:
        return None
    trace_rows = _trace_rows(built, experiment_id)
    if trace_rows is None:
        return None
    info_rows, tag_rows, metadata_rows = trace_rows
    # The tag log_spans() adds from the experiment's artifact location.
    tag_rows.extend(
        {
            "request_id": trace.info.trace_id,
            "key": MLFLOW_ARTIFACT_LOCATION,
            "value": append_to_uri_path(
                artifact_location,
                SqlAlchemyStore.TRACE_FOLDER_NAME,
                trace.info.trace_id,
                SqlAlchemyStore.ARTIFACTS_FOLDER_NAME,
            ),
        }
        for trace in built
    )
    return {"trace_info": info_rows, "trace_tags": tag_rows, "trace_request_metadata": metadata_rows,
            "spans": span_rows, "entity_associations": _link_rows(built, run_id)}


def insert_rows(conn: Any, many: Sequence[TraceRows]) -> None:
    """Every run's trace rows, one executemany per table (in the order MLflow's foreign keys need)."""
    from mlflow.store.tracking.dbmodels.models import (
        SqlEntityAssociation,
        SqlSpan,
        SqlTraceInfo,
        SqlTraceMetadata,
        SqlTraceTag,
    )

    for name, model in (("trace_info", SqlTraceInfo), ("trace_tags", SqlTraceTag),
                        ("trace_request_metadata", SqlTraceMetadata), ("spans", SqlSpan),
                        ("entity_associations", SqlEntityAssociation)):
        rows = [row for one in many for row in one[name]]
        if rows:
            conn.execute(model.__table__.insert(), rows)


def _span_rows(built: list[Trace], experiment_id: str) -> list[dict[str, Any]] | None:
    """``spans`` rows exactly as log_spans() builds them; None if a span would make log_spans()
    also fill session/user/token/cost/model columns or trace tags from its attributes."""
    from mlflow.tracing.otel.translation import translate_span_when_storing
    from mlflow.tracing.utils import TraceJSONEncoder

    rows = []
    for trace in built:
        for span in trace.data.spans:
            span_dict = translate_span_when_storing(span)
            if any(key in _SIDE_EFFECT_ATTRIBUTES for key in span_dict.get("attributes", {})):
                return None
            rows.append({
                "trace_id": span.trace_id,
                "experiment_id": int(experiment_id),
                "span_id": span.span_id,
                "parent_span_id": span.parent_id,
                "name": span.name,
                "type": span.span_type,
                "status": span.status.status_code.value,
                "start_time_unix_nano": span.start_time_ns,
                "end_time_unix_nano": span.end_time_ns,
                # Non-ASCII kept as is, as the store does (so `span.content` LIKE filters match).
                "content": json.dumps(span_dict, cls=TraceJSONEncoder, ensure_ascii=False),
                "input_cost": None,
                "output_cost": None,
                "total_cost": None,
                "model_name": None,
                "model_provider": None,
            })
    return rows


def _trace_rows(
    built: list[Trace], experiment_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]] | None:
    """trace_info, trace_tags (less the artifact-location tag, which needs the experiment) and
    trace_request_metadata rows as start_trace() then log_spans() leave them; None if the metadata
    would fill analytics columns (token usage, cost, session) the bulk rows do not reproduce."""
    from mlflow.store.tracking.utils.trace_analytics import (
        PROMOTED_TRACE_METADATA_KEYS,
        analytics_columns_from_metadata,
        validate_trace_name,
    )
    from mlflow.tracing.constant import SpansLocation

    info_rows: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    metadata_rows: list[dict[str, Any]] = []
    for trace in built:
        metadata = dict(trace.info.trace_metadata)
        if analytics_columns_from_metadata(dict(metadata)) or PROMOTED_TRACE_METADATA_KEYS & set(metadata):
            return None
        metadata[META_INFO_FINALIZED] = "true"  # what start_trace() adds
        metadata_rows.extend(
            {"request_id": trace.info.trace_id, "key": k, "value": v} for k, v in sorted(metadata.items())
        )
        info = trace.info
        trace_id = info.trace_id
        info_rows.append({
            "request_id": trace_id,
            "experiment_id": int(experiment_id),
            "timestamp_ms": info.request_time,
            "execution_time_ms": info.execution_duration,
            "status": info.state.value,
            "client_request_id": None,
            "request_preview": info.request_preview,
            "response_preview": info.response_preview,
            # 0 when created, +1 by log_spans()' payload-generation bump.
            "db_payload_generation": 1,
            # The trace name lives in this column, not in trace_tags.
            "trace_name": validate_trace_name(info.tags.get(TraceTagKey.TRACE_NAME)),
        })
        tags = {key: value for key, value in info.tags.items() if key != TraceTagKey.TRACE_NAME}
        tags[TraceTagKey.SPANS_LOCATION] = SpansLocation.TRACKING_STORE.value
        tag_rows.extend({"request_id": trace_id, "key": k, "value": v} for k, v in tags.items())
    return info_rows, tag_rows, metadata_rows


def _link_rows(built: list[Trace], run_id: str) -> list[dict[str, Any]]:
    """entity_associations rows as link_traces_to_run() adds them: trace -> run."""
    from mlflow.entities.entity_type import EntityAssociationType
    from mlflow.utils.time import get_current_time_millis

    now = get_current_time_millis()
    return [
        {
            "association_id": uuid.uuid4().hex,
            "source_type": EntityAssociationType.TRACE,
            "source_id": trace.info.trace_id,
            "destination_type": EntityAssociationType.RUN,
            "destination_id": run_id,
            "created_time": now,
        }
        for trace in built
    ]


# --------------------------------------------------------------------------------------------
# Deleting
# --------------------------------------------------------------------------------------------


def run_trace_ids(tracking_uri: str, experiment_id: str, run_id: str) -> set[str]:
    """Ids of the traces that exist and are linked to ``run_id``.

    A link whose trace was never created (an interrupted public write links first) does not count.
    """
    if bulk_supported(tracking_uri):
        from mlflow.entities.entity_type import EntityAssociationType
        from mlflow.store.tracking.dbmodels.models import SqlEntityAssociation, SqlTraceInfo
        from sqlalchemy import select

        links, infos = SqlEntityAssociation.__table__, SqlTraceInfo.__table__
        with sql_store(tracking_uri).engine.connect() as conn:
            return set(conn.execute(
                select(links.c.source_id).join(infos, infos.c.request_id == links.c.source_id).where(
                    links.c.destination_id == run_id, links.c.destination_type == EntityAssociationType.RUN,
                    links.c.source_type == EntityAssociationType.TRACE)
            ).scalars())
    client = TracingClient(tracking_uri)
    found: set[str] = set()
    page_token: str | None = None
    while True:
        page = client.search_traces(locations=[str(experiment_id)], run_id=run_id, include_spans=False,
                                    max_results=500, page_token=page_token)
        found.update(trace.info.trace_id for trace in page)
        page_token = page.token
        if not page_token:
            return found


def delete_traces(tracking_uri: str, experiment_id: str, trace_ids: Sequence[str]) -> int:
    """Delete the given traces (100 per request); returns how many were deleted."""
    client = TracingClient(tracking_uri)
    deleted = 0
    for chunk in _chunks(list(dict.fromkeys(trace_ids)), 100):
        deleted += client.delete_traces(experiment_id=str(experiment_id), trace_ids=list(chunk))
    return deleted


def delete_run_traces(tracking_uri: str, experiment_id: str, run_id: str) -> int:
    """Delete every trace linked to ``run_id`` (by ``mlflow.sourceRun`` or a run link); returns the count.

    Used when a run is replaced or withdrawn so its scenes do not linger as orphan traces.
    Collects all ids first, then deletes, so paging is not disturbed by the deletes.
    """
    client = TracingClient(tracking_uri)
    trace_ids: list[str] = []
    page_token: str | None = None
    while True:
        page = client.search_traces(
            locations=[str(experiment_id)],
            run_id=run_id,
            include_spans=False,
            max_results=500,
            page_token=page_token,
        )
        trace_ids.extend(trace.info.trace_id for trace in page)
        page_token = page.token
        if not page_token:
            break
    deleted = 0
    for chunk in _chunks(list(dict.fromkeys(trace_ids)), 100):
        deleted += client.delete_traces(experiment_id=str(experiment_id), trace_ids=list(chunk))
    return deleted
