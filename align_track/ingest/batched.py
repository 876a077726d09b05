"""The read, map and batched-write stages on a SQL store (SQLite, PostgreSQL directly): folders read and mapped
ahead of the writer (in a thread, or forked worker processes for big trees), several runs per transaction, each
run still all-or-nothing."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from align_track.errors import one_line, printable
from align_track.ingest.folders import RunFolderError
from align_track.ingest.mapping import map_run
from align_track.ingest.outcomes import BUSY, FAILED, INGESTED, SKIPPED, UPDATED, Outcome, folder_status
from align_track.ingest.plan import Prepared
from align_track.ingest.reconcile import after_complete
from align_track.records import RunRecord
from align_track.store.disk_full import disk_full_cause, telling_line
from align_track.store.retries import retry_call

BATCH_SCENES = 2000
"""A batch of runs is written in one transaction once it holds this many scenes ..."""
BATCH_RUNS = 64
"""... or this many runs (the first batch has 8, each next one twice as many: progress shows early) ..."""
BATCH_SECONDS = 1.0
"""... or its first run has waited this long (progress keeps moving on slow folders)."""
LOOKAHEAD = 16
"""Folders read and mapped ahead of the writer (memory: a few run folders, not the corpus)."""


def write_in_batches(folders: list[Prepared], prepare: Callable[[Prepared], Prepared | None],
             resolve: Callable[[Prepared], None], write: Callable[[list[Prepared]], None]) -> None:
    """Map planned folders ahead (``prepare``: in a thread, handing the work to worker processes when there
    are any, so JSON parsing, mapping and row building overlap the writes) while this thread writes them in
    batches of several runs per transaction.

    A batch is written when it is big enough (:data:`BATCH_SCENES`, :data:`BATCH_RUNS`), its first folder
    has waited :data:`BATCH_SECONDS`, or nothing more is coming. Outcomes keep the folders' order.
    """
    import queue

    ready: queue.Queue = queue.Queue(maxsize=LOOKAHEAD)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for folder in folders:
                if stop.is_set():
                    return
                item = prepare(folder)
                if item is None:
                    break
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # noqa: BLE001 - handed to the writer, which raises it
            ready.put(exc)
        finally:
            ready.put(done)

    producer = threading.Thread(target=produce, name="align-track-map", daemon=True)
    producer.start()
    batch: list[Prepared] = []
    runs = scenes = 0
    first = 0.0
    limit = 8
    try:
        while True:
            timeout = None if not batch else max(0.0, first + BATCH_SECONDS - time.monotonic())
            try:
                item = ready.get(timeout=timeout)
            except queue.Empty:
                item = None
            if isinstance(item, BaseException):
                raise item
            if item is done:
                if batch:
                    write(batch)
                return
            if item is not None:
                resolve(item)
                if not batch and not item.pending:  # decided (skipped, failed): reported at once
                    write([item])
                    continue
                if not batch:
                    first = time.monotonic()
                batch.append(item)
                runs += len(item.pending)
                scenes += item.scenes
            if batch and (item is None or runs >= limit or scenes >= BATCH_SCENES
                          or time.monotonic() - first >= BATCH_SECONDS):
                write(batch)
                batch, runs, scenes, limit = [], 0, 0, min(limit * 2, BATCH_RUNS)
    finally:
        stop.set()


class Done:
    """An answer computed in place, with the ``.get()`` of a pool's pending one."""

    def __init__(self, value: object):
        self.value = value

    def get(self) -> object:
        return self.value


def with_history(record: RunRecord, history: dict[str, str]) -> RunRecord:
    """``record`` carrying the adoption tags of the run it replaces (``reconcile.adopted_history``)."""
    return replace(record, tags={**record.tags, **history}) if history else record


def map_folder(config, jobs, force, experiment_id, location, in_child, direct=True):
    """Read one folder (once) and map its pending runs into the store's bulk form: ids and trace rows.

    The CPU-heavy part of an ingest (JSON parsing, mapping, span JSON and size stats), run in a worker
    process when there are many folders, so it uses another core than the writer. Returns
    ``("ok", bulk runs, warnings)`` or ``("error", message)`` (exceptions do not cross processes well).
    ``direct``: build the rows without MLflow (store/sql_direct.py), else through MLflow's objects.
    ``jobs``: (identity, variant, adoption tags) per run to write.
    """
    if direct:
        from align_track.store.sql_direct import prepare_bulk_run
    else:
        from align_track.store.sql_bulk import prepare_bulk_run

    warnings: list[str] = []
    files = None
    out = []
    try:
        for identity, variant, history in jobs:
            mapped = map_run(identity, variant, files)  # reads the folder (once) on its first identity
            files = mapped.files
            warnings += [f"{printable(config.rel_path)}: {warning}" for warning in mapped.warnings]
            bulk = prepare_bulk_run(with_history(mapped.run, history), force, experiment_id, location)
            if in_child:  # the rows carry the traces; sending the records back too would double the transfer
                bulk.record = replace(bulk.record, traces=[])
            out.append(bulk)
    except RunFolderError as exc:
        return ("error", str(exc))
    return ("ok", out, warnings)


MAP_PROCESSES_MIN_RUNS = 32
"""Below this many runs to write, mapping stays in a thread: forking workers would cost more than it saves."""


def _fork_is_safe() -> bool:
    """A fork copies only the calling thread: only from the main thread, while every other thread is a daemon
    (e.g. MLflow's telemetry), never inside an app's worker thread (the TUI) whose siblings may hold locks."""
    main = threading.main_thread()
    return threading.current_thread() is main and all(t.daemon for t in threading.enumerate() if t is not main)


def mapping_pool(runs: int):
    """Worker processes for ``map_folder`` (one per core, at most 4), or None: few folders, one core,
    ``ALIGN_TRACK_MAP_PROCESSES=0``, or threads of our caller's about (a fork copies only this thread,
    so it is used only from the main thread of a process whose other threads are daemons)."""
    import multiprocessing
    import signal

    wanted = os.environ.get("ALIGN_TRACK_MAP_PROCESSES", "")
    cpus = os.cpu_count() or 1
    count = int(wanted) if wanted.isdigit() else min(cpus, 4)
    if count < 2 and not wanted.isdigit() or count < 1 or runs < MAP_PROCESSES_MIN_RUNS:
        return None
    if not _fork_is_safe():
        return None
    try:
        return multiprocessing.get_context("fork").Pool(count, initializer=signal.signal,
                                                        initargs=(signal.SIGINT, signal.SIG_IGN))
    except (OSError, ValueError):
        return None


def store_error(rel: str, exc: BaseException, state: dict, tracking_uri: str) -> str:
    """A folder's store failure, naming a full disk as such (kept in ``state`` for the folders it stops)."""
    cause = state["cause"] = disk_full_cause(exc, tracking_uri)
    detail = f"{type(exc).__name__}: {telling_line(exc)}" if cause and telling_line(exc) else \
        one_line(exc, with_type=True)
    return f"{rel}: store error: {cause} ({detail})" if cause else f"{rel}: store error: {detail}"


def not_attempted(rel: str, state: dict) -> str:
    """A folder left after 3 store failures in a row, with their cause when it is known."""
    cause = state.get("cause")
    if cause:
        return f"{rel}: not attempted, the store stopped accepting writes: {cause}"
    return f"{rel}: not attempted, the store stopped answering"


def write_batch(store, batch: list[Prepared], force: bool, alive, notice, state: dict) -> list[Outcome]:
    """Write every pending run of ``batch`` (one transaction, see RunStore.write_batch); one outcome per folder."""
    todo = [p for prepared in batch if prepared.outcome is None for p in prepared.pending]
    results: dict[int, object] = {}
    if todo and state["store_failures"] < 3:
        written = store.write_batch([(p.bulk, p.identity.key) for p in todo],
                                    superseded=lambda mine, runs: after_complete(mine, runs, alive), notice=notice)
        results = {id(p): w for p, w in zip(todo, written, strict=True)}
    outcomes = []
    for prepared in batch:
        if prepared.outcome is not None:
            outcomes.append(prepared.outcome)
            continue
        rel = prepared.rel
        if state["store_failures"] >= 3 and not results:
            outcomes.append(Outcome(rel, FAILED, error=not_attempted(rel, state)))
            continue
        statuses, traces, run_ids, error = list(prepared.statuses), 0, [], None
        for pending in prepared.pending:
            result = results[id(pending)]
            try:
                if isinstance(result, Exception):
                    raise result
                if result.run_id is None:  # type: ignore[attr-defined]
                    statuses.append(BUSY if result.busy else SKIPPED)  # type: ignore[attr-defined]
                    continue
                for doomed_run in pending.theirs:  # our run is complete: the foreign one it replaces goes
                    retry_call(store.delete_run, doomed_run.run_id, notice=notice)
            except Exception as exc:  # noqa: BLE001 - the store failed: this folder fails, a rerun converges
                error = error or store_error(rel, exc, state, store.tracking_uri)
                continue
            statuses.append(UPDATED if pending.action == "update" else INGESTED)
            traces += pending.bulk.scenes  # type: ignore[attr-defined]
            run_ids.append(result.run_id)  # type: ignore[attr-defined]
        if error:
            state["store_failures"] += 1
            outcomes.append(Outcome(rel, FAILED, error=error))
        else:
            state["store_failures"] = 0
            outcomes.append(Outcome(rel, folder_status(statuses), runs=len(run_ids), traces=traces, run_ids=run_ids))
    return outcomes
