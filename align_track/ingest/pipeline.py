"""Ingest a tree of align-system experiments into MLflow: the library call behind the CLI and the TUI.

Phases: find folders and read their configs (cheap), name every run and its
variant, read the store's existing runs in one query, then write only what is new
or changed, one folder in memory at a time. Progress is reported as events so the
CLI's progress bar and the TUI's pane render the same ingest.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from align_track.errors import one_line
from align_track.ingest.folders import ExperimentConfig, ExperimentError, discover, read_config, read_files
from align_track.ingest.mapping import RunIdentity, build_run, identities, run_fingerprint
from align_track.ingest.reconcile import after_complete, lost_claim, plan
from align_track.schema import TAG_KEY
from align_track.store.uri import DEFAULT_EXPERIMENT, StoreError, resolve_tracking_uri

# Folder outcomes, in the order they are reported.
INGESTED, UPDATED, SKIPPED, BUSY, FAILED = "ingested", "updated", "skipped", "busy", "failed"


@dataclass
class Outcome:
    """What happened to one experiment folder."""

    path: str
    status: str
    runs: int = 0
    traces: int = 0
    error: str | None = None
    run_ids: list[str] = field(default_factory=list)


@dataclass
class Event:
    """A progress report: 'planned' once, 'experiment' per folder done, 'message' for notices."""

    kind: str
    total: int = 0
    done: int = 0
    scenes: int = 0
    """Scenes written so far (one trace each); skipped experiments add none."""
    outcome: Outcome | None = None
    message: str = ""
    elapsed: float = 0.0


@dataclass
class Summary:
    """The result of one ingest; ``failed`` non-empty means the command exits 1."""

    outcomes: list[Outcome]
    seconds: float
    cancelled: bool = False

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
    folders = discover(root)
    me = claim_token()

    def alive(token: str | None, started_ms: int | None) -> bool:
        # Our own earlier attempts (a create retried after a lock) are leftovers, not rivals.
        return token != me and claim_is_alive(token, started_ms)

    configs: dict[Path, ExperimentConfig] = {}
    errors: dict[Path, str] = {}
    for folder in folders:
        try:
            configs[folder] = read_config(root, folder)
        except ExperimentError as exc:
            errors[folder] = str(exc)
    ids = {folder: identities(cfg) for folder, cfg in configs.items()}
    variants = _variants([i for group in ids.values() for i in group])
    if only is not None:
        wanted = {Path(p).resolve() for p in only}
        folders = [f for f in folders if f in wanted]

    def notice(message: str) -> None:
        emit(Event("message", total=len(folders), message=message, elapsed=time.perf_counter() - started))

    store = with_retries(lambda: RunStore(uri, experiment_name), notice)
    existing: dict[str, list] = defaultdict(list)
    for row in with_retries(store.keyed_runs, notice):
        existing[row.tags[TAG_KEY]].append(row)

    emit(Event("planned", total=len(folders)))
    lock = threading.Lock()
    outcomes: list[Outcome] = []
    state = {"traces": 0, "store_failures": 0}

    def process(folder: Path) -> Outcome | None:
        rel = configs[folder].rel_path if folder in configs else folder.relative_to(root).as_posix()
        if cancel is not None and cancel.is_set():
            return None
        if folder in errors:
            return Outcome(rel, FAILED, error=errors[folder])
        if state["store_failures"] >= 3:
            return Outcome(rel, FAILED, error=f"{rel}: not attempted, the store stopped answering")
        try:
            outcome = _ingest_folder(store, configs[folder], ids[folder], variants, existing, force, alive, notice)
            state["store_failures"] = 0
            return outcome
        except ExperimentError as exc:
            return Outcome(rel, FAILED, error=str(exc))
        except Exception as exc:  # the store failed mid-write: report it, keep going, a rerun converges
            state["store_failures"] += 1
            return Outcome(rel, FAILED, error=f"{rel}: store error: {one_line(exc, with_type=True)}")

    def record(outcome: Outcome) -> None:
        with lock:
            outcomes.append(outcome)
            state["traces"] += outcome.traces
            emit(Event("experiment", total=len(folders), done=len(outcomes), scenes=state["traces"],
                       outcome=outcome, elapsed=time.perf_counter() - started))

    workers = workers or default_workers(uri)
    if workers <= 1:
        for folder in folders:
            outcome = process(folder)
            if outcome is None:
                break
            record(outcome)
    else:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest")
        try:
            for future in as_completed([pool.submit(process, f) for f in folders]):
                outcome = future.result()
                if outcome is not None:
                    record(outcome)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    cancelled = cancel is not None and cancel.is_set() and len(outcomes) < len(folders)
    summary = Summary(outcomes, time.perf_counter() - started, cancelled)
    emit(Event("done", total=len(folders), done=len(outcomes), scenes=summary.traces,
               elapsed=summary.seconds))
    return summary


def _variants(all_ids: list[RunIdentity]) -> dict[str, str]:
    from align_track.ingest.variants import assign_variants

    return assign_variants((i.key, i.group, i.config.rel_path) for i in all_ids)  # type: ignore[return-value]


def _ingest_folder(store, config, folder_ids, variants, existing, force, alive, notice) -> Outcome:
    """Write the runs of one folder that are new or changed; the folder's files are read at most once."""
    from align_track.store.run_writer import with_retries

    def call(fn, *args):
        return with_retries(partial(fn, *args), notice)

    files = None
    statuses: list[str] = []
    written_traces = 0
    run_ids: list[str] = []
    for identity in folder_ids:
        variant = variants[identity.key]
        decision = plan(run_fingerprint(identity, variant), existing.get(identity.key, []), force, alive)
        if decision.action in ("skip", "busy"):
            for run_id in decision.cleanup:
                call(store.delete_run, run_id)
            statuses.append(SKIPPED if decision.action == "skip" else BUSY)
            continue
        if files is None:
            files = read_files(config.path)
        record = build_run(identity, variant, files)
        if store.bulk:
            result = call(store.write_run_bulk, record, force)
            if not result.written:  # another ingest committed the same experiment meanwhile
                statuses.append(SKIPPED)
                continue
            run_id = result.run_id
            if result.others:
                for doomed in after_complete(run_id, call(store.runs_for_key, identity.key), alive):
                    call(store.delete_run, doomed)
        else:
            run_id = call(store.create_run, record)
            try:
                if lost_claim(run_id, call(store.runs_for_key, identity.key), alive):
                    store.delete_run(run_id)
                    statuses.append(BUSY)
                    continue
                call(store.write_traces, run_id, record)
                call(store.mark_complete, run_id)
            except KeyboardInterrupt:
                _try(partial(store.delete_run, run_id))
                raise
            for doomed in after_complete(run_id, call(store.runs_for_key, identity.key), alive):
                call(store.delete_run, doomed)
        statuses.append(UPDATED if decision.action == "update" else INGESTED)
        written_traces += len(record.traces)
        run_ids.append(run_id)
    status = next((s for s in (UPDATED, INGESTED, BUSY) if s in statuses), SKIPPED)
    return Outcome(config.rel_path, status, runs=len(run_ids), traces=written_traces, run_ids=run_ids)


def _try(action: Callable[[], object]) -> None:
    try:
        action()
    except BaseException:  # best effort while interrupted: the next ingest cleans up what is left
        pass


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
    for failure in summary.failures:
        lines.append(f"FAILED {failure.error}")
    return lines
