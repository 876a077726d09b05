"""Generated hostile run folders (tests/support/hostile.py) ingested into every backend give one outcome: the same
runs, fields (read back through MLflow's read APIs), failures and notes on SQLite, PostgreSQL direct and
``mlflow server`` on SQLite and on PostgreSQL; never a store error, nothing stored over MLflow's limits or
unstorable.

``make test`` runs the bounded profile (a few examples, derandomised, backends shared by the session);
``make fuzz`` runs the long one: ``ALIGN_TRACK_HYPOTHESIS=hostile-long``.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given

from align_track.store.limits import (
    MAX_PARAM_VAL_LENGTH,
    MAX_RUN_NAME_LENGTH,
    MAX_TAG_VAL_LENGTH,
    UNSTORABLE,
)
from tests.support.backends import BACKENDS, backend_uri, new_experiment, outcome
from tests.support.hostile import Folder, trees, write_tree
from tests.support.hypothesis_profiles import profile

PROFILE = profile("hostile", ci=5, long=300, examples_env="ALIGN_TRACK_HOSTILE_EXAMPLES",
                  also_suppress=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def stores(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every backend's session store (PostgreSQL's skip where there is none, unless CI requires it)."""
    monkeypatch.setenv("ALIGN_TRACK_ARTIFACTS_ROOT", str(request.getfixturevalue("pg_artifacts")))
    found = {}
    for name in BACKENDS:
        try:
            found[name] = backend_uri(request, name)
        except pytest.skip.Exception:
            continue
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _within_limits(got: dict[str, Any]) -> None:
    assert not [f for f in got["failed"] if "store error" in f], got["failed"]
    for key, run in got["runs"].items():
        assert len(run["name"]) <= MAX_RUN_NAME_LENGTH and run["tags"]["mlflow.runName"] == run["name"], key
        assert all(len(v) <= MAX_PARAM_VAL_LENGTH for v in run["params"].values()), key
        assert all(len(v) <= MAX_TAG_VAL_LENGTH for v in run["tags"].values()), key
        assert not [s for s in _strings(run) if UNSTORABLE.search(s)], key


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=repr):
            if a.get(key, "<missing>") != b.get(key, "<missing>"):
                return _first_difference(a.get(key, "<missing>"), b.get(key, "<missing>"), f"{where}/{key!r}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{where}[{n}]")
    return f"{where}: {a!r:.300} != {b!r:.300}"


@PROFILE
@given(folders=trees)
def test_hostile_folders_give_one_outcome_on_every_backend(stores: dict[str, str], folders: list[Folder]) -> None:
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        tree = write_tree(Path(tmp) / "exps", folders)
        experiment = new_experiment("hostile")  # one per backend: PostgreSQL direct and its server share a database
        results = {name: outcome(tree, uri, f"{experiment}-{name}") for name, uri in stores.items()}
    reference = results["sqlite"]
    event(f"runs={len(reference['runs'])} failed={len(reference['failed'])} notes={len(reference['notes'])}")
    for failure in reference["failed"]:  # what the generator reached: --hypothesis-show-statistics
        event("failed: " + re.sub(r"^.*?/(input_output\.json|timing\.json|\.hydra/config\.yaml|scores\.json): ",
                                  r"\1: ", failure)[:70])
    _within_limits(reference)
    for name, got in results.items():
        assert got == reference, f"{name} differs from sqlite at {_first_difference(got, reference)}"
