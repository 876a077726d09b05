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
