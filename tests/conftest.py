"""Shared fixtures: temp SQLite MLflow stores and run-folder trees built by tests/support/factory.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
