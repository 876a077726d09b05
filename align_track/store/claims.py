"""Who holds a run being written, and whether that writer still lives: a module of its own, so a reader (the
TUI's listing of a sweep in progress) can ask without importing the writer and, with it, mlflow."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def process_start(pid: int) -> str:
    """When ``pid`` started (clock ticks since boot, from /proc; '' where unknown).

    PIDs are reused (pid_max is often 32768), so a claim names its process by pid *and* start
    time: a new process that got a dead writer's pid must not keep that writer's claim alive.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def claim_token() -> str:
    """Who is writing: host, pid and process start, so a later ingest can tell a dead writer from a live one."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid)}"


def claim_is_alive(token: str | None, started_ms: int | None, lease_s: float = 900.0) -> bool:
    """A claim on this host is alive while its process is; elsewhere, while its lease (15 min) runs."""
    if not token or ":" not in token:
        return False
    host, pid, *rest = token.split(":")
    if host == socket.gethostname():
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            return False
        except PermissionError:
            return True
        started = rest[0] if rest else ""
        return not started or process_start(int(pid)) in ("", started)
    return started_ms is not None and (time.time() * 1000 - started_ms) < lease_s * 1000


ClaimRule = Callable[[str, list[Any]], Any]
"""(our run id, every run of the identity) -> a verdict: ingest/reconcile.py's claim rules, passed down to a store's
writer so the store says how to write and the ingest who wins."""


@dataclass(frozen=True)
class Written:
    """What a store's ``write`` did: the complete run's id, or None (another writer has it; ``busy`` when it
    is still writing, else it already committed the same files)."""

    run_id: str | None
    busy: bool = False


class AppendConflict(Exception):
    """Another writer wrote some of these scenes or finished the live run first: re-read and retry."""
