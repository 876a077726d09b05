"""Faults a team hits: a server that hangs (accepts connections, never answers), foreign or unwritable stores.

Real processes only: ``mlflow server`` subprocesses frozen with SIGSTOP (the kernel still accepts
connections for them), a listening socket that never replies, the CLI as a subprocess.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow import MlflowClient

from align_track.demo.generate import generate_demo
from align_track.store import runs_reader
from tests.support.server_fixtures import (
    align_track_cmd,
    cli_env,
    restart_server,
    run_align_track,
    start_server,
    stop_server,
)
from tests.support.unprivileged import as_nobody


def _one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def silent_server():
    """A port that accepts TCP connections (the kernel's backlog) and never sends a byte."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.mark.parametrize("command", [["search"], ["list-runs"], ["export", "--format", "csv"], ["report"]])
def test_read_commands_give_up_on_a_silent_server_with_one_line(silent_server: str, command: list[str],
                                                                tmp_path: Path) -> None:
    extra = ["--output", str(tmp_path / "out.csv")] if command[0] in ("export", "report") else []
    result = run_align_track(*command, *extra, "--mlflow-uri", silent_server, timeout=60)
    _one_line_error(result, "is not reachable (timed out)")


def _complete(url: str, name: str) -> int:
    try:
        rows = runs_reader.load_runs(url, runs_reader.get_experiment_id(url, name))
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    return sum(r.tags.get("align_track.complete") == "true" for r in rows)


@pytest.mark.server
def test_server_hanging_mid_ingest_ends_the_ingest_and_a_rerun_converges(tmp_path: Path) -> None:
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=40, scenes=4, seed=3)
    server = start_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts", tmp_path / "server.log")
    args = ("ingest", "--experiments-dir", str(tree), "--mlflow-uri", server.url, "--experiment-name", "hung")
    try:
        proc = subprocess.Popen(align_track_cmd(*args), env=cli_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while _complete(server.url, "hung") < 3:
            assert proc.poll() is None, "the ingest finished before the server could hang"
            assert time.monotonic() < deadline, "the ingest made no progress"
            time.sleep(0.1)
        os.killpg(server.process.pid, signal.SIGSTOP)  # connections still accepted, nothing answered
        try:
            out, err = proc.communicate(timeout=90)  # MLflow's own retries alone would take minutes
        finally:
            os.killpg(server.process.pid, signal.SIGKILL)  # its queued requests die with it
            os.killpg(server.process.pid, signal.SIGCONT)
        assert proc.returncode == 1, (out, err)
        assert "Traceback" not in out + err
        assert "the tracking server stopped answering" in err, err
        unfinished = [line for line in err.splitlines() if "the store stopped answering" in line]
        assert unfinished, err

        stop_server(server)
        server = restart_server(server)
        rerun = run_align_track(*args)
        assert rerun.returncode == 0, (rerun.stdout, rerun.stderr)
        client = MlflowClient(server.url)
        runs = client.search_runs([client.get_experiment_by_name("hung").experiment_id], max_results=1000)
        keys = Counter(r.data.tags["align_track.key"] for r in runs)
        assert keys and max(keys.values()) == 1, keys
        assert all(r.data.tags.get("align_track.complete") == "true" and r.info.status == "FINISHED" for r in runs)
    finally:
        stop_server(server)


def test_foreign_sqlite_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO notes (text) VALUES ('mine')")
    conn.close()
    before = db.read_bytes()
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=1, scenes=1, seed=1)
    result = run_align_track("ingest", "--experiments-dir", str(tree), "--mlflow-uri", f"sqlite:///{db}")
    _one_line_error(result, "not an MLflow store")
    assert db.read_bytes() == before
    assert not (tmp_path / "artifacts").exists()  # nothing of a store was set up beside it


def test_a_file_that_is_no_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "readme.txt"
    db.write_text("not a database at all\n" * 100)
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=1, scenes=1, seed=1)
    result = run_align_track("ingest", "--experiments-dir", str(tree), "--mlflow-uri", f"sqlite:///{db}")
    _one_line_error(result, "is not an MLflow store")
    assert db.read_text() == "not a database at all\n" * 100


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as an unprivileged user (root writes anywhere)")
def test_unwritable_store_directory_is_one_line(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="align-track-ro-"))
    try:
        base.chmod(0o755)
        tree = base / "exps"
        generate_demo(tree, run_folders=1, scenes=1, seed=1)
        for path in [tree, *tree.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        store = base / "store"
        store.mkdir(mode=0o755)  # root's: 'nobody' cannot write here
        cmd, env = as_nobody("ingest", "--experiments-dir", str(tree), "--mlflow-uri",
                             f"sqlite:///{store / 'mlflow.db'}", env=cli_env())
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                                cwd="/")
        _one_line_error(result, "not writable")
        assert list(store.iterdir()) == []
    finally:
        shutil.rmtree(base)


def test_kill_9_during_a_sqlite_write_leaves_no_orphan_artifact_folder(tmp_path: Path) -> None:
    """The writer copies a run's files, then waits for the write lock (held here): killed right there,
    its folder has no run row. The next ingest removes it and writes every run once."""
    from align_track.store.run_writer import RunStore

    db = tmp_path / "store" / "mlflow.db"
    uri = f"sqlite:///{db}"
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=3, scenes=2, seed=2)
    RunStore(uri, "killed")
    artifacts = db.parent / "artifacts"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the writer will copy its files, then wait on this lock
    proc = subprocess.Popen(align_track_cmd("ingest", "--experiments-dir", str(tree), "--mlflow-uri", uri,
                                            "--experiment-name", "killed"),
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(artifacts.glob("*/artifacts/input_output.json")):
            assert proc.poll() is None and time.monotonic() < deadline, "the writer never copied a file"
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    orphans = [p.parent.name for p in artifacts.glob("*/artifacts")]
    assert orphans, "the kill left nothing to clean up: the test did not reproduce the crash"

    result = run_align_track("ingest", "--experiments-dir", str(tree), "--mlflow-uri", uri,
                             "--experiment-name", "killed")
    assert result.returncode == 0, (result.stdout, result.stderr)
    with sqlite3.connect(db) as conn:
        run_ids = {row[0] for row in conn.execute("SELECT run_uuid FROM runs")}
    folders = {p.parent.name for p in artifacts.glob("*/artifacts")}
    assert folders == run_ids, (folders - run_ids, run_ids - folders)
    assert not set(orphans) & folders
    assert not list(artifacts.glob("*/.align-track-writing"))
