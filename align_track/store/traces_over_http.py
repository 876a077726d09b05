"""Many traces' root spans from a tracking server in a few requests: ``GET /api/3.0/mlflow/traces/batchGet``.

MLflow's ``get_trace`` asks the server twice a trace (its info, then its spans): a scene's decisions across 1,000
runs, or one trace of each of the scenes for the text filter, cost thousands of requests. The server's
``BatchGetTraces`` answers many traces with their spans at once (the request MLflow's own ``search_traces`` uses, ten
ids at a time, after a search of their infos tells where their spans are); here up to :data:`CHUNK` ids a request
(the ids ride in the URL: ~2.5 KB, under the 4 KB request line gunicorn allows), a few requests at a time. The
answer is decoded by MLflow's own ``Trace.from_proto``, so the spans read exactly as through ``get_trace``.
Unreadable where the server has no such endpoint (MLflow before 3): the caller then asks MLflow's client trace by
trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from align_track.store.spans_reader import Unreadable
from align_track.store.trace_search import SEARCH, location, not_served, quoted
from align_track.store.uri import resolve_tracking_uri, store_kind

BATCH_GET = "/api/3.0/mlflow/traces/batchGet"
CHUNK = 50
"""Trace ids a request."""
PARALLEL = 4
"""Requests in flight at once."""
INFOS = 500
"""Trace ids a search for their tags (the most a search answers)."""
REFUSED = ("INVALID_PARAMETER_VALUE", "BAD_REQUEST")
"""A search by ids refused (another filter grammar): MLflow's client then, trace by trace."""
SPANS_LOCATION = "mlflow.trace.spansLocation"
BATCHED = ("TRACKING_STORE", "ARCHIVE_REPO")
"""Where a trace's spans are when BatchGetTraces answers them (mlflow.tracing.constant.SpansLocation)."""


def root_spans_http(tracking_uri: str, experiment_id: str, trace_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The root span (``attributes``, ``inputs``, ``outputs``: as MLflow's client decodes them) of each of these
    traces of the experiment, by trace id; a trace the server does not answer (another experiment's, unknown,
    incomplete) is left out, as ``get_trace`` finding none. Unreadable where this is not a server with BatchGetTraces;
    StoreError when the server fails."""
    out: dict[str, dict[str, Any]] = {}
    for trace in traces_http(tracking_uri, experiment_id, trace_ids):
        if (root := _root_row(trace)) is not None:
            out[trace.info.trace_id] = root
    return out


def _root_row(trace: Any) -> dict[str, Any] | None:
    """A trace's root span as the readers take it (``attributes``, ``inputs``, ``outputs``); None without one."""
    root = next((s for s in trace.data.spans or [] if s.parent_id is None), None) if trace else None
    if root is None:
        return None
    return {"attributes": dict(root.attributes or {}), "inputs": root.inputs, "outputs": root.outputs}


def traces_http(tracking_uri: str, experiment_id: str, trace_ids: Iterable[str],
                tags: dict[str, dict[str, str]] | None = None) -> list[Any]:
    """These traces of the experiment with their spans (MLflow's Trace objects), each once, in the order asked;
    the ones the server does not know left out. Where the spans live comes from each trace's tags (``tags``, else a
    search of the ids, :data:`INFOS` a request): spans in the tracking store or an archive come in BatchGetTraces
    requests (which the server fails whole for any other trace), spans in the artifact store (older traces) through
    MLflow's ``get_trace``, as MLflow's client splits them. Unreadable, StoreError: see :func:`root_spans_http`."""
    uri = resolve_tracking_uri(tracking_uri)
    if store_kind(uri) != "http":
        raise Unreadable("not a tracking server")
    ids = list(dict.fromkeys(trace_ids))
    if not ids:
        return []
    from align_track.store.server_writer import Rest

    rest = Rest(uri)
    try:
        if tags is None:
            tags = _tags(rest, experiment_id, ids)
        batched = [t for t in ids if t in tags and tags[t].get(SPANS_LOCATION) in BATCHED]
        chunks = [batched[i:i + CHUNK] for i in range(0, len(batched), CHUNK)]
        answered: list[list[Any]] = []
        if chunks:
            answered.append(_fetch(rest, experiment_id, chunks[0]))  # alone: a server without it says so once
        if len(chunks) > 1:
            with ThreadPoolExecutor(max_workers=min(PARALLEL, len(chunks) - 1)) as pool:
                answered += pool.map(lambda c: _fetch(rest, experiment_id, c), chunks[1:])
    finally:
        rest.session.close()
    found: dict[str, Any] = {}
    for traces in answered:
        for trace in traces:
            found.setdefault(trace.info.trace_id, trace)
    elsewhere = [t for t in ids if t in tags and t not in found and t not in batched]
    if elsewhere:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        for trace_id in elsewhere:
            if (trace := client.get_trace(trace_id)) is not None:
                found[trace_id] = trace
    return [found[t] for t in ids if t in found]


def _tags(rest: Any, experiment_id: str, ids: list[str]) -> dict[str, dict[str, str]]:
    """The tags of these traces of the experiment (the ones it holds), by id: SearchTracesV3 by ids."""
    from align_track.store.server_writer import ServerError

    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(ids), INFOS):
        listed = ", ".join(f"'{quoted(t)}'" for t in ids[start:start + INFOS])
        body = {"locations": [location(experiment_id)], "max_results": INFOS,
                "filter": f"trace.request_id IN ({listed})"}
        try:
            page = rest.request("POST", SEARCH, body)
        except ServerError as exc:
            if not_served(exc) or exc.code in REFUSED:
                raise Unreadable(f"{rest.base} does not search traces by id: {exc}") from None
            raise
        for info in page.get("traces", []) if isinstance(page, dict) else []:
            if isinstance(info.get("trace_id"), str):
                out[info["trace_id"]] = info.get("tags") or {}
    return out


def _fetch(rest: Any, experiment_id: str, ids: list[str]) -> list[Any]:
    """One BatchGetTraces request, decoded as MLflow's RestStore decodes it."""
    from mlflow.entities import Trace
    from mlflow.protos.service_pb2 import BatchGetTraces
    from mlflow.utils.proto_json_utils import parse_dict

    from align_track.store.server_writer import ServerError

    try:
        answer = rest.request("GET", BATCH_GET, params={"trace_ids": ids, "experiment_ids": [str(experiment_id)]})
    except ServerError as exc:
        if not_served(exc) or f"Trace with ID '{BATCH_GET.rsplit('/', 1)[1]}' not found" in str(exc):
            # (a server before BatchGetTraces reads the path as /traces/{trace_id}, as MLflow's client knows)
            raise Unreadable(f"{rest.base} has no BatchGetTraces: {exc}") from None
        raise
    message = BatchGetTraces.Response()
    parse_dict(js_dict=answer if isinstance(answer, dict) else {}, message=message)
    return [Trace.from_proto(p) for p in message.traces]


def root_spans(tracking_uri: str, experiment_id: str, trace_ids: list[str]) -> dict[str, dict[str, Any]]:
    """:func:`root_spans_http`, else (not a server, or one without BatchGetTraces) through MLflow's client, a trace
    at a time."""
    try:
        return root_spans_http(tracking_uri, experiment_id, trace_ids)
    except Unreadable:
        pass
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    out = {}
    for trace_id in trace_ids:
        if (root := _root_row(client.get_trace(trace_id))) is not None:
            out[trace_id] = root
    return out
