"""Shared fixtures: temp SQLite MLflow stores and run-folder trees built by tests/support/factory.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.support.tui_fixtures"]  # here, before any test module imports it: else not assert-rewritten


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    """A fresh embedded store (SQLite file, artifacts beside it) in a temp dir."""
    return f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads or writes the developer's store or ./mlruns."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    os.makedirs(tmp_path / "cwd", exist_ok=True)
    monkeypatch.chdir(tmp_path / "cwd")


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` on a SQLite backend, shared by one test module's HTTP cases."""
    from tests.support.server_fixtures import running_server

    root = tmp_path_factory.mktemp("http-server")
    with running_server(f"sqlite:///{root / 'backend.db'}", root / "artifacts", root / "server.log") as server:
        yield server.url


@pytest.fixture(params=["sqlite", "http"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on an embedded SQLite store and through a tracking server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    return request.getfixturevalue("http_server")


# Every backend once per session (tests/support/backends.py): the cross-backend tests and the hostile-folder generator.
from tests.support.backends import (  # noqa: E402, F401
    pg_artifacts,
    pg_server,
    pg_session_db,
    sqlite_server,
    sqlite_session_uri,
)
