"""One writing host at a time for a SQLite store on a network filesystem.

SQLite's locks serialise writers on one host; across hosts on NFS, Lustre or GPFS they may not, and two hosts
writing at once can corrupt the file. So every writer of such a store leaves a claim beside it (a file in
``<store>.writers/`` holding its claim token, host:pid:start, from store/claims.py), renewed while it writes,
and refuses to start while another host's claim is live. Writers on the same host share the store as on a
local disk (SQLite's locks work there). A claim lapses :data:`LEASE_S` after its writer stopped renewing it
(killed, or its host gone); liveness is judged from file times set by the file server, so hosts' clocks need
not agree.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from align_track.store.claims import claim_token
from align_track.store.filesystems import Filesystem
from align_track.store.uri import StoreError

HEARTBEAT_S = 30.0
LEASE_S = 120.0
"""A claim whose file was not renewed for this long (four missed heartbeats) is a dead writer's."""

SUFFIX = ".writers"

TEAM_SERVER = ("use the team server (`mlflow server --backend-store-uri postgresql://... --serve-artifacts`, then "
               "--mlflow-uri http://HOST:5000; README: On a cluster)")


class OtherHostWriting(StoreError):
    """Another host is writing this SQLite store on a network filesystem: writing too could corrupt it."""


def risk_note(db: Path, fs: Filesystem) -> str:
    """The one line a writer says once: where the store is, the risk, what to do instead."""
    return (f"{db} is on {fs.name}, where SQLite's locks are unreliable: two hosts writing it at once can corrupt "
            f"it; write from one host at a time, or {TEAM_SERVER}")


@dataclass
class _Held:
    path: Path
    count: int = 1
    stop: threading.Event = field(default_factory=threading.Event)


_held: dict[Path, _Held] = {}
_lock = threading.Lock()


def claims_dir(db: Path) -> Path:
    return db.parent / (db.name + SUFFIX)


def _file_name(token: str) -> str:
    return token.replace(":", "+").replace("/", "_")  # ':' is not allowed in SMB names


def live_other_hosts(directory: Path, mine: Path | None, host: str) -> list[tuple[str, float, int]]:
    """Live claims of other hosts in ``directory``: (token, seconds since renewed, created-at ns), oldest first.

    Ages are measured against our own claim's file time (``mine``), both set by the file server; without one,
    against a file touched now. Lapsed claims of other hosts are removed (their writers are gone).
    """
    reference = mine
    if reference is None:
        reference = directory / f".probe-{_file_name(claim_token())}"
        reference.touch()
    try:
        now = reference.stat().st_mtime
        found = []
        for entry in os.scandir(directory):
            if entry.name.startswith(".") or Path(entry.path) == mine:
                continue
            try:
                text = Path(entry.path).read_text().split()
                renewed = entry.stat().st_mtime
            except OSError:
                continue
            if not text or text[0].split(":", 1)[0] == host:
                continue
            age = now - renewed
            if age > LEASE_S:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                continue
            created = int(text[1]) if len(text) > 1 and text[1].isdigit() else 0
            found.append((text[0], max(age, 0.0), created))
        return sorted(found, key=lambda claim: (claim[2], claim[0]))
    finally:
        if mine is None:
            with contextlib.suppress(OSError):
                reference.unlink()


def _write_claim(path: Path, token: str) -> None:
    """Our claim, written whole then renamed into place, stamped with its creation time as the server sees it."""
    pending = path.with_name("." + path.name + ".tmp")
    pending.write_text(token + "\n")
    created = pending.stat().st_mtime_ns
    pending.write_text(f"{token} {created}\n")
    os.replace(pending, path)


def claim_store(db: Path, fs: Filesystem, allow: bool = False) -> Path | None:
    """Claim ``db`` for this process's host, or raise :class:`OtherHostWriting` naming the host already writing.

    Returns the claim file (release it with :func:`release`), or None when no claim can be left there (an
    unwritable folder: the writer fails on it anyway). ``allow`` writes despite another host (the user accepted
    the risk); the claim is still left, so other writers see this one.
    """
    db = Path(os.path.abspath(db))
    token = claim_token()
    host = token.split(":", 1)[0]
    directory = claims_dir(db)
    with _lock:
        if db in _held:
            _held[db].count += 1
            return _held[db].path
        try:
            directory.mkdir(parents=True, exist_ok=True)
            mine = directory / _file_name(token)
            _write_claim(mine, token)
        except OSError:
            return None
        others = live_other_hosts(directory, mine, host)
        if others and not allow:
            created = int(mine.read_text().split()[1])
            earlier = [c for c in others if (c[2], c[0]) < (created, token)]
            if earlier:  # they were first: we withdraw (two started at once: the later one withdraws)
                with contextlib.suppress(OSError):
                    mine.unlink()
                other, age, _ = earlier[0]
                other_host, pid = (other.split(":") + [""])[:2]
                raise OtherHostWriting(
                    f"refusing to write {db}: host {other_host} (pid {pid}) is writing it (claim renewed {age:.0f}s "
                    f"ago) and on {fs.name} two hosts writing one SQLite file can corrupt it; wait until it ends "
                    f"(a dead writer's claim lapses {LEASE_S:.0f}s after its last renewal: {directory}), or "
                    f"{TEAM_SERVER}")
        held = _held[db] = _Held(mine)
    threading.Thread(target=_renew, args=(held,), name="align-track-claim", daemon=True).start()
    return mine


def _renew(held: _Held) -> None:
    """Touch the claim every :data:`HEARTBEAT_S` while held; rewrite it if someone removed it as lapsed."""
    token = claim_token()
    while not held.stop.wait(HEARTBEAT_S):
        try:
            os.utime(held.path)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                _write_claim(held.path, token)
        except OSError:
            pass


def release(claim: Path | None) -> None:
    """Drop this process's claim once every writer that took it has released it."""
    if claim is None:
        return
    with _lock:
        for db, held in list(_held.items()):
            if held.path == claim:
                held.count -= 1
                if held.count:
                    return
                held.stop.set()
                del _held[db]
                break
        with contextlib.suppress(OSError):
            claim.unlink()  # the folder stays: removing it could race another writer's claim being written


_noted: set[Path] = set()


def note_once(db: Path, fs: Filesystem) -> str | None:
    """:func:`risk_note` the first time this process writes ``db``, else None (said once, not per folder)."""
    db = Path(os.path.abspath(db))
    with _lock:
        if db in _noted:
            return None
        _noted.add(db)
    return risk_note(db, fs)
