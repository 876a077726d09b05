"""Ingest a tree of align-system run folders into MLflow: the library call behind the CLI and the TUI.

Phases: find folders and read their configs (cheap; a config without an alignment
target also needs its scenes' targets, and those scenes are kept for the write, up
to :data:`KEEP_SCENES_BYTES`, so each input_output.json is parsed once), name every
run and its variant, read the store's existing runs in one query, then write only
what is new or changed, one folder at a time. Progress is reported as events so the
CLI's progress bar and the TUI's pane render the same ingest.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from align_track.errors import one_line, printable
from align_track.ingest.folders import RunFolderConfig, RunFolderError, discover, read_config
from align_track.ingest.mapping import RunIdentity, identities, map_run, run_fingerprint
from align_track.ingest.reconcile import (
    after_complete,
    complete,
    foreign,
    foreign_runs_for,
    lost_claim,
    plan,
    same_files,
    superseded,
)
from align_track.schema import INPUT_OUTPUT, SCORES, TAG_KEY, TAG_PATH, TIMING
from align_track.store.uri import DEFAULT_EXPERIMENT, StoreError, resolve_tracking_uri

# Folder outcomes, in the order they are reported.
INGESTED, UPDATED, SKIPPED, BUSY, FAILED = "ingested", "updated", "skipped", "busy", "failed"


@dataclass
class Outcome:
    """What happened to one run folder."""

    path: str
    status: str
    runs: int = 0
    traces: int = 0
    error: str | None = None
    run_ids: list[str] = field(default_factory=list)


@dataclass
class Event:
    """A progress report: 'planned' once, 'run_folder' per folder done, 'message' for notices."""

    kind: str
    total: int = 0
    done: int = 0
    scenes: int = 0
    """Scenes written so far (one trace each); skipped run folders add none."""
    outcome: Outcome | None = None
    message: str = ""
    elapsed: float = 0.0


@dataclass
class Summary:
    """The result of one ingest; ``failed`` non-empty means the command exits 1."""

    outcomes: list[Outcome]
    seconds: float
    cancelled: bool = False
    abandoned: bool = False
    """Writes were still hanging on an unresponsive server when the ingest gave up on them."""

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def traces(self) -> int:
        return sum(o.traces for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    @property
    def scenes_per_second(self) -> float:
        return self.traces / self.seconds if self.seconds > 0 else 0.0


class Cancelled(Exception):
    """Raised inside the loop when the caller's cancel event is set."""


def default_workers(tracking_uri: str) -> int:
    """One writer for a database file (it serialises writes anyway); several for a server, which
    spends most of each request waiting on the network."""
    from align_track.store.uri import store_kind

    return 4 if store_kind(tracking_uri) == "http" else 1


def ingest(
    experiments_dir: str | Path,
    tracking_uri: str | None = None,
    experiment_name: str = DEFAULT_EXPERIMENT,
    force: bool = False,
    on_event: Callable[[Event], None] | None = None,
    cancel: threading.Event | None = None,
    workers: int | None = None,
    only: list[Path] | None = None,
) -> Summary:
    """Ingest every experiment below ``experiments_dir``; never raises for a bad folder, only for the store.

    ``only``: write just these folders (the Hydra callback's one job), variants still from the whole tree.
    """
    from align_track.store import http

    started = time.perf_counter()
    emit = on_event or (lambda event: None)
    root = Path(experiments_dir).resolve()
    uri = resolve_tracking_uri(tracking_uri)
    http.prepare(uri)  # a dead server is a StoreError now, before seconds of importing mlflow

    from align_track.store.run_writer import RunStore, claim_is_alive, claim_token, with_retries
    problems: dict[Path, str] = {}
    skipped_links: list[str] = []

    def problem(path: Path, reason: str, is_error: bool) -> None:
        if is_error:
            problems[path] = f"{printable(str(path))}: {reason}"
        else:
            skipped_links.append(f"{printable(str(path))}: {reason}")

    folders = discover(root, problem)
    me = claim_token()

    def alive(token: str | None, started_ms: int | None) -> bool:
        # Our own earlier attempts (a create retried after a lock) are leftovers, not rivals.
        return token != me and claim_is_alive(token, started_ms)

    wanted = None if only is None else {Path(p).resolve() for p in only}
    configs: dict[Path, RunFolderConfig] = {}
    errors: dict[Path, str] = {}
    kept_bytes = 0
    for folder in folders:
        try:
            # Scenes parsed for their targets are kept for the write (one parse per folder), up to a budget.
            size = _size(folder / INPUT_OUTPUT)
            keep = (wanted is None or folder in wanted) and kept_bytes + size <= KEEP_SCENES_BYTES
            configs[folder] = read_config(root, folder, keep_scenes=keep)
            if configs[folder].scenes is not None:
                kept_bytes += size
        except RunFolderError as exc:
            errors[folder] = str(exc)
        except Exception as exc:  # noqa: BLE001 - whatever a hostile folder does, it fails alone
            errors[folder] = f"{printable(str(folder))}: cannot read ({one_line(exc, with_type=True)})"
    errors.update(problems)  # unreadable directories: reported as failures, never silently skipped
    folders = folders + sorted(problems)
    ids = {folder: identities(cfg) for folder, cfg in configs.items()}
    variants = _variants([i for group in ids.values() for i in group])
    if wanted is not None:
        folders = [f for f in folders if f in wanted]

    def notice(message: str) -> None:
        emit(Event("message", total=len(folders), message=message, elapsed=time.perf_counter() - started))

    store = with_retries(lambda: RunStore(uri, experiment_name), notice)
    existing: dict[str, list] = defaultdict(list)
    others: dict[str, list] = defaultdict(list)  # runs other tools wrote, by experiment_path
    for row in with_retries(store.live_runs, notice):
        if TAG_KEY in row.tags:
            existing[row.tags[TAG_KEY]].append(row)
        elif foreign(row):
            others[row.tags.get(TAG_PATH, "")].append(row)

    emit(Event("planned", total=len(folders)))
    for line in skipped_links:
        notice(line)
    lock = threading.Lock()
    outcomes: list[Outcome] = []
    state = {"traces": 0, "store_failures": 0}

    def process(folder: Path) -> Outcome | None:
        rel = printable(configs[folder].rel_path if folder in configs else os.path.relpath(folder, root))
        if cancel is not None and cancel.is_set():
            return None
        if folder in errors:
            return Outcome(rel, FAILED, error=errors[folder])
        if state["store_failures"] >= 3:
            return Outcome(rel, FAILED, error=f"{rel}: not attempted, the store stopped answering")
        try:
            outcome = _ingest_folder(store, configs[folder], ids[folder], variants, existing, others, force, alive,
                                     notice)
            state["store_failures"] = 0
            return outcome
        except RunFolderError as exc:
            return Outcome(rel, FAILED, error=str(exc))
        except Exception as exc:  # the store failed mid-write: report it, keep going, a rerun converges
            state["store_failures"] += 1
            return Outcome(rel, FAILED, error=f"{rel}: store error: {one_line(exc, with_type=True)}")
        finally:
            configs[folder].scenes = None  # written or not, its scenes are no longer needed

    def record(outcome: Outcome) -> None:
        with lock:
            outcomes.append(outcome)
            state["traces"] += outcome.traces
            emit(Event("run_folder", total=len(folders), done=len(outcomes), scenes=state["traces"],
                       outcome=outcome, elapsed=time.perf_counter() - started))

    workers = workers or default_workers(uri)
    abandoned = False
    if workers <= 1 and store.bulk:
        def plan_folder(folder: Path) -> _Prepared:
            rel = printable(configs[folder].rel_path if folder in configs else os.path.relpath(folder, root))
            if folder in errors:
                return _Prepared(rel, Outcome(rel, FAILED, error=errors[folder]))
            try:
                return _prepare_folder(store, configs[folder], ids[folder], variants, existing, others, force,
                                       alive, notice)
            except RunFolderError as exc:
                return _Prepared(rel, Outcome(rel, FAILED, error=str(exc)))
            except Exception as exc:  # noqa: BLE001 - the store failed while planning: that folder fails
                error = f"{rel}: store error: {one_line(exc, with_type=True)}"
                return _Prepared(rel, Outcome(rel, FAILED, error=error))

        # Plans first (cheap: the store's single read), so worker processes are forked only when there are
        # many runs to map, and before any other thread of ours exists.
        planned = [plan_folder(folder) for folder in folders if cancel is None or not cancel.is_set()]
        mappers = _mapping_pool(sum(len(p.pending) for p in planned))

        def prepare(prepared: _Prepared) -> _Prepared | None:
            if cancel is not None and cancel.is_set():
                return None
            if prepared.pending:
                args = (prepared.config, [(p.identity, p.variant) for p in prepared.pending], force,
                        store.experiment_id, store.artifact_location, mappers is not None)
                prepared.mapping = mappers.apply_async(_map_folder, args) if mappers else _Done(_map_folder(*args))
            return prepared

        def resolve(prepared: _Prepared) -> None:
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
                notice(warning)

        def write(batch: list[_Prepared]) -> None:
            if cancel is not None and cancel.is_set():
                return
            for outcome in _write_batch(store, batch, force, alive, notice, state):
                record(outcome)

        try:
            _batched(planned, prepare, resolve, write)
        finally:
            if mappers is not None:
                mappers.terminate()
    elif workers <= 1 and store.kind != "http":
        for folder in folders:
            outcome = process(folder)
            if outcome is None:
                break
            record(outcome)
    else:
        from concurrent.futures import ThreadPoolExecutor

        from align_track.store.http import server_answers

        def rel_of(folder: Path) -> str:
            return printable(configs[folder].rel_path if folder in configs else os.path.relpath(folder, root))

        pool = ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="ingest")
        try:
            futures = {pool.submit(process, f): f for f in folders}
            probe = partial(server_answers, uri) if store.kind == "http" else None
            for future, outcome in _watch(futures, probe, notice):
                if outcome is _GAVE_UP:  # the server stopped answering
                    abandoned = True
                    rel = rel_of(futures[future])
                    what = "not attempted" if future.cancel() else "not finished (a rerun finishes it)"
                    record(Outcome(rel, FAILED, error=f"{rel}: {what}, the store stopped answering"))
                elif outcome is not None:  # None: cancelled before it started
                    record(outcome)
        finally:
            # A hung request cannot be interrupted: leave its thread behind rather than wait for it.
            pool.shutdown(wait=not abandoned, cancel_futures=True)
    cancelled = cancel is not None and cancel.is_set() and len(outcomes) < len(folders)
    summary = Summary(outcomes, time.perf_counter() - started, cancelled, abandoned)
    emit(Event("done", total=len(folders), done=len(outcomes), scenes=summary.traces,
               elapsed=summary.seconds))
    return summary


KEEP_SCENES_BYTES = 128 * 1024 * 1024
"""input_output.json bytes whose scenes, parsed at plan time for their targets, are kept until the folder is
written (so it is parsed once). Past this budget a folder's scenes are dropped and parsed again at write time:
memory stays bounded on a tree of thousands of target-less folders."""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


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


def _variants(all_ids: list[RunIdentity]) -> dict[str, str]:
    from align_track.ingest.variants import assign_variants

    return assign_variants((i.key, i.group, i.config.rel_path) for i in all_ids)  # type: ignore[return-value]


def _run_file_sizes(path: Path) -> dict[str, int]:
    """Sizes of the folder's top-level run files, which every writer of the data model uploads as artifacts."""
    return {name: (path / name).stat().st_size for name in (INPUT_OUTPUT, TIMING, SCORES) if (path / name).is_file()}


def _ingest_folder(store, config, folder_ids, variants, existing, others, force, alive, notice) -> Outcome:
    """Write the runs of one folder that are new or changed; the folder's files are read at most once.

    A run another tool wrote for the same folder (same ``experiment_path``) is adopted while it holds
    the folder's files (``reconcile.same_files``); when they changed, or with ``force``, a new run is
    written and the foreign one deleted after it, as align-track's own runs are replaced.
    """
    from align_track.store.run_writer import with_retries

    def call(fn, *args):
        return with_retries(partial(fn, *args), notice)

    files = None
    statuses: list[str] = []
    written_traces = 0
    run_ids: list[str] = []
    several_targets = len(folder_ids) > 1
    for identity in folder_ids:
        variant = variants[identity.key]
        own = existing.get(identity.key, [])
        theirs = foreign_runs_for(others.get(config.rel_path, []), config.rel_path, identity.target.id,
                                  several_targets)
        decision = plan(run_fingerprint(identity, variant), own, force, alive)
        if decision.action in ("skip", "busy"):
            cleanup = list(decision.cleanup)
            kept = [r for r in own if complete(r) and r.run_id not in cleanup]
            if decision.action == "skip" and theirs and kept:  # replaced earlier, the delete interrupted
                cleanup += superseded(theirs, kept[0])
            for run_id in cleanup:
                call(store.delete_run, run_id)
            statuses.append(SKIPPED if decision.action == "skip" else BUSY)
            continue
        if theirs and not own and not force:
            disk = _run_file_sizes(config.path)
            if any(same_files(call(store.artifact_sizes, r.run_id), disk) for r in theirs):
                statuses.append(SKIPPED)  # adopted: another tool's run of this folder, still current
                continue
        action = "update" if theirs else decision.action
        mapped = map_run(identity, variant, files)  # reads the folder's files on its first written identity
        files = mapped.files
        for warning in mapped.warnings:
            notice(f"{printable(config.rel_path)}: {warning}")
        record = mapped.run
        written = store.write(record, identity.key, force,
                              claim_lost=lambda mine, runs: lost_claim(mine, runs, alive),
                              superseded=lambda mine, runs: after_complete(mine, runs, alive), notice=notice)
        if written.run_id is None:
            statuses.append(BUSY if written.busy else SKIPPED)
            continue
        run_id = written.run_id
        for doomed_run in theirs:  # our run is complete: the foreign one it replaces goes
            call(store.delete_run, doomed_run.run_id)
        statuses.append(UPDATED if action == "update" else INGESTED)
        written_traces += len(record.traces)
        run_ids.append(run_id)
    status = next((s for s in (UPDATED, INGESTED, BUSY) if s in statuses), SKIPPED)
    return Outcome(config.rel_path, status, runs=len(run_ids), traces=written_traces, run_ids=run_ids)


BATCH_SCENES = 2000
"""A batch of runs is written in one transaction once it holds this many scenes ..."""
BATCH_RUNS = 64
"""... or this many runs (the first batch has 8, each next one twice as many: progress shows early) ..."""
BATCH_SECONDS = 1.0
"""... or its first run has waited this long (progress keeps moving on slow folders)."""
LOOKAHEAD = 16
"""Folders read and mapped ahead of the writer (memory: a few run folders, not the corpus)."""


@dataclass
class _Pending:
    """One run of a folder to write: its identity, the mapped record and the foreign runs it replaces."""

    identity: RunIdentity
    variant: str
    action: str
    theirs: list
    bulk: object = None
    """The store's BulkRun once mapped: the record, its run id and trace rows."""


@dataclass
class _Prepared:
    """A folder read, planned and mapped, waiting for its batch; or already decided (``outcome``)."""

    rel: str
    outcome: Outcome | None = None
    statuses: list[str] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)
    config: RunFolderConfig | None = None
    mapping: object = None
    """The mapping of ``pending`` under way (``.get()`` gives ``_map_folder``'s answer)."""

    @property
    def scenes(self) -> int:
        return sum(p.bulk.scenes for p in self.pending)  # type: ignore[attr-defined]


def _batched(folders: list[_Prepared], prepare: Callable[[_Prepared], _Prepared | None],
             resolve: Callable[[_Prepared], None], write: Callable[[list[_Prepared]], None]) -> None:
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
    batch: list[_Prepared] = []
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


def _prepare_folder(store, config, folder_ids, variants, existing, others, force, alive, notice) -> _Prepared:
    """Plan each identity of one folder from the store's single read and do the cleanups a skip needs; the
    runs to write are left pending, for ``_map_folder``."""
    from align_track.store.run_writer import with_retries

    def call(fn, *args):
        return with_retries(partial(fn, *args), notice)

    prepared = _Prepared(config.rel_path, config=config)
    several_targets = len(folder_ids) > 1
    for identity in folder_ids:
        variant = variants[identity.key]
        own = existing.get(identity.key, [])
        theirs = foreign_runs_for(others.get(config.rel_path, []), config.rel_path, identity.target.id,
                                  several_targets)
        decision = plan(run_fingerprint(identity, variant), own, force, alive)
        if decision.action in ("skip", "busy"):
            cleanup = list(decision.cleanup)
            kept = [r for r in own if complete(r) and r.run_id not in cleanup]
            if decision.action == "skip" and theirs and kept:  # replaced earlier, the delete interrupted
                cleanup += superseded(theirs, kept[0])
            for run_id in cleanup:
                call(store.delete_run, run_id)
            prepared.statuses.append(SKIPPED if decision.action == "skip" else BUSY)
            continue
        if theirs and not own and not force:
            disk = _run_file_sizes(config.path)
            if any(same_files(call(store.artifact_sizes, r.run_id), disk) for r in theirs):
                prepared.statuses.append(SKIPPED)  # adopted: another tool's run of this folder, still current
                continue
        prepared.pending.append(_Pending(identity, variant, "update" if theirs else decision.action, theirs))
    if not prepared.pending:
        prepared.outcome = Outcome(config.rel_path, _folder_status(prepared.statuses))
    return prepared


class _Done:
    """An answer computed in place, with the ``.get()`` of a pool's pending one."""

    def __init__(self, value: object):
        self.value = value

    def get(self) -> object:
        return self.value


def _map_folder(config, jobs, force, experiment_id, location, in_child):
    """Read one folder (once) and map its pending runs into the store's bulk form: ids and trace rows.

    The CPU-heavy part of an ingest (JSON parsing, mapping, span JSON and size stats), run in a worker
    process when there are many folders, so it uses another core than the writer. Returns
    ``("ok", bulk runs, warnings)`` or ``("error", message)`` (exceptions do not cross processes well).
    """
    from dataclasses import replace

    from align_track.store.sql_bulk import prepare_bulk_run

    warnings: list[str] = []
    files = None
    out = []
    try:
        for identity, variant in jobs:
            mapped = map_run(identity, variant, files)  # reads the folder (once) on its first identity
            files = mapped.files
            warnings += [f"{printable(config.rel_path)}: {warning}" for warning in mapped.warnings]
            bulk = prepare_bulk_run(mapped.run, force, experiment_id, location)
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


def _mapping_pool(runs: int):
    """Worker processes for ``_map_folder`` (one per core, at most 4), or None: few folders, one core,
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


def _folder_status(statuses: list[str]) -> str:
    return next((s for s in (UPDATED, INGESTED, BUSY) if s in statuses), SKIPPED)


def _write_batch(store, batch: list[_Prepared], force: bool, alive, notice, state: dict) -> list[Outcome]:
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
            outcomes.append(Outcome(rel, FAILED, error=f"{rel}: not attempted, the store stopped answering"))
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
                    _retry_call(store.delete_run, doomed_run.run_id, notice=notice)
            except Exception as exc:  # noqa: BLE001 - the store failed: this folder fails, a rerun converges
                error = error or f"{rel}: store error: {one_line(exc, with_type=True)}"
                continue
            statuses.append(UPDATED if pending.action == "update" else INGESTED)
            traces += pending.bulk.scenes  # type: ignore[attr-defined]
            run_ids.append(result.run_id)  # type: ignore[attr-defined]
        if error:
            state["store_failures"] += 1
            outcomes.append(Outcome(rel, FAILED, error=error))
        else:
            state["store_failures"] = 0
            outcomes.append(Outcome(rel, _folder_status(statuses), runs=len(run_ids), traces=traces, run_ids=run_ids))
    return outcomes


def _retry_call(fn, *args, notice=None):
    from align_track.store.run_writer import with_retries

    return with_retries(partial(fn, *args), notice)


__all__ = ["Event", "Outcome", "Summary", "ingest", "StoreError", "INGESTED", "UPDATED", "SKIPPED", "BUSY",
           "FAILED"]


def summary_lines(summary: Summary) -> list[str]:
    """The closing report: counts, traces, time and rate, then every failure with its reason."""
    lines = [
        f"ingested={summary.count('ingested')} updated={summary.count('updated')} "
        f"skipped={summary.count('skipped')} busy={summary.count('busy')} failed={summary.count('failed')} "
        f"traces={summary.traces} seconds={summary.seconds:.2f} scenes_per_s={summary.scenes_per_second:.1f}"
    ]
    if summary.cancelled:
        lines.append("cancelled: folders not reached are left for the next ingest")
    if summary.abandoned:
        lines.append("the tracking server stopped answering: rerun once it is back to finish the folders below")
    for failure in summary.failures:
        lines.append(f"FAILED {printable(failure.error or '')}")
    return lines
