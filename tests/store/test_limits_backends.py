"""MLflow's limits give the same result on every backend: SQLite bulk, SQLite public API, PostgreSQL direct
and an HTTP tracking server.

A 20,000-character LLM name is truncated to MLflow's 6,000 (param) / 8,000 (tag) with a warning naming the
folder and field; a KDMA named like a path is refused for that folder alone, on every backend alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from align_track.ingest.pipeline import ingest
from align_track.schema import PARAM_LLM, TAG_LLM, TAG_PATH
from align_track.store.uri import DEFAULT_EXPERIMENT
from tests.support import server_fixtures
from tests.support.factory import config, merit_target, write_run_folder
from tests.support.server_fixtures import running_server

pg_db = server_fixtures.pg_db  # pg_session_db and pg_server: tests/conftest.py (one of each per session)


def _tree(root: Path) -> Path:
    write_run_folder(root / "long_llm", cfg=config(llm="m" * 20_000, target=merit_target()))
    write_run_folder(root / "bad_key",
                     cfg=config(target={"id": "t", "kdma_values": [{"kdma": "../../etc/passwd", "value": 1}]}))
    write_run_folder(root / "fine")
    return root


def _outcome(tree: Path, uri: str, experiment: str = DEFAULT_EXPERIMENT) -> dict:
    messages: list[str] = []
    summary = ingest(tree, uri, experiment, on_event=lambda e: messages.append(e.message) if e.kind == "message"
                     else None)
    client = MlflowClient(uri)
    eid = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([eid])
    return {
        "failed": sorted(o.error.split(": ", 1)[1] for o in summary.failures if o.error),
        "store_errors": [o.error for o in summary.failures if "store error" in (o.error or "")],
        "paths": sorted(r.data.tags[TAG_PATH] for r in runs),
        "llm_lengths": sorted((len(r.data.params.get(PARAM_LLM, "")), len(r.data.tags.get(TAG_LLM, "")))
                              for r in runs),
        "warnings": sorted(m for m in messages if "truncated" in m),
    }


def _expected(outcome: dict) -> None:
    assert outcome["store_errors"] == []
    assert outcome["paths"] == ["fine", "long_llm"]
    assert (6000, 8000) in outcome["llm_lengths"]
    assert outcome["warnings"] == [
        "long_llm: param 'llm_backbone': 20000 characters truncated to 6000 (MLflow's limit)",
        "long_llm: tag 'llm': 20000 characters truncated to 8000 (MLflow's limit)",
    ]
    assert len(outcome["failed"]) == 1 and "'kdma.../../etc/passwd' is refused by MLflow" in outcome["failed"][0]


def test_limits_on_sqlite_bulk_and_public_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = _tree(tmp_path / "exps")
    bulk = _outcome(tree, f"sqlite:///{tmp_path / 'bulk' / 'mlflow.db'}")
    _expected(bulk)
    monkeypatch.setenv("ALIGN_TRACK_BULK", "0")
    assert _outcome(tree, f"sqlite:///{tmp_path / 'public' / 'mlflow.db'}") == bulk


@pytest.mark.postgres
@pytest.mark.server
def test_limits_on_postgresql_and_a_server(pg_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = _tree(tmp_path / "exps")
    monkeypatch.setenv("ALIGN_TRACK_ARTIFACTS_ROOT", str(tmp_path / "pg-artifacts"))
    reference = _outcome(tree, f"sqlite:///{tmp_path / 'ref' / 'mlflow.db'}")
    assert _outcome(tree, pg_db) == reference
    with running_server(pg_db, tmp_path / "artifacts", tmp_path / "server.log") as server:
        assert _outcome(tree, server.url, "through-the-server") == reference
