"""A store kept inside the experiments tree is never ingested as run folders (issue 20, item 1).

The embedded default store (``data/mlflow/`` under the current directory) copies each run's
``input_output.json`` and ``.hydra/`` into ``data/mlflow/artifacts/<run>/artifacts/``: walked into, those
copies became runs on the next ingest, and their twins renamed the real folders' variants (``updated``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from align_track.cli.main import main
from align_track.ingest.folders import discover, store_folder
from align_track.ingest.pipeline import ingest
from align_track.ingest.watch import TreeScanner
from tests.support.factory import config, scene, write_run_folder

RUNS = 4
"""Runs of :func:`_tree`: three folders, one of them with two alignment targets."""


def _tree(root: Path) -> Path:
    write_run_folder(root / "pipeline_baseline" / "merit-0.5" / "run_a", timing=[1.0, 2.0, 3.0])
    write_run_folder(root / "pipeline_baseline" / "merit-0.5" / "run_b", timing=[1.0, 2.0, 3.0])
    mixed = [scene("A1", target="ADEPT-June2025-merit-0.0"), scene("B1", target="ADEPT-June2025-affiliation-1.0")]
    write_run_folder(root / "eval" / "mixed", scenes=mixed, cfg=config(adm="pipeline_kaleido"), timing=[4.0, 5.0])
    return root


def _complete_paths(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT p.value FROM runs r JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = 'experiment_path' "
            "JOIN tags c ON c.run_uuid = r.run_uuid AND c.key = 'align_track.complete' AND c.value = 'true' "
            "WHERE r.lifecycle_stage = 'active'").fetchall()
    return sorted(value for (value,) in rows)


@pytest.mark.parametrize("direct", ["1", "0"], ids=["direct-sql", "through-mlflow"])
def test_a_tree_holding_its_own_default_store_is_ingested_once(tmp_path: Path, monkeypatch, direct: str) -> None:
    """cwd = the experiments dir, default URI: three ingests, the same runs, nothing updated on reruns."""
    monkeypatch.setenv("ALIGN_TRACK_DIRECT", direct)
    tree = _tree(tmp_path / "experiments")
    monkeypatch.chdir(tree)
    runner = CliRunner()
    outputs = []
    for _ in range(3):
        result = runner.invoke(main, ["ingest", "--experiments-dir", "."], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    store = tree / "data" / "mlflow"
    assert list((store / "artifacts").rglob("input_output.json")), "the store holds copies (what could be ingested)"
    paths = _complete_paths(store / "mlflow.db")
    assert len(paths) == RUNS, paths
    assert not [p for p in paths if p.startswith("data")], paths
    assert "ingested=3 updated=0" in outputs[0], outputs[0]
    for output in outputs[1:]:
        assert "ingested=0 updated=0 skipped=3" in output, output
    notes = [line for line in outputs[1].splitlines() if line.startswith("note:") and "data/mlflow" in line]
    assert len(notes) == 1, outputs[1]


def _foreign_stores(root: Path) -> list[Path]:
    """Copies of run folders in the layouts MLflow stores keep them in, as another store would leave them."""
    run = uuid.uuid4().hex
    source = _tree(root / "src")
    places = [
        root / "old" / "mlruns" / "3" / run / "artifacts",  # file store: <experiment>/<run>/{meta.yaml,artifacts}
        root / "server" / "mlartifacts" / "2" / uuid.uuid4().hex / "artifacts",  # a server's artifact root
        root / "pg" / "artifacts" / uuid.uuid4().hex / "artifacts",  # align-track's layout, no mlflow.db beside
        root / "sqlite" / "store" / "artifacts" / "1" / "run" / "artifacts",  # beside an mlflow.db
    ]
    for place in places:
        shutil.copytree(source / "pipeline_baseline" / "merit-0.5" / "run_a", place)
    (root / "old" / "mlruns" / "3" / run / "meta.yaml").write_text(f"run_id: {run}\n")
    (root / "old" / "mlruns" / "3" / "meta.yaml").write_text("experiment_id: '3'\n")
    (root / "sqlite" / "store" / "mlflow.db").write_bytes(b"")
    shutil.rmtree(source)
    return places


def test_discovery_never_enters_an_mlflow_store_folder(tmp_path: Path) -> None:
    """The shared rule (``folders.store_folder``): the ingest, the TUI and the Hydra callback find folders with
    ``discover``, the watcher with ``TreeScanner``: both leave every store layout out, and say so once."""
    root = tmp_path / "tree"
    _tree(root)
    _foreign_stores(root)
    real = sorted(str(p) for p in root.rglob("input_output.json") if "artifacts" not in p.parts)
    notes: list[str] = []
    found = discover(root, lambda path, reason, is_error: notes.append(f"{path}: {reason}"))
    assert sorted(str(p / "input_output.json") for p in found) == real
    assert sorted(os.path.join(p, "input_output.json") for p in TreeScanner(root).scan()) == real
    assert len(notes) == 4, notes  # one per store folder; the pipeline folds them into one note line
    assert store_folder("0123456789abcdef0123456789abcdef", ["artifacts", "meta.yaml"])
    assert not store_folder("run_a", ["input_output.json", ".hydra", "artifacts"])  # a run folder's own artifacts


def test_ingest_leaves_foreign_store_copies_out_on_every_backend(tmp_path: Path, uri: str) -> None:
    """Through the pipeline (what the TUI and Hydra callback call), on SQLite and over HTTP."""
    root = tmp_path / "tree"
    _tree(root)
    _foreign_stores(root)
    notes: list[str] = []
    first = ingest(root, uri, on_event=lambda e: notes.append(e.message) if e.kind == "message" else None)
    assert (first.count("ingested"), first.count("failed")) == (3, 0)
    assert sum(o.runs for o in first.outcomes) == RUNS
    store_notes = [n for n in notes if "MLflow store" in n]
    assert len(store_notes) == 1 and "old/mlruns" in store_notes[0], notes
    again = ingest(root, uri)
    assert (again.count("skipped"), again.count("ingested"), again.count("updated")) == (3, 0, 0)
