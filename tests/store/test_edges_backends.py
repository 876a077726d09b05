"""One outcome on every backend (SQLite, PostgreSQL direct, ``mlflow server`` on SQLite and on PostgreSQL) for the
edges where they used to differ (issue 20, items 6-8): long values, long run names, NUL characters.

Each case ingests into the session's store for that backend (tests/support/backends.py), in an experiment of its
own, and reads back through MLflow's read APIs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.backends import BACKENDS, backend_uri, new_experiment, outcome
from tests.support.factory import config, merit_target, write_run_folder


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ALIGN_TRACK_ARTIFACTS_ROOT", str(request.getfixturevalue("pg_artifacts")))
    return backend_uri(request, request.param)


def test_a_long_adm_or_target_gives_a_run_name_within_mlflows_limit(backend: str, tmp_path: Path) -> None:
    """A 7,000-character ADM name or a 9,000-character target: the run name (and ``mlflow.runName``) is cut to
    MLflow's 250 with a note, never a store error (PostgreSQL's varchar(250)) nor a 9,000-character tag."""
    tree = tmp_path / "exps"
    write_run_folder(tree / "long_adm", cfg=config(adm="a" * 7000, target=merit_target()))
    write_run_folder(tree / "long_target",
                     cfg=config(target={"id": "t" * 9000, "kdma_values": [{"kdma": "merit", "value": 0.5}]}))
    got = outcome(tree, backend, new_experiment())
    assert got["failed"] == []
    names = {key.split("|")[0]: (run["name"], run["tags"]["mlflow.runName"]) for key, run in got["runs"].items()}
    assert names == {"long_adm": ("a" * 250,) * 2, "long_target": (("pipeline_baseline/" + "t" * 9000)[:250],) * 2}
    assert [n for n in got["notes"] if "run name" in n] == [
        "long_adm: run name: 7025 characters truncated to 250 (MLflow's limit)",
        "long_target: run name: 9018 characters truncated to 250 (MLflow's limit)",
    ]


def test_long_param_and_tag_values_are_truncated_alike_on_every_backend(backend: str, tmp_path: Path) -> None:
    """A 7,000-character param value and 9,000-character tag values: cut to MLflow's 6,000 / 8,000 with a note
    naming the folder and field on every backend (a PostgreSQL-backed store said 'store error' for the target)."""
    tree = tmp_path / "exps"
    write_run_folder(tree / "long_llm", cfg=config(llm="m" * 9000, target=merit_target()))
    write_run_folder(tree / "long_kdma", cfg=config(target={"id": "t1", "kdma_values": [{"kdma": "merit",
                                                                                         "value": "v" * 7000}]}))
    write_run_folder(tree / "long_target",
                     cfg=config(target={"id": "t" * 9000, "kdma_values": [{"kdma": "merit", "value": 0.5}]}))
    got = outcome(tree, backend, new_experiment())
    assert got["failed"] == []
    lengths = {key.split("|")[0]: ({k: len(v) for k, v in run["params"].items() if len(v) > 250},
                                   {k: len(v) for k, v in run["tags"].items() if len(v) > 250})
               for key, run in got["runs"].items()}
    assert lengths == {
        "long_llm": ({"llm_backbone": 6000}, {"llm": 8000}),
        "long_kdma": ({"kdma.merit": 6000}, {}),
        "long_target": ({"alignment_target_id": 6000}, {"alignment_target_id": 8000}),
    }
    assert [n for n in got["notes"] if "truncated" in n and "run name" not in n] == [
        "long_kdma: param 'kdma.merit': 7000 characters truncated to 6000 (MLflow's limit)",
        "long_llm: param 'llm_backbone': 9000 characters truncated to 6000 (MLflow's limit)",
        "long_llm: tag 'llm': 9000 characters truncated to 8000 (MLflow's limit)",
        "long_target: param 'alignment_target_id': 9000 characters truncated to 6000 (MLflow's limit)",
        "long_target: tag 'alignment_target_id': 9000 characters truncated to 8000 (MLflow's limit)",
    ]
    run = got["runs"][f"long_target|{'t' * 6000}"]
    assert run["params"]["alignment_target_id"] == "t" * 6000 and run["tags"]["alignment_target_id"] == "t" * 8000
