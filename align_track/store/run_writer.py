"""Write through MLflow where the store needs it (:class:`RunStore`): a new store or experiment, another schema
revision or MLflow version, MySQL, ``ALIGN_TRACK_DIRECT=0`` (``store/open_store.py`` picks the writer; the others
write without importing mlflow).

Through MLflow, a run is created RUNNING with its identity and a claim tag, then gets params, metrics,
artifacts and traces, and only then the ``align_track.complete`` tag and FINISHED status (on a SQL store,
all of it in one transaction where it can). Readers count only complete runs, so an interrupted ingest never
shows up as a finished run; the next ingest replaces it.

mlflow is imported by :class:`RunStore` only, when it is built.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from align_track.records import RunRecord, TraceRecord
from align_track.schema import TAG_CLAIM, TAG_COMPLETE, TAG_INGEST_TIME, TAG_KEY
from align_track.store import sql_rows
from align_track.store.claims import AppendConflict, ClaimRule, Written, claim_is_alive, claim_token
from align_track.store.provenance import provenance
from align_track.store.retries import retry_call
from align_track.store.runs_reader import (
    ExperimentNotFound,
    RunRow,
    StoreNotInitialised,
    experiment_over_rest,
    get_experiment_id,
    load_runs,
)
from align_track.store.sql_rows import BulkResult, BulkRun, per_folder
from align_track.store.uri import (
    StoreError,
    artifact_root_for,
    check_sqlite_store,
    check_writable,
    sqlite_path,
    store_kind,
)

SCRATCH = Path("/dev/shm")
"""A memory file system, where MLflow creates a new SQLite store before it is copied into place."""


def create_on_scratch(tracking_uri: str) -> bool:
    """A new SQLite store made by MLflow on :data:`SCRATCH`, then copied into place (whole, then renamed): the file
    MLflow makes, in a fraction of the time (its ~50 schema migrations each commit, with their file syncs: most of
    a store's creation on a disk). Call under ``store_setup_lock``; False (nothing done) where the store exists
    or there is no scratch space, and MLflow then creates the store in place as before."""
    path = sqlite_path(tracking_uri)
    if path is None or (path.exists() and path.stat().st_size > 0) or not SCRATCH.is_dir() \
            or not os.access(SCRATCH, os.W_OK | os.X_OK):
        return False
    from mlflow import MlflowClient

    scratch = SCRATCH / f"align-track-{os.getpid()}-{time.time_ns()}.db"
    pending = path.parent / f".{path.name}.creating-{os.getpid()}"
    try:
        MlflowClient(f"sqlite:///{scratch}").search_experiments(max_results=1)  # MLflow makes the tables
        from align_track.store import trace_writer

        trace_writer.sql_store(f"sqlite:///{scratch}").engine.dispose()
        with open(scratch, "rb") as source, open(pending, "wb") as target:
            shutil.copyfileobj(source, target)
            target.flush()
            os.fsync(target.fileno())
        os.replace(pending, path)
        return True
    except OSError:  # no room there, or the copy failed: MLflow creates the store in place
        return False
    finally:
        for leftover in (scratch, pending):
            leftover.unlink(missing_ok=True)


def mlflow_artifact_sizes(tracking_uri: str, run_id: str) -> dict[str, int] | None:
    """Sizes of a run's top-level artifact files through MLflow (artifacts kept elsewhere than local files)."""
    from mlflow import MlflowClient

    try:
        return {Path(f.path).name: int(f.file_size or 0) for f in MlflowClient(tracking_uri).list_artifacts(run_id)
                if not f.is_dir}
    except Exception:  # a run whose artifacts are elsewhere or gone: treat its contents as unknown
        return None


def mlflow_delete_traces(tracking_uri: str, experiment_id: str, trace_ids: list[str]) -> int:
    """Delete traces through MLflow's store (those whose payload it archived to files)."""
    from align_track.store import trace_writer

    return trace_writer.delete_traces(tracking_uri, experiment_id, trace_ids)


@contextmanager
def store_setup_lock(tracking_uri: str) -> Iterator[None]:
    """For a SQLite store: refuse a foreign file, then hold an exclusive lock on its directory; for PostgreSQL,
    an advisory lock on the database (:func:`pg_setup_lock`).

    MLflow creates its tables (and runs migrations) the first time a process opens a store, with
    no guard against a second process doing the same: two ingests on a brand-new file crashed with
    "table ... already exists". ``flock`` on the directory (no lock file left behind, no fd on the
    database itself, whose close would drop SQLite's own POSIX locks) serialises that setup; the
    lock goes with the process if it dies.
    """
    import fcntl

    if store_kind(tracking_uri) == "postgresql":
        with pg_setup_lock(tracking_uri):
            yield
        return
    path = sqlite_path(tracking_uri) if store_kind(tracking_uri) == "sqlite" else None
    if path is None:
        yield
        return
    directory = path.resolve().parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory, os.O_RDONLY)
    except OSError as exc:
        raise StoreError(f"cannot use store directory {directory} ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        check_sqlite_store(path)
        check_writable(path)
        yield
    finally:
        os.close(fd)  # releases the flock


PG_SETUP_LOCK = zlib.crc32(b"align_track.store_setup")
"""The advisory lock id that serialises MLflow's schema creation on one PostgreSQL database."""


@contextmanager
def pg_setup_lock(tracking_uri: str) -> Iterator[None]:
    """Hold a session-level advisory lock on the PostgreSQL database while MLflow creates or migrates its schema.

    Two ingests started together on a brand-new database both ran MLflow's migrations; the second died with
    ``UniqueViolation ... alembic_version`` (a 139-line traceback). The lock is the database's, so it also
    serialises processes on other hosts, and ends with the connection if the process dies. Where the database
    does not answer, nothing is held: MLflow's own connection then says why.
    """
    from align_track.store import dbapi

    db = dbapi.Db(tracking_uri)
    try:
        db.read("SELECT pg_advisory_lock(?)", (PG_SETUP_LOCK,))
    except Exception:  # noqa: BLE001, S110 - no driver or no answer: MLflow reports it, in its words
        pass
    try:
        yield
    finally:
        db.close()  # ends the session, and with it the lock


def bulk_enabled() -> bool:
    """``ALIGN_TRACK_BULK=0`` forces MLflow's public API everywhere (for comparison and debugging)."""
    return os.environ.get("ALIGN_TRACK_BULK", "1").lower() not in ("0", "false", "no")


class RunStore:
    """The ingest's handle on one MLflow experiment in one store, through MLflow.

    A tracking server is probed by ``http.prepare`` before this is built (ingest does it before
    importing mlflow), so a dead server has already failed fast by the time we get here.
    """

    direct = False

    def __init__(self, tracking_uri: str, experiment_name: str, create: bool = True):
        from align_track.store import dbapi

        self.tracking_uri = tracking_uri
        self.kind = store_kind(tracking_uri)
        self.experiment_name = experiment_name
        self.bulk = False
        if self.kind == "http" and dbapi.enabled():
            # Reading a server needs no MLflow (its REST API): MLflow's client is loaded when a run is written, so
            # an ingest with nothing new, or one that first reads what is there, starts at once.
            try:
                self.experiment_id, self.artifact_location = experiment_over_rest(tracking_uri, experiment_name)
                return
            except ExperimentNotFound:
                if not create:
                    raise
        from align_track.store.sql_bulk import bulk_runs_supported, sweep_orphans

        with store_setup_lock(tracking_uri):  # MLflow creates/migrates the schema on first use
            if create and dbapi.enabled():
                create_on_scratch(tracking_uri)
            self.experiment_id = self._experiment_id(create)
            self.artifact_location = self.client.get_experiment(self.experiment_id).artifact_location
        self.bulk = bulk_enabled() and bulk_runs_supported(tracking_uri, self.artifact_location)
        if self.bulk:  # artifact folders of bulk writers killed mid-write (kill -9, power loss)
            sweep_orphans(tracking_uri, self.artifact_location, claim_is_alive)

    @functools.cached_property
    def client(self) -> Any:
        """MLflow's client for this store (``import mlflow``: seconds, so only once something needs it)."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def _experiment_id(self, create: bool) -> str:
        try:
            return get_experiment_id(self.tracking_uri, self.experiment_name)
        except StoreError as exc:
            # Create only what is missing: a refused or unreachable server or database is the answer.
            missing = (ExperimentNotFound, StoreNotInitialised) if self.kind != "sqlite" else StoreError
            if not create or not isinstance(exc, missing):
                raise
        existing = self.client.get_experiment_by_name(self.experiment_name)
        if existing is not None:  # deleted: writing into it would hide every run from the UI
            if existing.lifecycle_stage != "active":
                raise StoreError(
                    f"experiment {self.experiment_name!r} is deleted; restore it "
                    f"(mlflow experiments restore --experiment-id {existing.experiment_id}) or pick another name"
                )
            return existing.experiment_id
        try:
            return self.client.create_experiment(
                self.experiment_name, artifact_location=artifact_root_for(self.tracking_uri)
            )
        except Exception as exc:  # a concurrent ingest created it first
            experiment = self.client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                raise StoreError(f"cannot create experiment {self.experiment_name!r}: {exc}") from exc
            return experiment.experiment_id

    def live_runs(self) -> list[RunRow]:
        """Every live run of the experiment, in one read: the basis for skip/update/adopt decisions."""
        return load_runs(self.tracking_uri, self.experiment_id)

    def keyed_runs(self) -> list[RunRow]:
        """Every live run this tool wrote."""
        return [r for r in self.live_runs() if TAG_KEY in r.tags]

    def artifact_sizes(self, run_id: str) -> dict[str, int] | None:
        """Sizes of the run's top-level artifact files by name; None when they cannot be listed."""
        return mlflow_artifact_sizes(self.tracking_uri, run_id)

    def close(self) -> None:
        """Nothing to release (MLflow keeps its stores for the process)."""

    def runs_for_key(self, key: str) -> list[RunRow]:
        """Fresh view of one identity's runs, for the claim-then-verify steps."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{TAG_KEY}` = '{key}'", max_results=1000
        )
        return [_row(r) for r in runs]

    def create_run(self, record: RunRecord) -> str:
        """Create the run RUNNING with its claim, params, metrics, tags and artifacts (no traces yet)."""

        now = int(time.time() * 1000)
        tags = {**provenance(), **record.tags, TAG_INGEST_TIME: str(now)}
        tags[TAG_CLAIM] = claim_token()
        start = now if record.start_ms is None else record.start_ms  # the experiment's start
        run = self.client.create_run(self.experiment_id, start_time=start, tags=tags, run_name=record.run_name)
        run_id = run.info.run_id
        try:
            self._fill_run(run, record, now)
        except BaseException:  # refused params, a lost server: no RUNNING half-run left behind if we can help it
            _best_effort(partial(self.delete_run, run_id))
            raise
        return run_id

    def _fill_run(self, run: Any, record: RunRecord, now: int) -> None:
        from mlflow.entities import Metric, Param
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        run_id = run.info.run_id
        calls = [partial(
            self.client.log_batch,
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in record.metrics.items()],
            params=[Param(k, v) for k, v in record.params.items()],
            tags=[],
        )]
        # The repository from the run we just created: MlflowClient.log_artifact would first fetch the run
        # (a round trip per run, one per file when the files go up at once).
        repo = get_artifact_repository(run.info.artifact_uri, tracking_uri=self.tracking_uri)
        calls += [partial(repo.log_artifact, a.path, a.artifact_dir or None) for a in record.artifacts]
        _call_all(calls, parallel=self.kind == "http")

    def write(self, record: RunRecord, key: str, force: bool, claim_lost: ClaimRule, superseded: ClaimRule,
              notice: Callable[[str], None] | None = None) -> Written:
        """Write one run whole, by whichever path this store supports, and delete the runs it replaces.

        The ingest says what (the record, its identity ``key``) and who wins (``claim_lost``: withdraw our
        fresh claim for a live earlier one; ``superseded``: the runs a complete run replaces; both are
        ingest/reconcile.py's rules); the store says how: one SQL transaction where it can (complete or
        absent), else create -> verify the claim -> traces -> mark complete, with no RUNNING half-run left
        behind if a step fails. SQLite lock waits are retried, with ``notice`` told.
        """
        def call(fn: Callable[..., Any], *args: Any) -> Any:
            return retry_call(fn, *args, notice=notice)

        if self.bulk:
            result = call(self.write_run_bulk, record, force)
            if not result.written:  # another ingest committed the same run folder meanwhile
                return Written(None)
            if result.others:
                for doomed in superseded(result.run_id, call(self.runs_for_key, key)):
                    call(self.delete_run, doomed)
            return Written(result.run_id)
        run_id = call(self.create_run, record)
        try:
            if claim_lost(run_id, call(self.runs_for_key, key)):
                self.delete_run(run_id)
                return Written(None, busy=True)
            call(self.write_traces, run_id, record)
            call(self.mark_complete, run_id, record.end_ms)
        except BaseException:  # interrupted or refused: no RUNNING half-run left visible if we can help it
            _best_effort(partial(self.delete_run, run_id))
            raise
        for doomed in superseded(run_id, call(self.runs_for_key, key)):
            call(self.delete_run, doomed)
        return Written(run_id)

    def write_batch(self, items: list[tuple[BulkRun, str]], superseded: ClaimRule,
                    notice: Callable[[str], None] | None = None) -> list[Written | Exception]:
        """Several runs ``(bulk run, key)`` in one transaction (bulk stores only), then the runs each
        replaces deleted; one ``Written`` (or the exception that run met) per item, in order.

        If the shared transaction fails, nothing of it is left and the runs are written one run folder at a
        time, so a folder the store refuses fails alone (all its targets: none published), the others go in.
        """
        from align_track.store.sql_bulk import delete_runs_bulk, runs_of_keys, write_runs_bulk

        def call(fn: Callable[..., Any], *args: Any) -> Any:
            return retry_call(fn, *args, notice=notice)

        try:
            results = call(write_runs_bulk, self.tracking_uri, self.experiment_id, self.artifact_location,
                           [item for item, _ in items], claim_token())
        except Exception as exc:  # noqa: BLE001 - retried one folder at a time below, each failure its own
            return per_folder(items, exc, lambda folder: self.write_batch(folder, superseded, notice))
        written: list[Written | Exception] = [
            Written(result.run_id) if result.written else Written(None)  # None: another ingest committed it
            for result in results]
        replacing = {key: result.run_id for (_, key), result in zip(items, results, strict=True)
                     if result.written and result.others}
        if replacing:  # the runs ours replace: one read and one delete for the whole batch
            try:
                now = call(runs_of_keys, self.tracking_uri, self.experiment_id, list(replacing))
                doomed = [d for key, mine in replacing.items() for d in superseded(mine, now.get(key, []))]
                call(delete_runs_bulk, self.tracking_uri, self.experiment_id, doomed)
            except Exception as exc:  # noqa: BLE001 - our runs are complete; the next ingest removes the old ones
                written = [exc if isinstance(w, Written) and w.run_id in replacing.values() else w for w in written]
        return written

    def prepare(self, record: RunRecord, force: bool) -> BulkRun:
        """A BulkRun with its trace rows built now, through MLflow's objects (bulk stores only)."""
        from align_track.store.sql_bulk import prepare_bulk_run

        return prepare_bulk_run(record, force, self.experiment_id, self.artifact_location)

    def write_run_bulk(self, record: RunRecord, force: bool) -> BulkResult:
        """The whole run in one transaction (SQL stores only): complete or absent, never half."""
        from align_track.store.sql_bulk import write_run_bulk

        return write_run_bulk(self.tracking_uri, self.experiment_id, self.artifact_location, record, force,
                              claim_token())

    def write_traces(self, run_id: str, record: RunRecord) -> int:
        from align_track.store import trace_writer

        trace_writer.write_traces(self.tracking_uri, self.experiment_id, run_id, list(record.traces))
        return len(record.traces)

    def mark_complete(self, run_id: str, end_ms: int | None = None) -> None:
        """The commit point: only now does the run count as ingested.

        FINISHED first, the complete tag last: a writer (or its server) killed between the two
        leaves a FINISHED run without the tag, which the next ingest replaces. The other order left
        a run tagged complete but RUNNING forever, which every later ingest skipped as done.
        """
        self.client.set_terminated(run_id, "FINISHED", end_time=end_ms)  # the experiment's end (None: now)
        self.client.set_tag(run_id, TAG_COMPLETE, "true")

    def delete_run(self, run_id: str) -> None:
        """Remove a replaced, withdrawn or half-written run together with its traces."""
        from align_track.store import trace_writer

        trace_writer.delete_run_traces(self.tracking_uri, self.experiment_id, run_id)
        try:
            self.client.delete_run(run_id)
        except Exception as exc:  # already deleted by a concurrent ingest
            if "RESOURCE_DOES_NOT_EXIST" not in str(exc) and "deleted" not in str(exc).lower():
                raise


    # ------------------------------------------------------------------ status, tags, live runs

    def set_terminated(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

    def run_tag(self, run_id: str, key: str) -> str | None:
        return self.client.get_run(run_id).data.tags.get(key)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def trace_ids(self, run_id: str) -> set[str]:
        """Ids of the traces that exist and are linked to ``run_id``."""
        from align_track.store import trace_writer

        return trace_writer.run_trace_ids(self.tracking_uri, self.experiment_id, run_id)

    def create_live(self, record: RunRecord, tags: dict[str, str], params: dict[str, str]) -> str:
        """A RUNNING run with ``tags`` and ``params`` and no traces."""
        from mlflow.entities import Param

        start = int(time.time() * 1000) if record.start_ms is None else record.start_ms
        run = self.client.create_run(self.experiment_id, start_time=start, tags=tags, run_name=record.run_name)
        if params:
            self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
        return run.info.run_id

    def append_traces(self, run_id: str, traces: list[TraceRecord], ids: list[tuple[int, int]],
                      tags: dict[str, str]) -> bool:
        """Add ``traces`` (with their ``ids``) and set ``tags``; False when the run was completed meanwhile (bulk
        stores; through a server the writes are idempotent). AppendConflict when some traces exist already."""
        from align_track.store import trace_writer

        if self.bulk:
            return self._append_bulk(run_id, traces, ids, tags)
        if traces:
            trace_writer.write_traces(self.tracking_uri, self.experiment_id, run_id, traces, ids)
        self.set_tags(run_id, tags)
        return True

    def _append_bulk(self, run_id: str, traces: list[TraceRecord], ids: list[tuple[int, int]],
                     tags: dict[str, str]) -> bool:
        from sqlalchemy.exc import IntegrityError

        from align_track.store import trace_writer

        store = trace_writer.sql_store(self.tracking_uri)
        done_q, drop_q, add_q = _append_statements()
        try:
            with store.engine.begin() as conn:
                trace_writer.begin_write(conn, store.db_type)
                if conn.execute(done_q, {"run": run_id}).scalar() == "true":
                    return False
                if traces:
                    trace_writer.insert_traces(conn, store, self.experiment_id, run_id, traces, ids)
                if tags:
                    conn.execute(drop_q, {"run": run_id, "keys": list(tags)})
                    conn.execute(add_q, [{"key": k, "value": v, "run_uuid": run_id} for k, v in tags.items()])
        except IntegrityError as exc:
            raise AppendConflict(f"run {run_id}: some scenes were written by another writer") from exc
        return True

    def finish_live(self, run_id: str, record: RunRecord, traces: list[TraceRecord], ids: list[tuple[int, int]],
                    stale: list[str], finished_tags: dict[str, str]) -> None:
        """Finish a live run in place: ``traces`` (now timed) replace the traces of their ids or are added, stale
        traces deleted (bulk: in one transaction; public: stale ones first, then each trace updated in place by
        MLflow's start_trace/log_spans, so the run never shows a scene twice), the params it lacks, metrics, tags
        and artifacts, then the commit point (``finished_tags``: complete), then FINISHED."""
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        from align_track.store import trace_writer

        if not (self.bulk and self._replace_bulk(run_id, traces, ids, stale)):
            if stale:
                trace_writer.delete_traces(self.tracking_uri, self.experiment_id, list(stale))
            if traces:
                trace_writer.write_traces_public(self.tracking_uri, self.experiment_id, run_id, traces, ids)
        run = self.client.get_run(run_id)
        have = run.data.params
        now = int(time.time() * 1000)
        params = [Param(k, v) for k, v in record.params.items() if k not in have]
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in record.metrics.items()],
                              params=params, tags=[RunTag(k, v) for k, v in record.tags.items()])
        repo = get_artifact_repository(run.info.artifact_uri, tracking_uri=self.tracking_uri)
        for artifact in record.artifacts:
            repo.log_artifact(artifact.path, artifact.artifact_dir or None)
        # The commit point: complete (and state finished, in the same write) first, then FINISHED.
        self.set_tags(run_id, finished_tags)
        self.client.set_terminated(run_id, "FINISHED", end_time=record.end_ms)


    def _replace_bulk(self, run_id: str, traces: list[TraceRecord], ids: list[tuple[int, int]],
                      stale: list[str]) -> bool:
        """The finish's trace writes in one transaction: the traces of these ids and the stale ones deleted, the
        timed ones inserted. False (nothing written) when the records need the public path."""
        from align_track.store import trace_writer

        store = trace_writer.sql_store(self.tracking_uri)
        done_q = _append_statements()[0]
        try:
            with store.engine.begin() as conn:
                trace_writer.begin_write(conn, store.db_type)
                if conn.execute(done_q, {"run": run_id}).scalar() == "true":
                    raise AppendConflict(f"run {run_id} was finished by another writer")
                trace_writer.drop_traces(conn, self.experiment_id, run_id,
                                         [*(sql_rows.trace_id_of(pair) for pair in ids), *stale])
                if traces:
                    trace_writer.insert_traces(conn, store, self.experiment_id, run_id, traces, ids)
        except ValueError:  # spans the bulk rows do not reproduce: rolled back, the public path writes them
            return False
        return True


@functools.cache
def _append_statements() -> tuple[Any, Any, Any]:
    """The append's tag statements, built once: building SQLAlchemy statements anew cost more CPU than
    running them (an append is a few rows)."""
    from mlflow.store.tracking.dbmodels.models import SqlTag
    from sqlalchemy import bindparam, delete, insert, select

    table = SqlTag.__table__
    done = select(table.c.value).where(table.c.run_uuid == bindparam("run"), table.c.key == TAG_COMPLETE)
    drop = delete(table).where(table.c.run_uuid == bindparam("run"), table.c.key.in_(bindparam("keys", expanding=True)))
    return done, drop, insert(table)


def _call_all(calls: list[Callable[[], Any]], parallel: bool) -> None:
    """Run independent store calls; at once against a server, where each is a round trip."""
    if not parallel or len(calls) < 2:
        for call in calls:
            call()
        return
    with ThreadPoolExecutor(len(calls), thread_name_prefix="align-track-run") as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


def _row(run: Any) -> RunRow:
    info, data = run.info, run.data
    return RunRow(
        run_id=info.run_id,
        run_name=info.run_name or "",
        status=info.status,
        start_time=info.start_time,
        end_time=info.end_time,
        lifecycle_stage=info.lifecycle_stage,
        artifact_uri=info.artifact_uri,
        params=dict(data.params),
        metrics=dict(data.metrics),
        tags=dict(data.tags),
    )


def _best_effort(action: Callable[[], object]) -> None:
    try:
        action()
    except BaseException:  # noqa: BLE001 - cleanup after a failure; the next ingest removes what is left
        pass
