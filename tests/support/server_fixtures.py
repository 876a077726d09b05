"""Real services for the team-server tests and benchmark: fresh PostgreSQL databases and ``mlflow server``
subprocesses backed by them, with proxied artifacts (``--serve-artifacts``).

Plain context managers (usable from tests/benchmarks/bench_server.py) plus pytest fixtures on top.
PostgreSQL follows tests/store/test_runs_reader.py: ``$ALIGN_TRACK_TEST_PG_URI`` (default the local
``postgres`` user over TCP); where none answers, tests skip, unless ``ALIGN_TRACK_REQUIRE_POSTGRES=1``
(CI), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SERVER_START_TIMEOUT = 120.0
PYCACHE = Path(tempfile.gettempdir()) / "align-track-server-pycache"


def pg_base() -> str:
    """Admin URI of the test PostgreSQL (+psycopg2: SQLAlchemy 2.1 maps a bare scheme to psycopg 3)."""
    return os.environ.get("ALIGN_TRACK_TEST_PG_URI", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


class NoPostgres(Exception):
    """No PostgreSQL answers at :func:`pg_base`."""


def _admin():
    import psycopg2

    base = pg_base()
    try:
        conn = psycopg2.connect(base.replace("+psycopg2", ""), connect_timeout=3)
    except Exception as exc:
        raise NoPostgres(f"no PostgreSQL at {base}: {str(exc).strip().splitlines()[0] if str(exc) else exc}") from exc
    conn.autocommit = True
    return conn


@contextlib.contextmanager
def fresh_database(prefix: str = "align_track") -> Iterator[str]:
    """A new, empty database (``<prefix>_<pid>_<random>``) dropped on exit; yields its psycopg2 URI."""
    admin = _admin()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_base().rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running ``mlflow server`` in its own process group (so every worker can be killed at once)."""

    url: str
    port: int
    backend_uri: str
    artifacts: Path
    log: Path
    process: subprocess.Popen
    extra_env: dict[str, str] = field(default_factory=dict)
    app_name: str | None = None


def _healthy(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def start_server(backend_uri: str, artifacts: Path, log: Path, port: int | None = None,
                 app_name: str | None = None, extra_env: dict[str, str] | None = None,
                 workers: int = 1) -> Server:
    """``mlflow server`` on ``backend_uri`` with proxied artifacts in ``artifacts``; waits for /health.

    No job runner (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false), one uvicorn worker by default:
    the fastest start, as align_track.mlflow_ui does.
    """
    port = port or free_port()
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
           "--serve-artifacts", "--artifacts-destination", str(artifacts),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if app_name:
        cmd += ["--app-name", app_name]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "PYTHONUNBUFFERED": "1",
           "PYTHONPYCACHEPREFIX": str(PYCACHE), **(extra_env or {})}
    # Bytecode, kept out of the venv: without it (PYTHONDONTWRITEBYTECODE=1 here) the server recompiles
    # MLflow's auth module on every runs/search (~45 ms: its optional Flask-WTF import fails each time)
    # and takes twice as long to start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log, "ab") as out:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", port, backend_uri, artifacts, log, process, dict(extra_env or {}),
                    app_name)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not _healthy(server.url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError(f"mlflow server did not come up:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.25)
    return server


def stop_server(server: Server, sig: int = signal.SIGTERM) -> None:
    """Signal the server's whole process group, SIGKILL what is left after 15 s; wait for the port."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, sig)
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):  # stragglers: uvicorn workers in the same group
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=5)


def restart_server(server: Server) -> Server:
    """The same server again (same port, backend and artifacts), after :func:`stop_server`."""
    return start_server(server.backend_uri, server.artifacts, server.log, server.port, server.app_name,
                        server.extra_env)


@contextlib.contextmanager
def running_server(backend_uri: str, artifacts: Path, log: Path, **kwargs) -> Iterator[Server]:
    server = start_server(backend_uri, artifacts, log, **kwargs)
    try:
        yield server
    finally:
        stop_server(server)


# --------------------------------------------------------------------------- align-track subprocesses


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for ``python -m align_track`` children: no ambient tracking URI, bytecode cached (each
    child would otherwise compile mlflow from source, seconds apiece)."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(PYCACHE), **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def align_track_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "align_track", *args]


def run_align_track(*args: str, env: dict[str, str] | None = None, timeout: float = 180,
                    cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(align_track_cmd(*args), env=env or cli_env(), capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)


# --------------------------------------------------------------------------- basic-auth server

AUTH_ADMIN = ("admin", "align-track-S3cret")  # 3.17 refuses the old default, password1234
FLASK_WTF_DIR = Path(tempfile.gettempdir()) / "align-track-flask-wtf"


def flask_wtf_path() -> str:
    """Where Flask-WTF is for the basic-auth app ('' if the venv has it; else a directory for PYTHONPATH).

    MLflow's basic-auth app needs Flask-WTF (the ``mlflow[auth]`` extra), which the locked
    environment does not include; it is fetched once with uv into a temp directory. Raises
    RuntimeError if that is impossible.
    """
    import importlib.util
    import shutil

    if importlib.util.find_spec("flask_wtf") is not None:
        return ""
    if (FLASK_WTF_DIR / "flask_wtf").is_dir() and (FLASK_WTF_DIR / "wtforms").is_dir():
        return str(FLASK_WTF_DIR)
    uv = shutil.which("uv")
    commands = ([[uv]] if uv else []) + [["python3", "-m", "uv"]]
    errors = []
    for prefix in commands:
        cmd = prefix + ["pip", "install", "--python", sys.executable, "--target", str(FLASK_WTF_DIR), "--no-deps",
                        "flask-wtf", "wtforms"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(str(exc))
            continue
        if done.returncode == 0:
            return str(FLASK_WTF_DIR)
        errors.append(done.stderr.strip()[-300:])
    raise RuntimeError("MLflow's basic-auth app needs Flask-WTF (mlflow[auth]); it is not installed and uv "
                       f"could not fetch it: {'; '.join(errors)}")


def auth_env(root: Path) -> dict[str, str]:
    """Server environment for ``--app-name basic-auth``: its own user database, the admin, a CSRF key."""
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {AUTH_ADMIN[0]}\n"
        f"admin_password = {AUTH_ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": "align-track-tests"}
    extra = flask_wtf_path()
    if extra:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra, os.environ.get("PYTHONPATH", "")) if p)
    return env


# --------------------------------------------------------------------------- pytest fixtures


def pg_unavailable(reason: str) -> None:
    """Skip where PostgreSQL is missing, fail instead when CI requires it (ALIGN_TRACK_REQUIRE_POSTGRES=1)."""
    if os.environ.get("ALIGN_TRACK_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL required (ALIGN_TRACK_REQUIRE_POSTGRES=1) but {reason}")
    pytest.skip(reason)


def pg_database(prefix: str) -> Iterator[str]:
    """Fixture body: a fresh database, or skip/fail where PostgreSQL is missing."""
    pytest.importorskip("psycopg2")
    try:
        manager = fresh_database(prefix)
        uri = manager.__enter__()
    except NoPostgres as exc:
        pg_unavailable(str(exc))
    try:
        yield uri
    finally:
        _dispose_engines(uri)
        manager.__exit__(None, None, None)


def _dispose_engines(uri: str) -> None:
    """Close the fast reader's pooled connections to ``uri`` (the drop's FORCE ends any others)."""
    from align_track.store import runs_reader

    with contextlib.suppress(Exception):
        runs_reader._engine(uri).dispose()


@pytest.fixture(scope="session")
def pg_session_db() -> Iterator[str]:
    """One fresh database for the session's shared server."""
    yield from pg_database("align_track")


@pytest.fixture(scope="session")
def pg_server(pg_session_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``mlflow server`` on PostgreSQL with proxied artifacts for the whole session (10-30 s to start)."""
    root = tmp_path_factory.mktemp("pg-server")
    with running_server(pg_session_db, root / "artifacts", root / "server.log") as server:
        yield server


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A fresh database for one test (direct ``postgresql://`` access, or a test's own server)."""
    yield from pg_database("align_track_t")
