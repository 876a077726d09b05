"""Start and stop the MLflow web UI (``mlflow server``) as a subprocess, for the CLI ``ui`` command and the TUI.

Only launches a subprocess, so it never imports mlflow: the caller stays light and the
server's heavy imports happen in the child.

What ``mlflow server`` 3.17 starts (all in one session when launched with ``start_new_session``):

* the ``mlflow server`` CLI process, which waits on
* ``python -m uvicorn ... mlflow.server.fastapi_app:app`` (with ``--workers N > 1`` a supervisor
  plus N spawned workers and a multiprocessing resource tracker), and, unless disabled,
* ``python -m mlflow.server.jobs._job_runner`` with about seven ``huey_consumer`` children
  (GenAI scorer jobs and periodic trace tasks), which also leaves a ``/dev/shm/tmp*`` queue
  directory behind when killed.

We default to one uvicorn worker and no job runner: two processes instead of fifteen, about
half the start-up time, and nothing a browse-the-runs UI needs is lost.
"""

from __future__ import annotations

import contextlib
import getpass
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from align_track.store.claims import process_start
from align_track.store.runs_reader import with_installed_driver
from align_track.store.uri import (
    StoreError,
    artifact_root_for,
    require_existing_store,
    resolve_tracking_uri,
    store_kind,
)

_HUEY_ENV = "_MLFLOW_HUEY_STORAGE_PATH"  # mlflow.server.constants.HUEY_STORAGE_PATH_ENV_VAR
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")
_DB_RETRY_MARK = "SQLAlchemy engine could not be created"  # mlflow.store.db.utils retry warning


class UiError(StoreError):
    """The UI could not be started or reached; a StoreError so the CLI prints it and exits 2."""


class PortBusy(UiError):
    """The requested port is taken; the message names a free one to try instead."""


@dataclass
class UiServer:
    """A running MLflow UI.

    ``process`` is None when the tracking URI is already an http(s) server: nothing was
    started, ``url`` is that server and :func:`stop_ui` does nothing.
    """

    host: str
    port: int
    url: str
    process: subprocess.Popen | None
    log_path: Path | None = None
    watchdog: subprocess.Popen | None = None
    """Stops the server if we die without calling :func:`stop_ui`; stopped by it otherwise."""

    @property
    def owned(self) -> bool:
        """True when we started the server (and so must stop it)."""
        return self.process is not None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def port_is_free(host: str, port: int) -> bool:
    """Whether ``mlflow server --host host --port port`` could bind.

    Binds the way uvicorn does (SO_REUSEADDR), so sockets of a server that just stopped
    (TIME_WAIT) do not count as busy but any listener on the port, on any address, does.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError:
            return False
    return True


def find_free_port(host: str = "127.0.0.1", start: int = 5000) -> int:
    """The first free port from ``start`` (up to 200 tried), else one the OS picks."""
    for port in range(start, min(start + 200, 65536)):
        if port_is_free(host, port):
            return port
    family = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _connect_host(host: str) -> str:
    """Where to reach a server bound to ``host`` from this machine (wildcards mean loopback)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _url(host: str, port: int) -> str:
    host = _connect_host(host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _health_status(base_url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of ``GET /health`` (None if nothing answers)."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/health", timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def _log_tail(path: Path | None, lines: int = 25) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _server_command(
    tracking_uri: str, host: str, port: int, workers: int, allowed_hosts: str | None
) -> list[str]:
    backend = with_installed_driver(tracking_uri)  # bare postgresql:// would need psycopg 3
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
           "--host", host, "--port", str(port), "--workers", str(workers)]
    root = artifact_root_for(tracking_uri)
    if root is not None:
        # Runs logged by align-track carry file:// artifact URIs; the server reads those
        # directly whatever --serve-artifacts says. The default root only matters for
        # experiments created through this server, and the destination for proxied
        # mlflow-artifacts:/ locations: both point beside the DB, never at ./mlruns or
        # ./mlartifacts of whatever directory the UI happened to be started from.
        cmd += ["--default-artifact-root", root, "--artifacts-destination", root]
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    return cmd


def start_ui(
    tracking_uri: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    timeout: float = 90.0,
    log_path: Path | str | None = None,
    *,
    workers: int = 1,
    jobs: bool = False,
    allowed_hosts: str | None = None,
) -> UiServer:
    """Start ``mlflow server`` on the store and wait until ``/health`` answers 200.

    For an http(s) tracking URI nothing is started: the server is checked to answer and
    returned as a UiServer with ``process=None`` (its own UI is the one to open).
    A missing SQLite file is refused (StoreError) rather than created empty.
    ``jobs`` enables MLflow's huey job runner (only GenAI scorer jobs need it).
    ``allowed_hosts`` is passed to ``--allowed-hosts``: when binding 0.0.0.0, MLflow's
    DNS-rebinding guard still rejects Host headers other than localhost and private IPs.
    Server output goes to ``log_path`` (a temp file if None), whose tail is in any error.
    """
    if store_kind(tracking_uri) == "http":
        base = tracking_uri.rstrip("/")
        if _health_status(base, timeout=min(timeout, 8.0)) is None:
            raise UiError(f"tracking server {base} is not reachable")
        return UiServer(host=host, port=port, url=base, process=None)

    tracking_uri = resolve_tracking_uri(tracking_uri)  # a relative SQLite path, absolute for the child
    require_existing_store(tracking_uri)
    if not port_is_free(host, port):
        raise PortBusy(f"port {port} on {host} is in use; try --port {find_free_port(host, port + 1)}")

    if log_path is not None:
        log_path = Path(log_path)
    else:
        fd, name = tempfile.mkstemp(prefix="align-track-ui-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "true" if jobs else "false"
    with open(log_path, "wb") as log:  # fresh: the tail is scanned for this start's errors
        process = subprocess.Popen(
            _server_command(tracking_uri, host, port, workers, allowed_hosts),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own session and process group: stop_ui kills every worker
        )
    server = UiServer(host=host, port=port, url=_url(host, port), process=process, log_path=log_path,
                      watchdog=_start_watchdog(process.pid))
    try:
        _wait_healthy(server, timeout)
    except BaseException:
        stop_ui(server, timeout=5)
        raise
    return server


def _start_watchdog(pgid: int) -> subprocess.Popen:
    """A tiny process that stops the server's session when we die without calling ``stop_ui``.

    The server has its own session (so Ctrl-C in the terminal reaches us, not its workers), which
    also means a closed terminal (SIGHUP), ``tmux kill-session``, a lost SSH connection or
    ``kill -9`` of the TUI would leave it running on its port. PR_SET_PDEATHSIG is no help: it
    fires when the *thread* that started the child ends (the TUI starts it from a worker thread).
    The watchdog, in a session of its own too, polls our pid and exits once the server is gone.
    """
    me = os.getpid()
    code = f"from align_track.mlflow_ui import _watchdog; _watchdog({me}, {process_start(me)!r}, {pgid})"
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))


def _watchdog(parent: int, parent_start: str, pgid: int, interval: float = 0.5) -> None:
    """Run in the watchdog process: wait for ``parent`` to die, then stop the server session ``pgid``."""
    while _group_alive(pgid):
        try:
            os.kill(parent, 0)
            alive = process_start(parent) in ("", parent_start)
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            members = list(_session_members(pgid))
            _signal_all(pgid, members, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            _signal_all(pgid, list(_session_members(pgid)), signal.SIGKILL)
            for d in _huey_dirs(members):
                shutil.rmtree(d, ignore_errors=True)
            return
        time.sleep(interval)


def _wait_healthy(server: UiServer, timeout: float) -> None:
    assert server.process is not None
    deadline = time.monotonic() + timeout
    while True:
        code = server.process.poll()
        if code is not None:
            tail = _log_tail(server.log_path)
            if "address already in use" in tail.lower():
                free = find_free_port(server.host, server.port + 1)
                raise PortBusy(f"port {server.port} on {server.host} is in use; try --port {free}")
            raise UiError(f"mlflow server exited with code {code} (log {server.log_path}):\n{tail}")
        if _health_status(server.url, timeout=2.0) == 200 and server.process.poll() is None:
            return
        tail = _log_tail(server.log_path)
        if _DB_RETRY_MARK in tail:
            # MLflow retries a database it cannot open, with backoff, for ~100 s before exiting;
            # a store that fails its first open is not going to come up for a UI.
            raise UiError(f"mlflow server cannot open the store (log {server.log_path}):\n{tail}")
        if time.monotonic() > deadline:
            raise UiError(
                f"mlflow server did not answer {server.url}/health within {timeout:.0f}s "
                f"(log {server.log_path}):\n{_log_tail(server.log_path)}"
            )
        time.sleep(0.25)


def _session_members(sid: int) -> dict[int, str]:
    """Live (non-zombie) processes of session ``sid`` -> their state, read from /proc.

    The session, not just the process group, so a worker that moved to its own group is
    still found. Empty where there is no /proc (then only the process group is signalled).
    """
    members: dict[int, str] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return members
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp session ..." - comm may contain spaces or parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            members[int(entry.name)] = fields[0]
    return members


def _huey_dirs(pids: list[int]) -> set[str]:
    """The job runner's /dev/shm queue directories, which MLflow never removes."""
    dirs: set[str] = set()
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        prefix = _HUEY_ENV.encode() + b"="
        dirs.update(item[len(prefix) :].decode() for item in environ if item.startswith(prefix))
    return {d for d in dirs if d}


def _signal_all(pgid: int, pids: list[int], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _group_alive(pgid: int) -> bool:
    if Path("/proc").is_dir():
        return bool(_session_members(pgid))
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _wait_gone(server: UiServer, pgid: int, deadline: float) -> bool:
    assert server.process is not None
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(timeout=0.05)
        if server.process.poll() is not None and not _group_alive(pgid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def stop_ui(server: UiServer, timeout: float = 10) -> None:
    """Stop the server and every process it started; returns once the port is free.

    SIGTERM to the whole session (uvicorn workers, job runner, huey consumers), then SIGKILL
    whatever is left after ``timeout``. A server we did not start is left alone.
    """
    if server.process is None:
        return
    pgid = server.process.pid  # session leader: its pid is the group and session id
    members = list(_session_members(pgid))
    huey_dirs = _huey_dirs(members)
    if server.process.poll() is None or members:
        _signal_all(pgid, members, signal.SIGTERM)
        if not _wait_gone(server, pgid, time.monotonic() + timeout):
            _signal_all(pgid, list(_session_members(pgid)), signal.SIGKILL)
            _wait_gone(server, pgid, time.monotonic() + 5)
    for d in huey_dirs:
        shutil.rmtree(d, ignore_errors=True)
    if server.watchdog is not None and server.watchdog.poll() is None:  # nothing left for it to watch
        server.watchdog.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.watchdog.wait(timeout=5)
    deadline = time.monotonic() + 5
    while not port_is_free(server.host, server.port) and time.monotonic() < deadline:
        time.sleep(0.1)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ssh_forward_hint(port: int, host: str = "127.0.0.1") -> str | None:
    """The ``ssh -N -L`` command to paste on the laptop when we run in an SSH session, else None.

    The server address is the one the SSH client connected to (3rd field of
    ``$SSH_CONNECTION``), which the laptop can reach by definition; the FQDN otherwise.
    """
    conn = os.environ.get("SSH_CONNECTION", "").split()
    if not conn:
        return None
    server_host = conn[2] if len(conn) >= 3 else socket.getfqdn()
    if _is_loopback(host) or host in _WILDCARD_HOSTS:
        target = "localhost"
    else:
        target = f"[{host}]" if ":" in host else host
    return f"ssh -N -L {port}:{target}:{port} {getpass.getuser()}@{server_host}"


def exposure_warning(host: str) -> str | None:
    """A warning when the UI listens beyond this machine: MLflow's UI has no authentication."""
    if _is_loopback(host):
        return None
    where = "all interfaces" if host in _WILDCARD_HOSTS else host
    return (
        f"the MLflow UI listens on {where} without authentication: "
        "anyone who can reach this machine can read and change the store"
    )
