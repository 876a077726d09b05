"""Write an experiment of a SQLite or PostgreSQL store without MLflow: the ingest's, the watcher's and the Hydra
callback's writer on the stores it knows.

``import mlflow`` (plus opening MLflow's store, which checks the schema through SQLAlchemy and alembic) costs
seconds before the first row; a command that writes one run folder needs a few milliseconds of SQL. This
writer inserts, updates and deletes the rows MLflow's own store writes for align-track's data model, with the
plain database driver (store/dbapi.py), the rows from store/sql_rows.py, each run in one transaction, as the
bulk writer through MLflow's store does (store/sql_bulk.py, kept as the path forced by ``ALIGN_TRACK_DIRECT=0``).

It opens only a store whose schema revision it knows, with an existing experiment whose artifacts are local
files (:meth:`DirectStore.open` answers None otherwise, and the caller goes through MLflow, which also creates
stores and experiments). The stores it writes read back through MLflow exactly as MLflow-written ones
(tests/store/test_sql_direct.py, tests/store/test_bulk_equivalence.py), and every guarantee the README lists
(claims, concurrent writers, kill -9, limits) is tested on it, since it is the default.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from align_track.errors import one_line
from align_track.records import RunRecord, TraceRecord
from align_track.schema import META_SOURCE_RUN, TAG_COMPLETE, TAG_FINGERPRINT, TAG_KEY, USER
from align_track.store import artifact_dirs, dbapi, sql_rows
from align_track.store.claims import AppendConflict, ClaimRule, Written, claim_is_alive, claim_token
from align_track.store.dbapi import Db, Tx, in_list
from align_track.store.retries import retry_call
from align_track.store.runs_reader import RunRow, gc_paused, read_runs
from align_track.store.sql_rows import BulkResult, BulkRun, TraceRows, per_folder
from align_track.store.uri import StoreError, check_sqlite_store, check_writable, sqlite_path

DELETE_CHUNK = 500
"""Traces deleted per statement (as the bulk writer hands them to MLflow's ``delete_traces``)."""

ARCHIVE_REPO = "ARCHIVE_REPO"
"""``mlflow.trace.spansLocation`` of a trace whose spans MLflow archived to its artifact store: deleting one
also deletes files, which only MLflow does."""

ASSESSMENT_SOURCE_RUN = "mlflow.assessment.sourceRunId"


NEW_STORE = "new store"
NEW_EXPERIMENT = "new experiment"


class ExperimentGone(StoreError):
    """The experiment was deleted (or removed) while we wrote into it, as MLflow refuses a write into it."""


def deleted_experiment(name: str, experiment_id: str) -> StoreError:
    """The one error for writing into a deleted experiment (the MLflow path raises the same)."""
    return StoreError(f"experiment {name!r} is deleted; restore it (mlflow experiments restore --experiment-id "
                      f"{experiment_id}) or pick another name")


class DirectStore:
    """The ingest's handle on one experiment of a SQL store, written without MLflow (the same methods as
    ``run_writer.RunStore``, which goes through MLflow)."""

    direct = True
    bulk = True

    def __init__(self, tracking_uri: str, experiment_name: str, db: Db, experiment_id: str, artifact_location: str):
        self.tracking_uri = tracking_uri
        self.kind = db.kind
        self.experiment_name = experiment_name
        self.db = db
        self.experiment_id = experiment_id
        self.artifact_location = artifact_location

    @classmethod
    def open(cls, tracking_uri: str, experiment_name: str) -> DirectStore | None:
        """The experiment's store, or None when MLflow must do it (see :meth:`probe`)."""
        return cls.probe(tracking_uri, experiment_name)[0]

    @classmethod
    def probe(cls, tracking_uri: str, experiment_name: str) -> tuple[DirectStore | None, str]:
        """The experiment's store, or None and why MLflow must do it: :data:`NEW_STORE` (no store yet: MLflow
        creates it), :data:`NEW_EXPERIMENT`, or another reason (a schema this writer was not proven on, artifacts
        that are not local files, ...).

        StoreError for what no path could use: a database that does not answer, a foreign SQLite file, an
        unwritable store, a deleted experiment.
        """
        if not dbapi.supported(tracking_uri):
            return None, "not a store this writer knows"
        path = sqlite_path(tracking_uri)
        if path is not None:
            if not path.is_file() or path.stat().st_size == 0:
                return None, NEW_STORE  # MLflow creates it
            check_sqlite_store(path)
            check_writable(path)
        db = Db(tracking_uri)
        try:
            try:
                db.connection()
            except Exception as exc:  # noqa: BLE001 - unreachable, refused, unreadable: one line
                raise StoreError(f"cannot read {_redact(tracking_uri)}: {one_line(exc)}") from None
            revision = dbapi.schema_revision(db)
            if revision != dbapi.expected_revision():
                db.close()
                return None, NEW_STORE if revision is None and _empty(db) else f"schema revision {revision}"
            found = db.read("SELECT experiment_id, lifecycle_stage, artifact_location FROM experiments "
                            "WHERE name = ?", (experiment_name,))
            if not found:
                db.close()
                return None, NEW_EXPERIMENT
            experiment_id, stage, location = str(found[0][0]), found[0][1], found[0][2]
            if stage != "active":
                raise deleted_experiment(experiment_name, experiment_id)
            if not artifact_dirs.is_local(location):
                db.close()
                return None, "artifacts kept elsewhere than local files"
        except BaseException:
            db.close()
            raise
        store = cls(tracking_uri, experiment_name, db, experiment_id, location)
        # artifact folders of writers killed mid-write (kill -9, power loss)
        artifact_dirs.sweep_orphans(location, claim_is_alive, store._known_runs)
        return store, ""

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ reads

    def live_runs(self) -> list[RunRow]:
        """Every live run of the experiment, in one read: the basis for skip/update/adopt decisions."""
        cursor = self.db.cursor()
        try:
            with gc_paused():
                return read_runs(cursor, '"key"', self.experiment_id)
        finally:
            cursor.close()

    def keyed_runs(self) -> list[RunRow]:
        """Every live run this tool wrote."""
        return [r for r in self.live_runs() if TAG_KEY in r.tags]

    def runs_for_key(self, key: str) -> list[RunRow]:
        """Fresh view of one identity's runs, for the claim-then-verify steps."""
        return self.runs_of_keys([key]).get(key, [])

    def runs_of_keys(self, keys: Sequence[str]) -> dict[str, list[RunRow]]:
        """Every live run of each identity in ``keys`` (with its tags; no params or metrics), in one read."""
        if not keys:
            return {}
        keys = list(keys)
        found = self.db.read(
            "SELECT runs.run_uuid, tags.value, runs.name, runs.status, runs.start_time, runs.end_time, "
            "runs.lifecycle_stage, runs.artifact_uri FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid "
            f'WHERE tags."key" = ? AND tags.value IN {in_list(keys)} AND runs.lifecycle_stage = ? '
            "AND runs.experiment_id = ?", (TAG_KEY, *keys, "active", int(self.experiment_id)))
        by_id = {r[0]: RunRow(r[0], r[2] or "", r[3], _int(r[4]), _int(r[5]), r[6], r[7] or "",
                              experiment_id=self.experiment_id) for r in found}
        if by_id:
            ids = list(by_id)
            for run_uuid, key, value in self.db.read(
                    f'SELECT run_uuid, "key", value FROM tags WHERE run_uuid IN {in_list(ids)}', ids):
                by_id[run_uuid].tags[key] = value
        out: dict[str, list[RunRow]] = {}
        for row in by_id.values():
            out.setdefault(row.tags[TAG_KEY], []).append(row)
        return out

    def artifact_sizes(self, run_id: str) -> dict[str, int] | None:
        """Sizes of the run's top-level artifact files by name; None when they cannot be listed."""
        found = self.db.read("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,))
        if not found or not found[0][0]:
            return None
        if artifact_dirs.is_local(found[0][0]):
            return artifact_dirs.file_sizes(found[0][0])
        from align_track.store.run_writer import mlflow_artifact_sizes  # elsewhere (S3, a server): MLflow knows

        return mlflow_artifact_sizes(self.tracking_uri, run_id)

    def _known_runs(self, run_ids: list[str]) -> set[str]:
        return {r[0] for r in self.db.read(f"SELECT run_uuid FROM runs WHERE run_uuid IN {in_list(run_ids)}",
                                           run_ids)}

    # ------------------------------------------------------------------ whole runs

    def prepare(self, record: RunRecord, force: bool) -> BulkRun:
        """A BulkRun with its trace rows built now (the CPU-heavy part of a write)."""
        return prepare_bulk_run(record, force, self.experiment_id, self.artifact_location)

    def write(self, record: RunRecord, key: str, force: bool, claim_lost: ClaimRule, superseded: ClaimRule,
              notice: Callable[[str], None] | None = None) -> Written:
        """One run in one transaction (complete or absent), then the runs it replaces deleted."""
        [result] = retry_call(self.write_runs, [self.prepare(record, force)], claim_token(), notice=notice)
        if not result.written:  # another ingest committed the same run folder meanwhile
            return Written(None)
        if result.others:
            doomed = superseded(result.run_id, retry_call(self.runs_for_key, key, notice=notice))
            if doomed:
                retry_call(self.delete_runs, doomed, notice=notice)
        return Written(result.run_id)

    def write_batch(self, items: list[tuple[BulkRun, str]], superseded: ClaimRule,
                    notice: Callable[[str], None] | None = None) -> list[Written | Exception]:
        """Several runs ``(bulk run, key)`` in one transaction, then the runs each replaces deleted; one
        ``Written`` (or the exception that run met) per item, in order.

        If the shared transaction fails, nothing of it is left and the runs are written one run folder at a
        time, so a folder the store refuses fails alone (all its targets: none published), the others go in.
        """
        try:
            results = retry_call(self.write_runs, [item for item, _ in items], claim_token(), notice=notice)
        except Exception as exc:  # noqa: BLE001 - retried one folder at a time below, each failure its own
            return per_folder(items, exc, lambda folder: self.write_batch(folder, superseded, notice))
        written: list[Written | Exception] = [Written(r.run_id) if r.written else Written(None) for r in results]
        replacing = {key: result.run_id for (_, key), result in zip(items, results, strict=True)
                     if result.written and result.others}
        if replacing:  # the runs ours replace: one read and one delete for the whole batch
            try:
                now = retry_call(self.runs_of_keys, list(replacing), notice=notice)
                doomed = [d for key, mine in replacing.items() for d in superseded(mine, now.get(key, []))]
                retry_call(self.delete_runs, doomed, notice=notice)
            except Exception as exc:  # noqa: BLE001 - our runs are complete; the next ingest removes the old ones
                written = [exc if isinstance(w, Written) and w.run_id in replacing.values() else w for w in written]
        return written

    def write_runs(self, items: Sequence[BulkRun], claim: str) -> list[BulkResult]:
        """Several runs, each complete and FINISHED, in one transaction: one result per item.

        A run whose identity already has a complete run with the same fingerprint (another writer committed it
        meanwhile; checked under the write lock, on PostgreSQL under a per-identity advisory lock) is not
        written, unless forced. Artifacts are copied first and removed if the transaction does not commit.
        """
        keys = [item.record.tags[TAG_KEY] for item in items]
        if len(set(keys)) != len(keys):
            raise ValueError("a batch of bulk runs holds one identity twice")
        folders = []
        committed = False
        try:
            for item in items:
                folders.append(artifact_dirs.copy_artifacts(self.artifact_location, item.run_id, item.record, claim))
            with self.db.transaction() as tx:
                results = self._insert_runs(tx, items, keys, claim)
            committed = True
            artifact_dirs.settle(folders, [result.written for result in results])
            return results
        finally:
            if not committed:
                artifact_dirs.remove(folders)

    def _insert_runs(self, tx: Tx, items: Sequence[BulkRun], keys: list[str], claim: str) -> list[BulkResult]:
        eid = int(self.experiment_id)
        if self.kind == "postgresql":  # serialise writers of one identity (sorted: no deadlock)
            for key in sorted(keys):
                tx.read("SELECT pg_advisory_xact_lock(?)", (zlib.crc32(key.encode()),))
        others: dict[str, list[str]] = {}
        for run_uuid, key in tx.read(
                "SELECT runs.run_uuid, tags.value FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid "
                f'WHERE tags."key" = ? AND tags.value IN {in_list(keys)} AND runs.lifecycle_stage = ? '
                "AND runs.experiment_id = ?", (TAG_KEY, *keys, "active", eid)):
            others.setdefault(key, []).append(run_uuid)
        current = _current_fingerprints(tx, [r for ids in others.values() for r in ids])
        now = int(time.time() * 1000)
        rows: dict[str, list[dict]] = {"runs": [], "tags": [], "params": [], "metrics": []}
        traces: list[TraceRows] = []
        results: list[BulkResult] = []
        location = None
        for item, key in zip(items, keys, strict=True):
            record, run_id = item.record, item.run_id
            mine = others.get(key, [])
            if mine and not item.force and any(current.get(r) == record.tags[TAG_FINGERPRINT] for r in mine):
                results.append(BulkResult(False, None, mine))
                continue
            results.append(BulkResult(True, run_id, mine))
            # 1 ms apart in folder order, as one-by-one writes are: newest first stays a stable order
            sql_rows.run_rows(rows, record, run_id, self.experiment_id,
                              sql_rows.run_artifact_uri(self.artifact_location, run_id), claim, now + len(rows["runs"]))
            if item.scenes:
                if location is None:
                    location = self._experiment_location(tx)
                if item.trace_rows is None or item.location != location:
                    if len(record.traces) != item.scenes:
                        raise ValueError(f"trace rows of run {run_id} were built for another experiment")
                    item.trace_rows = build_trace_rows(self.experiment_id, run_id, record.traces, location)
                traces.append(item.trace_rows)
        if rows["runs"]:
            tx.insert("runs", rows["runs"])
            tx.insert("tags", rows["tags"])
            tx.insert("params", rows["params"])
            tx.insert("metrics", rows["metrics"])
            tx.insert("latest_metrics", rows["metrics"])
            insert_trace_rows(tx, traces)
        return results

    def _experiment_location(self, tx: Tx) -> str:
        """The experiment's artifact location, read in the transaction; a deleted or removed experiment is refused
        as MLflow's start_trace() refuses it."""
        found = tx.read("SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ?",
                        (int(self.experiment_id),))
        if not found:
            raise ExperimentGone(f"No Experiment with id={self.experiment_id} exists")
        if found[0][1] != "active":
            raise ExperimentGone(f"The experiment {self.experiment_id} must be in the 'active' state. "
                                 f"Current state is {found[0][1]}.")
        return found[0][0]

    # ------------------------------------------------------------------ deleting

    def delete_run(self, run_id: str) -> None:
        """Remove a replaced, withdrawn or half-written run together with its traces."""
        self.delete_runs([run_id])

    def delete_runs(self, run_ids: Sequence[str]) -> None:
        """Delete runs with every trace linked to them (by a run link or ``mlflow.sourceRun``, as
        ``search_traces(run_id=...)`` finds them), as MLflow's ``delete_traces`` and ``delete_run`` do."""
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return
        eid = int(self.experiment_id)
        trace_ids = [r[0] for r in self.db.read(
            f"SELECT request_id FROM trace_info WHERE experiment_id = ? AND request_id IN ("
            f"SELECT source_id FROM entity_associations WHERE destination_id IN {in_list(ids)} "
            "AND destination_type = ? AND source_type = ? UNION "
            f'SELECT request_id FROM trace_request_metadata WHERE "key" = ? AND value IN {in_list(ids)})',
            (eid, *ids, sql_rows.RUN_ENTITY, sql_rows.TRACE_ENTITY, META_SOURCE_RUN, *ids))]
        self.delete_traces(trace_ids)
        now = int(time.time() * 1000)
        with self.db.transaction() as tx:
            for run_id in ids:  # MLflow's _mark_run_deleted: the run's assessments go, the run is marked deleted
                tx.execute("DELETE FROM assessments WHERE assessment_metadata LIKE ?",
                           (f'%"{ASSESSMENT_SOURCE_RUN}": "{run_id}"%',))
            tx.execute(f"UPDATE runs SET lifecycle_stage = ?, deleted_time = ? WHERE run_uuid IN {in_list(ids)}",
                       ("deleted", now, *ids))

    def delete_traces(self, trace_ids: Sequence[str]) -> int:
        """Delete these traces of the experiment (their tags, metadata, spans and assessments go with them, by
        the schema's cascades), 500 per transaction, as MLflow's ``delete_traces``; returns how many."""
        ids = list(dict.fromkeys(trace_ids))
        eid = int(self.experiment_id)
        deleted = 0
        for start in range(0, len(ids), DELETE_CHUNK):
            chunk = ids[start : start + DELETE_CHUNK]
            archived = [r[0] for r in self.db.read(
                f'SELECT request_id FROM trace_tags WHERE "key" = ? AND value = ? AND request_id IN {in_list(chunk)}',
                (sql_rows.SPANS_LOCATION_TAG, ARCHIVE_REPO, *chunk))]
            if archived:  # their payload files too: MLflow's store deletes those
                from align_track.store.run_writer import mlflow_delete_traces

                deleted += mlflow_delete_traces(self.tracking_uri, self.experiment_id, archived)
                chunk = [t for t in chunk if t not in set(archived)]
            if not chunk:
                continue
            with self.db.transaction() as tx:
                deleted += tx.execute(
                    f"DELETE FROM trace_info WHERE experiment_id = ? AND request_id IN {in_list(chunk)}", (eid, *chunk))
                tx.execute(f"DELETE FROM review_queue_items WHERE item_type = ? AND item_id IN {in_list(chunk)}",
                           (sql_rows.TRACE_ENTITY, *chunk))
        return deleted

    # ------------------------------------------------------------------ run status and tags

    def set_terminated(self, run_id: str, status: str) -> None:
        """Status and end time, as MLflow's ``set_terminated`` (the run must be active)."""
        with self.db.transaction() as tx:
            _check_active(tx, run_id)
            tx.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
                       (status, int(time.time() * 1000), run_id))

    def run_tag(self, run_id: str, key: str) -> str | None:
        found = self.db.read('SELECT value FROM tags WHERE run_uuid = ? AND "key" = ?', (run_id, key))
        return found[0][0] if found else None

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Set (or overwrite) tags of an active run in one transaction, as MLflow's ``log_batch(tags=...)``."""
        with self.db.transaction() as tx:
            _check_active(tx, run_id)
            _upsert_tags(tx, run_id, tags)

    def trace_ids(self, run_id: str) -> set[str]:
        """Ids of the traces that exist and are linked to ``run_id``."""
        return {r[0] for r in self.db.read(
            "SELECT entity_associations.source_id FROM entity_associations JOIN trace_info "
            "ON trace_info.request_id = entity_associations.source_id WHERE entity_associations.destination_id = ? "
            "AND entity_associations.destination_type = ? AND entity_associations.source_type = ?",
            (run_id, sql_rows.RUN_ENTITY, sql_rows.TRACE_ENTITY))}

    # ------------------------------------------------------------------ live runs (ingest --watch)

    def create_live(self, record: RunRecord, tags: dict[str, str], params: dict[str, str]) -> str:
        """A RUNNING run with ``tags`` and ``params`` and no traces, in one transaction, as MLflow's ``create_run``
        then ``log_batch`` leave it."""
        run_id = uuid.uuid4().hex
        tags = dict(tags)
        tags["mlflow.runName"] = record.run_name
        with self.db.transaction() as tx:
            location = self._experiment_location(tx)
            tx.insert("runs", [{
                "run_uuid": run_id, "name": record.run_name, "source_type": "UNKNOWN", "source_name": "",
                "entry_point_name": "", "user_id": tags.get(USER, "unknown"), "status": "RUNNING",
                "start_time": int(time.time() * 1000) if record.start_ms is None else record.start_ms,
                "end_time": None, "deleted_time": None, "source_version": "",
                "lifecycle_stage": "active", "experiment_id": int(self.experiment_id),
                "artifact_uri": sql_rows.run_artifact_uri(location, run_id),
            }])
            tx.insert("tags", [{"key": k, "value": v, "run_uuid": run_id} for k, v in tags.items()])
            tx.insert("params", [{"key": k, "value": v, "run_uuid": run_id} for k, v in params.items()])
        return run_id

    def append_traces(self, run_id: str, traces: Sequence[TraceRecord], ids: Sequence[tuple[int, int]],
                      tags: dict[str, str]) -> bool:
        """Add ``traces`` (with their ``ids``) and set ``tags`` in one transaction; False (nothing written) when
        the run was completed meanwhile; AppendConflict when some of these traces exist already."""
        rows = build_trace_rows(self.experiment_id, run_id, list(traces), self.artifact_location, list(ids)) \
            if traces else None
        try:
            with self.db.transaction() as tx:
                if _tag_in(tx, run_id, TAG_COMPLETE) == "true":
                    return False
                if rows is not None:
                    insert_trace_rows(tx, [self._rows_for(tx, rows, run_id, traces, ids)])
                _upsert_tags(tx, run_id, tags)
        except self.db.integrity_errors as exc:
            raise AppendConflict(f"run {run_id}: some scenes were written by another writer") from exc
        return True

    def _rows_for(self, tx: Tx, rows: TraceRows, run_id: str, traces: Sequence[TraceRecord],
                  ids: Sequence[tuple[int, int]]) -> TraceRows:
        """``rows`` if the experiment's artifact location is still the one they were built with, else rebuilt."""
        location = self._experiment_location(tx)
        if location == self.artifact_location:
            return rows
        return build_trace_rows(self.experiment_id, run_id, list(traces), location, list(ids))

    def finish_live(self, run_id: str, record: RunRecord, traces: Sequence[TraceRecord],
                    ids: Sequence[tuple[int, int]], stale: Sequence[str], finished_tags: dict[str, str]) -> None:
        """Finish a live run in place, in one transaction once its files are copied: ``traces`` (now timed) replace
        the traces of their ids (their rows deleted and written anew) or are added, the stale ones deleted, the
        params it lacks, the metrics, its tags and ``finished_tags`` (the commit point: complete), FINISHED.
        One transaction, so a reader sees the live traces or the timed ones, never both.
        AppendConflict if another writer finished it first."""
        found = self.db.read("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,))
        if not found or not artifact_dirs.is_local(found[0][0]):
            raise StoreError(f"run {run_id}: its artifacts are not local files")
        artifact_dirs.copy_files(artifact_dirs.local_path(found[0][0]), record.artifacts)
        rows = build_trace_rows(self.experiment_id, run_id, list(traces), self.artifact_location, list(ids)) \
            if traces else None
        now = int(time.time() * 1000)
        try:
            with self.db.transaction() as tx:
                _check_active(tx, run_id)
                if _tag_in(tx, run_id, TAG_COMPLETE) == "true":
                    raise AppendConflict(f"run {run_id} was finished by another writer")
                _drop_traces_in(tx, self.experiment_id, run_id, [*(sql_rows.trace_id_of(pair) for pair in ids), *stale])
                if rows is not None:
                    insert_trace_rows(tx, [self._rows_for(tx, rows, run_id, traces, ids)])
                have = {r[0] for r in tx.read('SELECT "key" FROM params WHERE run_uuid = ?', (run_id,))}
                tx.insert("params", [{"key": k, "value": v, "run_uuid": run_id} for k, v in record.params.items()
                                     if k not in have])
                _log_metrics(tx, run_id, record.metrics, now)
                _upsert_tags(tx, run_id, {**record.tags, **finished_tags})
                tx.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
                           ("FINISHED", now if record.end_ms is None else record.end_ms, run_id))
        except self.db.integrity_errors as exc:
            raise AppendConflict(f"run {run_id}: some scenes were written by another writer") from exc


def _drop_traces_in(tx: Tx, experiment_id: str, run_id: str, trace_ids: Sequence[str]) -> None:
    """Delete these traces (tags, metadata and spans by the schema's cascades) and their links to ``run_id``, in the
    caller's transaction: a trace written anew under its id links again."""
    for start in range(0, len(trace_ids), DELETE_CHUNK):
        chunk = list(trace_ids[start : start + DELETE_CHUNK])
        tx.execute(f"DELETE FROM trace_info WHERE experiment_id = ? AND request_id IN {in_list(chunk)}",
                   (int(experiment_id), *chunk))
        tx.execute("DELETE FROM entity_associations WHERE source_type = ? AND destination_type = ? AND "
                   f"destination_id = ? AND source_id IN {in_list(chunk)}",
                   (sql_rows.TRACE_ENTITY, sql_rows.RUN_ENTITY, run_id, *chunk))


def _tag_in(tx: Tx, run_id: str, key: str) -> str | None:
    found = tx.read('SELECT value FROM tags WHERE run_uuid = ? AND "key" = ?', (run_id, key))
    return found[0][0] if found else None


def _empty(db: Db) -> bool:
    """A database with no tables at all (MLflow creates them); not one with another tool's tables."""
    query = ("SELECT count(*) FROM sqlite_master WHERE type = 'table'" if db.kind == "sqlite" else
             "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()")
    try:
        return db.read(query)[0][0] == 0
    except Exception:  # noqa: BLE001 - cannot tell: not reported as a new store
        return False


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _redact(uri: str) -> str:
    from align_track.store.runs_reader import _redact as redact

    return redact(uri)


def _check_active(tx: Tx, run_id: str) -> None:
    found = tx.read("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,))
    if not found:
        raise StoreError(f"Run with id={run_id} not found")
    if found[0][0] != "active":
        raise StoreError(f"The run {run_id} must be in the 'active' state. Current state is {found[0][0]}.")


def _upsert_tags(tx: Tx, run_id: str, tags: dict[str, str]) -> None:
    if not tags:
        return
    keys = list(tags)
    tx.execute(f'DELETE FROM tags WHERE run_uuid = ? AND "key" IN {in_list(keys)}', (run_id, *keys))
    tx.insert("tags", [{"key": k, "value": v, "run_uuid": run_id} for k, v in tags.items()])


def _log_metrics(tx: Tx, run_id: str, metrics: dict[str, float], now: int) -> None:
    """Metric rows at step 0 and ``now``, and ``latest_metrics`` kept at each key's greatest (step, timestamp,
    value), as MLflow's ``log_batch`` (an identical row logged twice stays one row)."""
    if not metrics:
        return
    keys = list(metrics)
    existing = {(k, int(ts), int(step), float(v), bool(nan)) for k, ts, step, v, nan in tx.read(
        f'SELECT "key", timestamp, step, value, is_nan FROM metrics WHERE run_uuid = ? AND "key" IN {in_list(keys)} '
        "AND timestamp = ?", (run_id, *keys, now))}
    rows = []
    for key, value in metrics.items():
        is_nan = value != value
        stored = 0.0 if is_nan else float(value)
        if (key, now, 0, stored, is_nan) not in existing:
            rows.append({"key": key, "value": stored, "timestamp": now, "step": 0, "is_nan": is_nan,
                         "run_uuid": run_id})
    tx.insert("metrics", rows)
    latest = {k: (int(step), int(ts), float(v)) for k, step, ts, v in tx.read(
        f'SELECT "key", step, timestamp, value FROM latest_metrics WHERE run_uuid = ? AND "key" IN {in_list(keys)}',
        (run_id, *keys))}
    for row in rows:
        old = latest.get(row["key"])
        if old is None:
            tx.insert("latest_metrics", [row])
        elif (0, now, row["value"]) > old:
            tx.execute('UPDATE latest_metrics SET value = ?, timestamp = ?, step = ?, is_nan = ? '
                       'WHERE run_uuid = ? AND "key" = ?', (row["value"], now, 0, row["is_nan"], run_id, row["key"]))


def _current_fingerprints(tx: Tx, run_ids: list[str]) -> dict[str, str]:
    """Run id -> fingerprint, for the complete runs among ``run_ids``."""
    if not run_ids:
        return {}
    found: dict[str, dict[str, str]] = {}
    for run_uuid, key, value in tx.read(
            f'SELECT run_uuid, "key", value FROM tags WHERE run_uuid IN {in_list(run_ids)} AND "key" IN (?, ?)',
            (*run_ids, TAG_COMPLETE, TAG_FINGERPRINT)):
        found.setdefault(run_uuid, {})[key] = value
    return {r: t[TAG_FINGERPRINT] for r, t in found.items() if t.get(TAG_COMPLETE) == "true" and TAG_FINGERPRINT in t}


def build_trace_rows(experiment_id: str, run_id: str, traces: Sequence[TraceRecord], location: str,
                     ids: Sequence[tuple[int, int]] | None = None) -> TraceRows:
    """The rows of ``traces``: built here, or through MLflow for what ``sql_rows`` does not reproduce."""
    try:
        return sql_rows.trace_rows(experiment_id, run_id, traces, location, ids)
    except sql_rows.NotReproduced:
        from align_track.store import trace_writer

        return trace_writer.trace_rows(experiment_id, run_id, traces, location, ids)


def prepare_bulk_run(record: RunRecord, force: bool, experiment_id: str, location: str) -> BulkRun:
    """A BulkRun with its trace rows built now, without MLflow (the CPU-heavy part of a write)."""
    run = BulkRun(record, force, location=location)
    if record.traces:
        run.trace_rows = build_trace_rows(str(experiment_id), run.run_id, record.traces, location)
    return run


def insert_trace_rows(tx: Tx, many: Sequence[TraceRows]) -> None:
    """Every run's trace rows, one executemany per table, in the order MLflow's foreign keys need."""
    for table in sql_rows.TRACE_TABLES:
        tx.insert(table, [row for one in many for row in one[table]])

