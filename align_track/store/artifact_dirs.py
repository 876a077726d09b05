"""Run artifact folders on local disk, as the SQL writers fill them: copied before the run's transaction,
marked while written, removed when that transaction does not commit or its writer was killed.

MLflow keeps a run's files under ``<experiment artifact location>/<run id>/artifacts``; a ``file://`` location
is a folder the writer can copy into directly, no MLflow needed (any other location goes through MLflow).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from align_track.records import Artifact, RunRecord
from align_track.store.sql_rows import run_artifact_uri

WRITING_MARKER = ".align-track-writing"
"""In a run's artifact folder (beside ``artifacts/``, so never listed as an artifact) while it is written."""


def is_local(location: str | None) -> bool:
    """A ``file://`` URI, or an absolute path (how MLflow records the default ``./mlruns`` of an experiment that
    ``mlflow.set_experiment`` created)."""
    if not location:
        return False
    scheme = urlparse(location).scheme
    return scheme == "file" or (scheme == "" and location.startswith("/"))


def local_path(uri: str) -> Path:
    return Path(url2pathname(urlparse(uri).path))


def copy_artifacts(artifact_location: str, run_id: str, record: RunRecord, claim: str) -> Path:
    """The run's files into its artifact folder, marked as being written; the run's folder (``<id>/``)."""
    target_dir = local_path(run_artifact_uri(artifact_location, run_id))
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    # Who is filling this folder: if we are killed before the commit, the next ingest sees a dead
    # writer's folder with no run row and removes it (sweep_orphans). Written whole, then renamed.
    pending = target_dir.parent / (WRITING_MARKER + ".tmp")
    pending.write_text(claim)
    pending.rename(target_dir.parent / WRITING_MARKER)
    copy_files(target_dir, record.artifacts)
    return target_dir.parent


def copy_files(target_dir: Path, artifacts: Iterable[Artifact]) -> None:
    """Each file into ``target_dir`` (or its ``artifact_dir`` below it), times kept, as MLflow's local repository
    logs an artifact."""
    made: set[Path] = set()
    for artifact in artifacts:
        destination = target_dir / artifact.artifact_dir if artifact.artifact_dir else target_dir
        if destination not in made:
            destination.mkdir(parents=True, exist_ok=True)
            made.add(destination)
        shutil.copy2(artifact.path, destination / Path(artifact.path).name)


def settle(folders: Iterable[Path], written: Iterable[bool]) -> None:
    """After the commit: a written run's folder loses its marker; one another writer's run made redundant goes."""
    for folder, kept in zip(folders, written, strict=True):
        if kept:
            (folder / WRITING_MARKER).unlink(missing_ok=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def remove(folders: Iterable[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def sweep_orphans(artifact_location: str, alive: Callable[[str, int], bool],
                  known: Callable[[list[str]], set[str]]) -> list[str]:
    """Remove run artifact folders a killed bulk writer left behind; returns the run ids removed.

    A folder counts only if it carries our writing marker, its writer is dead, and no run row has its id
    (``known``: which of these ids have a run row; a writer killed after its commit only leaves the marker,
    which is dropped).
    """
    root = local_path(artifact_location)
    candidates: dict[str, Path] = {}
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    for entry in entries:
        marker = Path(entry.path) / WRITING_MARKER
        try:
            token = marker.read_text()
            written_ms = int(marker.stat().st_mtime * 1000)
        except OSError:
            continue
        if not alive(token, written_ms):  # another host's writer: alive while its lease runs
            candidates[entry.name] = Path(entry.path)
    if not candidates:
        return []
    have = known(list(candidates))
    removed = []
    for run_id, folder in candidates.items():
        if run_id in have:
            (folder / WRITING_MARKER).unlink(missing_ok=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(run_id)
    return removed


def file_sizes(artifact_uri: str) -> dict[str, int] | None:
    """Sizes of a run's top-level artifact files by name (a local artifact folder); None when unreadable."""
    try:
        with os.scandir(local_path(artifact_uri)) as entries:
            return {e.name: e.stat().st_size for e in entries if e.is_file(follow_symlinks=False)}
    except OSError:
        return None
