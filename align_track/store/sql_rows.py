"""The rows MLflow's SQL store keeps for a run and its traces, built without importing MLflow.

``import mlflow`` costs seconds per process (4 s cold on the test machine), more than writing a whole
sweep's rows. This module builds the same rows MLflow 3.17's store writes for align-track's data model
(``trace_writer.trace_rows`` builds them through MLflow's own objects: ``Span``, ``TraceInfo``, the span
translation and size-stats helpers), from plain Python: the span JSON, the previews, the size stats
(whose byte count includes the trace info as MLflow's ``TraceInfo.to_dict`` renders it), the tags and
metadata, the run link. tests/store/test_sql_rows.py requires every row to equal MLflow's, on generated
records (Hypothesis) and on the demo and real corpora.

It reproduces MLflow for what align-track's mapping writes: span attributes, inputs and outputs named
as in ``schema`` (no OpenTelemetry semantic-convention keys, which make MLflow derive a span type, token
usage or a model from them) holding JSON values (what a JSON file parses to). Anything else raises
:class:`NotReproduced` and the caller builds those rows through MLflow instead.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from align_track import schema as S
from align_track.records import RunRecord, TraceRecord
from align_track.store.provenance import provenance

ROWS_MLFLOW_VERSIONS = ("3.17.2",)
"""MLflow versions whose rows this module reproduces (tests/store/test_sql_rows.py compares them)."""

TraceRows = dict[str, list[dict[str, Any]]]
"""Rows of one run's traces by table (``trace_info``, ``trace_tags``, ``trace_request_metadata``, ``spans``,
``entity_associations``): several runs' rows go into one statement per table."""

TRACE_TABLES = ("trace_info", "trace_tags", "trace_request_metadata", "spans", "entity_associations")
"""In the order MLflow's foreign keys need them inserted."""

# MLflow's names (mlflow.tracing.constant, mlflow.entities); tests/store/test_sql_rows.py checks each.
REQUEST_ID_ATTRIBUTE = "mlflow.traceRequestId"
EXPERIMENT_ID_ATTRIBUTE = "mlflow.experimentId"
SPAN_TYPE_ATTRIBUTE = "mlflow.spanType"
INPUTS_ATTRIBUTE = "mlflow.spanInputs"
OUTPUTS_ATTRIBUTE = "mlflow.spanOutputs"
TRACE_TAG_PREFIX = "mlflow.traceTag."
TRACE_NAME_TAG = "mlflow.traceName"
SPANS_LOCATION_TAG = "mlflow.trace.spansLocation"
TRACKING_STORE = "TRACKING_STORE"
ARTIFACT_LOCATION_TAG = "mlflow.artifactLocation"
TRACE_SCHEMA_VERSION = 3
SPAN_TYPE_UNKNOWN = "UNKNOWN"
STATUS_OK = "OK"
TRACE_ENTITY, RUN_ENTITY = "trace", "run"
MAX_METADATA_CHARS = 250
MAX_TAG_KEY_CHARS = 250
MAX_TAG_VALUE_CHARS = 4096
PREVIEW_MAX_CHARS = 1000
TRUNCATION_SUFFIX = "..."
TRACES_FOLDER, ARTIFACTS_FOLDER = "traces", "artifacts"
_TIMESTAMP_SECONDS = (-62135596800, 253402300799)
"""What a protobuf Timestamp (the trace info's request time, in its size) can hold: years 1 to 9999."""

_ATTRIBUTES = frozenset(S.TRACE_ATTRIBUTES)
_INPUTS = frozenset(S.TRACE_INPUTS)
_OUTPUTS = frozenset(S.TRACE_OUTPUTS)


class NotReproduced(Exception):  # noqa: N818 - a verdict, not an error: the caller goes through MLflow
    """This record's rows are not reproduced here: build them through MLflow (``trace_writer.trace_rows``)."""


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class BulkResult:
    """``written`` False means a complete run with this fingerprint already existed (nothing written)."""

    written: bool
    run_id: str | None
    others: list[str]
    """Other live runs of the same identity seen inside the transaction: to clean up afterwards."""


@dataclass
class BulkRun:
    """One run for a bulk writer; its id and trace rows may be made ahead (in another thread or process than
    the writer's), so building rows overlaps writing them."""

    record: RunRecord
    force: bool
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    location: str | None = None
    """The experiment artifact location ``trace_rows`` were built with (checked in the transaction)."""
    trace_rows: TraceRows | None = None
    scenes: int = -1
    """Traces of the run (``record.traces`` may be dropped once the rows are built); -1: len(record.traces)."""

    def __post_init__(self) -> None:
        if self.scenes < 0:
            self.scenes = len(self.record.traces)


def folder_groups(items: Sequence[tuple[BulkRun, str]]) -> list[list[int]]:
    """Indices of ``items`` ``(bulk run, key)`` grouped by run folder (their ``experiment_path``), in order of
    first appearance: a folder's runs (one per alignment target) are written in one transaction or not at all."""
    groups: dict[str, list[int]] = {}
    for index, (bulk, key) in enumerate(items):
        groups.setdefault(bulk.record.tags.get(S.TAG_PATH, key), []).append(index)
    return list(groups.values())


def per_folder(items: Sequence[tuple[BulkRun, str]], failure: Exception,
               write: Callable[[list[tuple[BulkRun, str]]], list[Any]]) -> list[Any]:
    """After a shared transaction of ``items`` failed with ``failure``: write them again one run folder at a time
    (``write`` a folder's items, one result per item), so a folder the store refuses fails alone, all its targets
    together (none published), and the others go in. One folder alone is not retried: it failed as a whole."""
    groups = folder_groups(items)
    out: list[Any] = [failure] * len(items)
    if len(groups) == 1:
        return out
    for group in groups:
        for index, result in zip(group, write([items[i] for i in group]), strict=True):
            out[index] = result
    return out


def run_artifact_uri(artifact_location: str, run_id: str) -> str:
    """A run's artifact URI under its experiment's location, as MLflow's create_run makes it."""
    return append_to_uri_path(artifact_location, run_id, ARTIFACTS_FOLDER)


def run_rows(rows: dict[str, list[dict]], record: RunRecord, run_id: str, experiment_id: str, run_artifacts: str,
             claim: str, now: int) -> None:
    """The runs, tags, params and metrics rows of one complete run, added to ``rows``: started and ended at the
    experiment's times (the record's), written ``now`` (``align_track.ingest_time_ms``, the metrics' timestamp)."""
    tags = {**provenance(), **record.tags}
    tags[S.TAG_CLAIM] = claim
    tags[S.TAG_INGEST_TIME] = str(now)
    tags["mlflow.runName"] = record.run_name
    tags[S.TAG_COMPLETE] = "true"
    rows["runs"].append({
        "run_uuid": run_id, "name": record.run_name, "source_type": "UNKNOWN", "source_name": "",
        "entry_point_name": "", "user_id": tags[S.USER], "status": "FINISHED",
        "start_time": now if record.start_ms is None else record.start_ms,
        "end_time": now if record.end_ms is None else record.end_ms, "deleted_time": None, "source_version": "",
        "lifecycle_stage": "active",
        "artifact_uri": run_artifacts, "experiment_id": int(experiment_id),
    })
    rows["tags"].extend({"key": k, "value": v, "run_uuid": run_id} for k, v in tags.items())
    rows["params"].extend({"key": k, "value": v, "run_uuid": run_id} for k, v in record.params.items())
    rows["metrics"].extend({"key": k, "value": float(v), "timestamp": now, "step": 0, "is_nan": False,
                            "run_uuid": run_id} for k, v in record.metrics.items())


# --------------------------------------------------------------------------- traces


def new_span_id() -> int:
    return int.from_bytes(os.urandom(8), "big") or 1


def trace_rows(experiment_id: str, run_id: str, traces: Sequence[TraceRecord], artifact_location: str,
               ids: Sequence[tuple[int, int]] | None = None) -> TraceRows:
    """The rows of ``traces`` for ``run_id``, as ``trace_writer.trace_rows`` builds them through MLflow.

    ``ids``: one (OTel trace id, span id) per record (a live run's idempotent appends); else random ones.
    NotReproduced for a record this module does not cover, ValueError where MLflow's writer refuses one.
    """
    _check_environment()
    rows: TraceRows = {table: [] for table in TRACE_TABLES}
    now = int(time.time() * 1000)
    for index, record in enumerate(traces):
        _trace(rows, record, str(experiment_id), run_id, artifact_location, ids[index] if ids else None, now)
    return rows


def trace_id_of(ids: tuple[int, int]) -> str:
    """MLflow's ``tr-<32 hex>`` id for an OTel trace id."""
    return f"tr-{ids[0]:032x}"


def _check_environment() -> None:
    """MLflow's preview length follows the process's tracking URI (10,000 characters for Databricks)."""
    if os.environ.get("MLFLOW_TRACKING_URI", "").startswith(("databricks", "uc:")):
        raise NotReproduced("a Databricks tracking URI in MLFLOW_TRACKING_URI")


@dataclass
class BuiltTrace:
    """One scene's trace as MLflow's writer builds it before storing: the span (``Span.to_dict()`` form, attribute
    values JSON text), the trace info's fields (tags, metadata with size stats, previews, times). The SQL rows and
    a tracking server's requests are both made of it."""

    trace_id: str
    otel_trace_id: int
    span_id: int
    span: dict[str, Any]
    tags: dict[str, str]
    metadata: dict[str, str]
    start_ms: int
    duration_ms: int
    request_preview: str
    response_preview: str


def build_trace(record: TraceRecord, experiment_id: str, run_id: str,
                ids: tuple[int, int] | None = None) -> BuiltTrace:
    """The trace of one record (see :class:`BuiltTrace`); NotReproduced, ValueError as :func:`trace_rows`."""
    if record.end_ns < record.start_ns:
        raise ValueError(f"trace {record.name!r}: end_ns {record.end_ns} is before start_ns {record.start_ns}")
    if reserved := [key for key in record.attributes if key.startswith(TRACE_TAG_PREFIX)]:
        raise ValueError(f"trace {record.name!r}: attribute names {reserved} are reserved for trace tags")
    if not (_ATTRIBUTES.issuperset(record.attributes) and _INPUTS.issuperset(record.inputs)
            and _OUTPUTS.issuperset(record.outputs)):
        raise NotReproduced("span attributes, inputs or outputs outside the data model")
    otel_trace_id, span_id = ids if ids is not None else (uuid.uuid4().int, new_span_id())
    trace_id = f"tr-{otel_trace_id:032x}"

    # The span as Span.to_dict() gives it: record attributes first, MLflow's keys after (they win a clash).
    attributes = {key: _dump(value) for key, value in record.attributes.items()}
    attributes[REQUEST_ID_ATTRIBUTE] = _dump(trace_id)
    attributes[EXPERIMENT_ID_ATTRIBUTE] = _dump(experiment_id)
    attributes[SPAN_TYPE_ATTRIBUTE] = _dump(SPAN_TYPE_UNKNOWN)
    inputs = attributes[INPUTS_ATTRIBUTE] = _dump(record.inputs)
    outputs = attributes[OUTPUTS_ATTRIBUTE] = _dump(record.outputs)
    span = {
        "trace_id": _b64(otel_trace_id.to_bytes(16, "big")),
        "span_id": _b64(span_id.to_bytes(8, "big")),
        "parent_span_id": None,
        "name": record.name,
        "start_time_unix_nano": int(record.start_ns),
        "end_time_unix_nano": int(record.end_ns) if record.end_ns else None,  # Span.from_dict: 0 is "not ended"
        "events": [],
        "status": {"code": "STATUS_CODE_OK", "message": ""},
        "attributes": attributes,
        "links": [],
    }
    tags = {**record.tags, S.TRACE_TAG_RUN_ID: run_id, TRACE_NAME_TAG: record.name}
    metadata = {
        S.META_SCHEMA_VERSION: str(TRACE_SCHEMA_VERSION),
        S.META_SOURCE_RUN: run_id,
        **provenance(),
        S.META_INPUTS: _truncate_metadata(inputs),
        S.META_OUTPUTS: _truncate_metadata(outputs),
    }
    start_ms = record.start_ns // 1_000_000
    duration_ms = record.end_ns // 1_000_000 - start_ms
    request_preview = _preview(inputs, role="user")
    response_preview = _preview(outputs, role="assistant")
    _add_size_stats(metadata, span, tags, trace_id, experiment_id, start_ms, duration_ms, request_preview,
                    response_preview)
    if len(record.name) > MAX_TAG_VALUE_CHARS:  # MLflow's validate_trace_name
        raise ValueError(f"Trace name '{record.name[:100]}...' exceeds the maximum length of {MAX_TAG_VALUE_CHARS}")
    return BuiltTrace(trace_id, otel_trace_id, span_id, span, tags, metadata, start_ms, duration_ms,
                      request_preview, response_preview)


def _trace(rows: TraceRows, record: TraceRecord, experiment_id: str, run_id: str, location: str,
           ids: tuple[int, int] | None, now: int) -> None:
    built = build_trace(record, experiment_id, run_id, ids)
    trace_id, span, tags, metadata = built.trace_id, built.span, built.tags, built.metadata
    attributes, start, end = span["attributes"], span["start_time_unix_nano"], span["end_time_unix_nano"]
    start_ms, duration_ms = built.start_ms, built.duration_ms
    request_preview, response_preview = built.request_preview, built.response_preview
    rows["trace_info"].append({
        "request_id": trace_id,
        "experiment_id": int(experiment_id),
        "timestamp_ms": start_ms,
        "execution_time_ms": duration_ms,
        "status": STATUS_OK,
        "client_request_id": None,
        "request_preview": request_preview,
        "response_preview": response_preview,
        "db_payload_generation": 1,  # 0 when created, +1 by log_spans()' payload-generation bump
        "trace_name": record.name,
    })
    stored_tags = {key: value for key, value in tags.items() if key != TRACE_NAME_TAG}
    stored_tags[SPANS_LOCATION_TAG] = TRACKING_STORE
    stored_tags[ARTIFACT_LOCATION_TAG] = append_to_uri_path(location, TRACES_FOLDER, trace_id, ARTIFACTS_FOLDER)
    rows["trace_tags"].extend({"request_id": trace_id, "key": k, "value": v} for k, v in stored_tags.items())
    metadata[S.META_INFO_FINALIZED] = "true"  # what start_trace() adds
    rows["trace_request_metadata"].extend(
        {"request_id": trace_id, "key": k, "value": v} for k, v in sorted(metadata.items()))
    stored_span = {**span, "attributes": _sanitize(attributes)}  # translate_span_when_storing, for these keys
    rows["spans"].append({
        "trace_id": trace_id,
        "experiment_id": int(experiment_id),
        "span_id": f"{built.span_id:016x}",
        "parent_span_id": None,
        "name": record.name,
        "type": SPAN_TYPE_UNKNOWN,
        "status": STATUS_OK,
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        # Non-ASCII kept as is, as the store does (so `span.content` LIKE filters match).
        "content": json.dumps(stored_span, ensure_ascii=False),
        "input_cost": None,
        "output_cost": None,
        "total_cost": None,
        "model_name": None,
        "model_provider": None,
    })
    rows["entity_associations"].append({
        "association_id": uuid.uuid4().hex,
        "source_type": TRACE_ENTITY,
        "source_id": trace_id,
        "destination_type": RUN_ENTITY,
        "destination_id": run_id,
        "created_time": now,
    })


class _JsonOnly(json.JSONEncoder):
    """MLflow's TraceJSONEncoder encodes JSON values as json does; other objects it renders its own way."""

    def default(self, o: Any) -> Any:
        raise NotReproduced(f"a {type(o).__name__} value, not JSON")


def _dump(value: Any) -> str:
    """A span attribute value as MLflow's ``dump_span_attribute_value`` writes it."""
    try:
        return json.dumps(value, cls=_JsonOnly, ensure_ascii=False)
    except (ValueError, TypeError):  # a circular value, an unsupported key, an over-long integer: MLflow's fallback
        return json.dumps(repr(value), ensure_ascii=False)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _truncate_metadata(value: str) -> str:
    """``mlflow.traceInputs``/``traceOutputs`` as MLflow's span processor truncates them."""
    if len(value) > MAX_METADATA_CHARS:
        return value[: MAX_METADATA_CHARS - len(TRUNCATION_SUFFIX)] + TRUNCATION_SUFFIX
    return value


def _sanitize(attributes: dict[str, str]) -> dict[str, str]:
    """MLflow's ``sanitize_attributes``: a value dumped twice (a JSON text held in a string) loses one layer."""
    out = {}
    for key, value in attributes.items():
        try:
            result = json.loads(value)
            if isinstance(result, str):
                try:
                    if isinstance(json.loads(result), (str, dict, list)):
                        out[key] = result
                        continue
                except json.JSONDecodeError:
                    pass
        except (json.JSONDecodeError, TypeError):
            pass
        out[key] = value
    return out


# Request/response previews: MLflow's _get_truncated_preview (mlflow.tracing.utils.truncation).


def _preview(text: str, role: str) -> str:
    content = None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = None
    if obj is not None and (messages := _messages(obj)):
        content = _message_text(_last_message(messages, role))
    content = content or text
    if len(content) <= PREVIEW_MAX_CHARS:
        return content
    return content[: PREVIEW_MAX_CHARS - 3] + "..."


def _messages(obj: Any) -> list[dict[str, Any]] | None:
    if not isinstance(obj, dict):
        return None
    if (messages := obj.get("messages")) and isinstance(messages, list):
        return [item for item in messages if _is_message(item)]
    if ((choices := obj.get("choices")) and isinstance(choices, list) and len(choices) > 0
            and isinstance(choices[0], dict) and (msg := choices[0].get("message")) and _is_message(msg)):
        return [msg]
    if (found := obj.get("input")) and isinstance(found, list):
        return [item for item in found if _is_message(item)]
    if (found := obj.get("output")) and isinstance(found, list):
        return [item for item in found if _is_message(item)]
    if "request" in obj:
        return _messages(obj["request"])
    return None


def _is_message(item: Any) -> bool:
    return isinstance(item, dict) and "role" in item and "content" in item


def _last_message(messages: list[dict[str, Any]], role: str) -> dict[str, Any]:
    for message in reversed(messages):
        if message.get("role") == role:
            return message
    return messages[-1]


def _message_text(message: dict[str, Any]) -> Any:
    content = message.get("content")
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                return part
            elif isinstance(part, dict) and part.get("type") in ["text", "output_text"]:
                return part.get("text")
    elif isinstance(content, str):
        return content
    return ""


# Size stats: MLflow's add_size_stats_to_trace_metadata for a trace of one span.


def _add_size_stats(metadata: dict[str, str], span: dict[str, Any], tags: dict[str, str], trace_id: str,
                    experiment_id: str, start_ms: int, duration_ms: int, request_preview: str,
                    response_preview: str) -> None:
    """``mlflow.trace.sizeStats``/``sizeBytes``: the span's JSON plus the trace info's (``Trace.to_json`` with
    no spans), both ASCII-escaped, as MLflow measures them."""
    span_size = len(json.dumps(span))  # ensure_ascii: one character per byte
    info: dict[str, Any] = {
        "trace_id": trace_id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}},
        "request_time": timestamp_json(start_ms),
        "state": STATUS_OK,
        # As TraceInfo.to_proto truncates them (keys and values), rendered by MessageToDict.
        "trace_metadata": {k[:MAX_METADATA_CHARS]: str(v)[:MAX_METADATA_CHARS] for k, v in metadata.items()},
        "tags": {k[:MAX_TAG_KEY_CHARS]: str(v)[:MAX_TAG_VALUE_CHARS] for k, v in tags.items()},
        "execution_duration_ms": duration_ms,
    }
    # MessageToDict leaves out a proto3 string that is empty.
    if request_preview:
        info["request_preview"] = request_preview
    if response_preview:
        info["response_preview"] = response_preview
    for text in (trace_id, experiment_id, request_preview, response_preview, *info["trace_metadata"].values(),
                 *info["trace_metadata"], *info["tags"].values(), *info["tags"]):
        _check_utf8(text)
    total = span_size + len(json.dumps({"info": info, "data": {"spans": []}}))
    stats = {"total_size_bytes": total, "num_spans": 1, "max": span_size, "p25": span_size, "p50": span_size,
             "p75": span_size}
    metadata[S.META_SIZE_STATS] = json.dumps(stats)
    metadata[S.META_SIZE_BYTES] = str(total)


def _check_utf8(text: str) -> None:
    """Protobuf refuses a string with a lone surrogate (MLflow then writes no size stats at all)."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise NotReproduced("a string that is not valid Unicode") from None


def timestamp_json(millis: int) -> str:
    """A protobuf Timestamp of ``millis`` as ``MessageToDict`` renders it (RFC 3339, 0 or 3 fraction digits)."""
    seconds, nanos = millis // 1000, (millis % 1000) * 1_000_000
    if not _TIMESTAMP_SECONDS[0] <= seconds <= _TIMESTAMP_SECONDS[1]:
        raise NotReproduced("a start time outside the years 1 to 9999")
    day_seconds = seconds % 86400
    days = (seconds - day_seconds) // 86400
    text = (datetime(1970, 1, 1) + timedelta(days, day_seconds)).isoformat()
    return text + "Z" if nanos == 0 else f"{text}.{nanos // 1_000_000:03d}Z"


# MLflow's append_to_uri_path (mlflow.utils.uri), for the artifact-location tag of each trace.


def append_to_uri_path(uri: str, *paths: str) -> str:
    path = ""
    for subpath in paths:
        path = _join_posix(path, subpath)
    parsed = urllib.parse.urlparse(uri)
    if ".." in _decoded(parsed.query):
        raise ValueError("Invalid query string")
    if len(parsed.scheme) == 0:
        return _join_posix(uri, path)
    prefix = ""
    if not parsed.path.startswith("/"):
        prefix = parsed.scheme + ":"
        parsed = parsed._replace(scheme="")
    return prefix + urllib.parse.urlunparse(parsed._replace(path=_join_posix(parsed.path, path)))


def _join_posix(prefix: str, suffix: str) -> str:
    if len(prefix) == 0:
        return suffix
    return posixpath.join(prefix, suffix.lstrip(posixpath.sep))


def _decoded(url: str) -> str:
    for _ in range(10):
        decoded = urllib.parse.unquote(url)
        parsed = urllib.parse.urlunparse(urllib.parse.urlparse(decoded))
        if parsed == url:
            return url
        url = parsed
    raise ValueError("Failed to decode url")
