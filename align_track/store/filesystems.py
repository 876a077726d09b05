"""Which filesystem a store lives on, and whether SQLite can trust its locks there.

SQLite's documentation warns that its file locks are unreliable on network filesystems (POSIX advisory locks
over NFS may be missing or broken, and every host caches pages of its own), so writers on two hosts at once can
corrupt a database. Compute clusters put working directories, and with them the default store, on exactly
those (NFS homes, Lustre or GPFS scratch, BeeGFS). The type comes from ``statfs`` (the kernel's magic number
for the mount holding the path), with ``/proc/self/mountinfo``'s type names for what the magic cannot tell
(which FUSE filesystem) or when ``statfs`` is unavailable. :func:`classify` and :func:`mount_type` are pure;
only :func:`filesystem_of` asks the machine.

``ALIGN_TRACK_STORE_FS`` overrides the answer: any type name (``nfs``, ``weka``, ...) declares a network
filesystem the table misses, ``local`` a false alarm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

NETWORK_MAGIC: dict[int, str] = {
    0x6969: "nfs",
    0x0BD00BD0: "lustre",
    0x47504653: "gpfs",
    0x19830326: "beegfs",
    0x00C36400: "ceph",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x517B: "smb",
    0x01021997: "9p",
    0x65735546: "fuse",
    0x5346414F: "afs",
    0x6B414653: "afs",
    0x7461636F: "ocfs2",
    0x01161970: "gfs2",
    0xAAD7AAEA: "panfs",
    0x564C: "ncp",
    0x73757245: "coda",
}
"""statfs ``f_type`` of filesystems shared between hosts (linux/magic.h and the vendors' headers)."""

LOCAL_MAGIC: dict[int, str] = {
    0xEF53: "ext4",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0x2FC12FC1: "zfs",
    0x01021994: "tmpfs",
    0x858458F6: "ramfs",
    0x794C7630: "overlay",
    0xF2F52010: "f2fs",
    0x4D44: "vfat",
    0x5346544E: "ntfs",
    0x73717368: "squashfs",
    0x6A656A63: "virtiofs",
}

NETWORK_TYPES = frozenset({
    "nfs", "nfs4", "lustre", "gpfs", "beegfs", "ceph", "cifs", "smb2", "smb3", "smbfs", "smb", "9p", "fuse",
    "afs", "ocfs2", "gfs2", "panfs", "ncp", "coda", "glusterfs", "wekafs", "quobyte", "orangefs", "pvfs2",
})
"""mountinfo type names of network and cluster filesystems (``fuse.<name>`` counts unless a local one below)."""

LOCAL_FUSE = frozenset({"fuse.fuse-overlayfs", "fuse.lxcfs", "fuse.squashfuse", "fuse.portal", "fuse.gvfsd-fuse"})
"""FUSE filesystems that serve one host's own files: their locks are that host's."""

OVERRIDE = "ALIGN_TRACK_STORE_FS"


@dataclass(frozen=True)
class Filesystem:
    """A store directory's filesystem: its type name, its statfs magic (None when unknown) and whether it is
    shared between hosts (so SQLite's locks cannot be trusted there)."""

    name: str
    magic: int | None
    network: bool


def classify(magic: int | None, mount: str | None = None) -> Filesystem:
    """The filesystem from its statfs magic and/or its mountinfo type name (pure; either may be None).

    The magic decides, except for FUSE, whose magic is shared by local and remote filesystems: there the type
    name (``fuse.sshfs``, ``fuse.lxcfs``) says which.
    """
    mount = (mount or "").lower() or None
    if magic is not None:
        magic &= 0xFFFFFFFF
        if magic in NETWORK_MAGIC and not (NETWORK_MAGIC[magic] == "fuse" and mount and mount.startswith("fuse")):
            return Filesystem(NETWORK_MAGIC[magic], magic, True)
        if magic in LOCAL_MAGIC:
            return Filesystem(LOCAL_MAGIC[magic], magic, False)
    if mount is None:
        return Filesystem("unknown", magic, False)
    network = mount in NETWORK_TYPES or (mount.startswith("fuse.") and mount not in LOCAL_FUSE)
    return Filesystem(mount, magic, network)


def mount_type(path: str, mountinfo: str) -> str | None:
    """The type name of the mount holding absolute ``path``, from the text of /proc/self/mountinfo (pure): the
    longest mount point that is ``path`` or above it, the last one listed winning (later mounts hide earlier)."""
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < 5:
            continue
        point = _unescape(fields[4])
        fstype = fields[fields.index("-") + 1]
        if path == point or path.startswith(point.rstrip("/") + "/"):
            if best is None or len(point) >= best[0]:
                best = (len(point), fstype)
    return best[1] if best else None


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (``\\040``)."""
    if "\\" not in text:
        return text
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


def statfs_magic(path: str) -> int | None:
    """The kernel's ``f_type`` for ``path``: statfs(2) through ctypes, else ``stat -f``; None when neither works."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        buffer = ctypes.create_string_buffer(512)  # struct statfs is 120 bytes on 64-bit Linux; f_type first
        if libc.statfs(os.fsencode(path), buffer) == 0:
            return ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF
    except (OSError, AttributeError):
        pass
    import subprocess  # only when statfs(2) is out of reach: importing it costs more than the whole detection

    try:
        done = subprocess.run(["stat", "-f", "-c", "%t", path], capture_output=True, text=True, timeout=5)
        if done.returncode == 0:
            return int(done.stdout.strip(), 16)
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return None


def _existing(path: Path) -> Path:
    """``path`` or the nearest folder above it that exists (a store not created yet lives where its folder will)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def filesystem_of(path: str | Path) -> Filesystem:
    """The filesystem holding ``path`` (or, when it does not exist yet, the folder it would be made in)."""
    override = os.environ.get(OVERRIDE, "").strip().lower()
    if override:
        return Filesystem(override, None, override not in ("local", "0", "false", "no"))
    where = str(_existing(Path(path)).resolve())
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
            mount = mount_type(where, handle.read())
    except OSError:
        mount = None
    return classify(statfs_magic(where), mount)
