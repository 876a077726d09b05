"""The writer without MLflow (store/sql_direct.py) opens only what it was proven on, and leaves the rest to MLflow:
a new store (made by MLflow, on a memory file system, then copied into place), another schema revision, another
MLflow version. What it writes is compared with MLflow's own paths in test_bulk_equivalence.py, test_sql_rows.py
and test_watch.py."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from align_track.ingest.pipeline import ingest
from align_track.store import dbapi, open_store, run_writer
from align_track.store.sql_direct import NEW_EXPERIMENT, NEW_STORE, DirectStore
from tests.support.factory import write_run_folder
from tests.support.readback import spy_write_path


def _schema(db: Path) -> tuple[list, list, list]:
    """Every table, index and constraint (each statement's clauses sorted: MLflow's migrations emit a table's
    constraints in set order, which varies between two creations in place too), the revision, the experiments."""
    with sqlite3.connect(db) as conn:
        tables = sorted(((kind, name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines()))
                         for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master")), key=str)
        revision = conn.execute("SELECT * FROM alembic_version").fetchall()
        experiments = conn.execute("SELECT experiment_id, name, artifact_location, lifecycle_stage "
                                   "FROM experiments").fetchall()
    return tables, revision, experiments


def test_a_new_store_made_on_scratch_is_the_store_mlflow_makes_in_place(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    if not run_writer.SCRATCH.is_dir():
        pytest.skip(f"no {run_writer.SCRATCH} on this machine")
    scratch, in_place = tmp_path / "scratch" / "mlflow.db", tmp_path / "in-place" / "mlflow.db"
    for db in (scratch, in_place):
        db.parent.mkdir()
    assert run_writer.create_on_scratch(f"sqlite:///{scratch}")
    MlflowClient(f"sqlite:///{in_place}").search_experiments()
    assert _schema(scratch) == _schema(in_place)
    # this process's scratch files only: another pytest worker may be making its own store there right now
    mine = f"align-track-{os.getpid()}-*"
    assert not list(scratch.parent.glob(".*creating*")) and not list(run_writer.SCRATCH.glob(mine))
    assert not run_writer.create_on_scratch(f"sqlite:///{scratch}")  # an existing store is left alone


def test_stores_it_does_not_know_are_written_through_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tmp_path / "exps"
    write_run_folder(tree / "a")
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert DirectStore.probe(uri, "x") == (None, NEW_STORE)
    stages: list[str] = []
    store = open_store.open_run_store(uri, "x", stage=stages.append)  # made through MLflow, then written directly
    assert store.direct and stages == [f"creating the MLflow store {tmp_path / 'store' / 'mlflow.db'} "
                                       "(first use: a few seconds)"]
    store.close()
    assert DirectStore.probe(uri, "y") == (None, NEW_EXPERIMENT)

    used = spy_write_path(monkeypatch)
    monkeypatch.setattr(dbapi, "DIRECT_SCHEMAS", {dbapi.installed_mlflow(): "some-other-revision"})
    events: list = []
    assert ingest(tree, uri, "x", on_event=events.append).count("ingested") == 1
    assert [e.kind for e in events if e.kind in ("stage", "message")] == []  # says nothing different
    monkeypatch.setattr(dbapi, "DIRECT_SCHEMAS", {"0.0.1": "dc11669786a5"})  # another MLflow version
    monkeypatch.setattr(dbapi, "installed_mlflow", lambda: "3.17.3")
    assert not dbapi.supported(uri)
    assert ingest(tree, uri, "x", force=True).count("updated") == 1
    assert used == ["bulk", "bulk"]
    monkeypatch.undo()
    assert dbapi.supported(uri) and not dbapi.supported("mysql://u@h/db") and not dbapi.supported("http://h:1")
    monkeypatch.setenv("MLFLOW_SQL_TRACE_ROLLUPS_ENABLED", "true")  # MLflow's writes would touch more tables
    assert not dbapi.supported(uri)
