"""The read-back used to compare stores (tests/support/readback.py) is exact across experiment ids."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from align_track.ingest.pipeline import ingest
from tests.support.factory import write_run_folder
from tests.support.readback import snapshot


def test_the_same_folder_reads_back_the_same_whatever_its_experiments_id(tmp_path: Path) -> None:
    """MLflow's size stats count the experiment id's digits: experiment "10" made every trace two bytes bigger
    than experiment "1", so a comparison against a shared PostgreSQL store failed or passed by test order."""
    write_run_folder(tmp_path / "exps" / "run-a")
    first, later = f"sqlite:///{tmp_path / 'first.db'}", f"sqlite:///{tmp_path / 'later.db'}"
    client = MlflowClient(later)
    for n in range(9):  # experiments before ours: its id gets a second digit
        client.create_experiment(f"other-{n}")
    for uri in (first, later):
        assert not ingest(tmp_path / "exps", uri).failures
    ids = {len(MlflowClient(uri).get_experiment_by_name("align-system-experiments").experiment_id)
           for uri in (first, later)}
    assert ids == {1, 2}
    assert snapshot(first) == snapshot(later)
