"""One writing host at a time for a SQLite store on a network filesystem.

SQLite's locks serialise writers on one host; across hosts on NFS, Lustre or GPFS they may not, and two hosts
writing at once can corrupt the file. So the writers of such a store keep a folder beside it,
``<store>.writers/``:

* ``host`` names the one host writing (the claim token, host:pid:start, from store/claims.py, of its first
  writer). It is hard-linked into place, which the file server decides atomically, so of two hosts starting at
  once exactly one gets it (a directory listing would not do: NFS clients cache them for up to a minute).
* one file per writing process of that host, so the last one to finish knows to remove ``host``.

Every writer renews both every :data:`HEARTBEAT_S`; a ``host`` not renewed for :data:`LEASE_S` is a dead
writer's and is taken over. Ages compare file times set by the file server (read through a fresh open, not
NFS's attribute cache), so hosts' clocks need not agree.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from align_track.store.claims import claim_is_alive, claim_token
from align_track.store.filesystems import Filesystem
from align_track.store.uri import StoreError

HEARTBEAT_S = 30.0
LEASE_S = 120.0
"""A ``host`` file not renewed for this long (four missed heartbeats, NFS's 60 s attribute cache included) is a
dead writer's."""

SUFFIX = ".writers"
HOST_FILE = "host"

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
    directory: Path
    mine: Path
    count: int = 1
    stop: threading.Event = field(default_factory=threading.Event)


_held: dict[Path, _Held] = {}
_lock = threading.Lock()
_noted: set[Path] = set()


def claims_dir(db: Path) -> Path:
    return db.parent / (db.name + SUFFIX)


def _file_name(token: str) -> str:
    return token.replace(":", "+").replace("/", "_")  # ':' is not allowed in SMB names


def _host(token: str) -> str:
    return token.split(":", 1)[0]


def _read_fresh(path: Path) -> tuple[str, float]:
    """(claim token, mtime) of ``path`` through an open: NFS revalidates a file's attributes on open."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read().split()
        return (text[0] if text else ""), os.fstat(handle.fileno()).st_mtime


def _create_host_file(path: Path, token: str) -> bool:
    """``host`` made ours if nobody has it; False if it exists. Written whole to a file of our own, then hard-linked
    into place: ``link`` fails on an existing name atomically on the file server, and the name never shows a
    half-written token (the lock-file recipe of open(2) for NFS: a link count of 2 means ours, even when the
    server's reply was lost)."""
    pending = path.with_name(f".{_file_name(token)}.host")
    pending.write_text(token + "\n")
    try:
        try:
            os.link(pending, path)
        except FileExistsError:
            pass
        except OSError:  # no hard links here (SMB without unix extensions, some FUSE): an exclusive create
            return _create_exclusive(path, token)
        return os.stat(pending).st_nlink == 2
    finally:
        with contextlib.suppress(OSError):
            pending.unlink()


def _create_exclusive(path: Path, token: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return True


def claim_store(db: Path, fs: Filesystem, allow: bool = False) -> Path | None:
    """Claim ``db`` for this process's host, or raise :class:`OtherHostWriting` naming the host already writing.

    Returns this process's claim file (release it with :func:`release`), or None when no claim can be left there
    (an unwritable folder: the writer fails on it anyway). ``allow`` writes despite another host (the user
    accepted the risk); this process's file is still left.
    """
    db = Path(os.path.abspath(db))
    token = claim_token()
    directory = claims_dir(db)
    with _lock:
        if db in _held:
            _held[db].count += 1
            return _held[db].mine
        try:
            directory.mkdir(parents=True, exist_ok=True)
            mine = directory / _file_name(token)
            mine.write_text(token + "\n")
        except OSError:
            return None
        try:
            _take_host(directory, mine, token, fs, allow)
        except BaseException:
            with contextlib.suppress(OSError):
                mine.unlink()
            raise
        held = _held[db] = _Held(directory, mine)
    threading.Thread(target=_renew, args=(held, token), name="align-track-claim", daemon=True).start()
    return mine


def _take_host(directory: Path, mine: Path, token: str, fs: Filesystem, allow: bool) -> None:
    """Make ``host`` ours, join our host's, take over a lapsed one, or raise OtherHostWriting."""
    host_file = directory / HOST_FILE
    for _ in range(20):
        if _create_host_file(host_file, token):
            return
        try:
            holder, renewed = _read_fresh(host_file)
        except FileNotFoundError:
            continue  # its last writer just released it: try again
        if not holder:  # an exclusive create still writing its token
            time.sleep(0.05)
            continue
        if _host(holder) == _host(token):
            with contextlib.suppress(OSError):
                os.utime(host_file)
            return
        age = os.stat(mine).st_mtime - renewed  # both times from the file server
        if age > LEASE_S:
            _remove_lapsed(directory, holder)
            continue
        if allow:
            return
        pid = (holder.split(":") + [""])[1]
        raise OtherHostWriting(
            f"refusing to write {directory.parent / directory.name.removesuffix(SUFFIX)}: host {_host(holder)} "
            f"(pid {pid}) is writing it (claim renewed {max(age, 0):.0f}s ago) and on {fs.name} two hosts writing one "
            f"SQLite file can corrupt it; wait until it ends (a dead writer's claim lapses {LEASE_S:.0f}s after its "
            f"last renewal: {directory}), or {TEAM_SERVER}")
    raise OtherHostWriting(f"could not claim {directory} for this host: its claim kept changing; try again")


def _remove_lapsed(directory: Path, holder: str) -> None:
    """A dead host's claim: ``host`` and its processes' files."""
    host_file = directory / HOST_FILE
    with contextlib.suppress(OSError):
        if _read_fresh(host_file)[0] == holder:  # not one made again meanwhile
            host_file.unlink()
    prefix = _file_name(_host(holder) + ":")
    for entry in _entries(directory):
        if entry.startswith(prefix):
            with contextlib.suppress(OSError):
                (directory / entry).unlink()


def _entries(directory: Path) -> list[str]:
    try:
        return [name for name in os.listdir(directory) if name != HOST_FILE and not name.startswith(".")]
    except OSError:
        return []


def _renew(held: _Held, token: str) -> None:
    """Every :data:`HEARTBEAT_S` while held: touch our file and our host's ``host`` (made again if it vanished)."""
    host_file = held.directory / HOST_FILE
    while not held.stop.wait(HEARTBEAT_S):
        with contextlib.suppress(OSError):
            os.utime(held.mine)
        try:
            if _host(_read_fresh(host_file)[0]) == _host(token):
                os.utime(host_file)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                _create_host_file(host_file, token)
        except OSError:
            pass


def release(claim: Path | None) -> None:
    """Drop this process's claim once every writer that took it has released it; the last writer of this host
    removes ``host`` too."""
    if claim is None:
        return
    with _lock:
        for db, held in list(_held.items()):
            if held.mine == claim:
                held.count -= 1
                if held.count:
                    return
                held.stop.set()
                del _held[db]
                break
        with contextlib.suppress(OSError):
            claim.unlink()
        token = claim_token()
        host_file = claim.parent / HOST_FILE
        ours = _file_name(_host(token) + ":")
        alive = False
        for name in _entries(claim.parent):
            if name.startswith(ours):
                with contextlib.suppress(OSError):
                    other = (claim.parent / name).read_text().split()
                    if other and claim_is_alive(other[0], None):
                        alive = True  # another writer of this host goes on: ``host`` stays
                    else:
                        (claim.parent / name).unlink()  # a killed writer's file
        if alive:
            return
        with contextlib.suppress(OSError):
            if _host(_read_fresh(host_file)[0]) == _host(token):
                host_file.unlink()


def note_once(db: Path, fs: Filesystem) -> str | None:
    """:func:`risk_note` the first time this process writes ``db``, else None (said once, not per folder)."""
    db = Path(os.path.abspath(db))
    with _lock:
        if db in _noted:
            return None
        _noted.add(db)
    return risk_note(db, fs)
