"""Read a run's traces and their root spans straight from MLflow's SQL tables, without importing mlflow.

``MlflowClient.search_traces(run_id=...)`` needs ``import mlflow`` (~4 s cold) before its first
query; the TUI's scene list needs only each trace's root span. This reads the same rows with the
DBAPI cursor the runs reader uses (one query for the page, one round for its tags and spans) and
decodes them as MLflow does, so a run's first scenes show a few milliseconds after they are asked for.

It matches ``search_traces(locations=[experiment], run_id=run, order_by=["timestamp_ms ASC"])``
followed by each trace's spans (``get_trace``), for the MLflow versions and schema revision the
equality test (tests/store/test_spans_reader.py) covers. Whatever it cannot reproduce exactly
raises :class:`Unreadable`, and the caller goes through MLflow instead: spans kept outside the
tracking store (artifact repo, archive), traces MLflow would skip (no spans, not fully exported,
payload cleared by archival), v2 span JSON, a run outside the experiment, an unknown schema.

One known difference, on purpose: MLflow re-derives ``mlflow.spanType`` on load from OpenTelemetry
semantic-convention attributes (OpenInference, GenAI, ...) when the stored type is UNKNOWN; this
returns the stored value (the TUI never shows the span type).
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from align_track.store.dbapi import installed_mlflow as _installed_mlflow
from align_track.store.runs_reader import _sql
from align_track.store.uri import resolve_tracking_uri, store_kind

TESTED_MLFLOW_SCHEMAS = {"3.17.2": "dc11669786a5"}
"""MLflow version -> the alembic revision of its SQL schema, as covered by the equality test."""

KINDS = ("sqlite", "postgresql")

# MLflow's own names (mlflow.tracing.constant, mlflow.entities.entity_type); the test checks them.
SPANS_LOCATION_TAG = "mlflow.trace.spansLocation"
TRACKING_STORE = "TRACKING_STORE"
TRACE_NAME_TAG = "mlflow.traceName"
SOURCE_RUN_METADATA = "mlflow.sourceRun"
SIZE_STATS_METADATA = "mlflow.trace.sizeStats"
SIZE_STATS_NUM_SPANS = "num_spans"
TRACE_ENTITY = "trace"
RUN_ENTITY = "run"
INPUTS_ATTRIBUTE = "mlflow.spanInputs"
OUTPUTS_ATTRIBUTE = "mlflow.spanOutputs"
_WORKSPACES_ENV = "MLFLOW_ENABLE_WORKSPACES"


class Unreadable(Exception):
    """These traces need MLflow itself to be read as ``search_traces`` reads them."""


def supported(tracking_uri: str) -> bool:
    """True for a SQLite/PostgreSQL store with an MLflow version the equality test covers.

    Tracking servers (http), other databases, file stores, workspaces and unknown MLflow versions
    go through MLflow's client (the schema revision is checked again on each read).
    """
    if store_kind(tracking_uri) not in KINDS:
        return False
    if os.environ.get(_WORKSPACES_ENV, "").strip().lower() not in ("", "false", "0"):
        return False
    return _installed_mlflow() in TESTED_MLFLOW_SCHEMAS


def _literal(text: str) -> str:
    """A SQL string literal (standard quoting: SQLite and PostgreSQL's standard_conforming_strings)."""
    if "\x00" in text:
        raise Unreadable("NUL in an identifier")
    return "'" + text.replace("'", "''") + "'"


def _decode_attribute(value: Any) -> Any:
    """One span attribute as MLflow's ``Span.attributes`` returns it (JSON-decoded, raw if not JSON)."""
    if not value:
        return None
    try:
        return json.loads(value)
    except Exception:
        return value


def _hex_id(b64: str, size: int) -> str:
    return format(int.from_bytes(base64.b64decode(b64), "big"), f"0{size * 2}x")


def _root_span(content: str) -> dict[str, Any]:
    """The root span's fields from its stored JSON (v3 schema: OTLP-style dict, attribute values JSON)."""
    try:
        data = json.loads(content)
        if "context" in data or data.get("parent_span_id"):
            raise Unreadable("not a v3 root span")
        attributes = {k: _decode_attribute(v) for k, v in (data.get("attributes") or {}).items()}
        end = data.get("end_time_unix_nano")
        return {
            "span_id": _hex_id(data["span_id"], 8),
            "span_name": data["name"],
            "start_time_ns": int(data["start_time_unix_nano"]),
            "end_time_ns": int(end) if end else None,
            "status": str(data["status"]["code"]).removeprefix("STATUS_CODE_"),
            "inputs": attributes.get(INPUTS_ATTRIBUTE),
            "outputs": attributes.get(OUTPUTS_ATTRIBUTE),
            "attributes": attributes,
        }
    except Unreadable:
        raise
    except Exception as exc:  # malformed JSON or ids: let MLflow read (or reject) it
        raise Unreadable(f"span content: {exc}") from exc


def read_run_traces(tracking_uri: str, experiment_id: str, run_id: str, offset: int = 0, limit: int = 100,
                    ascending: bool = True, since_ms: int | None = None) -> list[dict[str, Any]]:
    """Traces ``offset..offset+limit`` of ``run_id`` in ``experiment_id``, each with its root span.

    ``since_ms``: only traces with ``timestamp_ms >= since_ms`` (a live run's new scenes, as MLflow's
    ``filter_string="trace.timestamp_ms >= ..."`` selects them), so a refresh reads what is new only.

    Order: ``timestamp_ms`` ascending (as the TUI asks; ``ascending=False`` is MLflow's default),
    then trace id. Each dict: trace_id, name, request_time (ms), execution_duration (ms), state,
    tags (``mlflow.traceName`` from its column, as MLflow reports it), and the root span's span_id,
    span_name, start_time_ns, end_time_ns, status, inputs, outputs, attributes (all of them, decoded).
    StoreError when the store cannot be read; Unreadable when MLflow must read these traces.
    """
    if not supported(tracking_uri):
        raise Unreadable(f"no fast trace reader for {store_kind(tracking_uri)} stores with this MLflow")
    uri = resolve_tracking_uri(tracking_uri)
    try:
        eid = int(experiment_id)
    except ValueError:
        raise Unreadable(f"experiment id {experiment_id!r} is not a number") from None
    run = _literal(run_id)
    direction = "ASC" if ascending else "DESC"
    since = "" if since_ms is None else f" AND t.timestamp_ms >= {int(since_ms)}"
    # MLflow's run filter (sqlalchemy_store._apply_trace_filter_clauses): a run link OR sourceRun metadata.
    page_sql = (
        "SELECT t.request_id, t.trace_name, t.timestamp_ms, t.execution_time_ms, t.status FROM trace_info t"
        f" WHERE t.experiment_id = {eid}{since} AND (EXISTS (SELECT 1 FROM entity_associations a"
        f" WHERE a.source_id = t.request_id AND a.source_type = '{TRACE_ENTITY}'"
        f" AND a.destination_type = '{RUN_ENTITY}' AND a.destination_id = {run})"
        f" OR EXISTS (SELECT 1 FROM trace_request_metadata m WHERE m.request_id = t.request_id"
        f" AND m.{{key}} = '{SOURCE_RUN_METADATA}' AND m.value = {run}))"
        f" ORDER BY t.timestamp_ms {direction}, t.request_id ASC LIMIT {int(limit)} OFFSET {int(offset)}"
    )
    # The schema first, alone: an older one may lack tables the page query names (MLflow then says why).
    (schema,) = _sql(uri, ["SELECT version_num FROM alembic_version"])
    if [r[0] for r in schema] != [TESTED_MLFLOW_SCHEMAS[_installed_mlflow() or ""]]:
        raise Unreadable(f"schema revision {[r[0] for r in schema]} is not the one this reader was tested on")
    run_rows, page = _sql(uri, [f"SELECT experiment_id FROM runs WHERE run_uuid = {run}", page_sql])
    if [int(r[0]) for r in run_rows] != [eid]:
        raise Unreadable(f"run {run_id} is not in experiment {eid}")  # MLflow says why
    if not page:
        return []
    ids = ", ".join(_literal(r[0]) for r in page)
    tags, sizes, roots, counts = _sql(uri, [
        f"SELECT request_id, {{key}}, value FROM trace_tags WHERE request_id IN ({ids})",
        f"SELECT request_id, value FROM trace_request_metadata WHERE request_id IN ({ids})"
        f" AND {{key}} = '{SIZE_STATS_METADATA}'",
        f"SELECT trace_id, content FROM spans WHERE trace_id IN ({ids}) AND parent_span_id IS NULL"
        " ORDER BY trace_id, start_time_unix_nano",
        f"SELECT trace_id, COUNT(*), SUM(CASE WHEN content = '' THEN 1 ELSE 0 END) FROM spans"
        f" WHERE trace_id IN ({ids}) GROUP BY trace_id",
    ])
    tag_d: dict[str, dict[str, str]] = {r[0]: {} for r in page}
    for trace_id, key, value in tags:
        if key != TRACE_NAME_TAG:  # the name lives in trace_info.trace_name
            tag_d[trace_id][key] = value
    root_d: dict[str, str] = {}
    for trace_id, content in roots:
        root_d.setdefault(trace_id, content)
    count_d = {trace_id: (int(n), int(cleared or 0)) for trace_id, n, cleared in counts}
    expected: dict[str, int] = {}
    for trace_id, value in sizes:
        try:
            expected[trace_id] = int(json.loads(value).get(SIZE_STATS_NUM_SPANS, 0))
        except (ValueError, TypeError, AttributeError) as exc:
            raise Unreadable(f"trace {trace_id}: size stats {value!r}") from exc

    out = []
    for trace_id, name, timestamp_ms, execution_ms, status in page:
        trace_tags = tag_d[trace_id]
        if trace_tags.get(SPANS_LOCATION_TAG) != TRACKING_STORE:
            raise Unreadable(f"trace {trace_id} keeps its spans outside the tracking store")
        n_spans, cleared = count_d.get(trace_id, (0, 0))
        if cleared or trace_id not in root_d or n_spans < expected.get(trace_id, 0):
            raise Unreadable(f"trace {trace_id} has no complete stored spans")
        if name is not None:
            trace_tags[TRACE_NAME_TAG] = name
        out.append({
            "trace_id": trace_id,
            "name": name,
            "request_time": int(timestamp_ms),
            "execution_duration": None if execution_ms is None else int(execution_ms),
            "state": status,
            "tags": trace_tags,
            **_root_span(root_d[trace_id]),
        })
    return out
