"""Tell a full disk from other store failures, so every folder it stops says so (not "the store stopped answering").

A full disk reaches ingest in several shapes: ``OSError(ENOSPC)`` copying artifacts, SQLite's ``database or disk
is full``, PostgreSQL's ``DiskFull`` (``could not extend file ...: No space left on device``), or a tracking
server's error answer quoting one of those. No mlflow here.
"""

from __future__ import annotations

import errno

from align_track.store.uri import sqlite_path, store_kind

SIGNS = ("no space left on device", "database or disk is full", "diskfull", "could not extend file", "enospc")
"""Words of a full disk in the messages of the OS, SQLite, PostgreSQL and a server quoting them."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from, or the DBAPI error beneath SQLAlchemy's) is a full
    disk."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        one = todo.pop()
        if one is None or id(one) in seen:
            continue
        seen.add(id(one))
        if isinstance(one, OSError) and one.errno == errno.ENOSPC:
            return True
        if any(sign in str(one).lower() or sign in type(one).__name__.lower() for sign in SIGNS):
            return True
        todo += [one.__cause__, one.__context__, getattr(one, "orig", None)]
    return False


def where(tracking_uri: str) -> str:
    """The place that is full, as the user knows it: a SQLite store's folder, else the server that holds it."""
    path = sqlite_path(tracking_uri)
    if path is not None:
        return str(path.parent)
    return "the tracking server" if store_kind(tracking_uri) == "http" else "the database server"


def disk_full_cause(exc: BaseException, tracking_uri: str) -> str | None:
    """``disk full (ENOSPC) on <where>`` when ``exc`` is a full disk, else None."""
    return f"disk full (ENOSPC) on {where(tracking_uri)}" if is_disk_full(exc) else None


def telling_line(exc: BaseException) -> str | None:
    """The line of ``exc``'s message that says the disk is full (a server's answer leads with other lines)."""
    for line in str(exc).splitlines():
        if any(sign in line.lower() for sign in SIGNS):
            return line.strip()[:300]
    return None
