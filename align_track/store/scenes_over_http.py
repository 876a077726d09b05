"""Every trace's decision fields from a tracking server, from its scene summary tags: no span crosses the wire
for a trace that has one.

MLflow's ``search_traces`` fetches every trace's spans (5 KB a scene, ten traces a request) after each page of
trace infos. The index needs only the few values align-track also writes as the trace's
``mlflow.align_track.scene_summary`` tag (align_track/scene_summary.py), and the server's ``SearchTracesV3``
(``POST /api/3.0/mlflow/traces/search``, the request MLflow's client pages with) already answers every trace's
tags and metadata, 500 a page. So the index pages through that alone, as the SQL readers read the summary tags
(store/scenes_reader.py), and reads spans only for the traces of a page whose summary is
missing or does not read (another tool's, an older mapping's, an edited one): those ids in BatchGetTraces requests
(store/traces_over_http.py), the traces decoded by MLflow's own classes. So a store without summaries (another
tool's) costs a page of infos and a few batches of spans a page; a store with them, no span at all. No mlflow
import unless spans are read.

A read by scene (``names``: ``scenes --scene P3``) asks the server for those traces alone (``trace.name = 'P3'``,
then ``tag.scene_id = 'P3'``: its filter has no OR), not for every trace's info; a server that refuses those
filters is read whole and filtered here.

What a trace reports is what MLflow's client reports of it (``scenes_reader._trace_fields``): its run is the run
searched for, else its ``mlflow.sourceRun`` metadata, else its ``mlflow.runId`` tag (a trace linked to a run
only through MLflow's run link is found by a run's search, not by the whole experiment's: the server's answer
does not name the link). tests/store/test_scenes_over_http.py requires it equal to the SQLite file read directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from align_track import scene_summary
from align_track.schema import META_SOURCE_RUN, TRACE_TAG_RUN_ID, TRACE_TAG_SCENE_ID, TRACE_TAG_SCENE_SUMMARY
from align_track.store.scenes_reader import TraceFields, _trace_fields
from align_track.store.spans_reader import TRACE_NAME_TAG, Unreadable
from align_track.store.trace_search import SEARCH, location, not_served, quoted
from align_track.store.uri import StoreError, resolve_tracking_uri, store_kind

PAGE = 500
"""Trace infos a page: the most the server answers."""
"""Answers of a server without SearchTracesV3 (MLflow 2): MLflow's client then asks the older search."""
REFUSED = ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INTERNAL_ERROR")
"""Answers of a server that does not understand a search by name (an older or another server's filter grammar)."""


def read_trace_fields_http(tracking_uri: str, experiment_id: str, run_ids: Iterable[str] | None = None,
                           since_ms: int | None = None, names: Iterable[str] | None = None
                           ) -> Iterator[list[TraceFields]]:
    """Batches of TraceFields of the experiment's traces on a tracking server (of ``run_ids`` only, written from
    ``since_ms`` on, named one of ``names``: each optional), a page of trace infos at a time. Unreadable where
    MLflow's client must read it all (not a server; a server without SearchTracesV3); StoreError when the server
    fails."""
    from align_track.store.server_writer import Rest

    uri = resolve_tracking_uri(tracking_uri)
    if store_kind(uri) != "http":
        raise Unreadable("not a tracking server")
    rest = Rest(uri)
    clauses = [] if since_ms is None else [f"trace.timestamp_ms >= {int(since_ms)}"]
    wanted = None if names is None else set(names)
    by_name = _name_filters(wanted)
    seen: set[str] = set()
    first = [True]
    try:
        for run_id in [None] if run_ids is None else list(dict.fromkeys(run_ids)):
            run = [] if run_id is None else [f"attribute.run_id = '{quoted(run_id)}'"]
            for named in list(by_name):
                try:
                    for infos in _pages(rest, uri, experiment_id, " AND ".join(clauses + run + named), first,
                                        refusable=bool(named)):
                        yield from _fields(uri, experiment_id, infos, run_id, wanted, seen)
                except _Refused:  # a server that does not search by name: every trace, filtered here
                    by_name = [[]]
                    for infos in _pages(rest, uri, experiment_id, " AND ".join(clauses + run), first):
                        yield from _fields(uri, experiment_id, infos, run_id, wanted, seen)
                    break
    finally:
        rest.session.close()


def _fields(uri: str, experiment_id: str, infos: list[dict], run_id: str | None, wanted: set[str] | None,
            seen: set[str]) -> Iterator[list[TraceFields]]:
    """A page's fields: from the summaries, the spans of the traces without one."""
    out, unread = summarised(infos, run_id, wanted, seen)
    if unread:
        tags = {i["trace_id"]: i.get("tags") or {} for i in infos if i.get("trace_id") in unread}
        out += _from_spans(uri, experiment_id, unread, run_id, seen, tags)
    if out:
        yield out


class _Refused(Exception):
    """The server refused a search by name (it answered no page of it)."""


def _name_filters(wanted: set[str] | None) -> list[list[str]]:
    """The searches that find the traces named one of ``wanted``: by trace name, then by scene_id tag, a name at a
    time (MLflow's server has no OR, and refuses IN on a trace's name). ``[[]]``: one search of every trace (no
    names; or a name a filter cannot quote: the traces are filtered here alone)."""
    if not wanted or any("'" in n or "\\" in n for n in wanted):
        return [[]]
    listed = sorted(wanted)
    return [*([f"trace.name = '{n}'"] for n in listed), *([f"tag.{TRACE_TAG_SCENE_ID} = '{n}'"] for n in listed)]


def _pages(rest: Any, uri: str, experiment_id: str, where: str, first: list[bool], refusable: bool = False
           ) -> Iterator[list[dict]]:
    """The trace infos of one search, a page at a time. Unreadable when the very first request finds no
    SearchTracesV3; _Refused when a ``refusable`` search (by name) is refused before its first page."""
    from align_track.store.server_writer import ServerError

    token = None
    while True:
        body: dict[str, Any] = {"locations": [location(experiment_id)], "max_results": PAGE}
        if where:
            body["filter"] = where
        if token:
            body["page_token"] = token
        try:
            page = rest.request("POST", SEARCH, body)
        except ServerError as exc:
            if first[0] and not_served(exc):
                raise Unreadable(f"{uri} has no SearchTracesV3: {exc}") from None
            if refusable and token is None and exc.code in REFUSED:
                raise _Refused(str(exc)) from None
            raise
        first[0] = False
        infos = page.get("traces", []) if isinstance(page, dict) else []
        yield infos
        token = page.get("next_page_token") if isinstance(page, dict) else None
        if not token or not infos:
            return


def summarised(infos: list[dict], run_id: str | None, wanted: set[str] | None, seen: set[str]
               ) -> tuple[list[TraceFields], list[str]]:
    """The fields of the traces (SearchTracesV3's JSON trace infos) whose summary reads, and the ids of the others
    (no summary, or one that does not read as a summary); traces in ``seen`` are skipped, the rest added to it."""
    out: list[TraceFields] = []
    unread: list[str] = []
    cache: dict[str, Any] = {}
    for info in infos:
        trace_id = info.get("trace_id")
        if not isinstance(trace_id, str) or trace_id in seen:
            continue
        tags = info.get("tags") or {}
        name, tag = tags.get(TRACE_NAME_TAG), tags.get(TRACE_TAG_SCENE_ID)
        if wanted is not None and name not in wanted and tag not in wanted:
            continue
        found = scene_summary.decode_once(tags.get(TRACE_TAG_SCENE_SUMMARY), cache)
        if found is None:
            unread.append(trace_id)
            continue
        seen.add(trace_id)
        metadata = info.get("trace_metadata") or {}
        attrs, inputs, action = found
        out.append(TraceFields(trace_id, run_id or metadata.get(META_SOURCE_RUN) or tags.get(TRACE_TAG_RUN_ID),
                               timestamp_ms(info.get("request_time")), name, tag, attrs, inputs, None, action))
    return out, unread


def timestamp_ms(value: Any) -> int | None:
    """A trace info's ``request_time`` (protobuf's JSON Timestamp, ``2025-06-10T08:00:30.913Z``) in milliseconds,
    as MLflow's client converts it (``Timestamp.ToMilliseconds``); None where there is none."""
    if not isinstance(value, str):
        return None
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    try:
        stamp.FromJsonString(value)
    except ValueError as exc:
        raise StoreError(f"the tracking server answered a trace time that is not a time: {value!r} ({exc})") from None
    return stamp.ToMilliseconds()


def _from_spans(uri: str, experiment_id: str, trace_ids: list[str], run_id: str | None, seen: set[str],
                tags: dict[str, dict[str, str]] | None = None) -> list[TraceFields]:
    """These traces' fields from their root spans, as MLflow's client reads them: BatchGetTraces requests of
    several traces (store/traces_over_http.py); a server without it, one ``trace.request_id IN`` search (its spans
    fetched by MLflow's client), and a server that refuses that filter, trace by trace."""
    from align_track.store.traces_over_http import traces_http

    try:
        traces = traces_http(uri, experiment_id, trace_ids, tags)
    except Unreadable:
        traces = _searched(uri, experiment_id, trace_ids)
    out = []
    asked = set(trace_ids)
    for trace in traces:
        if trace.info.trace_id in seen or trace.info.trace_id not in asked:
            continue
        fields = _trace_fields(trace, run_id)
        if fields is not None:
            seen.add(trace.info.trace_id)
            out.append(fields)
    return out


def _searched(uri: str, experiment_id: str, trace_ids: list[str]) -> list[Any]:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=uri)
    listed = ", ".join(f"'{quoted(t)}'" for t in trace_ids)
    try:
        return list(client.search_traces(locations=[str(experiment_id)], max_results=len(trace_ids),
                                         filter_string=f"trace.request_id IN ({listed})"))
    except MlflowException:
        return [t for t in map(client.get_trace, trace_ids) if t is not None]


