"""Readers of a SQLite store never hang on a lock: a real second connection holds an exclusive lock (as a
writer mid-commit does, or a lock stuck on a network filesystem); every reader waits a bounded time, then says
so in one line (CLI: exit 2; TUI: its status line, and it reads again once the lock is gone)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from align_track.demo.store import loaded, wait_until
from align_track.ingest.pipeline import ingest
from align_track.tui.app import AlignTrackApp
from tests.support.factory import write_run_folder
from tests.support.server_fixtures import cli_env, run_align_track

LOCKED = "database is locked (a writer held its lock over 5 s"


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, Path]:
    for i in range(2):
        write_run_folder(tmp_path / "exps" / f"e{i}")
    db = tmp_path / "store" / "mlflow.db"
    uri = f"sqlite:///{db}"
    assert not ingest(tmp_path / "exps", uri).failures
    return uri, db


@contextmanager
def exclusive_lock(db: Path) -> Iterator[None]:
    """Another connection holds the database's exclusive lock: nobody else can read it until released."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        if conn.in_transaction:  # released once, however often asked
            conn.execute("ROLLBACK")
        conn.close()


@pytest.mark.parametrize("command", [["search"], ["list-runs"], ["scenes"], ["export", "-o", "-"]])
def test_a_cli_reader_of_a_locked_store_stops_with_one_line(store: tuple[str, Path], command: list[str]):
    uri, db = store
    with exclusive_lock(db):
        done = run_align_track(*command, "--mlflow-uri", uri, env=cli_env(ALIGN_TRACK_STORE_FS="nfs"), timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: cannot read {uri}: {LOCKED}: mid-commit, or a lock stuck on a network filesystem); try again, "
        f"or read a copy (align-track store copy SRC DEST)"], done.stderr
    assert done.stdout == ""
    after = run_align_track(*command, "--mlflow-uri", uri, timeout=120)
    assert after.returncode == 0 and after.stdout, after.stderr  # the lock gone, the same command reads


@pytest.mark.asyncio
async def test_the_tui_on_a_locked_store_says_so_and_reads_once_the_lock_is_gone(store: tuple[str, Path]):
    uri, db = store
    app = AlignTrackApp(uri, refresh=0)
    lock = exclusive_lock(db)
    lock.__enter__()
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: loaded(app), timeout=120, what="the first read")
            assert app.snapshot is None and LOCKED in app.status.error
            await pilot.press("2", "1")  # still answers keys
            assert app.active_pane == "runs"
            lock.__exit__(None, None, None)
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: app.snapshot is not None, timeout=120, what="the read after the lock")
            assert len(app.snapshot.runs) == 2 and app.status.error == ""
    finally:
        lock.__exit__(None, None, None)
