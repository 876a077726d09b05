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

import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from align_track.records import RunRecord
from align_track.schema import TAG_COMPLETE, TAG_FINGERPRINT, TAG_KEY
from align_track.store import artifact_dirs, trace_writer
from align_track.store.runs_reader import RunRow
from align_track.store.sql_rows import BulkResult, BulkRun, TraceRows, run_artifact_uri, run_rows


def bulk_runs_supported(tracking_uri: str, artifact_location: str | None) -> bool:
    """Bulk needs the bulk trace path and a local file artifact location we can copy into."""
    return bool(artifact_location) and urlparse(artifact_location).scheme == "file" and \
        trace_writer.bulk_supported(tracking_uri)


def write_run_bulk(tracking_uri: str, experiment_id: str, artifact_location: str, record: RunRecord,
                   force: bool, claim: str) -> BulkResult:
    """Insert ``record`` as a complete, FINISHED run with its traces; artifacts copied first.

    The artifact files are copied before the transaction and removed again if it does not
    commit, so a committed run always has its files and a failed one leaves none.
    """
    return write_runs_bulk(tracking_uri, experiment_id, artifact_location, [BulkRun(record, force)], claim)[0]


def prepare_bulk_run(record: RunRecord, force: bool, experiment_id: str, location: str) -> BulkRun:
    """A BulkRun with its trace rows built now (the CPU-heavy part of a write: span JSON, size stats)."""
    run = BulkRun(record, force, location=location)
    if record.traces:
        run.trace_rows = trace_writer.trace_rows(str(experiment_id), run.run_id, record.traces, location)
    return run


def write_runs_bulk(tracking_uri: str, experiment_id: str, artifact_location: str,
                    items: Sequence[BulkRun], claim: str) -> list[BulkResult]:
    """Several runs, each complete and FINISHED, in one transaction: one result per item.

    A transaction (and on SQLite its file sync, ~10-40 ms) and ~20 statements per run were the fixed cost
    of a small run; here a batch shares one commit, one existence check and one executemany per table.
    Each run is still all-or-nothing (the transaction is), and the commit point is unchanged: a run is
    there complete or not at all. Identities must be distinct within a batch. If anything fails the
    whole batch is rolled back with its artifact folders removed; callers retry runs one by one to
    find the failing one.
    """
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from sqlalchemy import insert, select

    keys = [item.record.tags[TAG_KEY] for item in items]
    if len(set(keys)) != len(keys):
        raise ValueError("a batch of bulk runs holds one identity twice")
    store = trace_writer.sql_store(tracking_uri)
    folders: list[Path] = []
    committed = False
    try:
        for item in items:
            folders.append(artifact_dirs.copy_artifacts(artifact_location, item.run_id, item.record, claim))
        with store.engine.begin() as conn:
            trace_writer.begin_write(conn, store.db_type)
            if store.db_type == "postgresql":  # serialise writers of one identity (sorted: no deadlock)
                for key in sorted(keys):
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(key.encode()),))
            runs, tag_table = SqlRun.__table__, SqlTag.__table__
            others: dict[str, list[str]] = {}
            for run_uuid, key in conn.execute(
                select(runs.c.run_uuid, tag_table.c.value).join(
                    tag_table, tag_table.c.run_uuid == runs.c.run_uuid).where(
                    tag_table.c.key == TAG_KEY, tag_table.c.value.in_(keys),
                    runs.c.lifecycle_stage == "active", runs.c.experiment_id == int(experiment_id))
            ).all():
                others.setdefault(key, []).append(run_uuid)
            current = _current_fingerprints(conn, tag_table, [r for ids in others.values() for r in ids])
            now = int(time.time() * 1000)
            rows: dict[str, list[dict]] = {"runs": [], "tags": [], "params": [], "metrics": []}
            traces: list[TraceRows] = []
            results: list[BulkResult] = []
            location = None
            for item, key in zip(items, keys, strict=True):
                record, force, run_id = item.record, item.force, item.run_id
                mine = others.get(key, [])
                fingerprint = record.tags[TAG_FINGERPRINT]
                if mine and not force and any(current.get(r) == fingerprint for r in mine):
                    results.append(BulkResult(False, None, mine))
                    continue
                results.append(BulkResult(True, run_id, mine))
                # 1 ms apart in folder order, as one-by-one writes are: newest first stays a stable order
                run_rows(rows, record, run_id, experiment_id, run_artifact_uri(artifact_location, run_id), claim,
                          now + len(rows["runs"]))
                if item.scenes:
                    if location is None:
                        location = trace_writer.experiment_location(conn, str(experiment_id))
                    if item.trace_rows is None or item.location != location:
                        if len(record.traces) != item.scenes:
                            raise ValueError(f"trace rows of run {run_id} were built for another experiment")
                        item.trace_rows = trace_writer.trace_rows(str(experiment_id), run_id, record.traces, location)
                    traces.append(item.trace_rows)
            if rows["runs"]:
                conn.execute(insert(runs), rows["runs"])
                conn.execute(insert(tag_table), rows["tags"])
                if rows["params"]:
                    conn.execute(insert(SqlParam.__table__), rows["params"])
                if rows["metrics"]:
                    conn.execute(insert(SqlMetric.__table__), rows["metrics"])
                    conn.execute(insert(SqlLatestMetric.__table__), rows["metrics"])
                trace_writer.insert_rows(conn, traces)
        committed = True
        artifact_dirs.settle(folders, [result.written for result in results])
        return results
    finally:
        if not committed:
            artifact_dirs.remove(folders)


def _current_fingerprints(conn: Any, tag_table: Any, run_ids: list[str]) -> dict[str, str]:
    """Run id -> fingerprint, for the complete runs among ``run_ids``."""
    from sqlalchemy import select

    if not run_ids:
        return {}
    found: dict[str, dict[str, str]] = {}
    for run_uuid, key, value in conn.execute(
        select(tag_table.c.run_uuid, tag_table.c.key, tag_table.c.value).where(
            tag_table.c.run_uuid.in_(run_ids), tag_table.c.key.in_([TAG_COMPLETE, TAG_FINGERPRINT]))
    ).all():
        found.setdefault(run_uuid, {})[key] = value
    return {r: t[TAG_FINGERPRINT] for r, t in found.items() if t.get(TAG_COMPLETE) == "true" and TAG_FINGERPRINT in t}


def runs_of_keys(tracking_uri: str, experiment_id: str, keys: Sequence[str]) -> dict[str, list[RunRow]]:
    """Every live run of each identity in ``keys`` (run rows with their tags, no params or metrics), in one
    read: what ``RunStore.runs_for_key`` answers for one key through MLflow's search, ~50 ms each."""
    from mlflow.store.tracking.dbmodels.models import SqlRun, SqlTag
    from sqlalchemy import select

    if not keys:
        return {}
    store = trace_writer.sql_store(tracking_uri)
    runs, tags = SqlRun.__table__, SqlTag.__table__
    out: dict[str, list[RunRow]] = {}
    with store.engine.connect() as conn:
        found = conn.execute(
            select(runs.c.run_uuid, tags.c.value, runs.c.name, runs.c.status, runs.c.start_time, runs.c.end_time,
                   runs.c.lifecycle_stage, runs.c.artifact_uri).join(tags, tags.c.run_uuid == runs.c.run_uuid).where(
                tags.c.key == TAG_KEY, tags.c.value.in_(list(keys)), runs.c.lifecycle_stage == "active",
                runs.c.experiment_id == int(experiment_id))
        ).all()
        by_id = {r.run_uuid: RunRow(r.run_uuid, r.name or "", r.status, r.start_time, r.end_time, r.lifecycle_stage,
                                    r.artifact_uri, experiment_id=str(experiment_id)) for r in found}
        if by_id:
            for run_uuid, key, value in conn.execute(
                    select(tags.c.run_uuid, tags.c.key, tags.c.value).where(tags.c.run_uuid.in_(list(by_id)))):
                by_id[run_uuid].tags[key] = value
    for row in by_id.values():
        out.setdefault(row.tags[TAG_KEY], []).append(row)
    return out


def delete_runs_bulk(tracking_uri: str, experiment_id: str, run_ids: Sequence[str]) -> None:
    """Delete runs with every trace linked to them, as ``RunStore.delete_run`` does one by one (~140 ms a run:
    a trace search, a trace delete and a run delete, each its own transaction): here one read finds all their
    traces, MLflow's store deletes them 500 per call, and marks the runs deleted in one transaction."""
    from mlflow.entities.entity_type import EntityAssociationType
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking.dbmodels.models import SqlEntityAssociation, SqlTraceInfo, SqlTraceMetadata
    from sqlalchemy import select, union

    from align_track.schema import META_SOURCE_RUN

    ids = list(dict.fromkeys(run_ids))
    if not ids:
        return
    store = trace_writer.sql_store(tracking_uri)
    links, infos, meta = SqlEntityAssociation.__table__, SqlTraceInfo.__table__, SqlTraceMetadata.__table__
    # search_traces(run_id=...) matches a run link or the mlflow.sourceRun metadata: so do we.
    linked = select(links.c.source_id.label("trace_id")).where(
        links.c.destination_id.in_(ids), links.c.destination_type == EntityAssociationType.RUN,
        links.c.source_type == EntityAssociationType.TRACE)
    sourced = select(meta.c.request_id.label("trace_id")).where(meta.c.key == META_SOURCE_RUN, meta.c.value.in_(ids))
    both = union(linked, sourced).subquery()
    with store.engine.connect() as conn:
        trace_ids = list(conn.execute(
            select(infos.c.request_id).where(infos.c.request_id.in_(select(both.c.trace_id)),
                                             infos.c.experiment_id == int(experiment_id))).scalars())
    for start in range(0, len(trace_ids), 500):
        store.delete_traces(str(experiment_id), trace_ids=trace_ids[start : start + 500])
    with store.ManagedSessionMaker(read_only=False) as session:
        for run_id in ids:
            try:
                run = store._get_run(run_uuid=run_id, session=session)
            except MlflowException:  # already gone (a concurrent ingest deleted it)
                continue
            store._mark_run_deleted(session, run)


def sweep_orphans(tracking_uri: str, artifact_location: str, alive: Callable[[str, int], bool]) -> list[str]:
    """Remove run artifact folders a killed bulk writer left behind (``artifact_dirs.sweep_orphans``)."""
    from mlflow.store.tracking.dbmodels.models import SqlRun
    from sqlalchemy import select

    def known(run_ids: list[str]) -> set[str]:
        runs = SqlRun.__table__
        with trace_writer.sql_store(tracking_uri).engine.connect() as conn:
            return set(conn.execute(select(runs.c.run_uuid).where(runs.c.run_uuid.in_(run_ids))).scalars())

    return artifact_dirs.sweep_orphans(artifact_location, alive, known)
