"""Every backend an ingest writes to, started once per session, and what one ingest leaves there read back
through MLflow's own read APIs, so a test can assert the same outcome on all of them.

Backends: an embedded SQLite file, PostgreSQL direct (``postgresql://``), and ``mlflow server`` over HTTP on
SQLite and on PostgreSQL. Each is shared by the session; a test (or a Hypothesis example) writes into an
experiment of its own (:func:`new_experiment`), so nothing is restarted between examples.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from align_track import schema
from tests.support import server_fixtures
from tests.support.server_fixtures import Server, running_server

BACKENDS = ("sqlite", "postgresql", "server-sqlite", "server-postgresql")
"""Where PostgreSQL is missing the last three skip (fail in CI: ALIGN_TRACK_REQUIRE_POSTGRES=1)."""

pg_session_db, pg_server = server_fixtures.pg_session_db, server_fixtures.pg_server  # registered by tests/conftest.py

VOLATILE_TAGS = {"align_track.key", "align_track.source_path", "align_track.fingerprint", "align_track.claim",
                 schema.TAG_INGEST_TIME, schema.TAG_HEARTBEAT, schema.TAG_LAST_SCENE, "experiment_timestamp",
                 "mlflow.user", "mlflow.source.name", "mlflow.source.type", "mlflow.source.git.commit"}
"""Tags that name the machine, the folder's absolute path or a time: equal across backends only by accident."""


@pytest.fixture(scope="session")
def sqlite_session_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite-session') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``mlflow server`` on a SQLite file for the session."""
    root = tmp_path_factory.mktemp("sqlite-server")
    with running_server(f"sqlite:///{root / 'backend.db'}", root / "artifacts", root / "server.log") as server:
        yield server


@pytest.fixture(scope="session")
def pg_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pg-direct-artifacts")


def backend_uri(request: pytest.FixtureRequest, name: str) -> str:
    """The session's store for backend ``name`` (its fixtures started on first use)."""
    if name == "sqlite":
        return request.getfixturevalue("sqlite_session_uri")
    if name == "postgresql":
        return request.getfixturevalue("pg_session_db")
    if name == "server-sqlite":
        return request.getfixturevalue("sqlite_server").url
    if name == "server-postgresql":
        return request.getfixturevalue("pg_server").url
    raise ValueError(name)


def new_experiment(prefix: str = "edge") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def outcome(tree: Path, uri: str, experiment: str, **ingest_kwargs: Any) -> dict[str, Any]:
    """Ingest ``tree`` into ``experiment`` and read back what landed: every run (by ``experiment_path``) with its
    name, params, metrics, tags and traces (names, tags, span inputs/outputs/attributes); failures and notes."""
    from mlflow import MlflowClient

    from align_track.ingest.pipeline import ingest

    messages: list[str] = []
    summary = ingest(tree, uri, experiment, on_event=lambda e: messages.append(e.message) if e.kind == "message"
                     else None, **ingest_kwargs)
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs: dict[str, Any] = {}
    for run in client.search_runs([found.experiment_id], max_results=1000) if found else []:
        traces = []
        for trace in client.search_traces(locations=[found.experiment_id], run_id=run.info.run_id, max_results=500):
            full = client.get_trace(trace.info.trace_id)
            span = full.data.spans[0]
            traces.append({"name": full.info.tags.get("mlflow.traceName"),
                           "tags": {k: v for k, v in full.info.tags.items()
                                    if k not in ("mlflow.runId", "mlflow.artifactLocation")},
                           "request_preview": full.info.request_preview,
                           "response_preview": full.info.response_preview,
                           "span": (span.name, span.inputs, span.outputs),
                           "attributes": {k: v for k, v in span.attributes.items() if not k.startswith("mlflow.")}})
        key = run.data.tags.get("experiment_path", "?") + "|" + run.data.params.get("alignment_target_id", "")
        runs[key] = {
            "name": run.info.run_name, "status": run.info.status,
            "params": run.data.params, "metrics": run.data.metrics,
            "tags": {k: v for k, v in run.data.tags.items() if k not in VOLATILE_TAGS},
            "traces": sorted(traces, key=lambda t: t["attributes"].get("scene_index", -1)),
            "artifacts": sorted(f.path for f in client.list_artifacts(run.info.run_id))
            + sorted(f.path for f in client.list_artifacts(run.info.run_id, ".hydra")),
        }
    return {
        "runs": runs,
        "failed": sorted(o.error or "" for o in summary.failures),
        "notes": sorted(messages),
    }
