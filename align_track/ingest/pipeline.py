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
from functools import partial
from pathlib import Path

from align_track.errors import one_line, printable
from align_track.ingest.batched import (
    Done,
    Prepared,
    map_folder,
    mapping_pool,
    prepare_folder,
    write_batch,
    write_in_batches,
)
from align_track.ingest.folders import RunFolderConfig, RunFolderError, discover, read_config
from align_track.ingest.mapping import RunIdentity, identities, map_run
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
from align_track.ingest.reconcile import (
    after_complete,
    foreign,
    lost_claim,
)
from align_track.schema import INPUT_OUTPUT, TAG_KEY, TAG_PATH
from align_track.store.retries import retry_call, with_retries
from align_track.store.uri import DEFAULT_EXPERIMENT, StoreError, resolve_tracking_uri


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

    from align_track.store.claims import claim_is_alive, claim_token
    from align_track.store.run_writer import open_run_store
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

    store = with_retries(lambda: open_run_store(uri, experiment_name), notice)
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
        def plan_folder(folder: Path) -> Prepared:
            rel = printable(configs[folder].rel_path if folder in configs else os.path.relpath(folder, root))
            if folder in errors:
                return Prepared(rel, Outcome(rel, FAILED, error=errors[folder]))
            try:
                return prepare_folder(store, configs[folder], ids[folder], variants, existing, others, force,
                                       alive, notice)
            except RunFolderError as exc:
                return Prepared(rel, Outcome(rel, FAILED, error=str(exc)))
            except Exception as exc:  # noqa: BLE001 - the store failed while planning: that folder fails
                error = f"{rel}: store error: {one_line(exc, with_type=True)}"
                return Prepared(rel, Outcome(rel, FAILED, error=error))

        # Plans first (cheap: the store's single read), so worker processes are forked only when there are
        # many runs to map, and before any other thread of ours exists.
        planned = [plan_folder(folder) for folder in folders if cancel is None or not cancel.is_set()]
        mappers = mapping_pool(sum(len(p.pending) for p in planned))

        def prepare(prepared: Prepared) -> Prepared | None:
            if cancel is not None and cancel.is_set():
                return None
            if prepared.pending:
                args = (prepared.config, [(p.identity, p.variant) for p in prepared.pending], force,
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
                notice(warning)

        def write(batch: list[Prepared]) -> None:
            if cancel is not None and cancel.is_set():
                return
            for outcome in write_batch(store, batch, force, alive, notice, state):
                record(outcome)

        try:
            write_in_batches(planned, prepare, resolve, write)
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
    if not abandoned:
        store.close()
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


def _ingest_folder(store, config, folder_ids, variants, existing, others, force, alive, notice) -> Outcome:
    """Write the runs of one folder that are new or changed; the folder's files are read at most once.

    A run another tool wrote for the same folder (same ``experiment_path``) is adopted while it holds
    the folder's files (``reconcile.same_files``); when they changed, or with ``force``, a new run is
    written and the foreign one deleted after it, as align-track's own runs are replaced.
    """

    prepared = prepare_folder(store, config, folder_ids, variants, existing, others, force, alive, notice)
    if prepared.outcome is not None:  # nothing to write: skipped, busy or adopted
        return prepared.outcome
    files = None
    statuses = list(prepared.statuses)
    written_traces = 0
    run_ids: list[str] = []
    for pending in prepared.pending:
        mapped = map_run(pending.identity, pending.variant, files)  # reads the folder on its first written run
        files = mapped.files
        for warning in mapped.warnings:
            notice(f"{printable(config.rel_path)}: {warning}")
        record = mapped.run
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


__all__ = ["Event", "Outcome", "Summary", "Cancelled", "ingest", "summary_lines", "StoreError", "INGESTED", "UPDATED",
           "SKIPPED", "BUSY", "FAILED"]
