"""Build a big MLflow SQLite store fast, for benchmarks: MLflow creates the schema and the experiment, then
the runs go in with executemany in one transaction (logging 10,000 runs through MLflow would take hours).

Each benchmark supplies its own run shapes; this module owns the MLflow table layout they are written in.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

Row = tuple


def new_store(tmp: Path, experiment: str, artifacts: str) -> int:
    """A fresh store at ``tmp`` with one experiment; its id. The file is released for direct writes."""
    from mlflow import MlflowClient

    tmp.unlink(missing_ok=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp}")
    eid = int(client.create_experiment(experiment, artifact_location=artifacts))
    client._tracking_client.store.engine.dispose()  # release the file before we write and rename it
    return eid


def run_row(run_id: str, name: str, status: str, start: int, artifacts: str, experiment_id: int) -> Row:
    """A ``runs`` row (ended 500 ms after ``start``, active, artifacts under the experiment's location)."""
    return (run_id, name, "LOCAL", "bench", "", "bench", status, start, start + 500, "",
            "active", f"{artifacts}/{run_id}/artifacts", experiment_id, None)


def insert_runs(db: Path, runs: Iterable[Row], params: Iterable[Row], tags: Iterable[Row],
                metrics: Iterable[Row], latest: Iterable[Row]) -> None:
    """Rows into runs, params (key, value, run), tags (key, value, run), metrics (key, value, timestamp, run,
    step, is_nan) and latest_metrics (key, value, timestamp, step, is_nan, run), in one transaction."""
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status,"
            " start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs)
        conn.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", params)
        conn.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tags)
        conn.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
            metrics)
        conn.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)",
            latest)
    conn.close()


def building_path(db: Path) -> Path:
    """Where ``db`` is built before it is renamed into place (so a half-built store is never used)."""
    return db.with_name(f"{db.name}.building-{os.getpid()}")
