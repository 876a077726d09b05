"""Load every run of an experiment fast, as ``mlflow.search_runs`` would report them.

``mlflow.search_runs`` builds an ORM object graph per run (plus dataset inputs and model
outputs), which takes 7-14 s for 10,000 runs on SQLite; the same data is four plain SQL
queries (runs, params, latest_metrics, tags) joined in Python in a fraction of a second.
``latest_metrics`` is what search_runs itself reports: MLflow keeps there, per key, the
value with the greatest (step, timestamp, value).

Database stores are read with SQLAlchemy Core; an http(s) tracking server with its REST
search API (``requests`` directly: no retry-with-backoff, so a dead server fails fast).
Nothing here imports mlflow except the fallback for legacy ``file:`` stores.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from align_track.errors import one_line
from align_track.schema import written_ms
from align_track.store.uri import (
    READ_LOCK_WAIT_S,
    StoreError,
    read_failure,
    require_existing_store,
    resolve_tracking_uri,
    sqlite_path,
    store_kind,
)

if TYPE_CHECKING:
    import pandas
    import sqlalchemy

_DB_KINDS = ("sqlite", "postgresql", "mysql")
_CONNECT_TIMEOUT = 5.0  # seconds: an unreachable store must fail well within 10 s
_READ_TIMEOUT = 60.0  # one page of a big experiment on a slow server (a silent one fails the /health probe)
_PAGE_SIZE = 1000
_RUN_NAME_TAG = "mlflow.runName"
_FETCH_BATCH = 20_000
_WHOLE_TABLES_SHARE = 3
"""Read params/metrics/tags by scanning whole tables when the runs read are at least 1/N of the store's runs."""
_T = TypeVar("_T")


class ExperimentNotFound(StoreError):
    """The store answered, and has no experiment of that name (so an ingest may create it)."""


class StoreNotInitialised(StoreError):
    """The database answered but has no MLflow tables yet (MLflow creates them on first write)."""


@dataclass(slots=True)
class RunRow:
    """One run with its params, latest metrics and tags (times in epoch milliseconds); read-only by convention.

    Slots and no frozen-dataclass ``__init__`` (which sets each field through ``object.__setattr__``):
    100,000 of these are built per read of a big experiment.
    """

    run_id: str
    run_name: str
    status: str
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    experiment_id: str = ""


# --------------------------------------------------------------------------- SQL stores


@functools.lru_cache(maxsize=8)
def _engine(uri: str) -> sqlalchemy.engine.Engine:
    """One engine (and pool) per URI for the process, so TUI refreshes reuse connections."""
    import sqlalchemy

    connect_args: dict[str, Any] = {}
    kind = store_kind(uri)
    uri = with_installed_driver(uri)
    if kind in ("postgresql", "mysql"):
        connect_args["connect_timeout"] = int(_CONNECT_TIMEOUT)
    try:
        return sqlalchemy.create_engine(uri, connect_args=connect_args, pool_pre_ping=True)
    except Exception as exc:  # bad URI, missing driver
        raise StoreError(f"cannot open {_redact(uri)}: {one_line(exc)}") from exc


def with_installed_driver(uri: str) -> str:
    """``postgresql://`` with the psycopg2 the project installs.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which is not installed,
    and no longer accepts ``postgres://`` at all.
    """
    import importlib.util

    scheme, sep, rest = uri.partition("://")
    if scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg") is None:
        return f"postgresql+psycopg2{sep}{rest}"
    if scheme == "postgres":
        return f"postgresql{sep}{rest}"
    return uri


def _redact(uri: str) -> str:
    """The URI without a password, for error messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def _sql(uri: str, queries: list[str]) -> list[list[tuple]]:
    """Run read-only queries on one pooled connection; any failure becomes a one-line StoreError.

    Rows come straight from the DBAPI cursor: SQLAlchemy's Row wrapping costs about as
    much as the query itself at 200,000 rows. Write ``{key}`` for the quoted ``key`` column.
    """
    return _with_cursor(uri, lambda cursor, key: [_fetch_all(cursor, q.format(key=key)) for q in queries])


def _fetch_all(cursor: Any, query: str) -> list[tuple]:
    cursor.execute(query)
    return cursor.fetchall()


def _with_cursor(uri: str, read: Callable[[Any, str], _T]) -> _T:
    """``read(cursor, quoted key column)`` on one pooled connection; any failure becomes a one-line StoreError."""
    require_existing_store(uri)
    if store_kind(uri) == "sqlite" and "?" not in uri and (path := sqlite_path(uri)) is not None:
        return _with_sqlite_cursor(uri, path, read)
    import sqlalchemy

    engine = _engine(uri)
    dialect = engine.dialect
    dbapi = getattr(dialect, "loaded_dbapi", None) or dialect.dbapi
    key = dialect.identifier_preparer.quote("key")  # a reserved word in MySQL
    try:
        with engine.connect() as conn:
            cursor = conn.connection.driver_connection.cursor()
            try:
                return read(cursor, key)
            finally:
                cursor.close()
    except (sqlalchemy.exc.SQLAlchemyError, dbapi.Error) as exc:
        _raise_store_error(uri, exc)


def _with_sqlite_cursor(uri: str, path: Path, read: Callable[[Any, str], _T]) -> _T:
    """A SQLite file through the standard library's driver (the one SQLAlchemy would use): importing
    SQLAlchemy alone costs more than reading 10,000 runs, and the TUI's first listing waits for it."""
    import sqlite3

    try:
        # mode=rw: never create a file that vanished since require_existing_store looked.
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=READ_LOCK_WAIT_S)
        try:
            cursor = conn.cursor()
            try:
                return read(cursor, '"key"')
            finally:
                cursor.close()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        _raise_store_error(uri, exc)


def _raise_store_error(uri: str, exc: Exception) -> NoReturn:
    msg = one_line(exc)
    if "no such table" in msg or ("relation" in msg and "does not exist" in msg) or "doesn't exist" in msg:
        raise StoreNotInitialised(f"{_redact(uri)} is not an MLflow store ({msg})") from exc
    raise StoreError(read_failure(_redact(uri), msg)) from exc


def _batches(cursor: Any, query: str) -> Iterator[list[tuple]]:
    """The query's rows a batch at a time: a big table never sits in memory as one list of tuples."""
    cursor.execute(query)
    while batch := cursor.fetchmany(_FETCH_BATCH):
        yield batch


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection while a big read allocates millions of objects none of which is garbage:
    the collector would rescan the growing heap again and again (a tenth of the read at 100,000 runs)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _experiment_id_sql(uri: str, name: str) -> str:
    (rows,) = _sql(uri, ["SELECT experiment_id, name, lifecycle_stage FROM experiments"])
    return _pick_experiment(name, [(str(r[0]), r[1], r[2]) for r in rows])


def _load_runs_sql(uri: str, experiment_id: str, include_deleted: bool, condition: str = "") -> list[RunRow]:
    """Every run of the experiment from a database store (see :func:`read_runs`)."""
    with gc_paused():
        return _with_cursor(uri, lambda cursor, key: read_runs(cursor, key, experiment_id, include_deleted,
                                                                 condition))


def read_runs(cursor: Any, key: str, experiment_id: str, include_deleted: bool = False,
              condition: str = "") -> list[RunRow]:
    """One pass per table (runs, params, latest_metrics, tags), each streamed in batches into per-run dicts,
    through a DBAPI ``cursor`` (``key``: the quoted ``key`` column).

    Keys and values are interned as they arrive: 100,000 runs repeat the same few keys and mostly the same
    values (ADM, LLM, target), and one shared string each instead of one per row is most of the memory.
    """
    try:
        eid = int(experiment_id)  # an int, so it can go into the SQL text as a literal
    except ValueError:
        raise StoreError(f"experiment id must be a number for a database store, got {experiment_id!r}") from None
    stage = "" if include_deleted else " AND lifecycle_stage = 'active'"
    where = f"FROM runs WHERE experiment_id = {eid}{stage}{condition}".format(key=key)  # a condition may name {key}
    runs = _fetch_all(cursor, f"SELECT run_uuid, name, status, start_time, end_time, lifecycle_stage, "
                              f"artifact_uri {where} ORDER BY start_time DESC, run_uuid")
    # Most of the store (one big experiment): scanning whole tables and dropping other runs' rows here
    # costs half of an index lookup per row; a few runs (a refresh, a small experiment): look them up.
    (total,) = _fetch_all(cursor, "SELECT count(*) FROM runs")[0]
    whole = runs and len(runs) * _WHOLE_TABLES_SHARE >= total
    of_runs = "" if whole else f"WHERE run_uuid IN (SELECT run_uuid {where})"
    param_d: dict[str, dict[str, str]] = {r[0]: {} for r in runs}
    metric_d: dict[str, dict[str, float]] = {r[0]: {} for r in runs}
    tag_d: dict[str, dict[str, str]] = {r[0]: {} for r in runs}
    keys: dict[str, str] = {}
    values: dict[str, str] = {}
    intern_key, intern_value = keys.setdefault, values.setdefault
    for table, found in (("params", param_d), ("tags", tag_d)):
        get = found.get
        for batch in _batches(cursor, f"SELECT run_uuid, {key}, value FROM {table} {of_runs}"):
            for run_id, k, value in batch:
                if (d := get(run_id)) is not None:
                    d[intern_key(k, k)] = intern_value(value, value) if value is not None else value
    nan, get = math.nan, metric_d.get
    for batch in _batches(cursor, f"SELECT run_uuid, {key}, value, is_nan FROM latest_metrics {of_runs}"):
        for run_id, k, value, is_nan in batch:
            if (d := get(run_id)) is not None:
                d[intern_key(k, k)] = nan if is_nan else float(value)
    experiment_id = str(eid)
    words: dict[str, str] = {}  # statuses and lifecycle stages: a handful of words
    word = words.setdefault
    return [
        RunRow(run_id, name or tag_d[run_id].get(_RUN_NAME_TAG) or "", word(status, status),
               None if start is None else int(start), None if end is None else int(end),
               word(stage_, stage_), artifact_uri or "", param_d[run_id],
               metric_d[run_id], tag_d[run_id], experiment_id)
        for run_id, name, status, start, end, stage_, artifact_uri in runs
    ]


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


# --------------------------------------------------------------------------- tracking server


_PROBED: set[str] = set()


def _http_session(uri: str):
    """A requests session with the auth and TLS settings MLflow's own client honours.

    The first session for a server in this process probes ``/health`` (5 s): a server that accepts
    connections but never answers is reported in seconds, not after the long read timeout a big
    page of runs may need.
    """
    import requests

    from align_track.store.http import check_server

    if uri not in _PROBED:
        check_server(uri)
        _PROBED.add(uri)

    session = requests.Session()
    env = os.environ
    if token := env.get("MLFLOW_TRACKING_TOKEN"):
        session.headers["Authorization"] = f"Bearer {token}"
    elif env.get("MLFLOW_TRACKING_USERNAME") and env.get("MLFLOW_TRACKING_PASSWORD"):
        session.auth = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
    if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        session.verify = False
    elif cert := env.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
        session.verify = cert
    return session


def _rest(session, uri: str, method: str, endpoint: str, **kwargs: Any) -> dict:
    """One REST call; connection problems and error replies become a one-line StoreError."""
    import requests

    url = f"{uri.rstrip('/')}/api/2.0/mlflow/{endpoint}"
    try:
        resp = session.request(method, url, timeout=(_CONNECT_TIMEOUT, _READ_TIMEOUT), **kwargs)
    except requests.RequestException as exc:
        reason = type(exc).__name__
        if isinstance(exc, requests.ConnectionError):
            reason = "connection refused or host unreachable"
        elif isinstance(exc, requests.Timeout):
            reason = "timed out"
        raise StoreError(f"tracking server {uri} is not reachable ({reason})") from exc
    if resp.status_code in (401, 403):
        who = os.environ.get("MLFLOW_TRACKING_USERNAME")
        hint = f"as user {who!r}" if who else "(set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
        raise StoreError(f"tracking server {uri} refused access {hint}: HTTP {resp.status_code}")
    if resp.status_code != 200:
        try:
            detail = resp.json().get("message") or resp.text
        except ValueError:
            detail = resp.text
        detail = (detail or "").strip().splitlines()[0][:300] if detail else ""
        raise StoreError(f"tracking server {uri} answered {resp.status_code} to {endpoint}: {detail}")
    try:
        return resp.json()
    except ValueError as exc:
        raise StoreError(f"{uri} is not an MLflow tracking server (non-JSON reply to {endpoint})") from exc


def _experiment_id_http(uri: str, name: str) -> str:
    return experiment_over_rest(uri, name)[0]


def experiment_over_rest(uri: str, name: str) -> tuple[str, str]:
    """(id, artifact location) of experiment ``name`` on a tracking server, through its REST API (no mlflow);
    ExperimentNotFound naming the existing ones if there is none."""
    uri = resolve_tracking_uri(uri)
    session = _http_session(uri)
    experiments: list[tuple[str, str, str]] = []
    locations: dict[str, str] = {}
    token = None
    while True:
        body: dict[str, Any] = {"max_results": 1000, "view_type": "ALL"}
        if token:
            body["page_token"] = token
        page = _rest(session, uri, "POST", "experiments/search", json=body)
        experiments += [(e["experiment_id"], e["name"], e.get("lifecycle_stage", "active"))
                        for e in page.get("experiments", [])]
        locations.update((e["experiment_id"], e.get("artifact_location", "")) for e in page.get("experiments", []))
        token = page.get("next_page_token")
        if not token:
            found = _pick_experiment(name, experiments)
            return found, locations.get(found, "")


def _metric_value(value: Any) -> float:
    """Proto JSON writes NaN/Infinity as strings; float() reads both forms."""
    return float(value) if value is not None else math.nan


def _load_runs_http(uri: str, experiment_id: str, include_deleted: bool,
                    filter_string: str | None = None) -> list[RunRow]:
    session = _http_session(uri)
    out: list[RunRow] = []
    token = None
    while True:
        body: dict[str, Any] = {
            "experiment_ids": [experiment_id],
            "max_results": _PAGE_SIZE,
            "run_view_type": "ALL" if include_deleted else "ACTIVE_ONLY",
        }
        if filter_string:
            body["filter"] = filter_string
        if token:
            body["page_token"] = token
        page = _rest(session, uri, "POST", "runs/search", json=body)
        for run in page.get("runs", []):
            info, data = run["info"], run.get("data", {})
            tags = {t["key"]: t.get("value", "") for t in data.get("tags", [])}
            out.append(RunRow(
                run_id=info.get("run_id") or info["run_uuid"],
                run_name=info.get("run_name") or tags.get(_RUN_NAME_TAG) or "",
                status=info.get("status", ""),
                start_time=_int_or_none(info.get("start_time")),
                end_time=_int_or_none(info.get("end_time")),
                lifecycle_stage=info.get("lifecycle_stage", "active"),
                artifact_uri=info.get("artifact_uri", ""),
                params={p["key"]: p.get("value", "") for p in data.get("params", [])},
                metrics={m["key"]: _metric_value(m.get("value")) for m in data.get("metrics", [])},
                tags=tags,
                experiment_id=str(info.get("experiment_id", experiment_id)),
            ))
        token = page.get("next_page_token")
        if not token:
            return out


# --------------------------------------------------------------------------- file stores


def _load_runs_mlflow(uri: str, experiment_id: str, include_deleted: bool) -> list[RunRow]:
    """Legacy ``file:`` stores have no SQL to read: go through MLflow itself."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
    out: list[RunRow] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], run_view_type=view, max_results=_PAGE_SIZE,
                                  page_token=token)
        for run in page:
            i, d = run.info, run.data
            out.append(RunRow(
                run_id=i.run_id, run_name=i.run_name or "", status=i.status, start_time=i.start_time,
                end_time=i.end_time, lifecycle_stage=i.lifecycle_stage, artifact_uri=i.artifact_uri or "",
                params=dict(d.params), metrics=dict(d.metrics), tags=dict(d.tags),
                experiment_id=i.experiment_id,
            ))
        token = page.token
        if not token:
            return out


def _experiment_id_mlflow(uri: str, name: str) -> str:
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    exps = MlflowClient(tracking_uri=uri).search_experiments(view_type=ViewType.ALL)
    return _pick_experiment(name, [(e.experiment_id, e.name, e.lifecycle_stage) for e in exps])


# --------------------------------------------------------------------------- public API


def _pick_experiment(name: str, experiments: list[tuple[str, str, str]]) -> str:
    """The id of ``name`` among (id, name, lifecycle_stage); StoreError naming the live ones if absent."""
    for eid, ename, stage in experiments:
        if ename == name:
            if stage != "active":
                raise StoreError(
                    f"experiment {name!r} (id {eid}) is deleted; restore it with "
                    f"`mlflow experiments restore --experiment-id {eid}`"
                )
            return str(eid)
    names = sorted(n for _, n, s in experiments if s == "active")
    listed = ", ".join(repr(n) for n in names) if names else "none"
    raise ExperimentNotFound(f"no experiment named {name!r}; existing experiments: {listed}")


def get_experiment_id(tracking_uri: str, name: str) -> str:
    """The id of experiment ``name``; a StoreError listing the existing names if there is none."""
    tracking_uri = resolve_tracking_uri(tracking_uri)
    kind = store_kind(tracking_uri)
    if kind in _DB_KINDS:
        return _experiment_id_sql(tracking_uri, name)
    if kind == "http":
        return _experiment_id_http(tracking_uri, name)
    return _experiment_id_mlflow(tracking_uri, name)


def load_runs(tracking_uri: str, experiment_id: str, include_deleted: bool = False) -> list[RunRow]:
    """Every run of the experiment (active only unless ``include_deleted``), in search_runs order.

    Never creates a store: a missing SQLite file is a StoreError, as is an unreachable server.
    """
    tracking_uri = resolve_tracking_uri(tracking_uri)  # relative SQLite paths: one engine per file
    kind = store_kind(tracking_uri)
    experiment_id = str(experiment_id)
    if kind in _DB_KINDS:
        rows = _load_runs_sql(tracking_uri, experiment_id, include_deleted)
        if kind == "sqlite":  # its ORDER BY is search_order's exactly (NULLs last in DESC, byte-order ids)
            return rows
    elif kind == "http":
        rows = _load_runs_http(tracking_uri, experiment_id, include_deleted)
    else:
        rows = _load_runs_mlflow(tracking_uri, experiment_id, include_deleted)
    return search_order(rows)


@dataclass(frozen=True)
class RunsDelta:
    """What changed in an experiment since a time: merge ``rows`` by run id, drop ``deleted``."""

    rows: list[RunRow]
    """Active runs started or ended at/after ``since_ms``, plus every live (running or stalled) run."""
    deleted: list[str] | None
    """Runs deleted at/after ``since_ms`` (database stores); None where the store cannot say (a server)."""
    as_of_ms: int
    """This read's start (reader's clock): pass it, less a safety margin, as the next ``since_ms``."""


def runs_changed_since(tracking_uri: str, experiment_id: str, since_ms: int) -> RunsDelta:
    """The runs that changed since ``since_ms``: the cheap incremental read behind a self-refreshing runs table.

    A run changes visibly when it is written (``align_track.ingest_time_ms``: created, or a live run finished
    in place by ``ingest --watch``; runs without it, by their start and end times) or while it is live (its
    progress tags move), so the read is those sets, not the whole experiment. A run's start and end times are
    its experiment's, often long past: they do not say when it was written. Writers' clocks may differ from the
    reader's: overlap successive reads by a margin.
    """
    import time

    from align_track.schema import LIVE_STATES, TAG_INGEST_TIME, TAG_STATE

    as_of = int(time.time() * 1000)
    tracking_uri = resolve_tracking_uri(tracking_uri)
    kind = store_kind(tracking_uri)
    since = int(since_ms)
    states = ", ".join(f"'{s}'" for s in LIVE_STATES)
    if kind in _DB_KINDS:
        live = f"SELECT run_uuid FROM tags WHERE {{key}} = '{TAG_STATE}' AND value IN ({states})"
        # epoch ms as text: a longer digit string is a larger number, same-length ones compare as the numbers do
        tagged = f"SELECT run_uuid FROM tags WHERE {{key}} = '{TAG_INGEST_TIME}'"
        digits = len(str(since))
        written = f"{tagged} AND (LENGTH(value) > {digits} OR (LENGTH(value) = {digits} AND value >= '{since}'))"
        condition = (f" AND (((start_time >= {since} OR end_time >= {since}) AND run_uuid NOT IN ({tagged}))"
                     f" OR run_uuid IN ({live}) OR run_uuid IN ({written}))")
        rows = _load_runs_sql(tracking_uri, str(experiment_id), False, condition)
        eid = int(experiment_id)
        (gone,) = _sql(tracking_uri, [f"SELECT run_uuid FROM runs WHERE experiment_id = {eid} AND "
                                      f"lifecycle_stage = 'deleted' AND deleted_time >= {since}"])
        return RunsDelta(search_order(rows), [r[0] for r in gone], as_of)
    if kind != "http":
        rows = [r for r in _load_runs_mlflow(tracking_uri, str(experiment_id), False)
                if _written_since(r, since) or r.tags.get(TAG_STATE) in LIVE_STATES]
        return RunsDelta(search_order(rows), None, as_of)
    found: dict[str, RunRow] = {}
    # A server filters tags by equality or LIKE only: the write times sharing since's and now's leading digits
    # (a few seconds' worth when reads follow each other), kept when at/after since.
    prefix = os.path.commonprefix([str(since), str(as_of)]) if len(str(since)) == len(str(as_of)) else ""
    written = [f"tags.`{TAG_INGEST_TIME}` LIKE '{prefix}%'"] if since <= as_of else []  # not for the live set
    for filter_string in [f"attributes.start_time >= {since}", f"attributes.end_time >= {since}",
                          *[f"tags.`{TAG_STATE}` = '{s}'" for s in LIVE_STATES], *written]:
        for row in _load_runs_http(tracking_uri, str(experiment_id), False, filter_string):
            if filter_string.startswith(f"tags.`{TAG_STATE}`") or _written_since(row, since):
                found[row.run_id] = row
    return RunsDelta(search_order(list(found.values())), None, as_of)


def _written_since(row: RunRow, since: int) -> bool:
    """Written at/after ``since``: by its ingest-time tag; a run without one (another tool's, an older
    align-track's) by its start or end time, which were its write's."""
    written = written_ms(row.tags, None)
    if written is not None:
        return written >= since
    return (row.start_time or 0) >= since or (row.end_time or 0) >= since


def search_order(rows: list[RunRow]) -> list[RunRow]:
    """MLflow's default order: start_time descending (missing last), then run_id.

    One sort; rows the database already ordered this way cost one linear pass (the SQL's collation may
    differ from Python's string order, so the order is always settled here).
    """
    return sorted(rows, key=lambda r: (r.start_time is None, -(r.start_time or 0), r.run_id))


def runs_to_frame(rows: Iterable[RunRow]) -> pandas.DataFrame:
    """The DataFrame ``mlflow.search_runs`` returns for the same runs.

    Columns: run_id, experiment_id, status, artifact_uri, start_time, end_time (UTC
    datetimes), then metrics.* (NaN where missing), params.* and tags.* (None where
    missing), each group sorted by name (MLflow's own column order is set-iteration order).
    """
    import numpy as np
    import pandas as pd

    rows = list(rows)
    data: dict[str, Any] = {
        "run_id": [r.run_id for r in rows],
        "experiment_id": [r.experiment_id for r in rows],
        "status": [r.status for r in rows],
        "artifact_uri": [r.artifact_uri for r in rows],
    }
    if not rows:
        data.update(start_time=[], end_time=[])
        return pd.DataFrame(data)
    for col in ("start_time", "end_time"):
        ms = pd.array([getattr(r, col) for r in rows], dtype="Int64")  # exact; None -> NaT
        data[col] = pd.to_datetime(ms, unit="ms", utc=True)
    for prefix, attr, missing in (("metrics", "metrics", np.nan), ("params", "params", None),
                                  ("tags", "tags", None)):
        keys = sorted({k for r in rows for k in getattr(r, attr)})
        for key in keys:
            values = [getattr(r, attr).get(key, missing) for r in rows]
            data[f"{prefix}.{key}"] = np.array(values, dtype="float64") if attr == "metrics" else values
    return pd.DataFrame(data)
