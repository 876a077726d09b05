"""Store calls that wait out another writer's SQLite lock instead of failing: one mechanism for every writer
(the run store, both ingest write paths, the watcher). No mlflow here, so the ingest layer imports it freely."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any


def with_retries(action: Callable[[], Any], on_wait: Callable[[str], None] | None = None,
                 attempts: int = 30) -> Any:
    """Run a store call, waiting while another writer holds a SQLite lock, so nothing is lost."""
    delay = 0.2
    for attempt in range(attempts):
        try:
            return action()
        except Exception as exc:  # sqlite3.OperationalError arrives wrapped by SQLAlchemy and MLflow
            if "database is locked" not in str(exc) or attempt == attempts - 1:
                raise
            if on_wait:
                on_wait(f"the store is locked by another writer; retrying in {delay:.1f}s")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


def retry_call(fn: Callable[..., Any], *args: Any, notice: Callable[[str], None] | None = None) -> Any:
    """``fn(*args)`` through :func:`with_retries`, ``notice`` told of each wait."""
    return with_retries(partial(fn, *args), notice)
