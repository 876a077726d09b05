"""A big store of runs and traces for the scenes-across-runs benchmark, built in seconds rather than hours.

A demo store is ingested by align-track's real ingest (a few dozen run folders, every field of the data model),
then each of its runs is cloned with fresh run and trace ids into a store whose schema MLflow created itself,
row for row in every table a run and its traces fill (runs, params, tags, metrics, latest_metrics, trace_info,
trace_tags, trace_request_metadata, spans, entity_associations), one transaction per table. The clones keep
their template's scenes and decisions, so a scene is met by many runs of many ADMs, as in a real sweep.

SQLite or PostgreSQL (any URI MLflow can create a schema in).
"""

from __future__ import annotations

import base64
import random
import re
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from align_track.store.uri import store_kind

EXPERIMENT = "align-system-experiments"
TABLES = ("runs", "params", "tags", "metrics", "latest_metrics", "trace_info", "trace_tags",
          "trace_request_metadata", "spans", "entity_associations")
GENERATED = {"spans": {"duration_ns"}}
"""Columns the database computes itself (inserting them fails)."""
BATCH = 2_000


def _b64_trace(request_id: str) -> str:
    """The OpenTelemetry trace id a span's JSON stores (base64 of the id's 16 bytes)."""
    return base64.b64encode(bytes.fromhex(request_id.removeprefix("tr-"))).decode()


def _templates(source_db: Path) -> tuple[str, dict[str, list[str]], dict[str, dict[str, list[dict]]]]:
    """(the source's artifact root, columns per table, rows per table per source run id)."""
    conn = sqlite3.connect(source_db)
    conn.row_factory = sqlite3.Row
    columns: dict[str, list[str]] = {}
    for table in TABLES:
        info = conn.execute(f"PRAGMA table_xinfo({table})").fetchall()
        columns[table] = [r["name"] for r in info if r["hidden"] == 0 and r["name"] not in GENERATED.get(table, ())]
    (location,) = conn.execute("SELECT artifact_location FROM experiments WHERE name = ?", (EXPERIMENT,)).fetchone()
    rows: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    runs = {r["run_uuid"]: dict(r) for r in conn.execute("SELECT * FROM runs WHERE lifecycle_stage = 'active'")}
    for run_id, run in runs.items():
        rows[run_id]["runs"].append(run)
    for table in ("params", "tags", "metrics", "latest_metrics"):
        for r in conn.execute(f"SELECT * FROM {table}"):
            if r["run_uuid"] in runs:
                rows[r["run_uuid"]][table].append(dict(r))
    trace_run = {r[0]: r[1] for r in conn.execute(
        "SELECT source_id, destination_id FROM entity_associations WHERE source_type = 'trace'")}
    for r in conn.execute("SELECT * FROM entity_associations WHERE source_type = 'trace'"):
        rows[r["destination_id"]]["entity_associations"].append(dict(r))
    for table, key in (("trace_info", "request_id"), ("trace_tags", "request_id"),
                       ("trace_request_metadata", "request_id"), ("spans", "trace_id")):
        for r in conn.execute(f"SELECT * FROM {table}"):
            run_id = trace_run.get(r[key])
            if run_id in runs:
                rows[run_id][table].append(dict(r))
    conn.close()
    return location, columns, rows


def _clones(templates: dict[str, dict[str, list[dict]]], runs: int, eid: int, old_root: str, new_root: str,
            seed: int) -> Iterator[dict[str, list[dict]]]:
    """``runs`` runs, cycling through the templates, each with new run/trace ids, folder and identity."""
    rng = random.Random(seed)
    order = sorted(templates)
    for n in range(runs):
        template = templates[order[n % len(order)]]
        old_run = template["runs"][0]["run_uuid"]
        new_run = uuid.UUID(int=rng.getrandbits(128)).hex
        swap = {old_run: new_run, old_root: new_root}
        for info in template["trace_info"]:
            new_trace = "tr-" + uuid.UUID(int=rng.getrandbits(128)).hex
            swap[info["request_id"]] = new_trace
            swap[_b64_trace(info["request_id"])] = _b64_trace(new_trace)

        pattern = re.compile("|".join(re.escape(old) for old in sorted(swap, key=len, reverse=True)))

        def fix(value: Any, pattern: re.Pattern = pattern, swap: dict[str, str] = swap) -> Any:
            return pattern.sub(lambda m: swap[m.group()], value) if isinstance(value, str) else value

        shift = n * 1_000  # a second apart: runs and their traces in a stable order
        out: dict[str, list[dict]] = {}
        for table, rows in template.items():
            made = []
            for row in rows:
                row = {k: fix(v) for k, v in row.items()}
                if "experiment_id" in row:
                    row["experiment_id"] = eid
                if table == "runs":
                    row["start_time"] += shift
                    row["end_time"] = (row["end_time"] or row["start_time"]) + shift
                if table == "trace_info":
                    row["timestamp_ms"] += shift
                if table == "tags" and row["key"] in ("experiment_path", "align_track.key", "align_track.source_path"):
                    row["value"] = f"{row['value']}/clone-{n:06d}"
                if table == "entity_associations":
                    row["association_id"] = uuid.UUID(int=rng.getrandbits(128)).hex
                made.append(row)
            out[table] = made
        yield out


def _insert(uri: str, columns: dict[str, list[str]], batches: dict[str, list[dict]]) -> None:
    """Every table's rows in one transaction (SQLite: executemany; PostgreSQL: execute_values)."""
    kind = store_kind(uri)
    if kind == "sqlite":
        conn = sqlite3.connect(uri.removeprefix("sqlite:///"))
        with conn:
            for table in TABLES:
                cols = columns[table]
                names = ", ".join(f'"{c}"' for c in cols)
                marks = ", ".join("?" for _ in cols)
                conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})",
                                 [tuple(r.get(c) for c in cols) for r in batches[table]])
        conn.close()
        return
    import psycopg2
    from psycopg2.extras import execute_values

    from align_track.store.runs_reader import with_installed_driver

    conn = psycopg2.connect(with_installed_driver(uri).replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with conn, conn.cursor() as cur:
            for table in TABLES:
                cols = columns[table]
                rows = [tuple(_pg(c, r.get(c)) for c in cols) for r in batches[table]]
                names = ", ".join(f'"{c}"' for c in cols)
                execute_values(cur, f"INSERT INTO {table} ({names}) VALUES %s", rows, page_size=1000)
    finally:
        conn.close()


def _pg(column: str, value: Any) -> Any:
    """SQLite stores booleans as 0/1; PostgreSQL wants booleans there."""
    if column == "is_nan" and value is not None:
        return bool(value)
    return value


def build_scene_store(uri: str, runs: int, template_db: Path, traces_per_run: int | None = 8,
                      seed: int = 0) -> dict[str, int]:
    """Fill ``uri`` (an empty SQLite file path URI or PostgreSQL database) with ``runs`` runs cloned from the
    runs of ``template_db`` (an align-track-ingested SQLite store) that have ``traces_per_run`` traces (None:
    every run); returns counts of runs and traces."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    artifacts = (Path(template_db).parent / "artifacts-clones").as_uri()
    eid = int(client.create_experiment(EXPERIMENT, artifact_location=artifacts))
    store = client._tracking_client.store
    store.engine.dispose()
    old_root, columns, templates = _templates(Path(template_db))
    if traces_per_run is not None:
        templates = {r: t for r, t in templates.items() if len(t.get("trace_info", [])) == traces_per_run}
    if not templates:
        raise ValueError(f"no run of {template_db} has {traces_per_run} traces")
    counts = {"runs": 0, "traces": 0}
    batch: dict[str, list[dict]] = defaultdict(list)
    for run in _clones(templates, runs, eid, old_root, artifacts, seed):
        for table, rows in run.items():
            batch[table].extend(rows)
        counts["runs"] += 1
        counts["traces"] += len(run.get("trace_info", []))
        if len(batch["spans"]) >= BATCH:
            _insert(uri, columns, batch)
            batch = defaultdict(list)
    if batch:
        _insert(uri, columns, batch)
    return counts
