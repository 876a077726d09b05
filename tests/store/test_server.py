"""Team scale: a shared ``mlflow server`` on PostgreSQL (and PostgreSQL directly), concurrent ingests, faults.

Real services only: PostgreSQL on 127.0.0.1:5432 (skipped where there is none, unless
ALIGN_TRACK_REQUIRE_POSTGRES=1) and ``mlflow server`` subprocesses (tests/support/server_fixtures.py).
Every store is compared with the same corpus ingested into SQLite, field by field
(test_bulk_equivalence.snapshot).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from mlflow import MlflowClient
from mlflow.tracing.client import TracingClient

from align_track.cli.main import main
from align_track.demo.generate import generate_demo
from align_track.ingest.pipeline import default_workers, ingest
from align_track.store import run_writer, runs_reader
from align_track.store.uri import DEFAULT_EXPERIMENT
from tests.support import server_fixtures
from tests.support.readback import SERVER_WRITE_PATHS, WRITE_PATHS, snapshot, spy_write_path
from tests.support.server_fixtures import (
    AUTH_ADMIN,
    align_track_cmd,
    auth_env,
    cli_env,
    restart_server,
    run_align_track,
    running_server,
    start_server,
    stop_server,
)

# Fixtures: a fresh database per test; the session's mlflow server on PostgreSQL comes from tests/conftest.py.
pg_db = server_fixtures.pg_db  # pg_session_db and pg_server: tests/conftest.py (one of each per session)


# --------------------------------------------------------------------------- shared corpus and reference


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every layout and quirk of the demo generator (24 run folders), 3 scenes each."""
    root = tmp_path_factory.mktemp("corpus")
    generate_demo(root, run_folders=24, scenes=3, seed=11)
    return root


@pytest.fixture(scope="session")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The corpus as SQLite stores it: what every other store must read back as."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('sqlite-ref') / 'mlflow.db'}"
    summary = ingest(corpus, uri)
    assert not summary.failures
    return snapshot(uri)


def assert_same_as_reference(got: dict[str, Any], reference: dict[str, Any]) -> None:
    assert set(got) == set(reference) and len(got) >= 24
    for key, expected in reference.items():
        for field in expected:
            if field == "traces" and len(got[key][field]) == len(expected[field]):
                for index, (mine, theirs) in enumerate(zip(got[key][field], expected[field], strict=True)):
                    for part in theirs:  # the part of the trace that differs, named (not cut off by pytest)
                        assert mine[part] == theirs[part], (key, field, index, part, mine[part], theirs[part])
            assert got[key][field] == expected[field], (key, field)
        assert len(got[key]["traces"]) == int(got[key]["params"]["num_scenarios"])


def store_state(uri: str, experiment: str = DEFAULT_EXPERIMENT) -> dict[str, Any]:
    """Active runs by identity, their completeness and trace counts, and every trace in the experiment."""
    client = MlflowClient(uri)
    eid = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([eid], max_results=5000)
    tracing = TracingClient(uri)

    def trace_ids(**kwargs: Any) -> list[str]:
        out, token = [], None
        while True:
            page = tracing.search_traces(locations=[eid], include_spans=False, max_results=500, page_token=token,
                                         **kwargs)
            out += [t.info.trace_id for t in page]
            token = page.token
            if not token:
                return out

    return {
        "keys": Counter(r.data.tags.get("align_track.key") for r in runs),
        "incomplete": [r.info.run_id for r in runs
                       if r.data.tags.get("align_track.complete") != "true" or r.info.status != "FINISHED"],
        "per_run": {r.info.run_id: (len(trace_ids(run_id=r.info.run_id)), int(r.data.params["num_scenarios"]))
                    for r in runs},
        "all_traces": len(trace_ids()),
    }


def assert_converged(state: dict[str, Any], expected_keys: int) -> None:
    """Exactly one complete run per run folder, each with its scenes, and no trace left over."""
    assert len(state["keys"]) == expected_keys
    assert all(count == 1 for count in state["keys"].values()), state["keys"]
    assert state["incomplete"] == []
    assert all(traces == scenes for traces, scenes in state["per_run"].values()), state["per_run"]
    assert state["all_traces"] == sum(scenes for _, scenes in state["per_run"].values())


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The command failed the user-facing way: exit 2, one 'error:' line, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --------------------------------------------------------------------------- http: equivalence and reads


@pytest.mark.server
@pytest.mark.postgres
def test_server_reads_back_like_sqlite_for_every_command(pg_server, corpus: Path, reference: dict,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Written through the server's protocols without MLflow (the default) and through MLflow's client, each into an
    experiment of its own: both read back as the SQLite store does, field by field."""
    url = pg_server.url
    used = spy_write_path(monkeypatch)
    for path, env in SERVER_WRITE_PATHS.items():
        experiment = DEFAULT_EXPERIMENT if path == "direct" else f"{DEFAULT_EXPERIMENT}-{path}"
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            summary = ingest(corpus, url, experiment, workers=4)
            assert not summary.failures and summary.count("ingested") == len({o.path for o in summary.outcomes})
            assert_same_as_reference(snapshot(url, experiment_name=experiment), reference)
            again = ingest(corpus, url, experiment)
            assert again.count("skipped") == len(again.outcomes) and again.traces == 0
    assert used == [path for path in SERVER_WRITE_PATHS for _ in range(2)]

    runner = CliRunner()
    listed = runner.invoke(main, ["list-runs", "--mlflow-uri", url, "--columns", "run,folder"])
    assert listed.exit_code == 0, listed.output
    names = {v["name"] for v in reference.values()}
    assert all(name in listed.output for name in names)
    found = runner.invoke(main, ["search", "--mlflow-uri", url, "--format", "json"])
    assert found.exit_code == 0, found.output
    assert {r["run_name"] for r in json.loads(found.output)} == names
    out = Path(pg_server.artifacts).parent / "runs.csv"
    exported = runner.invoke(main, ["export", "--mlflow-uri", url, "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    assert len(out.read_text().splitlines()) == len(names) + 1
    report = runner.invoke(main, ["report", "--mlflow-uri", url, "--values", "timing.total_seconds",
                                  "--agg", "count", "--format", "json", "-o", str(out.with_suffix(".json"))])
    assert report.exit_code == 0, report.output

    from align_track.tui.models.data import all_scenes, load_runs

    snap = load_runs(url, DEFAULT_EXPERIMENT)
    assert {r.run_name for r in snap.runs} == names
    run = next(r for r in snap.runs if int(r.params["num_scenarios"]) > 0)
    scenes = all_scenes(snap.uri, snap.experiment_id, run.run_id)
    assert scenes is not None and len(scenes) == int(run.params["num_scenarios"])


def test_http_defaults_and_workers_option(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_workers("http://team:5000") == 4 and default_workers("sqlite:///x.db") == 1
    result = CliRunner().invoke(main, ["ingest", "--experiments-dir", ".", "--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output
    from align_track.store import http

    for name in http.HTTP_DEFAULTS:  # setenv first, so that the test's end restores each one as it was
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "9")
    http.configure_mlflow_http()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9"  # the user's choice stays
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == http.HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"]


def test_mlflow_environment_probes_answered_without_searching_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's client asks on every request whether it runs in Databricks or a notebook by importing packages
    that are not installed; once configured, those imports fail at once (no sys.path search, no import lock),
    with the same headers as before."""
    import importlib.machinery
    import importlib.util

    from mlflow.tracking.request_header.registry import resolve_request_headers

    from align_track.store import http

    for name in http.HTTP_DEFAULTS:
        monkeypatch.setenv(name, os.environ.get(name, ""))
    absent = [name for name in http.ABSENT_PROBES if importlib.util.find_spec(name) is None]
    if not absent:
        pytest.skip(f"every one of {http.ABSENT_PROBES} is installed here")
    for name in absent:  # as in a fresh process (the CLI's import already configured this one)
        monkeypatch.delitem(sys.modules, name, raising=False)
    searched: list[str] = []
    find_spec = importlib.machinery.PathFinder.find_spec.__func__

    def counting(cls, name, path=None, target=None):  # type: ignore[no-untyped-def]
        searched.append(name)
        return find_spec(cls, name, path, target)

    monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec", classmethod(counting))
    before = resolve_request_headers()
    assert any(name.split(".")[0] in absent for name in searched)  # the cost being removed
    http.configure_mlflow_http()
    searched.clear()
    assert resolve_request_headers() == before
    assert searched == []
    for name in absent:
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(name)


@pytest.mark.server
@pytest.mark.postgres
def test_client_sockets_acknowledge_at_once(pg_server) -> None:
    """After the server probe, urllib3's plain-HTTP sockets (MLflow's client) are the quick-ACK kind, and MLflow's
    client still talks through them."""
    from urllib3.connection import HTTPConnection

    from align_track.store import http

    http.check_server(pg_server.url)
    host, port = pg_server.url.rsplit("/", 1)[-1].rsplit(":", 1)
    conn = HTTPConnection(host, int(port))
    conn.connect()
    try:
        assert type(conn.sock) is http._QuickAckSocket
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    installed = HTTPConnection._new_conn
    http.quick_acks()  # idempotent: the hook is installed once, not wrapped again
    assert HTTPConnection._new_conn is installed
    assert MlflowClient(pg_server.url).search_experiments(max_results=1) is not None


# --------------------------------------------------------------------------- PostgreSQL directly


@pytest.mark.postgres
def test_postgres_every_write_path_reads_back_like_sqlite(pg_db: str, corpus: Path, reference: dict,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIGN_TRACK_ARTIFACTS_ROOT", str(tmp_path / "artifacts"))
    used = spy_write_path(monkeypatch)
    for path, env in WRITE_PATHS.items():
        databases = server_fixtures.pg_database("align_track_direct") if path != "direct" else iter([pg_db])
        uri = next(databases)
        try:
            with monkeypatch.context() as patch:
                for name, value in env.items():
                    patch.setenv(name, value)
                summary = ingest(corpus, uri.replace("postgresql+psycopg2://", "postgresql://"))  # as users type it
            assert not summary.failures
            assert_same_as_reference(snapshot(uri), reference)
        finally:
            getattr(databases, "close", lambda: None)()
    assert used == list(WRITE_PATHS)
    # Every path puts the files under ALIGN_TRACK_ARTIFACTS_ROOT (never ./data of the working directory).
    assert len(list((tmp_path / "artifacts").rglob("input_output.json"))) == len(WRITE_PATHS) * len(reference)


@pytest.mark.postgres
def test_postgres_concurrent_bulk_writers_one_run_each(pg_db: str, tmp_path: Path) -> None:
    """pg_advisory_xact_lock per identity: two processes writing the same tree leave one run per run folder."""
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=12, scenes=2, seed=3)
    env = cli_env(ALIGN_TRACK_ARTIFACTS_ROOT=str(tmp_path / "artifacts"))
    MlflowClient(pg_db).search_experiments()  # migrate once, not in both children at the same time
    procs = [subprocess.Popen(align_track_cmd("ingest", "--experiments-dir", str(tree), "--mlflow-uri", pg_db, "-q"),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert_converged(store_state(pg_db), expected_keys=_keys_in(tree, tmp_path))


@pytest.mark.postgres
def test_postgres_bulk_write_waits_for_the_identity_lock(pg_db: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A bulk run waits while another transaction holds its identity's advisory lock; under the lock it
    re-checks the store, so a second writer of the same run folder finds the first one's run and writes nothing."""
    import threading
    import zlib

    import psycopg2

    from align_track.ingest.folders import discover, read_config, read_files
    from align_track.ingest.mapping import build_run, identities

    monkeypatch.setenv("ALIGN_TRACK_ARTIFACTS_ROOT", str(tmp_path / "artifacts"))
    generate_demo(tmp_path / "exps", run_folders=1, scenes=2, seed=4)
    folder = discover(tmp_path / "exps")[0]
    identity = identities(read_config(tmp_path / "exps", folder))[0]
    record = build_run(identity, "default", read_files(folder))
    store = run_writer.RunStore(pg_db, "locks")
    assert store.bulk
    holder = psycopg2.connect(pg_db.replace("+psycopg2", ""))
    cur = holder.cursor()
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(record.tags["align_track.key"].encode()),))
    results: list = []
    writer = threading.Thread(target=lambda: results.append(store.write_run_bulk(record, False)))
    writer.start()
    writer.join(2.0)
    assert writer.is_alive()  # waiting on the lock
    holder.rollback()  # releases it
    holder.close()
    writer.join(30)
    assert results and results[0].written
    again = run_writer.RunStore(pg_db, "locks").write_run_bulk(record, False)
    assert not again.written and again.others == [results[0].run_id]


def _keys_in(tree: Path, tmp_path: Path) -> int:
    """How many runs (identities) the tree makes, as SQLite counts them."""
    uri = f"sqlite:///{tmp_path / 'count' / 'mlflow.db'}"
    ingest(tree, uri)
    return len(store_state(uri)["keys"])


# --------------------------------------------------------------------------- concurrency through a server


@pytest.mark.server
@pytest.mark.postgres
def test_three_concurrent_ingests_leave_one_complete_run_per_run_folder(pg_server, tmp_path: Path) -> None:
    tree = tmp_path / "exps"
    paths = generate_demo(tree, run_folders=16, scenes=4, seed=5)
    subtree = Counter(p.relative_to(tree).parts[0] for p in paths).most_common(1)[0][0]
    roots = [tree, tree / subtree, tree]  # overlapping: the subtree is ingested by all three
    name = "concurrent"
    procs = [subprocess.Popen(align_track_cmd("ingest", "--experiments-dir", str(root), "--mlflow-uri", pg_server.url,
                                              "--experiment-name", name, "--workers", "3"),
                              env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for root in roots]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    state = store_state(pg_server.url, name)
    assert_converged(state, expected_keys=_keys_in(tree, tmp_path))
    written = sum(int(line.split("ingested=")[1].split()[0]) + int(line.split("updated=")[1].split()[0])
                  for out, _ in outputs for line in out.splitlines() if line.startswith("ingested="))
    assert written >= len(state["keys"])  # every run folder written at least once, extra writes replaced


# --------------------------------------------------------------------------- faults


def test_unreachable_server_is_a_quick_one_line_error(tmp_path: Path) -> None:
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=1, scenes=1, seed=0)
    with socket.socket() as refused:
        refused.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{refused.getsockname()[1]}"  # bound, not listening: connection refused
        for args in (("ingest", "--experiments-dir", str(tree)), ("search",), ("list-runs",)):
            started = time.monotonic()
            result = run_align_track(*args, "--mlflow-uri", dead, timeout=30)
            assert time.monotonic() - started < 10
            one_line_error(result, "not reachable", dead)
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        hung = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = run_align_track("ingest", "--experiments-dir", str(tree), "--mlflow-uri", hung, timeout=30)
        assert time.monotonic() - started < 10
        one_line_error(result, "timed out")


@pytest.mark.server
@pytest.mark.postgres
def test_server_killed_mid_ingest_reports_and_rerun_converges(pg_session_db: str, tmp_path: Path) -> None:
    """Its own server (the session's database, already migrated: a quicker start), killed and restarted."""
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=40, scenes=4, seed=7)
    server = start_server(pg_session_db, tmp_path / "artifacts", tmp_path / "server.log")
    name = "killed"
    try:
        args = ("ingest", "--experiments-dir", str(tree), "--mlflow-uri", server.url, "--workers", "2",
                "--experiment-name", name)
        proc = subprocess.Popen(align_track_cmd(*args), env=cli_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        _wait_for_complete_runs(server.url, name, at_least=3, proc=proc)
        stop_server(server, signal.SIGKILL)  # the whole process group, mid-ingest
        killed_at = time.monotonic()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, (out, err)
        assert time.monotonic() - killed_at < 60
        assert "Traceback" not in out + err
        failed = [line for line in err.splitlines() if "store error" in line or "not attempted" in line]
        assert failed, err
        assert any("not attempted" in line for line in failed), err

        server = restart_server(server)
        rerun = run_align_track(*args)
        assert rerun.returncode == 0, (rerun.stdout, rerun.stderr)
        assert_converged(store_state(server.url, name), expected_keys=_keys_in(tree, tmp_path))
    finally:
        stop_server(server)


def _wait_for_complete_runs(url: str, name: str, at_least: int, proc: subprocess.Popen,
                            timeout: float = 90) -> None:
    """Poll the server until ``at_least`` runs are complete (the ingest is under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the ingest finished before the server could be killed"
        try:
            eid = runs_reader.get_experiment_id(url, name)
            rows = runs_reader.load_runs(url, eid)
            if sum(r.tags.get("align_track.complete") == "true" for r in rows) >= at_least:
                return
        except Exception:  # noqa: BLE001 - not created yet
            pass
        time.sleep(0.1)
    pytest.fail("the ingest made no progress")


def test_two_writers_on_one_sqlite_file_both_finish(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    trees = [tmp_path / "a", tmp_path / "b"]
    for index, tree in enumerate(trees):
        generate_demo(tree, run_folders=10, scenes=3, seed=index)
    MlflowClient(uri).search_experiments()  # the tables, so both children start on an existing store
    procs = [subprocess.Popen(align_track_cmd("ingest", "--experiments-dir", str(tree), "--mlflow-uri", uri),
                              env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tree in trees]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    expected = sum(len(store_state(_single(tree, tmp_path))["keys"]) for tree in trees)
    assert_converged(store_state(uri), expected_keys=expected)
    with sqlite3.connect(tmp_path / "store" / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _single(tree: Path, tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / ('single-' + tree.name) / 'mlflow.db'}"
    ingest(tree, uri)
    return uri


def test_locked_sqlite_store_waits_with_a_notice(tmp_path: Path) -> None:
    """A writer that finds the store locked says so, waits, and finishes once the lock is gone."""
    db = tmp_path / "store" / "mlflow.db"
    uri = f"sqlite:///{db}"
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=2, scenes=2, seed=1)
    run_writer.RunStore(uri, "locked")  # the store and experiment exist: the first write is a run
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer's long transaction
    proc = subprocess.Popen(align_track_cmd("ingest", "--experiments-dir", str(tree), "--mlflow-uri", uri,
                                            "--experiment-name", "locked"),
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    readers = [threading.Thread(target=lambda stream=stream: lines.extend(stream), daemon=True)
               for stream in (proc.stdout, proc.stderr)]
    for reader in readers:
        reader.start()
    try:  # hold the lock until the writer has said it waits (however long its start-up takes)
        deadline = time.monotonic() + 180
        while not any("locked by another writer" in line for line in list(lines)):
            assert proc.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    proc.wait(timeout=120)
    for reader in readers:
        reader.join(timeout=10)
    assert proc.returncode == 0, lines
    assert_converged(store_state(uri, "locked"), expected_keys=len(store_state(_single(tree, tmp_path))["keys"]))


@pytest.mark.server
@pytest.mark.postgres
def test_basic_auth_server(pg_session_db: str, tmp_path: Path) -> None:
    """Its own server with MLflow's basic-auth app, on the session's (already migrated) database."""
    try:
        env = auth_env(tmp_path)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=3, scenes=2, seed=2)
    name = ["--experiment-name", "auth"]
    with running_server(pg_session_db, tmp_path / "artifacts", tmp_path / "server.log", app_name="basic-auth",
                        extra_env=env) as server:
        assert requests.get(f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10
                            ).status_code == 401
        user, password = AUTH_ADMIN
        good = cli_env(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
        done = run_align_track("ingest", "--experiments-dir", str(tree), "--mlflow-uri", server.url, *name, env=good)
        assert done.returncode == 0, (done.stdout, done.stderr)
        found = run_align_track("search", "--mlflow-uri", server.url, "--format", "json", *name, env=good)
        assert found.returncode == 0, found.stderr
        assert len(json.loads(found.stdout)) == len(list(tree.rglob("input_output.json")))
        with pytest.MonkeyPatch.context() as mp:  # the fast reader (requests) with the same variables
            mp.setenv("MLFLOW_TRACKING_USERNAME", user)
            mp.setenv("MLFLOW_TRACKING_PASSWORD", password)
            eid = runs_reader.get_experiment_id(server.url, "auth")
            assert len(runs_reader.load_runs(server.url, eid)) == len(json.loads(found.stdout))

        bad = cli_env(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD="wrong")
        for args in (("ingest", "--experiments-dir", str(tree)), ("search",)):
            result = run_align_track(*args, "--mlflow-uri", server.url, *name, env=bad)
            one_line_error(result, "refused access", "401")


@pytest.mark.server
@pytest.mark.postgres
def test_plain_postgresql_uri_for_the_server_and_for_align_track(pg_db: str, tmp_path: Path) -> None:
    """The README's ``mlflow server --backend-store-uri postgresql://...`` (psycopg 3, shipped) and
    align-track's own commands on the same bare URI (and on ``postgresql+psycopg2://``) all work."""
    bare = pg_db.replace("postgresql+psycopg2://", "postgresql://")
    assert bare.startswith("postgresql://")
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=2, scenes=2, seed=9)
    with running_server(bare, tmp_path / "artifacts", tmp_path / "server.log") as server:
        done = run_align_track("ingest", "--experiments-dir", str(tree), "--mlflow-uri", server.url)
        assert done.returncode == 0, (done.stdout, done.stderr)
    for uri in (bare, pg_db):  # read the server's database directly, with either driver
        found = run_align_track("search", "--mlflow-uri", uri, "--format", "json")
        assert found.returncode == 0, found.stderr
        assert len(json.loads(found.stdout)) == len(list(tree.rglob("input_output.json")))
    state = store_state(bare)
    assert_converged(state, expected_keys=_keys_in(tree, tmp_path))
