"""Races between real ``align-track ingest`` processes on one SQLite file or PostgreSQL database.

Each test starts two CLI processes at once (no mocks, no threads standing in for processes) and
checks the store afterwards: exactly one complete run per run folder, both commands exit 0.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from mlflow import MlflowClient

from align_track.demo.generate import generate_demo
from tests.support import server_fixtures
from tests.support.server_fixtures import align_track_cmd, cli_env

pg_db = server_fixtures.pg_db


def _two_ingests(tree: Path, uri: str, **env: str) -> list[tuple[int, str, str]]:
    procs = [subprocess.Popen(align_track_cmd("ingest", "--experiments-dir", str(tree), "--mlflow-uri", uri),
                              env=cli_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


def _complete_runs_per_key(db: Path) -> Counter:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT k.value FROM runs r JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = 'align_track.key' "
            "JOIN tags c ON c.run_uuid = r.run_uuid AND c.key = 'align_track.complete' AND c.value = 'true' "
            "WHERE r.lifecycle_stage = 'active'").fetchall()
    return Counter(value for (value,) in rows)


def _folders(tree: Path) -> int:
    return sum(1 for _ in tree.rglob("input_output.json"))


def test_two_ingests_of_one_tree_into_an_existing_store_never_duplicate(tmp_path: Path) -> None:
    """Both processes plan 'create' for every folder; only one may write each (the check is under the lock)."""
    db = tmp_path / "store" / "mlflow.db"
    uri = f"sqlite:///{db}"
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=30, scenes=2, seed=5)
    MlflowClient(uri).search_experiments()  # an existing store, so both start writing at once
    results = _two_ingests(tree, uri)
    assert [code for code, _, _ in results] == [0, 0], results
    per_key = _complete_runs_per_key(db)
    assert per_key and max(per_key.values()) == 1, [k for k, n in per_key.items() if n > 1]
    assert sum(per_key.values()) >= _folders(tree)


def test_two_ingests_on_a_brand_new_file_both_finish(tmp_path: Path) -> None:
    """Creating MLflow's schema is serialised: the second process waits instead of 'table already exists'."""
    db = tmp_path / "store" / "mlflow.db"
    uri = f"sqlite:///{db}"
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=6, scenes=2, seed=6)
    results = _two_ingests(tree, uri)
    assert [code for code, _, _ in results] == [0, 0], results
    assert all("Traceback" not in out + err for _, out, err in results), results
    per_key = _complete_runs_per_key(db)
    assert per_key and max(per_key.values()) == 1


@pytest.mark.postgres
def test_two_ingests_on_a_brand_new_postgresql_database_both_finish(pg_db: str, tmp_path: Path) -> None:
    """MLflow's schema creation on a new PostgreSQL database is serialised (an advisory lock), as on SQLite: the
    second process waits instead of dying with 'UniqueViolation ... alembic_version' and a 139-line traceback."""
    import psycopg2

    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=6, scenes=2, seed=6)
    results = _two_ingests(tree, pg_db, ALIGN_TRACK_ARTIFACTS_ROOT=str(tmp_path / "artifacts"))
    assert [code for code, _, _ in results] == [0, 0], results
    assert all("Traceback" not in out + err for _, out, err in results), results
    with psycopg2.connect(pg_db.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("SELECT k.value FROM runs r JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = 'align_track.key' "
                    "JOIN tags c ON c.run_uuid = r.run_uuid AND c.key = 'align_track.complete' AND c.value = 'true' "
                    "WHERE r.lifecycle_stage = 'active'")
        per_key = Counter(value for (value,) in cur.fetchall())
    assert len(per_key) >= _folders(tree) and max(per_key.values()) == 1, per_key
