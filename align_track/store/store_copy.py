"""A consistent copy of a SQLite store, with its artifacts, to read elsewhere (``align-track store copy``).

Copying ``mlflow.db`` with ``cp`` while a writer commits can give a torn file, and on a network filesystem a
reader on another host may not see a writer's lock at all. SQLite's online backup API copies the database under
one read transaction, so the copy is the store as of one commit. The run and trace artifact folders of the runs
in that copy are copied after it (a run's files are in place before its run commits), and the copy's experiment
``artifact_location``, run ``artifact_uri`` and trace ``mlflow.artifactLocation`` are rewritten to point at them,
so MLflow reading the copy never reaches back into the source's folders.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from align_track.store.artifact_dirs import is_local, local_path
from align_track.store.uri import READ_LOCK_WAIT_S, StoreError, check_sqlite_store, read_failure

LOCK_ATTEMPTS = 2
"""Read-lock attempts (each waiting SQLite's busy timeout) before the copy gives up on a store held by a writer: a
writer holds the lock only while it commits, a few milliseconds; one held for seconds is stuck."""

TRACE_LOCATION = "mlflow.artifactLocation"


@dataclass
class Copied:
    """What a copy holds: its database, artifacts folder, counts, and what could not follow."""

    database: Path
    artifacts: Path
    runs: int = 0
    traces: int = 0
    folders: int = 0
    missing: list[str] = field(default_factory=list)
    """Run ids whose artifact folder was not in the source (deleted since, or never written)."""
    remote: list[str] = field(default_factory=list)
    """Experiments whose artifacts are not local files (a server, S3): their locations are kept as they are."""


def copy_store(source: Path, dest: Path, notice: Callable[[str], None] | None = None) -> Copied:
    """Copy the SQLite store ``source`` to the new file ``dest`` (or into the folder ``dest``), its artifacts to
    ``artifacts/`` beside it.

    StoreError (nothing left behind) when the source is not an MLflow store, ``dest`` or its artifacts folder
    already holds something, or a writer holds the source's lock through every attempt.
    """
    source, dest = Path(os.path.abspath(source)), Path(os.path.abspath(dest))
    if not source.is_file():
        raise StoreError(f"no SQLite store at {source}")
    check_sqlite_store(source)
    if dest.is_dir():  # a folder: the copy goes in it, under the source's name
        dest = dest / source.name
    if dest.exists() or dest == source:
        raise StoreError(f"{dest} already exists; choose a new file for the copy")
    artifacts = dest.parent / "artifacts"
    if artifacts.exists() and any(artifacts.iterdir()):
        raise StoreError(f"{artifacts} already holds files; copy into a folder of its own")
    dest.parent.mkdir(parents=True, exist_ok=True)
    pending = dest.with_name(f".{dest.name}.copying")
    pending.unlink(missing_ok=True)
    made_artifacts = not artifacts.exists()
    try:
        _backup(source, pending)
        result = Copied(dest, artifacts)
        conn = sqlite3.connect(pending, isolation_level=None)
        try:
            _relocate(conn, source.parent / "artifacts", artifacts, result)
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"the copy of {source} failed SQLite's check: {check}")
        finally:
            conn.close()
        os.replace(pending, dest)
    except BaseException:
        pending.unlink(missing_ok=True)
        if made_artifacts:
            shutil.rmtree(artifacts, ignore_errors=True)
        raise
    if notice is not None and result.missing:
        notice(f"{len(result.missing)} runs had no artifact folder in the source (deleted since, or never "
               f"written): {', '.join(result.missing[:5])}{' ...' if len(result.missing) > 5 else ''}")
    if notice is not None and result.remote:
        notice(f"experiments {', '.join(result.remote)} keep their artifacts where they are (not local files)")
    return result


def _backup(source: Path, pending: Path) -> None:
    """The whole database as of one commit: a read transaction held on the source while SQLite's backup API
    copies every page in one step (a writer's commit waits meanwhile; it retries)."""
    src = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True, timeout=READ_LOCK_WAIT_S, isolation_level=None)
    try:
        for attempt in range(LOCK_ATTEMPTS):
            try:
                src.execute("BEGIN")
                src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the read lock now
                break
            except sqlite3.OperationalError as exc:
                if src.in_transaction:
                    src.execute("ROLLBACK")
                if "locked" not in str(exc):
                    raise StoreError(read_failure(f"sqlite:///{source}", exc)) from None
                if attempt == LOCK_ATTEMPTS - 1:
                    raise StoreError(f"cannot copy {source}: database is locked (a writer held its lock over "
                                     f"{READ_LOCK_WAIT_S:g} s, {LOCK_ATTEMPTS} times: mid-commit, or a lock stuck "
                                     "on a network filesystem); try again") from None
                time.sleep(0.2)
        dst = sqlite3.connect(pending)
        try:
            src.backup(dst, pages=-1)
        finally:
            dst.close()
        src.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(read_failure(f"sqlite:///{source}", exc)) from None
    finally:
        src.close()


def _relocate(conn: sqlite3.Connection, old_root: Path, new_root: Path, result: Copied) -> None:
    """Point the copy's experiments, runs and traces at ``new_root`` and copy the folders they name there."""
    moves: dict[str, str] = {}
    for experiment_id, location in conn.execute("SELECT experiment_id, artifact_location FROM experiments"):
        if not is_local(location):
            if location:
                result.remote.append(str(experiment_id))
            continue
        old = local_path(location) if location.startswith("file:") else Path(location)
        try:
            new = new_root / old.relative_to(old_root)
        except ValueError:  # outside the store's own artifacts folder (MLflow's ./mlruns default)
            new = new_root / f"experiment-{experiment_id}"
        moves[location] = new.as_uri() if location.startswith("file:") else str(new)

    def moved(uri: str | None) -> str | None:
        for old, new in moves.items():
            if uri and (uri == old or uri.startswith(old.rstrip("/") + "/")):
                return new.rstrip("/") + uri[len(old.rstrip("/")):]
        return None

    conn.execute("BEGIN")
    for location, new in moves.items():
        conn.execute("UPDATE experiments SET artifact_location = ? WHERE artifact_location = ?", (new, location))
    for run_id, uri in conn.execute("SELECT run_uuid, artifact_uri FROM runs").fetchall():
        result.runs += 1
        if (target := moved(uri)) is None:
            continue
        conn.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", (target, run_id))
        if _copy_folder(uri, target):
            result.folders += 1
        else:
            result.missing.append(run_id)
    result.traces = conn.execute("SELECT count(*) FROM trace_info").fetchone()[0]
    for trace_id, uri in conn.execute("SELECT request_id, value FROM trace_tags WHERE key = ?",
                                      (TRACE_LOCATION,)).fetchall():
        if (target := moved(uri)) is not None:
            conn.execute("UPDATE trace_tags SET value = ? WHERE request_id = ? AND key = ?",
                         (target, trace_id, TRACE_LOCATION))
            _copy_folder(uri, target)
    conn.execute("COMMIT")
    new_root.mkdir(parents=True, exist_ok=True)


def _copy_folder(old_uri: str, new_uri: str) -> bool:
    """One run's (or trace's) artifact folder, times kept; False when the source has none."""
    old = local_path(old_uri) if old_uri.startswith("file:") else Path(old_uri)
    new = local_path(new_uri) if new_uri.startswith("file:") else Path(new_uri)
    if not old.is_dir():
        return False
    shutil.copytree(old, new, symlinks=True, dirs_exist_ok=True)
    return True
