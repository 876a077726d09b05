"""A Hydra callback that ingests each align-system job's output folder when the job ends.

Enable it from the command line, nothing else to run::

    run_align_system ... \\
      +hydra.callbacks.align_track._target_=align_track.hydra.IngestCallback \\
      +hydra.callbacks.align_track.mlflow_uri=http://mlflow.team:5000

Success or failure, the job's folder becomes one complete run (a failed job's run has status FAILED),
named (``experiment_path``, run variants) as ``align-track ingest`` of the folder above the job's would name
it: above the run dir for a single run (align-system's ``outputs/<date>/<time>`` is ``<time>``), above the
sweep dir for a ``--multirun`` job (``multirun/<date>/<time>/<job num>`` is ``<time>/<job num>``). So a later
plain ingest of that folder finds the callback's runs as its own and skips them. The callback never fails the
job: an unreachable store or any other problem is a warning in the job's log. A watcher (``ingest --watch``)
holding the folder's live run makes this a no-op (``busy``): the watcher finishes the run itself.

A sweep spread over several hosts (a SLURM job array, or a job on several nodes) writing a SQLite store on a
network filesystem could corrupt it: there the callback ingests nothing and says to point ``mlflow_uri`` at the
team server, unless ``allow_sqlite_on_network_fs=true``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from align_track.errors import one_line
from align_track.schema import INPUT_OUTPUT
from align_track.store.uri import DEFAULT_EXPERIMENT

log = logging.getLogger(__name__)

try:  # hydra is align-system's dependency, not align-track's: the class works without it for tests of its own
    from hydra.experimental.callback import Callback as _Base
except ImportError:  # pragma: no cover - exercised only where hydra is missing
    _Base = object  # type: ignore[assignment,misc]

FAILED_STATUS = "FAILED"


class IngestCallback(_Base):  # type: ignore[misc,valid-type]
    """Ingest the job's output folder into ``mlflow_uri`` / ``experiment_name`` on job end."""

    def __init__(self, mlflow_uri: str | None = None, experiment_name: str = DEFAULT_EXPERIMENT,
                 experiments_dir: str | None = None, allow_sqlite_on_network_fs: bool = False) -> None:
        self.mlflow_uri = mlflow_uri
        self.experiment_name = experiment_name
        self.experiments_dir = experiments_dir
        """Root for run variants and experiment_path [default: the folder above the sweep dir, or above the job's
        run dir]."""
        self.allow_sqlite_on_network_fs = bool(allow_sqlite_on_network_fs)
        """Write a SQLite store on a network filesystem from a sweep spread over hosts (risks corrupting it)."""

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        folder = None
        try:
            folder = Path(str(config.hydra.runtime.output_dir))
            if (refusal := self._spread_over_hosts(folder)) is not None:
                log.warning("%s", refusal)
                return
            self._ingest(config, job_return, folder)
        except Exception as exc:  # noqa: BLE001 - never fail the job because of the store
            log.warning("align-track: could not ingest %s into %s: %s", folder, self.mlflow_uri or "the default store",
                        one_line(exc))

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        """Once every job is back: the sweep's folders again, so run variants named while the sweep was still
        growing (the first job alone was ``default``) are brought in line; unchanged runs are skipped. Only the
        sweep's folders are written (the root above it may hold other sweeps: not ours to ingest)."""
        root = None
        try:
            sweep = Path(str(config.hydra.sweep.dir)).resolve()
            root = Path(self.experiments_dir).resolve() if self.experiments_dir else sweep.parent
            if not sweep.is_dir() or not root.is_dir():
                return
            if (refusal := self._spread_over_hosts(sweep)) is not None:
                log.warning("%s", refusal)
                return
            from align_track.ingest.folders import discover
            from align_track.ingest.pipeline import FAILED, ingest

            only = discover(sweep) if sweep.is_relative_to(root) else None
            if only == []:
                return
            summary = ingest(root, self.mlflow_uri, self.experiment_name, only=only, on_event=_log_notes,
                             allow_network_fs=self.allow_sqlite_on_network_fs)
            for outcome in summary.outcomes:
                if outcome.status == FAILED:
                    log.warning("align-track: %s", outcome.error)
        except Exception as exc:  # noqa: BLE001 - never fail the sweep because of the store
            log.warning("align-track: could not ingest %s into %s: %s", root, self.mlflow_uri or "the default store",
                        one_line(exc))

    def _ingest(self, config: Any, job_return: Any, folder: Path) -> None:
        from align_track.ingest.pipeline import FAILED, ingest

        if not (folder / INPUT_OUTPUT).is_file():
            log.info("align-track: %s has no %s; nothing to ingest", folder, INPUT_OUTPUT)
            return
        root = Path(self.experiments_dir) if self.experiments_dir else _root(config, folder)
        summary = ingest(root, self.mlflow_uri, self.experiment_name, only=[folder], workers=1, on_event=_log_notes,
                         allow_network_fs=self.allow_sqlite_on_network_fs)
        for outcome in summary.outcomes:
            if outcome.status == FAILED:
                log.warning("align-track: %s", outcome.error)
            else:
                log.info("align-track: %s %s (%d traces)", outcome.status, outcome.path, outcome.traces)
        if _failed(job_return):
            _mark_failed(self.mlflow_uri, self.experiment_name, [rid for o in summary.outcomes for rid in o.run_ids],
                         self.allow_sqlite_on_network_fs)

    def _spread_over_hosts(self, folder: Path) -> str | None:
        """Why this job must not write its SQLite store (on a network filesystem, from a sweep over several
        hosts), else None."""
        if self.allow_sqlite_on_network_fs:
            return None
        from align_track.store.uri import resolve_tracking_uri, sqlite_path, store_kind

        spread = cluster_spread(os.environ)
        uri = resolve_tracking_uri(self.mlflow_uri)
        path = sqlite_path(uri) if store_kind(uri) == "sqlite" else None
        if spread is None or path is None:
            return None
        from align_track.store.filesystems import filesystem_of

        fs = filesystem_of(path.parent)
        if not fs.network:
            return None
        return (f"align-track: not ingesting {folder}: {path} is a SQLite store on {fs.name} and this sweep runs on "
                f"several hosts ({spread}), whose writes at once can corrupt it; point the callback at the team "
                f"server (+hydra.callbacks.align_track.mlflow_uri=http://HOST:5000, README: On a cluster), or "
                f"ingest the sweep from one host when it ends (align-track ingest --experiments-dir ...); "
                f"+hydra.callbacks.align_track.allow_sqlite_on_network_fs=true writes anyway")


def cluster_spread(env: Mapping[str, str]) -> str | None:
    """How a SLURM job spreads this sweep over hosts ("SLURM array job 77", "SLURM job 12 on 4 nodes
    (node[01-04])"), or None for one host (no SLURM job, or one job on one node)."""
    job = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if not job:
        return None
    if env.get("SLURM_ARRAY_JOB_ID"):
        return f"SLURM array job {env['SLURM_ARRAY_JOB_ID']}: its tasks run on any node"
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
    count = env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or ""
    nodes = int(count) if count.isdigit() else hostlist_count(nodelist)
    if nodes > 1:
        return f"SLURM job {job} on {nodes} nodes" + (f" ({nodelist})" if nodelist else "")
    return None


def hostlist_count(hostlist: str) -> int:
    """How many hosts a SLURM hostlist names: ``node[01-04,07],gpu3`` is 6."""
    total = 0
    for item in re.findall(r"(?:[^,\[]|\[[^\]]*\])+", hostlist):
        hosts = 1
        for ranges in re.findall(r"\[([^\]]*)\]", item):
            span = 0
            for part in ranges.split(","):
                low, _, high = part.partition("-")
                span += int(high) - int(low) + 1 if high.isdigit() and low.isdigit() else 1
            hosts *= span
        total += hosts
    return total


def _log_notes(event: Any) -> None:
    """The ingest's notes (a store on a network filesystem, a lock waited for, a value cut) into the job's log."""
    if event.kind == "message":
        log.warning("align-track: %s", event.message)


def _root(config: Any, folder: Path) -> Path:
    """The folder a plain ingest of the job's output would start from: above the sweep dir in a multirun (when the
    job's folder is below it), else above the job's own folder (never the folder itself: its experiment_path
    would be ``.``, and a job's number alone would name a multirun job)."""
    folder = folder.resolve()
    try:
        mode = str(config.hydra.mode)
        sweep = Path(str(config.hydra.sweep.dir)).resolve()
    except Exception:  # noqa: BLE001 - an older Hydra without these keys
        return folder.parent
    if mode.endswith("MULTIRUN") and folder.is_relative_to(sweep) and folder != sweep:
        return sweep.parent
    return folder.parent


def _failed(job_return: Any) -> bool:
    status = getattr(job_return, "status", None)
    return getattr(status, "name", str(status)) == "FAILED"


def _mark_failed(uri: str | None, experiment_name: str, run_ids: list[str], allow_network_fs: bool = False) -> None:
    """A failed job's run keeps its scenes and counts as complete, with MLflow status FAILED."""
    if not run_ids:
        return
    from align_track.store.open_store import open_run_store
    from align_track.store.uri import resolve_tracking_uri

    store = open_run_store(resolve_tracking_uri(uri), experiment_name, create=False,
                           allow_network_fs=allow_network_fs)
    try:
        for run_id in run_ids:
            store.set_terminated(run_id, FAILED_STATUS)
    finally:
        store.close()
