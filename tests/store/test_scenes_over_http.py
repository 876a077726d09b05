"""Over a tracking server, the scenes-across-runs index reads each trace's scene summary tag from the server's
trace search pages (store/scenes_over_http.py), spans only for the traces without a summary that reads: the same
fields and the same index as the server's own SQLite file read directly (store/scenes_reader.py), on a store
mixing ingested traces, traces MLflow's own fluent API wrote, summaries removed and summaries garbled."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from align_track.query.scene_index import SceneIndex, attach_state_texts, build_index, read_fields
from align_track.query.select import load_complete_runs
from align_track.schema import TRACE_TAG_SCENE_SUMMARY as SUMMARY
from align_track.store import scenes_over_http, trace_search, traces_over_http
from align_track.store.runs_reader import get_experiment_id, load_runs
from align_track.store.scenes_reader import read_all, read_details, read_trace_fields
from align_track.store.uri import StoreError
from tests.store.test_scenes_reader import EXPERIMENT, by_id, set_summary, summaries
from tests.support import server_fixtures
from tests.support.query_fixtures import build_tree, ingest_tree
from tests.support.upstream import upstream_records, write_trace_fluent


@dataclasses.dataclass
class Served:
    url: str
    sqlite: str
    """The server's own backend file, read directly."""
    eid: str
    unread: set[str]
    """Traces with no summary that reads: removed, garbled, or written by MLflow's fluent API."""
    clean: list[str]
    """Runs whose every trace has its summary."""
    fluent: list[str]
    """The traces MLflow's fluent API wrote: a run's scenes again (each scene met twice in that run)."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A real ``mlflow server``; align-track's ingest over HTTP, then MLflow's fluent API adds a run's scenes again
    without summaries (and one trace outside any run), two summaries are removed and two garbled."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    root = tmp_path_factory.mktemp("scenes-over-http")
    backend = root / "backend.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        with server_fixtures.running_server(f"sqlite:///{backend}", root / "artifacts", root / "server.log") as server:
            exps = build_tree(root / "exps")
            ingest_tree(exps, server.url)
            sqlite = f"sqlite:///{backend}"
            eid = get_experiment_id(sqlite, EXPERIMENT)
            tagged = sorted(summaries(sqlite))
            runs = sorted(r.run_id for r in load_runs(sqlite, eid))
            run_of = {f.trace_id: f.run_id for f in read_all(read_trace_fields, sqlite, eid)}
            record = upstream_records(exps)[0]
            bare = [dataclasses.replace(t, tags={k: v for k, v in t.tags.items() if k != SUMMARY})
                    for t in record.traces]
            fluent = write_trace_fluent(server.url, eid, runs[0], bare)
            with _use_tracking_uri(server.url):
                mlflow.set_experiment(experiment_id=eid)
                with mlflow.start_span("outside any run") as span:
                    span.set_inputs({"scene_id": "O1"})
                mlflow.flush_trace_async_logging()
            victims = [t for t in tagged if run_of[t] in runs[1:3]][:4]  # runs[3:] keep every summary
            for trace_id in victims[:2]:
                set_summary(sqlite, trace_id, None)
            for trace_id, garbled in zip(victims[2:], ("[1,", '[1,"s",0,0,"a",{},"s","P",[1,2],"a"]'), strict=True):
                set_summary(sqlite, trace_id, garbled)
            unread = {*victims, *fluent, span.trace_id}
            assert len(summaries(sqlite)) == len(tagged) - 2 and len(fluent) >= 2 and len(victims) == 4
            yield Served(server.url, sqlite, eid, unread, runs[3:], fluent)


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of three trace infos: every read pages, and pages mix summarised and unread traces."""
    monkeypatch.setattr(scenes_over_http, "PAGE", 3)


def test_fields_over_http_equal_the_sqlite_file_read_directly(served: Served, small_pages: None):
    """The whole experiment, some runs, one scene name and the newer half read alike over HTTP and from the
    server's SQLite file: run, time, name, scene tag and every decision field, each trace once."""
    http = read_all(scenes_over_http.read_trace_fields_http, served.url, served.eid)
    direct = by_id(read_all(read_trace_fields, served.sqlite, served.eid))
    assert len(http) == len({f.trace_id for f in http}) == len(direct) > 10
    assert by_id(http) == direct
    assert served.unread <= set(direct)
    runs = [r.run_id for r in load_runs(served.sqlite, served.eid)][:3]
    assert by_id(read_all(scenes_over_http.read_trace_fields_http, served.url, served.eid, run_ids=runs)) == {
        t: f for t, f in direct.items() if f.run_id in runs}
    name = direct[served.fluent[0]].name
    named = by_id(read_all(scenes_over_http.read_trace_fields_http, served.url, served.eid, names=[name]))
    assert named == by_id(read_all(read_trace_fields, served.sqlite, served.eid, names=[name]))
    assert len(named) >= 2 and named.keys() & served.unread
    since = sorted(f.timestamp_ms for f in direct.values())[len(direct) // 2]
    newer = by_id(read_all(scenes_over_http.read_trace_fields_http, served.url, served.eid, since_ms=since))
    assert newer == by_id(read_all(read_trace_fields, served.sqlite, served.eid, since_ms=since))
    assert 0 < len(newer) < len(direct)


def _decisions(index: SceneIndex) -> dict:
    return {r.key: index.decisions_of(r.key) for r in index.rows()}


def test_the_index_over_http_equals_the_index_of_the_sqlite_file(served: Served, small_pages: None):
    """The pane's read (the whole experiment) and build_index's (run by run) give, over HTTP, the rows and every
    decision the server's SQLite file gives read directly."""
    uri, eid, runs = load_complete_runs(served.url)
    direct = build_index(served.sqlite, served.eid, runs)
    over_http = build_index(uri, eid, runs)
    assert over_http.rows() == direct.rows() and len(direct) > 10
    assert _decisions(over_http) == _decisions(direct)
    whole = SceneIndex.for_runs(runs)
    for batch in read_fields(uri, eid):
        whole.add(batch)
    assert whole.rows() == direct.rows() and _decisions(whole) == _decisions(direct)


@pytest.fixture
def requests_made(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(path, query and body) of every HTTP request this process sends (MLflow's client and align-track's alike
    send through requests' Session), passed on to the server unchanged."""
    made: list[tuple[str, str]] = []
    send = requests.Session.send

    def recording(self: requests.Session, request: requests.PreparedRequest, **kwargs):
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        made.append((requests.utils.urlparse(request.url).path, f"{request.url}\n{body}"))
        return send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", recording)
    return made


def test_spans_are_fetched_only_for_the_traces_without_a_readable_summary(served: Served, small_pages: None,
                                                                          requests_made: list[tuple[str, str]]):
    """Reading the index asks the server for spans (or searches by trace id) only for the traces whose summary
    is missing or garbled; a run whose traces all have one is read from search pages alone."""
    read = read_all(read_fields, served.url, served.eid)
    assert {f.trace_id for f in read} >= served.unread
    summarised = {f.trace_id for f in read} - served.unread
    assert len(summarised) > 4
    spans_asked = [text for path, text in requests_made if path != trace_search.SEARCH or "request_id" in text]
    assert spans_asked, "the unread traces' spans were never asked for"
    named = {t for t in {f.trace_id for f in read} if any(t in text for text in spans_asked)}
    assert named == served.unread
    requests_made.clear()
    clean = by_id(read_all(read_fields, served.url, served.eid, served.clean))
    assert clean == by_id(read_all(read_trace_fields, served.sqlite, served.eid, served.clean))
    assert len(clean) > 3 and not clean.keys() & served.unread
    assert {path for path, _ in requests_made} == {trace_search.SEARCH}


def test_a_store_with_no_summaries_reads_as_the_file_does(served: Served, small_pages: None):
    """Another tool's store (no summary on any trace): every trace's spans, page by page, the same fields as the
    SQLite file read directly."""
    saved = summaries(served.sqlite)
    try:
        set_summary(served.sqlite, None, None)
        http = by_id(read_all(read_fields, served.url, served.eid))
        assert http == by_id(read_all(read_trace_fields, served.sqlite, served.eid))
        assert len(http) > 10
    finally:
        for trace_id, value in saved.items():
            set_summary(served.sqlite, trace_id, value)
    assert summaries(served.sqlite) == saved


@pytest.mark.parametrize(("text", "ms"), [
    ("2025-06-10T08:00:19Z", 1749542419000),
    ("2025-06-10T08:00:30.913Z", 1749542430913),
    ("2025-06-10T08:00:30.913999Z", 1749542430913),
    ("2025-06-10T08:00:30.000000001Z", 1749542430000),
    ("1969-12-31T23:59:59.500Z", -500),
    (None, None),
])
def test_trace_times_read_as_mlflow_reads_them(text: str | None, ms: int | None):
    assert scenes_over_http.timestamp_ms(text) == ms


def test_a_trace_time_that_is_not_a_time_is_a_clear_error():
    with pytest.raises(StoreError, match="not a time: 'yesterday'"):
        scenes_over_http.timestamp_ms("yesterday")


def test_a_summary_that_does_not_read_is_left_to_the_spans():
    """Garbled, absent, and not-a-text summaries are not trusted; a repeated trace is skipped."""
    good = '[1,"s",0,1,"a",{"a":{"merit":0.5}},"s","P1",["a","b"],"a"]'
    infos = [{"trace_id": "t1", "request_time": "1970-01-01T00:00:01Z", "tags": {SUMMARY: good, "scene_id": "P1"},
              "trace_metadata": {"mlflow.sourceRun": "r1"}},
             {"trace_id": "t2", "tags": {SUMMARY: "[1,"}}, {"trace_id": "t3", "tags": {}},
             {"trace_id": "t4", "tags": {SUMMARY: json.loads("[1]")}}, {"trace_id": "t1", "tags": {SUMMARY: good}}]
    seen: set[str] = set()
    out, unread = scenes_over_http.summarised(infos, None, None, seen)
    assert [(f.trace_id, f.run_id, f.timestamp_ms, f.scene_tag, f.output_action) for f in out] == [
        ("t1", "r1", 1000, "P1", "a")]
    assert unread == ["t2", "t3", "t4"] and seen == {"t1"}


def test_an_id_with_a_quote_is_refused_clearly(served: Served):
    with pytest.raises(StoreError, match="holds a quote"):
        read_all(scenes_over_http.read_trace_fields_http, served.url, served.eid, run_ids=["it's"])


def test_only_servers_are_read_here(tmp_path: Path):
    from align_track.store.spans_reader import Unreadable

    with pytest.raises(Unreadable):
        next(scenes_over_http.read_trace_fields_http(f"sqlite:///{tmp_path / 'x.db'}", "0"))


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    """Three trace ids a BatchGetTraces request: every read takes several, some in flight at once."""
    monkeypatch.setattr(traces_over_http, "CHUNK", 3)
    return 3


def _batched(made: list[tuple[str, str]]) -> int:
    """The BatchGetTraces requests among ``made``, after checking the rest is one search of the ids' tags."""
    paths = [path for path, _ in made]
    searches = [text for path, text in made if path == trace_search.SEARCH]
    assert len(searches) == 1 and "request_id IN" in searches[0]
    assert set(paths) == {trace_search.SEARCH, traces_over_http.BATCH_GET}
    return paths.count(traces_over_http.BATCH_GET)


def test_decision_details_over_http_equal_the_sqlite_file_in_batches(served: Served, small_batches: int,
                                                                     requests_made: list[tuple[str, str]]):
    """One scene's decisions' details (predicted KDMA values, the action and its justification), and every
    trace's, read over HTTP are what the server's SQLite file gives, traces without a summary included; the spans
    come in BatchGetTraces requests of several traces each, not a get_trace (two requests) per trace."""
    uri, eid, runs = load_complete_runs(served.url)
    index = build_index(uri, eid, runs)
    direct = build_index(served.sqlite, served.eid, runs)
    key = max(index.rows(), key=lambda r: r.runs).key
    ids = [d.trace_id for d in index.decisions_of(key)]
    assert ids == [d.trace_id for d in direct.decisions_of(key)] and len(ids) > small_batches
    requests_made.clear()
    details = read_details(served.url, served.eid, ids)
    assert details == read_details(served.sqlite, served.eid, ids)
    assert len(details) == len(ids) and any(isinstance(d.action, dict) and d.action.get("justification")
                                            for d in details.values())
    assert _batched(requests_made) == -(-len(ids) // small_batches) < len(ids)
    every = sorted(f.trace_id for f in read_all(read_trace_fields, served.sqlite, served.eid))
    assert served.unread <= set(every)
    assert read_details(served.url, served.eid, every) == read_details(served.sqlite, served.eid, every)


def test_state_texts_over_http_equal_the_sqlite_file_in_batches(served: Served, small_batches: int,
                                                                requests_made: list[tuple[str, str]]):
    """The text filter's state texts (one trace a scene) over HTTP are the SQLite file's, in a few batches."""
    uri, eid, runs = load_complete_runs(served.url)
    index = build_index(uri, eid, runs)
    direct = build_index(served.sqlite, served.eid, runs)
    requests_made.clear()
    attach_state_texts(index, uri, eid)
    attach_state_texts(direct, served.sqlite, served.eid)
    assert index.texts == direct.texts and len(index.texts) > small_batches
    assert sum(1 for text in index.texts.values() if text) > small_batches
    assert _batched(requests_made) == -(-len(index.texts) // small_batches) < len(index.texts)


def _searches(made: list[tuple[str, str]]) -> list[dict]:
    return [json.loads(text.split("\n", 1)[1]) for path, text in made if path == trace_search.SEARCH]


def test_a_scene_read_by_name_is_searched_for_by_the_server(served: Served, small_pages: None,
                                                            requests_made: list[tuple[str, str]]):
    """``--scene P3``: the server is asked for the traces of that name (trace name, then scene_id tag), not for
    every trace's info to be filtered here: a few pages, not the experiment's; the same traces as the SQLite
    file's, those without a summary included."""
    direct = by_id(read_all(read_trace_fields, served.sqlite, served.eid))
    name = direct[served.fluent[0]].name
    named = by_id(read_all(read_fields, served.url, served.eid, names=[name]))
    assert named == by_id(read_all(read_trace_fields, served.sqlite, served.eid, names=[name]))
    assert named.keys() & served.unread
    searches = _searches(requests_made)
    assert searches and all(name in s.get("filter", "") for s in searches)
    assert {s["filter"] for s in searches} == {f"trace.name = '{name}'", f"tag.scene_id = '{name}'"}
    assert len(searches) < len(direct) / 3  # pages of three: the whole experiment would be len(direct) / 3


def test_a_server_refusing_the_name_search_is_read_whole_and_filtered_here(served: Served, small_pages: None,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          requests_made: list[tuple[str, str]]):
    """A server whose filter grammar has no such search: every trace's info, filtered here, the same traces."""
    monkeypatch.setattr(scenes_over_http, "_name_filters", lambda wanted: [["trace.no_such_key = 'x'"]])
    direct = by_id(read_all(read_trace_fields, served.sqlite, served.eid))
    name = direct[served.fluent[0]].name
    named = by_id(read_all(read_fields, served.url, served.eid, names=[name]))
    assert named == by_id(read_all(read_trace_fields, served.sqlite, served.eid, names=[name])) and named
    filters = [s.get("filter") for s in _searches(requests_made)]
    assert filters[0] == "trace.no_such_key = 'x'" and set(filters[1:]) == {None}


def test_a_server_without_batch_get_is_read_trace_by_trace(served: Served, monkeypatch: pytest.MonkeyPatch):
    """Details and state texts from a server without BatchGetTraces: MLflow's get_trace, the same values."""
    monkeypatch.setattr(traces_over_http, "BATCH_GET", "/api/3.0/mlflow/traces/batchGetNotYet")
    every = sorted(f.trace_id for f in read_all(read_trace_fields, served.sqlite, served.eid))[:6]
    with pytest.raises(scenes_over_http.Unreadable):
        traces_over_http.root_spans_http(served.url, served.eid, every)
    assert read_details(served.url, served.eid, every) == read_details(served.sqlite, served.eid, every)


@pytest.mark.parametrize("whole_over", [0, 50])
def test_one_scene_across_a_big_selection_is_a_few_searches(served: Served, small_pages: None, whole_over: int,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            requests_made: list[tuple[str, str]]):
    """``scenes --scene X`` over many runs (here: over none, monkeypatched) reads the experiment's traces of that
    name, not a search per run; over a few runs, a run's named traces at a time. Either way the index of that
    scene, and its decisions' details, equal the SQLite file's."""
    from align_track.query import scene_index

    monkeypatch.setattr(scene_index, "WHOLE_OVER", whole_over)
    uri, eid, runs = load_complete_runs(served.url)
    name = by_id(read_all(read_trace_fields, served.sqlite, served.eid))[served.fluent[0]].name
    requests_made.clear()
    index = build_index(uri, eid, runs, names=[name])
    direct = build_index(served.sqlite, served.eid, runs, names=[name])
    assert index.rows() == direct.rows() and _decisions(index) == _decisions(direct) and index.rows()
    filters = [s.get("filter", "") for s in _searches(requests_made) if "request_id" not in s.get("filter", "")]
    assert all(name in f for f in filters)
    if whole_over == 0:
        assert set(filters) == {f"trace.name = '{name}'", f"tag.scene_id = '{name}'"}
    else:
        assert all("run_id" in f for f in filters) and len(set(filters)) == 2 * len(runs)


def _set_spans_location(sqlite: str, trace_id: str, value: str) -> None:
    import sqlite3

    with sqlite3.connect(sqlite.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE trace_tags SET value = ? WHERE request_id = ? AND key = ?",
                   (value, trace_id, traces_over_http.SPANS_LOCATION))


def test_traces_whose_spans_live_in_the_artifact_store_are_read_through_mlflow(
        served: Served, small_batches: int, monkeypatch: pytest.MonkeyPatch):
    """An older trace keeps its spans as an artifact (spansLocation ARTIFACT_REPO), which BatchGetTraces refuses
    (the whole request fails): it is read through MLflow's get_trace, the others still in batches; the same
    details and fields as the SQLite file's spans."""
    from mlflow import MlflowClient
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.tracing.utils import TraceJSONEncoder
    from mlflow.tracing.utils.artifact_utils import get_artifact_uri_for_trace
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    ids = sorted(f.trace_id for f in read_all(read_trace_fields, served.sqlite, served.eid))[:7]
    moved = [ids[2], *(t for t in served.unread if t in served.fluent[:1])]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = MlflowClient(tracking_uri=served.url)
    with _use_tracking_uri(served.url):
        for trace_id in moved:
            trace = client.get_trace(trace_id)
            get_artifact_repository(get_artifact_uri_for_trace(trace.info)).upload_trace_data(
                json.dumps(trace.data.to_dict(), cls=TraceJSONEncoder, ensure_ascii=False))
            _set_spans_location(served.sqlite, trace_id, "ARTIFACT_REPO")
        try:
            every = [*ids, *moved[1:]]
            assert read_details(served.url, served.eid, every) == read_details(served.sqlite, served.eid, every)
            assert len(read_details(served.url, served.eid, every)) == len(set(every))
            fields = by_id(read_all(read_fields, served.url, served.eid))
            assert fields == by_id(read_all(read_trace_fields, served.sqlite, served.eid))
        finally:
            for trace_id in moved:
                _set_spans_location(served.sqlite, trace_id, "TRACKING_STORE")
