"""Where the store is: resolve tracking URIs and the artifact location beside a SQLite file.

Kept free of MLflow imports so the CLI can resolve and check a URI before paying
for ``import mlflow``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_URI = "sqlite:///data/mlflow/mlflow.db"
DEFAULT_EXPERIMENT = "align-system-experiments"


class StoreError(Exception):
    """The store cannot be used (missing, unreachable, refused); the CLI exits 2 with the message."""


READ_LOCK_WAIT_S = 5.0
"""How long a reader of a SQLite store waits for a writer's lock (SQLite's busy timeout) before it says so: never
forever, since on a network filesystem a lock can stay stuck."""


def read_failure(uri: str, exc: Exception | str) -> str:
    """``cannot read URI: reason``, where a lock waited out says what it means and what to do."""
    reason = " ".join(str(exc).split())
    if "database is locked" in reason:
        # the words "database is locked" stay: store/retries.py waits out exactly that
        reason = (f"database is locked (a writer held its lock over {READ_LOCK_WAIT_S:g} s: mid-commit, or a lock "
                  f"stuck on a network filesystem); try again, or read a copy (align-track store copy SRC DEST)")
    return f"cannot read {uri}: {reason}"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The URI to use: the argument, else ``$MLFLOW_TRACKING_URI``, else the embedded SQLite default.

    A relative SQLite path is made absolute so every process (the web UI, workers)
    opens the same file whatever its working directory.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith(("postgresql://", "postgres://")):
        # SQLAlchemy 2.1 maps a bare scheme to psycopg 3; the driver we ship is psycopg2.
        return "postgresql+psycopg2://" + uri.split("://", 1)[1]
    if store_kind(uri) == "sqlite":
        path = sqlite_path(uri)
        if path is not None:
            return f"sqlite:///{path.resolve()}"
    return uri


def store_kind(uri: str) -> str:
    """'sqlite', 'postgresql', 'mysql', 'http' (also https) or 'file'."""
    scheme = urlparse(uri).scheme.split("+", 1)[0].lower()
    if scheme in ("http", "https"):
        return "http"
    if scheme in ("", "file"):
        return "file"
    if scheme == "postgres":
        return "postgresql"
    return scheme


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for in-memory)."""
    rest = uri.split(":///", 1)[1] if ":///" in uri else ""
    rest = rest.split("?", 1)[0]
    if not rest or rest == ":memory:":
        return None
    return Path(rest if rest.startswith("/") else rest)


def artifact_root_for(uri: str) -> str | None:
    """Absolute artifact location for a database-backed store: ``artifacts/`` beside a SQLite file.

    Set on the MLflow experiment when it is created so the web UI started from any
    directory finds the files (never the default ``./mlruns`` of the cwd).
    Returns None for a tracking server, which decides its own artifact location.
    """
    kind = store_kind(uri)
    if kind == "sqlite":
        path = sqlite_path(uri)
        if path is not None:
            return (path.resolve().parent / "artifacts").as_uri()
    if kind in ("postgresql", "mysql"):
        env = os.environ.get("ALIGN_TRACK_ARTIFACTS_ROOT")
        base = Path(env) if env else Path("data/mlflow/artifacts")
        return base.resolve().as_uri()
    return None


def require_existing_store(uri: str) -> None:
    """Refuse to read a SQLite store that does not exist, rather than let MLflow create an empty one."""
    if store_kind(uri) == "sqlite":
        path = sqlite_path(uri)
        if path is not None and not path.exists():
            raise StoreError(f"no MLflow store at {path} (run `align-track ingest` first, or pass --mlflow-uri)")


MLFLOW_TABLES = ("experiments", "alembic_version")
"""Tables every MLflow SQL store has: a SQLite file with other tables but neither is someone else's data."""


def check_sqlite_store(path: Path) -> None:
    """Refuse a file MLflow would write its tables into that is not an MLflow store (or no database at all).

    An empty or missing file is fine (MLflow creates the store); the file is opened read-only, so a
    foreign database is left byte for byte as it was.
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    if not path.is_file():
        raise StoreError(f"{path} is not a file (expected an MLflow SQLite store)")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path} ({exc})") from None
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc):  # a writer holds it: not a verdict on the file
            raise StoreError(read_failure(f"sqlite:///{path}", exc)) from None
        raise StoreError(f"{path} is not an MLflow store ({exc})") from None
    finally:
        conn.close()
    if tables and not tables.intersection(MLFLOW_TABLES):
        raise StoreError(f"{path} is a SQLite database but not an MLflow store (tables: "
                         f"{', '.join(sorted(tables)[:5])}); refusing to add MLflow's tables to it")


def check_writable(path: Path) -> None:
    """StoreError unless the SQLite store ``path`` (and its directory, where SQLite keeps its journal) is writable."""
    directory = path.resolve().parent
    if not os.access(directory, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StoreError(f"store {path} is not writable (check the permissions of {directory})")
