"""The MLflow UI subprocess: starts on a real store, serves its runs and artifacts, and leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from mlflow import MlflowClient

from align_track.mlflow_ui import (
    PortBusy,
    UiError,
    exposure_warning,
    find_free_port,
    port_is_free,
    ssh_forward_hint,
    start_ui,
    stop_ui,
)
from align_track.store.uri import StoreError, artifact_root_for


def one_run_store(tmp_path: Path) -> tuple[str, str, str]:
    """A SQLite store with one finished run and one artifact; returns (uri, experiment id, run id)."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    client = MlflowClient(tracking_uri=uri)
    eid = client.create_experiment("ui-exp", artifact_location=artifact_root_for(uri))
    run = client.create_run(eid, run_name="only-run")
    client.log_param(run.info.run_id, "lr", "0.1")
    note = tmp_path / "note.txt"
    note.write_text("hello")
    client.log_artifact(run.info.run_id, str(note))
    client.set_terminated(run.info.run_id)
    return uri, eid, run.info.run_id


def tree(pid: int) -> list[psutil.Process]:
    leader = psutil.Process(pid)
    return [leader, *leader.children(recursive=True)]


def gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.server
def test_start_serve_stop(tmp_path: Path) -> None:
    uri, eid, run_id = one_run_store(tmp_path)
    port = find_free_port(start=16000)
    server = start_ui(uri, port=port, log_path=tmp_path / "ui.log")
    try:
        assert server.owned and server.url == f"http://127.0.0.1:{port}"
        procs = tree(server.process.pid)
        assert len(procs) >= 2  # the mlflow CLI and uvicorn
        assert httpx.get(f"{server.url}/health").status_code == 200
        resp = httpx.post(f"{server.url}/ajax-api/2.0/mlflow/runs/search", json={"experiment_ids": [eid]})
        assert resp.status_code == 200
        assert [r["info"]["run_id"] for r in resp.json()["runs"]] == [run_id]
        # artifacts logged with file:// locations beside the DB are listed and served
        listed = httpx.get(f"{server.url}/ajax-api/2.0/mlflow/artifacts/list", params={"run_id": run_id})
        assert [f["path"] for f in listed.json()["files"]] == ["note.txt"]
        got = httpx.get(f"{server.url}/get-artifact", params={"path": "note.txt", "run_uuid": run_id})
        assert got.text == "hello"
        # a second start on an http URI starts nothing and points at the running server
        remote = start_ui(server.url)
        assert not remote.owned and remote.url == server.url
        stop_ui(remote)
        assert httpx.get(f"{server.url}/health").status_code == 200
    finally:
        stop_ui(server)
    assert port_is_free("127.0.0.1", port)
    assert server.process.poll() is not None
    assert all(gone(p) for p in procs), [p.pid for p in procs if not gone(p)]


@pytest.mark.server
def test_full_tree_with_workers_and_jobs_is_killed(tmp_path: Path) -> None:
    """MLflow's default shape (uvicorn workers, job runner, huey consumers) goes down completely."""
    uri, _, _ = one_run_store(tmp_path)
    port = find_free_port(start=16100)
    server = start_ui(uri, port=port, workers=2, jobs=True, timeout=240, log_path=tmp_path / "ui.log")
    try:
        procs = tree(server.process.pid)
        cmdlines = [" ".join(p.cmdline()) for p in procs]
        assert any("uvicorn" in c for c in cmdlines)
        huey_dirs = set()
        for p in procs:
            try:
                if path := p.environ().get("_MLFLOW_HUEY_STORAGE_PATH"):
                    huey_dirs.add(path)
            except psutil.Error:
                pass
    finally:
        stop_ui(server)
    assert port_is_free("127.0.0.1", port)
    assert all(gone(p) for p in procs), [p.pid for p in procs if not gone(p)]
    # the job runner's queue directory, which MLflow leaves in /dev/shm, is removed
    assert huey_dirs and not any(Path(d).exists() for d in huey_dirs)


def test_busy_port_names_a_free_one(tmp_path: Path) -> None:
    uri, _, _ = one_run_store(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        with pytest.raises(PortBusy) as err:
            start_ui(uri, port=port)
        msg = str(err.value)
        assert f"port {port} on 127.0.0.1 is in use" in msg
        suggested = int(re.search(r"--port (\d+)", msg).group(1))
        assert suggested != port and port_is_free("127.0.0.1", suggested)
    assert isinstance(err.value, StoreError)  # the CLI's store-error handler reports it


def test_missing_store_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "none" / "mlflow.db"
    with pytest.raises(StoreError, match="no MLflow store"):
        start_ui(f"sqlite:///{db}", port=find_free_port(start=16200))
    assert not db.exists()


def test_unreachable_tracking_server() -> None:
    with pytest.raises(UiError, match="not reachable"):
        start_ui(f"http://127.0.0.1:{find_free_port(start=16300)}")


@pytest.mark.server
def test_server_that_exits_reports_its_log(tmp_path: Path) -> None:
    with pytest.raises(UiError, match="exited with code") as err:
        start_ui("nosuchscheme://x/y", port=find_free_port(start=16400), log_path=tmp_path / "ui.log")
    assert len(str(err.value).splitlines()) > 1  # the tail of the server log follows


@pytest.mark.server
def test_store_that_cannot_be_opened_fails_fast_and_leaves_nothing(tmp_path: Path) -> None:
    # a directory where the database file should be: MLflow would retry opening it for ~100 s
    bad = tmp_path / "isdir.db"
    bad.mkdir()
    with pytest.raises(UiError, match="cannot open the store") as err:
        start_ui(f"sqlite:///{bad}", port=find_free_port(start=16500), timeout=60, log_path=tmp_path / "ui.log")
    assert "unable to open database file" in str(err.value)
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(bad) in " ".join(p.info["cmdline"] or [])]


def test_ssh_forward_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "10.1.2.3 52311 10.9.8.7 22")
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    hint = ssh_forward_hint(5123)
    assert hint == "ssh -N -L 5123:localhost:5123 alice@10.9.8.7"
    assert "-N -L 5123:localhost:5123" in ssh_forward_hint(5123, host="0.0.0.0")
    monkeypatch.delenv("SSH_CONNECTION")
    assert ssh_forward_hint(5123) is None


def test_exposure_warning() -> None:
    for host in ("0.0.0.0", "::"):
        assert "anyone who can reach this machine can read and change the store" in exposure_warning(host)
    for host in ("127.0.0.1", "localhost", "::1"):
        assert exposure_warning(host) is None


@pytest.mark.server
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGKILL])
def test_ui_server_stops_when_its_starter_dies(tmp_path: Path, sig: int) -> None:
    """The terminal closes (SIGHUP, default action) or the TUI is killed: no orphan server on the port."""
    uri, _, _ = one_run_store(tmp_path)
    port = find_free_port(start=17000)
    script = ("import sys, time\nfrom align_track.mlflow_ui import start_ui\n"
              f"server = start_ui({uri!r}, port={port}, log_path={str(tmp_path / 'ui.log')!r})\n"
              "print(server.process.pid, flush=True)\ntime.sleep(600)\n")
    starter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)  # its own 'terminal' session, like a TUI in a tmux pane
    try:
        server_pid = int(starter.stdout.readline())
        procs = tree(server_pid)
        assert not port_is_free("127.0.0.1", port)
        os.killpg(starter.pid, sig)  # what the terminal does to its session when it closes
        starter.wait(timeout=30)
        deadline = time.monotonic() + 60
        while not (all(gone(p) for p in procs) and port_is_free("127.0.0.1", port)):
            assert time.monotonic() < deadline, [p.pid for p in procs if not gone(p)]
            time.sleep(0.2)
    finally:
        if starter.poll() is None:
            starter.kill()
        for proc in tree_or_empty(server_pid if "server_pid" in locals() else None):
            proc.kill()


def tree_or_empty(pid: int | None) -> list[psutil.Process]:
    try:
        return tree(pid) if pid is not None else []
    except psutil.NoSuchProcess:
        return []
