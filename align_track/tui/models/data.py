"""Store access for the TUI. Every function here blocks and is called from thread workers, never the UI thread.

Runs come from :mod:`align_track.query.select` (complete runs, MLflow filter semantics); scenes are
MLflow traces read with MLflow's own client, a page at a time, so a 1,000-scene run shows its
first scenes at once and a newer request can stop an older one between pages.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from align_track.store.uri import resolve_tracking_uri, sqlite_path, store_kind
from align_track.tui.models.runs import FINISHED, RUNNING, STALLED, RunsModel

if TYPE_CHECKING:
    from align_track.store.runs_reader import RunRow
    from align_track.tui.models.scenes import Scene

FIRST_PAGE = 50
PAGE = 200



@dataclass
class RunsSnapshot:
    """An experiment's runs as read once; the TUI filters and sorts this in memory.

    ``runs`` holds the complete runs and, first, the ones align-track is still writing (``status``
    says which is which), so a run being written is shown but never looks complete.
    """

    uri: str
    experiment_id: str
    runs: list[RunRow]
    status: dict[str, str] = field(default_factory=dict)
    """run id -> RUNNING or STALLED for runs not yet complete; complete runs are absent (FINISHED)."""
    timing: dict[str, str] = field(default_factory=dict)
    """run id -> NO_TIMING or MAYBE_RUNNING for complete runs whose folder had no timing.json: shown, still
    counted as complete (``status`` leaves them out)."""
    table: RunsModel | None = field(default=None, repr=False, compare=False)
    """The runs table built from ``runs`` in the reading thread (a second of work at 100,000 runs that the
    UI thread then need not do); the Runs pane takes it over."""

    _by_id: dict[str, RunRow] | None = field(default=None, init=False, repr=False, compare=False)

    def status_of(self, run_id: str) -> str:
        return self.status.get(run_id, FINISHED)

    def shown_state(self, run_id: str) -> str:
        """What the state column says: ``status_of``, or for a complete run what its timing tells."""
        return self.status.get(run_id) or self.timing.get(run_id, FINISHED)

    @property
    def states(self) -> dict[str, str]:
        """``shown_state`` of every run not plainly done (what the runs table is built with)."""
        return {**self.timing, **self.status}

    def run(self, run_id: str) -> RunRow | None:
        """The run with this id: a dict lookup (the details strip asks on every cursor move)."""
        if self._by_id is None:
            self._by_id = {r.run_id: r for r in self.runs}
        return self._by_id.get(run_id)

    @property
    def complete(self) -> list[RunRow]:
        return [r for r in self.runs if r.run_id not in self.status]


def display_uri(uri: str, cwd: Path | None = None) -> str:
    """The store as a person reads it: a SQLite file relative to the working directory or ~, else the URI."""
    if store_kind(uri) != "sqlite":
        return uri
    path = sqlite_path(uri)
    if path is None:
        return uri
    path = path.resolve()
    for base, prefix in ((cwd or Path.cwd(), ""), (Path.home(), "~/")):
        try:
            return prefix + str(path.relative_to(base.resolve()))
        except ValueError:
            continue
    return str(path)


def unfinished_status(run: RunRow) -> str | None:
    """RUNNING while an align-track ingest's claim on the run is alive (its process lives; on another host,
    its 15-minute lease runs), STALLED once the claim is dead or expired, None for any other run."""
    from align_track.schema import TAG_CLAIM, TAG_COMPLETE, TAG_KEY, written_ms
    from align_track.store.claims import claim_is_alive

    tags = run.tags
    if run.lifecycle_stage != "active" or tags.get(TAG_COMPLETE) == "true" or TAG_KEY not in tags:
        return None
    return RUNNING if claim_is_alive(tags.get(TAG_CLAIM), written_ms(tags, run.start_time)) else STALLED


def load_runs(tracking_uri: str | None, experiment_name: str) -> RunsSnapshot:
    """Complete runs of the experiment, after the unfinished ones align-track is writing (or was, when it
    stopped); StoreError (missing store/experiment, unreachable server) propagates."""
    from align_track.store.runs_reader import gc_paused, get_experiment_id
    from align_track.store.runs_reader import load_runs as read_runs
    from align_track.store.uri import require_existing_store

    uri = resolve_tracking_uri(tracking_uri)
    require_existing_store(uri)
    experiment_id = get_experiment_id(uri, experiment_name)
    with gc_paused():  # millions of new objects, none garbage: the app freezes them once they are shown
        return _snapshot(uri, experiment_id, read_runs(uri, experiment_id))


def sweep_line(snapshot: RunsSnapshot) -> str:
    """The status bar's summary of a sweep: finished runs, then running / stalled / failed when there are any
    ("24 runs + 2 unfinished: 1 running, 1 stalled · 1 failed")."""
    unfinished = len(snapshot.status)
    line = f"{len(snapshot.runs) - unfinished} runs"
    if unfinished:
        counts = [(sum(1 for s in snapshot.status.values() if s == state), state) for state in (RUNNING, STALLED)]
        line += f" + {unfinished} unfinished: " + ", ".join(f"{n} {state}" for n, state in counts if n)
    failed = sum(1 for r in snapshot.runs if r.status == "FAILED" and r.run_id not in snapshot.status)
    return line + (f" · {failed} failed" if failed else "")


LIVE_OVERLAP_MS = 60_000
"""Incremental reads overlap by this much: writers' clocks (other cluster nodes) may lag the reader's."""


def changed_runs(snapshot: RunsSnapshot, since_ms: int) -> tuple[RunsSnapshot | None, int]:
    """The snapshot with the runs changed since ``since_ms`` merged in (None when nothing visible changed),
    and the time to ask from next. One cheap query (new, finished and live runs), never the whole experiment.
    """
    from align_track.query.select import is_complete
    from align_track.schema import TAG_KEY, written_ms
    from align_track.store.runs_reader import runs_changed_since, search_order

    delta = runs_changed_since(snapshot.uri, snapshot.experiment_id, since_ms - LIVE_OVERLAP_MS)
    if not delta.rows and not delta.deleted:  # the usual tick: no index of 100,000 runs built for nothing
        return None, delta.as_of_ms
    by_id = {r.run_id: r for r in snapshot.runs}
    changed = [r for r in delta.rows if by_id.get(r.run_id) != r]
    gone = {rid for rid in (delta.deleted or ()) if rid in by_id}
    if not changed and not gone:
        return None, delta.as_of_ms
    for row in changed:
        by_id[row.run_id] = row
    for rid in gone:
        del by_id[rid]
    rows = list(by_id.values())
    # Over HTTP deletions are not reported: a run replaced by a newer complete run of the same identity goes.
    def written(r: RunRow) -> int:  # start times are the experiment's: equal for two writes of one folder
        return written_ms(r.tags, r.start_time) or 0

    newest: dict[str, RunRow] = {}
    for r in rows:
        key = r.tags.get(TAG_KEY)
        if key and is_complete(r) and (key not in newest or written(r) > written(newest[key])):
            newest[key] = r
    rows = [r for r in rows if not (r.tags.get(TAG_KEY) in newest and newest[r.tags[TAG_KEY]] is not r
                                    and written(r) <= written(newest[r.tags[TAG_KEY]]))]
    return _snapshot(snapshot.uri, snapshot.experiment_id, search_order(rows)), delta.as_of_ms


def _snapshot(uri: str, experiment_id: str, rows: list[RunRow]) -> RunsSnapshot:
    """Unfinished runs align-track is (or was) writing first, then the complete ones; other runs left out."""
    from align_track.query.live import timing_state
    from align_track.query.select import is_complete

    complete, status, unfinished, timing = [], {}, [], {}
    for r in rows:
        if is_complete(r):
            complete.append(r)
            if state := timing_state(r):
                timing[r.run_id] = state
        elif (s := unfinished_status(r)) is not None:
            status[r.run_id] = s
            unfinished.append(r)
    runs = unfinished + complete
    return RunsSnapshot(uri, experiment_id, runs, status, timing=timing,
                        table=RunsModel.from_runs(runs, states={**timing, **status}))


_FILTER_READY = threading.Event()
"""Set once MLflow's filter parser is imported (by ``warm_up`` or a first filter): until then a filter waits
seconds for ``import mlflow``, and the Runs pane says so."""


def mlflow_filter_ready() -> bool:
    """Whether an MLflow filter runs now, or first waits for ``import mlflow`` (seconds, once)."""
    return _FILTER_READY.is_set()


def mlflow_filter(runs: list[RunRow], text: str) -> set[str]:
    """Run ids matching an MLflow filter string, with the MLflow UI's semantics; QueryError if invalid."""
    from align_track.query.select import filter_rows, parse_filter

    try:
        return {r.run_id for r in filter_rows(runs, parsed=parse_filter(text, "filter"))}
    finally:
        if "mlflow.utils.search_utils" in sys.modules:
            _FILTER_READY.set()


@functools.lru_cache(maxsize=4)
def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


class Quiet:
    """Held while the user waits for a view to appear (a run's first scenes): background work that would
    compete for the GIL (importing mlflow: seconds of Python bytecode) steps aside until it is released."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holds = 0
        self._free = threading.Event()
        self._free.set()

    def hold(self) -> None:
        with self._lock:
            self._holds += 1
            self._free.clear()

    def release(self) -> None:
        with self._lock:
            self._holds = max(self._holds - 1, 0)
            if not self._holds:
                self._free.set()

    def wait(self, timeout: float) -> bool:
        """Block while held (at most ``timeout`` seconds); True when free."""
        return self._free.wait(timeout)


WARM_UP_STEPS = ("sqlalchemy", "requests", "pydantic", "google.protobuf", "numpy", "pandas", "mlflow.entities",
                 "mlflow.tracking", "mlflow")
"""What ``import mlflow`` spends its seconds on, in its order: imported one at a time, a view the user opens
meanwhile waits for one step at most, not for the whole import."""

WARM_UP_DELAY = 1.5
"""Seconds between the runs appearing and the warm-up starting, where scenes do not need mlflow: an Enter
right after the list appears (the usual first key) then has the interpreter to itself."""


def warm_up(tracking_uri: str, quiet: Quiet | None = None) -> None:
    """Import mlflow and open the client ahead of its first use (the raw trace view, an MLflow filter, a report,
    scenes of an http store; import mlflow takes seconds), stepping aside whenever ``quiet`` is held."""
    import importlib
    import time

    from align_track.store import spans_reader

    uri = resolve_tracking_uri(tracking_uri)
    if quiet is not None and spans_reader.supported(uri):
        time.sleep(WARM_UP_DELAY)
    for name in WARM_UP_STEPS:
        if quiet is not None:
            quiet.wait(timeout=30.0)
        try:
            importlib.import_module(name)
        except ImportError:  # another mlflow, without this dependency: its own import decides
            pass
    try:
        importlib.import_module("mlflow.utils.search_utils")
        _FILTER_READY.set()
    except ImportError:
        pass
    _client(uri)


def scene_pages(uri: str, experiment_id: str, run_id: str, first: int = FIRST_PAGE,
                size: int = PAGE, since_ms: int | None = None,
                fallback: Callable[[str], None] | None = None) -> Iterator[list[Scene]]:
    """The run's scenes in scene order, a page of traces at a time (one store query per page);
    with ``since_ms`` only the traces written from then on (a live run's refresh).

    SQLite/PostgreSQL stores are read straight from SQL (no ``import mlflow`` before the first
    scene); where that reader cannot (http, other MLflow versions, spans outside the store) MLflow's
    client reads the rest, skipping scenes already shown. ``fallback`` hears why, before MLflow is asked: on
    first use that waits for ``import mlflow`` (seconds; tens of seconds on a loaded machine), so a view says so
    instead of looking stuck.
    """
    from align_track.store import spans_reader
    from align_track.tui.models.scenes import scene_from_row

    shown: set[str] = set()
    why = f"a {store_kind(uri)} store is read through MLflow's client"
    if spans_reader.supported(uri):
        offset, limit = 0, first
        try:
            while True:
                rows = spans_reader.read_run_traces(uri, experiment_id, run_id, offset=offset, limit=limit,
                                                    since_ms=since_ms)
                scenes = [scene_from_row(r, functools.partial(_get_trace, uri, r["trace_id"])) for r in rows]
                if scenes:
                    shown.update(s.trace_id for s in scenes)
                    yield scenes
                if len(rows) < limit:
                    return
                offset, limit = offset + len(rows), size
        except spans_reader.Unreadable as exc:
            why = str(exc)
    if fallback is not None:
        fallback(why)
    yield from _mlflow_scene_pages(uri, experiment_id, run_id, first, size, shown, since_ms)


def new_scenes(uri: str, experiment_id: str, run_id: str, since_ms: int | None, known: set[str]) -> list[Scene]:
    """A live run's scenes written at or after ``since_ms`` that are not in ``known`` (trace ids): what a
    refresh of its open scene view adds, read without re-reading the scenes already shown."""
    return [s for page in scene_pages(uri, experiment_id, run_id, first=PAGE, since_ms=since_ms)
            for s in page if s.trace_id not in known]


def _get_trace(uri: str, trace_id: str) -> Any:
    return _client(uri).get_trace(trace_id)


def _mlflow_scene_pages(uri: str, experiment_id: str, run_id: str, first: int, size: int,
                        skip: set[str], since_ms: int | None = None) -> Iterator[list[Scene]]:
    """``scene_pages`` through MLflow's client (``search_traces``), leaving out the ``skip`` trace ids."""
    from align_track.tui.models.scenes import scene_from_trace

    client = _client(uri)
    token = None
    limit = first
    while True:
        page = client.search_traces(locations=[experiment_id], run_id=run_id, max_results=limit,
                                    page_token=token, order_by=["timestamp_ms ASC"],
                                    filter_string=None if since_ms is None else f"trace.timestamp_ms >= {since_ms}")
        scenes = [scene_from_trace(t) for t in page if t.info.trace_id not in skip]
        if scenes:
            yield scenes
        token = page.token
        if not token or not page:
            return
        limit = size


def all_scenes(uri: str, experiment_id: str, run_id: str, cancelled: Callable[[], bool] = lambda: False
               ) -> list[Scene] | None:
    """Every scene of a run (None if cancelled part way)."""
    out: list[Scene] = []
    for page in scene_pages(uri, experiment_id, run_id, first=PAGE):
        if cancelled():
            return None
        out.extend(page)
    return out


def runs_frame(runs: list[RunRow]) -> Any:
    """The runs as ``mlflow.search_runs``' DataFrame (what align_track.query.report pivots)."""
    from align_track.query.select import rows_to_frame

    return rows_to_frame(runs)
