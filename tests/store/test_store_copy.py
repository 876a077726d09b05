"""``align-track store copy``: a consistent copy of a SQLite store with its artifacts, taken while writers write,
read back through MLflow's own APIs (runs, params, metrics, tags, artifact contents, traces) after the source is
gone."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from align_track.demo.generate import generate_demo
from align_track.ingest.pipeline import ingest
from align_track.store import store_copy
from align_track.store.store_copy import copy_store
from align_track.store.uri import StoreError
from tests.support.readback import snapshot
from tests.support.server_fixtures import align_track_cmd, cli_env, run_align_track


def _complete(db: Path) -> int:
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=60) as conn:
        return conn.execute("SELECT count(*) FROM tags WHERE key = 'align_track.complete' AND value = 'true'"
                            ).fetchone()[0]


def _artifact_uris(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT artifact_uri FROM runs UNION ALL SELECT artifact_location FROM experiments "
                            "UNION ALL SELECT value FROM trace_tags WHERE key = 'mlflow.artifactLocation'")
        return [uri for (uri,) in rows]


def view(uri: str) -> dict:
    """Each run as MLflow reads it, by its run folder's key: fields, artifact contents and traces (for runs
    written by another process, whose provenance tags name that command: readback.snapshot checks ours)."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("align-system-experiments")
    mlflow.set_tracking_uri(uri)
    out = {}
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        run_id = run.info.run_id
        traces = mlflow.search_traces(locations=[experiment.experiment_id], run_id=run_id, return_type="list")
        out[run.data.tags["align_track.key"]] = {
            "status": run.info.status, "params": run.data.params, "metrics": run.data.metrics,
            "tags": {k: v for k, v in run.data.tags.items() if k != "align_track.claim"},
            "files": {f.path: Path(client.download_artifacts(run_id, f.path)).read_bytes()
                      for f in client.list_artifacts(run_id) if not f.is_dir},
            "traces": sorted((t.info.tags["scene_id"], str(t.data.spans[0].inputs), str(t.data.spans[0].outputs))
                             for t in traces),
        }
    return out


def _read_without_source(src_dir: Path, uri: str, read=snapshot) -> dict:
    """Everything MLflow reads from the copy while the source folder is out of the way."""
    away = src_dir.with_name(src_dir.name + "-away")
    src_dir.rename(away)
    try:
        return read(uri)
    finally:
        away.rename(src_dir)


def test_a_copy_with_a_writer_mid_transaction_is_the_last_commit_and_stands_alone(tmp_path: Path):
    src_dir = tmp_path / "scratch"
    src = src_dir / "mlflow.db"
    generate_demo(tmp_path / "a", run_folders=5, scenes=3, seed=1)
    assert not ingest(tmp_path / "a", f"sqlite:///{src}").failures
    writer = sqlite3.connect(src, isolation_level=None)  # a real writer, its transaction not committed
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE tags SET value = 'uncommitted' WHERE key = 'adm'")
    try:
        done = copy_store(src, tmp_path / "local" / "mlflow.db")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert done.runs == 5 and done.folders == 5 and done.traces == 15 and not done.missing
    copy = tmp_path / "local" / "mlflow.db"
    assert all(uri.startswith((str(tmp_path / "local" / "artifacts"), (tmp_path / "local" / "artifacts").as_uri()))
               for uri in _artifact_uris(copy)), _artifact_uris(copy)
    source_view = snapshot(f"sqlite:///{src}")
    assert _read_without_source(src_dir, f"sqlite:///{copy}") == source_view
    assert all(run["params"]["adm"] != "uncommitted" for run in source_view.values())


def test_a_copy_taken_while_an_ingest_writes_holds_whole_runs_only(tmp_path: Path):
    src_dir = tmp_path / "scratch"
    src = src_dir / "mlflow.db"
    uri = f"sqlite:///{src}"
    generate_demo(tmp_path / "a", run_folders=4, scenes=2, seed=2)
    assert not ingest(tmp_path / "a", uri).failures
    generate_demo(tmp_path / "b", run_folders=40, scenes=4, seed=3)
    before = _complete(src)
    writer = subprocess.Popen(align_track_cmd("ingest", "--experiments-dir", str(tmp_path / "b"), "--mlflow-uri",
                                              uri, "-q"), env=cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while _complete(src) == before and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        copied = run_align_track("store", "copy", uri, str(tmp_path / "local" / "mlflow.db"))
    finally:
        out, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    assert copied.returncode == 0, copied.stderr
    assert copied.stdout.startswith("copied ") and "--mlflow-uri sqlite:///" in copied.stdout
    final = view(uri)
    copied_view = _read_without_source(src_dir, f"sqlite:///{tmp_path / 'local' / 'mlflow.db'}", view)
    assert len(copied_view) >= 4
    for key, run in copied_view.items():  # every run the copy holds is whole: as the source finally has it
        assert run["tags"].get("align_track.complete") == "true", key
        assert run["files"] and len(run["traces"]) == int(run["params"]["num_scenarios"]), key
        assert run == final[key], key
    listed = run_align_track("search", "--mlflow-uri", f"sqlite:///{tmp_path / 'local' / 'mlflow.db'}",
                             "--format", "json")
    assert listed.returncode == 0 and listed.stdout.count('"run_id"') == len(copied_view)


def test_refusals_are_one_line_and_leave_nothing(tmp_path: Path):
    src = tmp_path / "s" / "mlflow.db"
    generate_demo(tmp_path / "a", run_folders=1, scenes=1, seed=4)
    assert not ingest(tmp_path / "a", f"sqlite:///{src}").failures
    taken = tmp_path / "taken.db"
    taken.write_text("mine")
    for args, reason in [((str(src), str(taken)), "already exists"),
                         ((str(taken), str(tmp_path / "x.db")), "not an MLflow store"),
                         ((str(tmp_path / "none.db"), str(tmp_path / "y.db")), "no SQLite store"),
                         (("http://127.0.0.1:9/", str(tmp_path / "z.db")), "only sqlite:/// stores")]:
        done = run_align_track("store", "copy", *args)
        assert done.returncode == 2 and reason in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    assert taken.read_text() == "mine"
    into = tmp_path / "into"
    into.mkdir()
    done = run_align_track("store", "copy", f"sqlite:///{src}", str(into))
    assert done.returncode == 0 and (into / "mlflow.db").is_file() and (into / "artifacts").is_dir(), done.stderr
    done = run_align_track("store", "copy", str(src), f"{tmp_path / 'new-folder'}/")
    assert done.returncode == 0 and (tmp_path / "new-folder" / "mlflow.db").is_file(), done.stderr
    holder = sqlite3.connect(src, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # a lock that never goes: the copy gives up, bounded
    try:
        done = run_align_track("store", "copy", str(src), str(tmp_path / "c" / "mlflow.db"), timeout=120)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == 2 and "database is locked" in done.stderr, done.stderr
    assert "not an MLflow store" not in done.stderr
    assert not (tmp_path / "c").exists() or [p.name for p in (tmp_path / "c").iterdir()] == []


def test_a_dash_for_dest_is_refused_not_a_file_named_dash(tmp_path: Path):
    """'-' is standard output to every other command; a store (a file and its artifacts folder) cannot go there,
    and a file named '-' with artifacts/ beside it in the current folder was not what was asked."""
    src = tmp_path / "s" / "mlflow.db"
    generate_demo(tmp_path / "a", run_folders=1, scenes=1, seed=4)
    assert not ingest(tmp_path / "a", f"sqlite:///{src}").failures
    here = tmp_path / "here"
    here.mkdir()
    done = run_align_track("store", "copy", str(src), "-", cwd=here)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "standard output" in done.stderr and "'-'" in done.stderr, done.stderr
    assert list(here.iterdir()) == []


def test_the_backup_gives_up_on_a_lock_that_never_goes(tmp_path: Path):
    src = tmp_path / "s" / "mlflow.db"
    generate_demo(tmp_path / "a", run_folders=1, scenes=1, seed=5)
    assert not ingest(tmp_path / "a", f"sqlite:///{src}").failures
    holder = sqlite3.connect(src, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match=r"cannot copy .* database is locked .* 2 times"):
            store_copy._backup(src, tmp_path / "pending.db")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
