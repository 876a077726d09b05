"""Ingest a tree of align-system run folders into MLflow: the library call behind the CLI, the TUI and the Hydra
callback.

Four stages, each a function of its own:

* **open** the store (``store.open_store.open_run_store``: without MLflow on the SQL stores it knows, else through
  MLflow, which also creates a new store);
* **plan** (``ingest/plan.py``): find the run folders, read the store's runs once, skip the unchanged folders from
  their files' sizes and times, parse the configs of the others, name run variants, decide each folder;
* **read + map** (``batched.map_folder``): read a folder's files once and map them to runs and trace rows, ahead of
  the writer (in a thread, or worker processes on a big tree);
* **write**: several runs per transaction on a SQL store (:func:`write_batched`), else one folder at a time with
  several in flight against a tracking server (:func:`write_each`), each run complete or absent.

Progress is reported as events so the CLI's progress bar and the TUI's pane render the same ingest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from align_track.errors import one_line, printable
from align_track.ingest.batched import (
    Done,
    map_folder,
    mapping_pool,
    not_attempted,
    store_error,
    with_history,
    write_batch,
    write_in_batches,
)
from align_track.ingest.folders import RunFolderError, timing_note
from align_track.ingest.mapping import map_run
from align_track.ingest.outcomes import (
    BUSY,
    FAILED,
    INGESTED,
    SKIPPED,
    UPDATED,
    Cancelled,
    Event,
    Outcome,
    Summary,
    folder_status,
    summary_lines,
)
from align_track.ingest.plan import Prepared, plan_ingest
from align_track.ingest.reconcile import after_complete, lost_claim
from align_track.store.retries import retry_call, with_retries
from align_track.store.uri import DEFAULT_EXPERIMENT, StoreError, resolve_tracking_uri, store_kind

ACTIVITY_EVERY = 0.2
"""Seconds between two 'activity' events of a scan: often enough to read as live, few enough to cost nothing."""

STORE_FAILURES = 3
"""Run folders failing in a row on a store error before the rest are reported not attempted."""


def default_workers(tracking_uri: str) -> int:
    """One writer for a database file (it serialises writes anyway); several for a server, which
    spends most of each request waiting on the network."""
    return 4 if store_kind(tracking_uri) == "http" else 1


class Progress:
    """The events of one ingest: notices, the plan, then one event per folder as it is done."""

    def __init__(self, emit: Callable[[Event], None], root: Path | None = None):
        self.emit = emit
        self.root = root
        """The tree ingested: each folder in the store is looked at for its timing.json (``folders.timing_note``)."""
        self.started = time.perf_counter()
        self.total = 0
        self.outcomes: list[Outcome] = []
        self.traces = 0
        self.to_write: set[str] = set()
        self.written = 0
        self.lock = threading.Lock()
        self._last_activity = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def notice(self, message: str) -> None:
        self.emit(Event("message", total=self.total, message=message, elapsed=self.elapsed()))

    def stage(self, message: str) -> None:
        """What the ingest is busy with before its folders are known (creating a store, reading configs)."""
        self.emit(Event("stage", message=message, elapsed=self.elapsed()))

    def activity(self, message: str, force: bool = True) -> None:
        """What the ingest is doing right now; unless ``force``, at most every :data:`ACTIVITY_EVERY` seconds
        (a scan calls it per directory)."""
        now = time.perf_counter()
        if not force and now - self._last_activity < ACTIVITY_EVERY:
            return
        self._last_activity = now
        self.emit(Event("activity", message=message, elapsed=now - self.started))

    def planned(self, folders: list[Prepared]) -> None:
        self.total = len(folders)
        self.to_write = {p.rel for p in folders if p.outcome is None}
        self.emit(Event("planned", total=self.total, to_write=len(self.to_write)))

    def record(self, outcome: Outcome) -> None:
        # Folders just written only: an unchanged rerun of a big tree (on NFS) stats nothing more.
        if self.root is not None and outcome.status in (INGESTED, UPDATED) and not outcome.note:
            outcome.note = timing_note(self.root / outcome.path)[0]
        with self.lock:
            self.outcomes.append(outcome)
            self.traces += outcome.traces
            if outcome.path in self.to_write:
                self.written += 1
            self.emit(Event("run_folder", total=self.total, done=len(self.outcomes), scenes=self.traces,
                            outcome=outcome, elapsed=self.elapsed(), to_write=len(self.to_write),
                            written=self.written))


def ingest(
    experiments_dir: str | Path,
    tracking_uri: str | None = None,
    experiment_name: str = DEFAULT_EXPERIMENT,
    force: bool = False,
    on_event: Callable[[Event], None] | None = None,
    cancel: threading.Event | None = None,
    workers: int | None = None,
    only: list[Path] | None = None,
    allow_network_fs: bool = False,
    clock: Callable[[], float] = time.time,
) -> Summary:
    """Ingest every experiment below ``experiments_dir``; never raises for a bad folder, only for the store.

    ``only``: write just these folders (the Hydra callback's one job), variants still from the whole tree.
    ``allow_network_fs``: write a SQLite store on a network filesystem even while another host writes it.
    ``clock``: now (epoch seconds) for judging an unchanged folder quiet (``plan.settle_skipped``; tests move it
    rather than sleep through the stall window).
    """
    from align_track.store import dbapi, http
    from align_track.store.claims import claim_is_alive, claim_token
    from align_track.store.open_store import open_run_store

    root = Path(experiments_dir).resolve()
    progress = Progress(on_event or (lambda event: None), root)
    uri = resolve_tracking_uri(tracking_uri)
    http.prepare(uri)  # a dead server is a StoreError now, before anything slow
    me = claim_token()

    def alive(token: str | None, started_ms: int | None) -> bool:
        # Our own earlier attempts (a create retried after a lock) are leftovers, not rivals.
        return token != me and claim_is_alive(token, started_ms)

    def open_store():
        return open_run_store(uri, experiment_name, stage=progress.stage, notice=progress.notice,
                              allow_network_fs=allow_network_fs)

    progress.activity(f"opening the {store_kind(uri)} store")
    store = with_retries(open_store, progress.notice)
    abandoned = cut = False
    try:
        wanted = None if only is None else {Path(p).resolve() for p in only}
        plan = plan_ingest(root, store, force, alive, progress.notice, wanted, cancel,
                           skip_unchanged=dbapi.enabled(), activity=progress.activity, clock=clock)
        cut = plan.cut
        progress.planned(plan.folders)
        for line in plan.notes:
            progress.notice(line)
        workers = workers or default_workers(uri)
        if store.bulk and workers <= 1:
            write_batched(store, plan.folders, force, alive, progress, cancel)
        else:
            abandoned = write_each(store, plan.folders, force, alive, progress, cancel, workers)
    finally:
        if not abandoned:  # a hung request still holds it otherwise
            store.close()
    cancelled = cancel is not None and cancel.is_set() and (cut or len(progress.outcomes) < progress.total)
    summary = Summary(progress.outcomes, progress.elapsed(), cancelled, abandoned)
    progress.emit(Event("done", total=progress.total, done=len(progress.outcomes), scenes=summary.traces,
                        elapsed=summary.seconds))
    return summary


# --------------------------------------------------------------------------- write: several runs per transaction


def write_batched(store, folders: list[Prepared], force: bool, alive, progress: Progress,
                  cancel: threading.Event | None) -> None:
    """A SQL store: folders mapped ahead of the writer (worker processes for many runs), written several runs per
    transaction (``batched.write_in_batches``)."""
    state = {"store_failures": 0}
    # Forked only when there are many runs to map, and before any other thread of ours exists.
    mappers = mapping_pool(sum(len(p.pending) for p in folders))

    def cancelled() -> bool:
        return cancel is not None and cancel.is_set()

    def prepare(prepared: Prepared) -> Prepared | None:
        if cancelled():
            return None
        if prepared.pending:
            args = (prepared.config, [(p.identity, p.variant, p.history) for p in prepared.pending], force,
                    store.experiment_id, store.artifact_location, mappers is not None, store.direct)
            prepared.mapping = mappers.apply_async(map_folder, args) if mappers else Done(map_folder(*args))
        return prepared

    def resolve(prepared: Prepared) -> None:
        if prepared.mapping is None:
            return
        result, prepared.mapping = prepared.mapping.get(), None
        prepared.config.scenes = None  # mapped: the scenes kept from the plan are no longer needed
        if result[0] == "error":
            prepared.outcome, prepared.pending = Outcome(prepared.rel, FAILED, error=result[1]), []
            return
        for pending, bulk in zip(prepared.pending, result[1], strict=True):
            pending.bulk = bulk
        for warning in result[2]:  # already "<folder>: <what>"
            progress.notice(warning)

    def write(batch: list[Prepared]) -> None:
        if cancelled():
            return
        for outcome in write_batch(store, batch, force, alive, progress.notice, state):
            progress.record(outcome)

    try:
        write_in_batches(folders, prepare, resolve, write)
    finally:
        if mappers is not None:
            mappers.terminate()


# --------------------------------------------------------------------------- write: one folder at a time


def write_each(store, folders: list[Prepared], force: bool, alive, progress: Progress,
               cancel: threading.Event | None, workers: int) -> bool:
    """One folder at a time per worker (several in flight against a tracking server); True when it gave up on a
    server that stopped answering (its requests may still hang: the caller must not wait for them)."""
    from concurrent.futures import ThreadPoolExecutor

    from align_track.store.http import server_answers

    state: dict = {"store_failures": 0}

    def process(prepared: Prepared) -> Outcome | None:
        if cancel is not None and cancel.is_set():
            return None
        if prepared.outcome is not None:
            return prepared.outcome
        rel = prepared.rel
        if state["store_failures"] >= STORE_FAILURES:
            return Outcome(rel, FAILED, error=not_attempted(rel, state))
        try:
            outcome = write_folder(store, prepared, force, alive, progress.notice)
            state["store_failures"] = 0
            return outcome
        except RunFolderError as exc:
            return Outcome(rel, FAILED, error=str(exc))
        except Exception as exc:  # the store failed mid-write: report it, keep going, a rerun converges
            state["store_failures"] += 1
            return Outcome(rel, FAILED, error=store_error(rel, exc, state, store.tracking_uri))
        finally:
            if prepared.config is not None:
                prepared.config.scenes = None  # written or not, its scenes are no longer needed

    abandoned = False
    pool = ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="ingest")
    try:
        futures = {pool.submit(process, f): f for f in folders}
        probe = partial(server_answers, store.tracking_uri) if store.kind == "http" else None
        for future, outcome in _watch(futures, probe, progress.notice):
            if outcome is _GAVE_UP:  # the server stopped answering
                abandoned = True
                rel = futures[future].rel
                what = "not attempted" if future.cancel() else "not finished (a rerun finishes it)"
                progress.record(Outcome(rel, FAILED, error=f"{rel}: {what}, the store stopped answering"))
            elif outcome is not None:  # None: cancelled before it started
                progress.record(outcome)
    finally:
        # A hung request cannot be interrupted: leave its thread behind rather than wait for it.
        pool.shutdown(wait=not abandoned, cancel_futures=True)
    return abandoned


def write_folder(store, prepared: Prepared, force: bool, alive, notice: Callable[[str], None]) -> Outcome:
    """Map and write the pending runs of one folder (its files read once), then delete the foreign runs they
    replace: each run through the store's claim-then-verify write.

    All or nothing across the folder's targets: when one run fails, the runs this call already wrote are deleted
    before the error is raised (a rerun writes them all again); if that delete fails too, the error names them.
    """
    run_ids: list[str] = []
    try:
        return _write_folder(store, prepared, force, alive, notice, run_ids)
    except Exception as exc:
        if not run_ids:
            raise
        try:
            for run_id in run_ids:
                retry_call(store.delete_run, run_id, notice=notice)
        except Exception:  # noqa: BLE001 - the store is failing: say exactly what landed
            landed = ", ".join(run_ids)
            raise RuntimeError(f"{one_line(exc, with_type=True)}; already written complete, not withdrawn: "
                               f"run {landed} (a rerun replaces it)") from exc
        raise


def _write_folder(store, prepared: Prepared, force: bool, alive, notice: Callable[[str], None],
                  run_ids: list[str]) -> Outcome:
    config = prepared.config
    files = None
    statuses = list(prepared.statuses)
    written_traces = 0
    mapped_runs = []
    for pending in prepared.pending:  # every target mapped before any note or write, as batched.map_folder does:
        mapped = map_run(pending.identity, pending.variant, files)  # a folder failing on one target says no more
        files = mapped.files  # read once, on the first run
        mapped_runs.append((pending, mapped))
    for _, mapped in mapped_runs:
        for warning in mapped.warnings:
            notice(f"{printable(config.rel_path)}: {warning}")
    for pending, mapped in mapped_runs:
        record = with_history(mapped.run, pending.history)
        written = store.write(record, pending.identity.key, force,
                              claim_lost=lambda mine, runs: lost_claim(mine, runs, alive),
                              superseded=lambda mine, runs: after_complete(mine, runs, alive), notice=notice)
        if written.run_id is None:
            statuses.append(BUSY if written.busy else SKIPPED)
            continue
        for doomed_run in pending.theirs:  # our run is complete: the foreign one it replaces goes
            retry_call(store.delete_run, doomed_run.run_id, notice=notice)
        statuses.append(UPDATED if pending.action == "update" else INGESTED)
        written_traces += len(record.traces)
        run_ids.append(written.run_id)
    return Outcome(config.rel_path, folder_status(statuses), runs=len(run_ids), traces=written_traces,
                   run_ids=run_ids)


_GAVE_UP = object()
"""What :func:`_watch` yields for a folder still pending when the server stopped answering."""

STALL_SECONDS = 8.0
"""No folder finished for this long: ask the server whether it still answers (``/health``, 5 s)."""


def _watch(futures: dict, probe: Callable[[], bool] | None, notice: Callable[[str], None]):
    """Yield ``(future, outcome)`` as folders finish; when a server has stopped answering (no folder
    done for :data:`STALL_SECONDS` and two health probes in a row unanswered) yield ``(future, _GAVE_UP)``
    for every folder left, so the ingest ends in ~25 s instead of waiting out MLflow's retries
    (4 attempts x 60 s per request). A slow but answering server is waited for, however long."""
    from concurrent.futures import FIRST_COMPLETED, wait

    pending = set(futures)
    last_done = time.monotonic()
    strikes = 0
    while pending:
        done, pending = wait(pending, timeout=2.0, return_when=FIRST_COMPLETED)
        for future in done:
            yield future, future.result()
        if done:
            last_done, strikes = time.monotonic(), 0
            continue
        if probe is None or time.monotonic() - last_done < STALL_SECONDS:
            continue
        if probe():
            last_done, strikes = time.monotonic(), 0
            continue
        strikes += 1
        notice("the tracking server is not answering" + ("; giving up" if strikes >= 2 else ""))
        if strikes >= 2:
            order = {future: index for index, future in enumerate(futures)}
            for future in sorted(pending, key=order.__getitem__):
                yield future, _GAVE_UP
            return


__all__ = ["Event", "Outcome", "Summary", "Cancelled", "ingest", "summary_lines", "StoreError", "INGESTED", "UPDATED",
           "SKIPPED", "BUSY", "FAILED"]
