"""Write a whole run (row, params, metrics, tags, artifacts, traces) in one SQL transaction.

MLflow's public API costs one transaction (and on SQLite one fsync) per call: creating,
logging, tagging and finishing a run is ~8 calls before any trace. On a SQL store we
insert the same rows MLflow would, in one transaction, so a run is either absent or
complete: there is no half-written state at all. The transaction also re-checks, under
the database's write lock, that no complete run with the same identity and fingerprint
appeared meanwhile, so concurrent ingests of one SQLite/PostgreSQL store cannot both
write it.

Like the bulk trace rows, this relies on MLflow's schema: used only for the versions in
``trace_writer.BULK_TESTED_MLFLOW_VERSIONS``, on sqlite/postgresql URIs with file
artifact locations, and proven by tests/store/test_bulk_equivalence.py to read back exactly
as the public path does.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from align_track.records import RunRecord
from align_track.schema import TAG_CLAIM, TAG_COMPLETE, TAG_FINGERPRINT, TAG_KEY, USER
from align_track.store import trace_writer
from align_track.store.provenance import provenance

WRITING_MARKER = ".align-track-writing"
"""In a run's artifact folder (beside ``artifacts/``, so never listed as an artifact) while it is written."""


@dataclass(frozen=True)
class BulkResult:
    """``written`` False means a complete run with this fingerprint already existed (nothing written)."""

    written: bool
    run_id: str | None
    others: list[str]
    """Other live runs of the same identity seen inside the transaction: to clean up afterwards."""


def bulk_runs_supported(tracking_uri: str, artifact_location: str | None) -> bool:
    """Bulk needs the bulk trace path and a local file artifact location we can copy into."""
    return bool(artifact_location) and urlparse(artifact_location).scheme == "file" and \
        trace_writer.bulk_supported(tracking_uri)


def _local_path(uri: str) -> Path:
    return Path(url2pathname(urlparse(uri).path))


def write_run_bulk(tracking_uri: str, experiment_id: str, artifact_location: str, record: RunRecord,
                   force: bool, claim: str) -> BulkResult:
    """Insert ``record`` as a complete, FINISHED run with its traces; artifacts copied first.

    The artifact files are copied before the transaction and removed again if it does not
    commit, so a committed run always has its files and a failed one leaves none.
    """
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from sqlalchemy import insert, select

    store = trace_writer.sql_store(tracking_uri)
    run_id = uuid.uuid4().hex
    run_artifacts = f"{artifact_location.rstrip('/')}/{run_id}/artifacts"
    target_dir = _local_path(run_artifacts)
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    # Who is filling this folder: if we are killed before the commit, the next ingest sees a dead
    # writer's folder with no run row and removes it (sweep_orphans). Written whole, then renamed.
    pending = target_dir.parent / (WRITING_MARKER + ".tmp")
    pending.write_text(claim)
    pending.rename(target_dir.parent / WRITING_MARKER)
    for artifact in record.artifacts:
        destination = target_dir / artifact.artifact_dir if artifact.artifact_dir else target_dir
        destination.mkdir(parents=True, exist_ok=True)
        shutil.copy2(artifact.path, destination / Path(artifact.path).name)

    now = int(time.time() * 1000)
    key, fingerprint = record.tags[TAG_KEY], record.tags[TAG_FINGERPRINT]
    tags = {**provenance(), **record.tags}
    tags[TAG_CLAIM] = claim
    tags["mlflow.runName"] = record.run_name
    tags[TAG_COMPLETE] = "true"
    committed = False
    try:
        with store.engine.begin() as conn:
            trace_writer.begin_write(conn, store.db_type)
            if store.db_type == "postgresql":  # serialise writers of one identity
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(key.encode()),))
            runs, tag_table = SqlRun.__table__, SqlTag.__table__
            rows = conn.execute(
                select(runs.c.run_uuid).join(tag_table, tag_table.c.run_uuid == runs.c.run_uuid).where(
                    tag_table.c.key == TAG_KEY, tag_table.c.value == key,
                    runs.c.lifecycle_stage == "active", runs.c.experiment_id == int(experiment_id))
            ).scalars().all()
            others = list(rows)
            if others and not force:
                complete = set(conn.execute(
                    select(tag_table.c.run_uuid).where(
                        tag_table.c.run_uuid.in_(others), tag_table.c.key == TAG_COMPLETE,
                        tag_table.c.value == "true")
                ).scalars())
                current = set(conn.execute(
                    select(tag_table.c.run_uuid).where(
                        tag_table.c.run_uuid.in_(complete or {""}), tag_table.c.key == TAG_FINGERPRINT,
                        tag_table.c.value == fingerprint)
                ).scalars())
                if current:
                    return BulkResult(False, None, others)
            conn.execute(insert(runs), [{
                "run_uuid": run_id, "name": record.run_name, "source_type": "UNKNOWN", "source_name": "",
                "entry_point_name": "", "user_id": tags[USER], "status": "FINISHED", "start_time": now,
                "end_time": now, "deleted_time": None, "source_version": "", "lifecycle_stage": "active",
                "artifact_uri": run_artifacts, "experiment_id": int(experiment_id),
            }])
            conn.execute(insert(tag_table), [{"key": k, "value": v, "run_uuid": run_id} for k, v in tags.items()])
            if record.params:
                conn.execute(insert(SqlParam.__table__),
                             [{"key": k, "value": v, "run_uuid": run_id} for k, v in record.params.items()])
            if record.metrics:
                metric_rows = [{"key": k, "value": float(v), "timestamp": now, "step": 0, "is_nan": False,
                                "run_uuid": run_id} for k, v in record.metrics.items()]
                conn.execute(insert(SqlMetric.__table__), metric_rows)
                conn.execute(insert(SqlLatestMetric.__table__), metric_rows)
            trace_writer.insert_traces(conn, store, str(experiment_id), run_id, list(record.traces))
        committed = True
        (target_dir.parent / WRITING_MARKER).unlink(missing_ok=True)
        return BulkResult(True, run_id, others)
    finally:
        if not committed:
            shutil.rmtree(target_dir.parent, ignore_errors=True)


def sweep_orphans(tracking_uri: str, artifact_location: str, alive: Callable[[str, int], bool]) -> list[str]:
    """Remove run artifact folders a killed bulk writer left behind; returns the run ids removed.

    A folder counts only if it carries our writing marker, its writer is dead, and no run row
    has its id (a writer killed after its commit only leaves the marker, which is dropped).
    """
    from mlflow.store.tracking.dbmodels.models import SqlRun
    from sqlalchemy import select

    root = _local_path(artifact_location)
    candidates: dict[str, Path] = {}
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    for entry in entries:
        marker = Path(entry.path) / WRITING_MARKER
        try:
            token = marker.read_text()
            written_ms = int(marker.stat().st_mtime * 1000)
        except OSError:
            continue
        if not alive(token, written_ms):  # another host's writer: alive while its lease runs
            candidates[entry.name] = Path(entry.path)
    if not candidates:
        return []
    store = trace_writer.sql_store(tracking_uri)
    runs = SqlRun.__table__
    with store.engine.connect() as conn:
        known = set(conn.execute(select(runs.c.run_uuid).where(runs.c.run_uuid.in_(list(candidates)))).scalars())
    removed = []
    for run_id, folder in candidates.items():
        if run_id in known:
            (folder / WRITING_MARKER).unlink(missing_ok=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(run_id)
    return removed
