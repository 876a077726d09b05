"""load_runs + runs_to_frame must report exactly what mlflow.search_runs reports, from every store kind."""

from __future__ import annotations

import math
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from align_track.mlflow_ui import find_free_port, start_ui, stop_ui
from align_track.store import runs_reader
from align_track.store.runs_reader import get_experiment_id, load_runs, runs_to_frame
from align_track.store.uri import StoreError
from tests.support.server_fixtures import pg_base, pg_unavailable

EXPERIMENT = "exp-a"
T0 = 1_700_000_000_000


def populate(uri: str, artifacts: str) -> str:
    """Runs that exercise every corner of the latest-metric and missing-value rules; returns the id."""
    client = MlflowClient(tracking_uri=uri)
    eid = client.create_experiment(EXPERIMENT, artifact_location=artifacts)
    client.create_experiment("other-exp", artifact_location=artifacts)
    gone = client.create_experiment("gone-exp", artifact_location=artifacts)
    client.delete_experiment(gone)

    def run(name: str, start: int | None, **tags: str) -> str:
        r = client.create_run(eid, run_name=name, start_time=start, tags=tags)
        return r.info.run_id

    a = run("alpha", T0, team="x", note="first")
    client.log_batch(a, params=[Param("lr", "0.1"), Param("model", "llama"), Param("seed", "1")], metrics=[
        Metric("loss", 3.0, T0 + 1, 0), Metric("loss", 2.0, T0 + 2, 1), Metric("loss", 1.5, T0 + 3, 2),
        # same step, later timestamp wins
        Metric("acc", 0.5, T0 + 10, 0), Metric("acc", 0.7, T0 + 20, 0),
        Metric("weird", float("nan"), T0, 0), Metric("big", float("inf"), T0, 0),
    ])
    client.set_terminated(a, end_time=T0 + 100)

    b = run("beta", T0 + 5, team="y")
    client.log_batch(b, params=[Param("lr", "0.01"), Param("batch", "32")], metrics=[
        # a higher step logged first still wins over a later-logged lower step
        Metric("loss", 0.2, T0 + 1, 5), Metric("loss", 9.0, T0 + 50, 2), Metric("extra", -1.0, T0, 0),
    ])
    client.set_terminated(b, status="FAILED", end_time=T0 + 200)

    c = run("gamma-no-metrics", T0 + 5)  # same start as beta: the run_id breaks the tie
    client.log_param(c, "lr", "0.5")  # still RUNNING: no end_time

    run("", T0 - 10)  # no name given: MLflow generates one
    d = run("deleted", T0 + 1, team="x")
    client.log_metric(d, "loss", 0.0)
    client.delete_run(d)
    e = run("tagged-only", T0 + 7)
    client.set_tag(e, "mlflow.note.content", "a multi\nline note")
    client.log_batch(e, tags=[RunTag("empty", "")])
    return eid


def search_df(uri: str, eid: str, view: int = ViewType.ACTIVE_ONLY) -> pd.DataFrame:
    with _use_tracking_uri(uri):
        return mlflow.search_runs(experiment_ids=[eid], run_view_type=view)


def normalised(df: pd.DataFrame) -> pd.DataFrame:
    """Row order by run_id, columns by name; times as ns UTC (MLflow leaves an all-missing column naive)."""
    df = df.sort_values("run_id").reset_index(drop=True)
    df = df[sorted(df.columns)].copy()
    for col in ("start_time", "end_time"):
        df[col] = pd.to_datetime(df[col], utc=True).astype("datetime64[ns, UTC]")
    return df


def assert_same_as_search_runs(uri: str, eid: str, include_deleted: bool = False) -> None:
    view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
    expected = search_df(uri, eid, view)
    rows = load_runs(uri, eid, include_deleted=include_deleted)
    ours = runs_to_frame(rows)
    assert list(ours["run_id"]) == list(expected["run_id"])  # same default order too
    pd.testing.assert_frame_equal(normalised(ours), normalised(expected))


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("rr")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # module scope runs before conftest's per-test chdir: keep MLflow out of the repo
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        return uri, populate(uri, (root / "artifacts").as_uri())


def test_sqlite_matches_search_runs(sqlite_store: tuple[str, str]) -> None:
    uri, eid = sqlite_store
    assert_same_as_search_runs(uri, eid)


@pytest.mark.parametrize("share", [0, 10**9], ids=["runs-looked-up", "whole-tables-scanned"])
def test_both_sql_read_paths_match_search_runs(sqlite_store: tuple[str, str], share: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A small experiment's rows are looked up by run, a big one's found by scanning whole tables (other
    experiments' rows dropped): both give search_runs' answer, deleted runs included or not."""
    monkeypatch.setattr(runs_reader, "_WHOLE_TABLES_SHARE", share)
    uri, eid = sqlite_store
    client = MlflowClient(tracking_uri=uri)
    other = client.get_experiment_by_name("other-exp").experiment_id
    if not client.search_runs([other]):  # rows of another experiment that the scan must leave out
        run = client.create_run(other, run_name="elsewhere", tags={"team": "z"})
        client.log_batch(run.info.run_id, params=[Param("lr", "9")], metrics=[Metric("loss", 7.0, T0, 0)])
    assert_same_as_search_runs(uri, eid)
    assert_same_as_search_runs(uri, eid, include_deleted=True)
    assert_same_as_search_runs(uri, other)


def test_sqlite_include_deleted_matches_view_all(sqlite_store: tuple[str, str]) -> None:
    uri, eid = sqlite_store
    assert_same_as_search_runs(uri, eid, include_deleted=True)
    stages = {r.run_name: r.lifecycle_stage for r in load_runs(uri, eid, include_deleted=True)}
    assert stages["deleted"] == "deleted"
    assert "deleted" not in {r.run_name for r in load_runs(uri, eid)}


def test_rows_carry_latest_metrics_and_names(sqlite_store: tuple[str, str]) -> None:
    uri, eid = sqlite_store
    rows = {r.run_name: r for r in load_runs(uri, eid)}
    alpha, beta, gamma = rows["alpha"], rows["beta"], rows["gamma-no-metrics"]
    assert alpha.metrics["loss"] == 1.5 and alpha.metrics["acc"] == 0.7
    assert math.isnan(alpha.metrics["weird"])
    assert beta.metrics["loss"] == 0.2
    assert gamma.metrics == {} and gamma.end_time is None and gamma.status == "RUNNING"
    assert alpha.params == {"lr": "0.1", "model": "llama", "seed": "1"}
    assert alpha.tags["mlflow.runName"] == "alpha" and alpha.experiment_id == eid
    assert all(r.run_name for r in rows.values())  # the generated name of the unnamed run too


def test_frame_columns(sqlite_store: tuple[str, str]) -> None:
    uri, eid = sqlite_store
    df = runs_to_frame(load_runs(uri, eid))
    assert list(df.columns[:6]) == ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    assert {"metrics.loss", "params.lr", "tags.mlflow.runName", "tags.team"} <= set(df.columns)
    assert str(df["start_time"].dtype).startswith("datetime64") and df["metrics.loss"].dtype == "float64"
    empty = runs_to_frame([])
    assert list(empty.columns) == ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]


def test_experiment_lookup(sqlite_store: tuple[str, str]) -> None:
    uri, eid = sqlite_store
    assert get_experiment_id(uri, EXPERIMENT) == eid
    with pytest.raises(StoreError) as err:
        get_experiment_id(uri, "nope")
    msg = str(err.value)
    assert "'nope'" in msg and "'exp-a'" in msg and "'other-exp'" in msg and "'Default'" in msg
    assert "gone-exp" not in msg
    with pytest.raises(StoreError, match="deleted"):
        get_experiment_id(uri, "gone-exp")


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "mlflow.db"
    uri = f"sqlite:///{db}"
    with pytest.raises(StoreError, match="no MLflow store"):
        load_runs(uri, "1")
    with pytest.raises(StoreError, match="no MLflow store"):
        get_experiment_id(uri, EXPERIMENT)
    assert not db.exists() and not db.parent.exists()


def test_non_mlflow_database(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    import sqlite3

    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StoreError, match="not an MLflow store"):
        get_experiment_id(f"sqlite:///{db}", EXPERIMENT)


def test_unreachable_server_fails_fast_in_one_line() -> None:
    uri = f"http://127.0.0.1:{find_free_port(start=47000)}"
    start = time.monotonic()
    for call in (lambda: load_runs(uri, "1"), lambda: get_experiment_id(uri, EXPERIMENT)):
        with pytest.raises(StoreError) as err:
            call()
        assert "\n" not in str(err.value) and "not reachable" in str(err.value)
    assert time.monotonic() - start < 10


def test_unroutable_server_times_out_within_10s() -> None:
    # TEST-NET-1 address: connects neither refuse nor answer, so only the connect timeout ends it
    start = time.monotonic()
    with pytest.raises(StoreError, match="not reachable"):
        load_runs("http://192.0.2.1:5000", "1")
    assert time.monotonic() - start < 10


# --------------------------------------------------------------------------- tracking server


@pytest.fixture(scope="module")
def served_store(sqlite_store: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    uri, _ = sqlite_store
    log_dir = tmp_path_factory.mktemp("rr-log")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(log_dir)  # the server's working directory
        server = start_ui(uri, port=find_free_port(start=15000), log_path=log_dir / "server.log")
    try:
        yield server.url
    finally:
        stop_ui(server)


@pytest.mark.server
def test_http_matches_search_runs(served_store: str, sqlite_store: tuple[str, str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    uri, eid = sqlite_store
    monkeypatch.setattr(runs_reader, "_PAGE_SIZE", 2)  # exercise paging with a handful of runs
    for include_deleted, view in ((False, ViewType.ACTIVE_ONLY), (True, ViewType.ALL)):
        expected = search_df(uri, eid, view)  # straight from the database
        ours = runs_to_frame(load_runs(served_store, eid, include_deleted=include_deleted))
        assert list(ours["run_id"]) == list(expected["run_id"])
        pd.testing.assert_frame_equal(normalised(ours), normalised(expected))
    assert_same_as_search_runs(served_store, eid)  # and as MLflow's client sees the server


@pytest.mark.server
def test_http_experiment_lookup(served_store: str, sqlite_store: tuple[str, str]) -> None:
    _, eid = sqlite_store
    assert get_experiment_id(served_store, EXPERIMENT) == eid
    with pytest.raises(StoreError, match="'other-exp'"):
        get_experiment_id(served_store, "nope")
    with pytest.raises(StoreError, match="deleted"):
        get_experiment_id(served_store, "gone-exp")


# --------------------------------------------------------------------------- PostgreSQL



@pytest.fixture
def pg_uri(tmp_path: Path) -> Iterator[str]:
    """A throw-away database on the local PostgreSQL (skipped if none, unless CI requires it)."""
    psycopg2 = pytest.importorskip("psycopg2")
    base = pg_base()
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            pass
        admin = psycopg2.connect(base.replace("+psycopg2", ""), connect_timeout=3)
    except Exception as exc:
        pg_unavailable(f"no PostgreSQL at {base}: {exc}")
    admin.autocommit = True
    name = f"align_track_rr_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yielded = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield yielded
    finally:
        runs_reader._engine(yielded).dispose()  # close pooled connections before the drop
        runs_reader._engine.cache_clear()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.mark.postgres
def test_postgres_matches_search_runs(pg_uri: str, tmp_path: Path) -> None:
    eid = populate(pg_uri, (tmp_path / "artifacts").as_uri())
    assert_same_as_search_runs(pg_uri, eid)
    assert_same_as_search_runs(pg_uri, eid, include_deleted=True)
    assert get_experiment_id(pg_uri, EXPERIMENT) == eid
    bare = pg_uri.replace("+psycopg2", "")  # what users type; the reader picks the installed driver
    pd.testing.assert_frame_equal(runs_to_frame(load_runs(bare, eid)), runs_to_frame(load_runs(pg_uri, eid)))
    runs_reader._engine(bare).dispose()
    with pytest.raises(StoreError, match="'other-exp'"):
        get_experiment_id(pg_uri, "nope")
