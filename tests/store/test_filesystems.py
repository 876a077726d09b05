"""Filesystem detection (store/filesystems.py): the magic-number table and mountinfo names, checked against this
machine's own mounts and by injecting each network type."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from align_track.store.filesystems import (
    LOCAL_MAGIC,
    NETWORK_MAGIC,
    NETWORK_TYPES,
    classify,
    filesystem_of,
    mount_type,
    statfs_magic,
)

MAGIC_OF = {"ext2": 0xEF53, "ext3": 0xEF53, "ext4": 0xEF53, "tmpfs": 0x01021994, "overlay": 0x794C7630,
            "xfs": 0x58465342, "btrfs": 0x9123683E, "proc": None}


def _own_mounts() -> list[tuple[str, str]]:
    """(mount point, type) of this machine's local mounts whose magic the table knows."""
    found = {}
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            point, fstype = fields[4], fields[fields.index("-") + 1]
            if fstype in MAGIC_OF and MAGIC_OF[fstype] and os.path.isdir(point) and "\\" not in point:
                found[point] = fstype  # the last mount at a point hides the earlier ones
    return sorted(found.items())


def test_this_machines_mounts_are_local_and_named_by_their_magic():
    mounts = _own_mounts()
    assert mounts, "no tmpfs/overlay/ext4/xfs/btrfs mount to check against"
    kinds = set()
    for point, fstype in mounts:
        assert statfs_magic(point) == MAGIC_OF[fstype], (point, fstype)
        found = filesystem_of(point)
        assert not found.network, (point, found)
        assert found.name == LOCAL_MAGIC[MAGIC_OF[fstype]], (point, found)
        kinds.add(found.name)
    assert kinds & {"ext4", "tmpfs", "overlay"}


def test_a_path_not_made_yet_is_judged_by_the_folder_it_would_be_made_in(tmp_path: Path):
    assert filesystem_of(tmp_path / "new" / "store" / "mlflow.db") == filesystem_of(tmp_path)


@pytest.mark.parametrize("magic", sorted(NETWORK_MAGIC))
def test_every_network_magic_is_a_network_filesystem(magic: int):
    found = classify(magic, None)
    assert found.network and found.name == NETWORK_MAGIC[magic] and found.magic == magic


@pytest.mark.parametrize("name", sorted(NETWORK_TYPES))
def test_every_network_type_name_is_a_network_filesystem_when_statfs_cannot_tell(name: str):
    assert classify(None, name).network
    info = f"36 25 0:40 / /scratch rw,relatime shared:1 - {name} server:/export rw\n"
    assert mount_type("/scratch/me/mlflow.db", info) == name


def test_fuse_is_told_apart_by_its_mount_name():
    fuse = 0x65735546
    assert classify(fuse, "fuse.sshfs").network
    assert classify(fuse, "fuse.glusterfs").network
    assert classify(fuse, None).network  # unknown FUSE: assume shared
    assert not classify(fuse, "fuse.lxcfs").network
    assert not classify(fuse, "fuse.fuse-overlayfs").network


def test_the_magic_wins_over_the_name_and_local_ones_stay_local():
    assert classify(0x6969, "ext4").network  # statfs is asked about the path itself
    assert not classify(0xEF53, None).network
    assert not classify(0x794C7630, "overlay").network
    assert classify(0x12345678, None).name == "unknown" and not classify(0x12345678, None).network
    assert classify(-0x00ACB2BE, None).name == "cifs"  # 0xFF534D42 read as a signed 32-bit word


def test_the_deepest_mount_holding_the_path_decides():
    info = ("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
            "40 22 0:50 / /home rw - nfs4 filer:/home rw\n"
            "41 40 0:51 / /home/me/local\\040disk rw - tmpfs tmpfs rw\n"
            "42 22 0:52 / /home2 rw - lustre mgs@tcp:/fs rw\n")
    assert mount_type("/home/me/data/mlflow.db", info) == "nfs4"
    assert mount_type("/home/me/local disk/mlflow.db", info) == "tmpfs"
    assert mount_type("/home2/x", info) == "lustre"
    assert mount_type("/homework/x", info) == "ext4"  # /home is not a prefix of /homework
    assert mount_type("/", info) == "ext4"


@pytest.mark.parametrize("name", ["nfs", "lustre", "gpfs", "beegfs", "ceph", "cifs", "9p"])
def test_the_override_injects_a_network_type(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ALIGN_TRACK_STORE_FS", name)
    assert filesystem_of(tmp_path).network and filesystem_of(tmp_path).name == name
    monkeypatch.setenv("ALIGN_TRACK_STORE_FS", "local")
    assert not filesystem_of(tmp_path).network


def test_the_override_declares_a_network_filesystem_the_table_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ALIGN_TRACK_STORE_FS", "vendorfs")
    assert filesystem_of(tmp_path).network


def test_without_ctypes_statfs_stat_f_gives_the_same_magic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import ctypes
    import shutil

    if shutil.which("stat") is None:
        pytest.skip("no stat(1) on this machine")
    expected = statfs_magic(str(tmp_path))

    def no_libc(*args, **kwargs):
        raise OSError("no libc here")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert expected is not None and statfs_magic(str(tmp_path)) == expected
