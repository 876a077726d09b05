"""A store on a full disk: every folder's failure names the cause (issue 20, item 13).

The disk is real: a 16 MB tmpfs (mounting one needs root with CAP_SYS_ADMIN; skipped otherwise, saying so),
filled to the last block once the store exists, on the direct SQL writer, through MLflow
(``ALIGN_TRACK_DIRECT=0``) and through a real ``mlflow server`` whose database and artifacts are on it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from align_track.ingest.pipeline import ingest
from tests.support.factory import write_run_folder
from tests.support.server_fixtures import running_server


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root with CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Every free block of ``disk`` taken by one file (removed to free the disk again)."""
    filler = disk / "filler"
    chunk = b"\0" * (64 * 1024)
    with open(filler, "wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError:
                break
        while True:  # the last partial block
            try:
                if not handle.write(b"\0" * 512):
                    break
            except OSError:
                break
    return filler


@contextmanager
def _store(kind: str, disk: Path, tmp_path: Path, monkeypatch) -> Iterator[str]:
    store = disk / "store"
    store.mkdir()
    if kind == "http":
        with running_server(f"sqlite:///{store / 'mlflow.db'}", store / "artifacts", tmp_path / "server.log") as srv:
            yield srv.url
        return
    monkeypatch.setenv("ALIGN_TRACK_DIRECT", "0" if kind == "mlflow" else "1")
    yield f"sqlite:///{store / 'mlflow.db'}"


@pytest.mark.parametrize("kind", ["direct", "mlflow", "http"])
def test_a_full_disk_is_named_on_every_folder_it_stops(tiny_disk: Path, tmp_path: Path, monkeypatch,
                                                       kind: str) -> None:
    root = tmp_path / "tree"
    write_run_folder(tmp_path / "first" / "run")
    with _store(kind, tiny_disk, tmp_path, monkeypatch) as uri:
        assert ingest(tmp_path / "first", uri).count("ingested") == 1  # the store exists; now its disk fills up
        for i in range(24):
            write_run_folder(root / f"more_{i:02d}")
        filler = _fill(tiny_disk)
        summary = ingest(root, uri, workers=1)
        failures = summary.failures
        assert len(failures) == 24, [o.status for o in summary.outcomes]
        where = "the tracking server" if kind == "http" else str(tiny_disk / "store")
        for failure in failures:
            assert "disk full" in failure.error and where in failure.error, failure.error
        stopped = [f for f in failures if "not attempted" in f.error]
        assert stopped, "after 3 folders in a row the rest are not attempted"
        assert all("the store stopped answering" not in f.error for f in stopped), stopped[0].error

        os.remove(filler)
        again = ingest(root, uri)
        assert (again.count("ingested"), again.count("failed")) == (24, 0)
