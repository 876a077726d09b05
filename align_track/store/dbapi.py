"""A SQLite or PostgreSQL MLflow store opened with its plain driver (``sqlite3``, ``psycopg2``): no SQLAlchemy,
no mlflow, so a command that writes a few runs starts in a fraction of a second.

It is for the no-mlflow write path (store/sql_direct.py), which writes only into a store whose schema is the
one it was proven on: the installed MLflow is a pinned version (:data:`DIRECT_SCHEMAS`) and the database's
``alembic_version`` is that version's revision. A store at another revision, a missing one, MySQL, a server,
or MLflow options that make writes touch more tables go through MLflow, as does creating a store.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from align_track.store.uri import sqlite_path, store_kind

DIRECT_SCHEMAS = {"3.17.2": "dc11669786a5"}
"""MLflow version -> the alembic revision of its SQL schema the no-mlflow path was proven on (the equivalence
tests: tests/store/test_sql_rows.py, tests/store/test_sql_direct.py and the data-model tests that run on it)."""

KINDS = ("sqlite", "postgresql")

MLFLOW_FEATURE_FLAGS = ("MLFLOW_SQL_TRACE_ROLLUPS_ENABLED", "MLFLOW_ENABLE_WORKSPACES")
"""MLflow options that make its writes touch more tables (trace rollups, workspaces): with either on, MLflow
writes."""

LOCK_WAIT_S = 3.0
"""How long a SQLite writer waits for another's lock before "database is locked" (then retried, and said so)."""

CONNECT_TIMEOUT_S = 5


def enabled() -> bool:
    """``ALIGN_TRACK_DIRECT=0`` (or ``ALIGN_TRACK_BULK=0``, MLflow's public API everywhere) forces MLflow's path."""
    def off(name: str) -> bool:
        return os.environ.get(name, "1").strip().lower() in ("0", "false", "no")

    return not off("ALIGN_TRACK_DIRECT") and not off("ALIGN_TRACK_BULK")


@functools.lru_cache(maxsize=1)
def installed_mlflow() -> str | None:
    """The installed MLflow version without ``import mlflow``: its version.py (a 1 ms read; package metadata
    lookup scans site-packages, ~20 ms), else the metadata; None if absent."""
    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.origin:
        return None
    try:
        text = (Path(spec.origin).parent / "version.py").read_text()
        if match := re.search(r'^VERSION = "([^"]+)"', text, re.M):
            return match.group(1)
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlflow")
    except PackageNotFoundError:
        return None


def supported(uri: str) -> bool:
    """Whether the no-mlflow path may be tried on ``uri`` (the database's revision is checked on opening)."""
    kind = store_kind(uri)
    if kind not in KINDS or not enabled() or installed_mlflow() not in DIRECT_SCHEMAS:
        return False
    if any(os.environ.get(flag, "").strip().lower() not in ("", "false", "0") for flag in MLFLOW_FEATURE_FLAGS):
        return False
    if kind == "sqlite":
        return sqlite_path(uri) is not None and "?" not in uri
    return importlib.util.find_spec("psycopg2") is not None


def expected_revision() -> str | None:
    return DIRECT_SCHEMAS.get(installed_mlflow() or "")


class Db:
    """One store's connections (one per thread), for short reads and write transactions.

    SQL is written with ``?`` placeholders; on PostgreSQL they become ``%s``. Connections are in autocommit
    mode: a read sees the latest commits; :meth:`transaction` opens an explicit one (on SQLite ``BEGIN
    IMMEDIATE``, which takes the write lock before the first statement, so what the transaction reads cannot
    change before it commits: two writers of one file are serialised).
    """

    def __init__(self, uri: str):
        self.uri = uri
        self.kind = store_kind(uri)
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    @property
    def integrity_errors(self) -> tuple[type[Exception], ...]:
        """The driver's error for a duplicate key or a broken constraint."""
        if self.kind == "sqlite":
            return (sqlite3.IntegrityError,)
        import psycopg2

        return (psycopg2.IntegrityError,)

    # ------------------------------------------------------------------ connections

    def connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _connect(self) -> Any:
        if self.kind == "sqlite":
            path = sqlite_path(self.uri)
            assert path is not None
            # mode=rw: never create a file (creating a store is MLflow's job).
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=LOCK_WAIT_S,
                                   isolation_level=None, check_same_thread=False)
            # As MLflow's own sessions set them (mlflow.store.db.utils).
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA case_sensitive_like = true")
            return conn
        import psycopg2

        dsn = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", self.uri)
        conn = psycopg2.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S)
        conn.autocommit = True
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    # ------------------------------------------------------------------ statements

    def sql(self, text: str) -> str:
        return text if self.kind == "sqlite" else text.replace("?", "%s")

    def cursor(self) -> Any:
        return self.connection().cursor()

    def read(self, text: str, params: Sequence[Any] = ()) -> list[tuple]:
        cursor = self.cursor()
        try:
            cursor.execute(self.sql(text), tuple(params))
            return cursor.fetchall()
        finally:
            cursor.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        conn = self.connection()
        cursor = conn.cursor()
        cursor.execute("BEGIN IMMEDIATE" if self.kind == "sqlite" else "BEGIN")
        try:
            yield Tx(self, cursor)
            cursor.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()


class Tx:
    """Statements inside one transaction."""

    def __init__(self, db: Db, cursor: Any):
        self.db, self.cursor = db, cursor

    def read(self, text: str, params: Sequence[Any] = ()) -> list[tuple]:
        self.cursor.execute(self.db.sql(text), tuple(params))
        return self.cursor.fetchall()

    def execute(self, text: str, params: Sequence[Any] = ()) -> int:
        self.cursor.execute(self.db.sql(text), tuple(params))
        return self.cursor.rowcount

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """``rows`` (dicts with the same keys) into ``table``, one executemany."""
        if not rows:
            return
        columns = list(rows[0])
        names = ", ".join(_quoted(c) for c in columns)
        text = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
        self.cursor.executemany(self.db.sql(text), [tuple(row[c] for c in columns) for row in rows])


def _quoted(column: str) -> str:
    return '"key"' if column == "key" else column


def in_list(values: Sequence[Any]) -> str:
    """``(?, ?, ...)`` for ``values`` (an IN list of placeholders)."""
    return "(" + ", ".join("?" * len(values)) + ")"


def schema_revision(db: Db) -> str | None:
    """The store's alembic revision; None when it has none (not an MLflow store, or a new empty database)."""
    try:
        rows = db.read("SELECT version_num FROM alembic_version")
    except Exception:  # noqa: BLE001 - no such table, or not a database we can read: MLflow's path decides
        return None
    return rows[0][0] if len(rows) == 1 else None
