"""A run ingested while its folder was still being written says 'may still be running'; ingesting the same folder
again once it has been quiet for the stall window settles it to 'no timing' (issue 25 item 7): the same run, one
tag re-recorded, on every backend (SQLite and PostgreSQL direct, ``mlflow server`` on each, MLflow's client path).
A skip of any other run writes nothing. A timing.json that appears later is a change: the run is rewritten, done.

Real stores, real ingests; folders from tests/support/factory.py with their file times set by ``os.utime``. The
wait for the stall window is the ingest's ``clock`` moved forward (the folder's files must stay as they are: a
changed file time is a changed folder, rewritten rather than skipped).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from align_track import schema as S
from align_track.ingest.outcomes import NO_TIMING, SKIPPED, UPDATED
from align_track.ingest.pipeline import ingest
from align_track.query.live import complete_state
from align_track.store.runs_reader import RunRow, get_experiment_id, load_runs
from tests.support.backends import BACKENDS, backend_uri, new_experiment
from tests.support.factory import scene, write_run_folder

OLD = 2 * 3600.0
"""Seconds before now the quiet folders last changed: far outside the stall window."""
LATER = S.STALL_SECONDS + 60.0
"""Seconds the clock of the settling ingest is moved on: the stall window has passed since the first ingest."""


def age_folder(path: Path, seconds: float) -> None:
    """Every file and directory of a run folder last changed ``seconds`` ago."""
    when = time.time() - seconds
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*filenames, *dirnames]:
            os.utime(Path(dirpath) / name, (when, when))


@pytest.fixture(params=(*BACKENDS, "sqlite-mlflow-client"))
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("ALIGN_TRACK_ARTIFACTS_ROOT", str(request.getfixturevalue("pg_artifacts")))
    if request.param == "sqlite-mlflow-client":  # MLflow's path: every config parsed, decided per folder
        monkeypatch.setenv("ALIGN_TRACK_DIRECT", "0")
        return f"sqlite:///{tmp_path / 'client.db'}"
    return backend_uri(request, request.param)


def three_folders(root: Path, names: tuple[str, ...] = ("timed", "untimed", "writing")) -> Path:
    """'timed' (timing.json, quiet for long), 'untimed' (none, quiet for long), 'writing' (none, written now)."""
    for name in names:
        write_run_folder(root / name, scenes=[scene(f"{name}-{i}") for i in range(3)], timing=name == "timed")
        if name != "writing":
            age_folder(root / name, OLD)
    return root


def runs(uri: str, experiment: str) -> dict[str, list[RunRow]]:
    """The experiment's runs by folder (``experiment_path``), read back from the store."""
    out: dict[str, list[RunRow]] = {}
    for row in load_runs(uri, get_experiment_id(uri, experiment)):
        out.setdefault(row.tags.get(S.TAG_PATH, "?"), []).append(row)
    return out


def states(found: dict[str, list[RunRow]]) -> dict[str, list[str]]:
    return {path: [complete_state(r) for r in rows] for path, rows in found.items()}


def stored(row: RunRow) -> tuple:
    """Everything a write could change about a run."""
    return row.run_id, row.status, row.start_time, row.end_time, row.params, row.metrics, row.tags


def outcomes(summary) -> dict[str, tuple[str, str]]:
    return {o.path: (o.status, o.note) for o in summary.outcomes}


def test_an_unchanged_folder_that_went_quiet_settles_to_no_timing(backend: str, tmp_path: Path) -> None:
    root, experiment = three_folders(tmp_path / "exps"), new_experiment("settle")
    first = ingest(root, backend, experiment)
    assert first.failures == []
    before = runs(backend, experiment)
    assert states(before) == {"timed": ["done"], "untimed": ["no timing"], "writing": ["may still be running"]}

    again = ingest(root, backend, experiment)  # at once: still within the window, nothing to write
    assert outcomes(again) == {p: (SKIPPED, "") for p in ("timed", "untimed", "writing")}
    assert {p: [stored(r) for r in rows] for p, rows in runs(backend, experiment).items()} == \
        {p: [stored(r) for r in rows] for p, rows in before.items()}

    settled = ingest(root, backend, experiment, clock=lambda: time.time() + LATER)  # the experiment is over
    assert outcomes(settled) == {"timed": (SKIPPED, ""), "untimed": (SKIPPED, ""), "writing": (SKIPPED, NO_TIMING)}
    after = runs(backend, experiment)
    assert states(after) == {"timed": ["done"], "untimed": ["no timing"], "writing": ["no timing"]}
    for path in ("timed", "untimed"):  # their skips wrote nothing
        assert [stored(r) for r in after[path]] == [stored(r) for r in before[path]]
    (was,), (now,) = before["writing"], after["writing"]
    assert now.run_id == was.run_id  # the same run, not a copy
    assert {k: v for k, v in now.tags.items() if v != was.tags.get(k)} == {S.TAG_INGEST_TIME: now.tags[
        S.TAG_INGEST_TIME]}  # one tag re-recorded, nothing else
    assert stored(now)[:6] == stored(was)[:6]

    quiet = ingest(root, backend, experiment, clock=lambda: time.time() + 2 * LATER)  # settled: no more writes
    assert outcomes(quiet) == {p: (SKIPPED, "") for p in ("timed", "untimed", "writing")}
    assert {p: [stored(r) for r in rows] for p, rows in runs(backend, experiment).items()} == \
        {p: [stored(r) for r in rows] for p, rows in after.items()}


def test_a_timing_json_that_appears_later_is_a_change_the_run_is_done(backend: str, tmp_path: Path) -> None:
    root, experiment = tmp_path / "exps", new_experiment("settle")
    write_run_folder(root / "writing", scenes=[scene(f"w-{i}") for i in range(3)], timing=False)
    assert ingest(root, backend, experiment).failures == []
    assert states(runs(backend, experiment)) == {"writing": ["may still be running"]}
    write_run_folder(root / "writing", scenes=[scene(f"w-{i}") for i in range(3)], timing=True)
    summary = ingest(root, backend, experiment)
    assert outcomes(summary) == {"writing": (UPDATED, "")}
    assert states(runs(backend, experiment)) == {"writing": ["done"]}


@pytest.mark.parametrize("names", [("timed", "untimed", "writing"), ("writing",)])
def test_a_watcher_settles_it_once_the_folder_has_been_quiet_for_the_window(
        backend: str, tmp_path: Path, names: tuple[str, ...]) -> None:
    """``ingest --watch`` skips the same unchanged folder (decided from the start-up read when there are several,
    else per folder): it settles the run when the window passes, after the ingest, while it watches."""
    from align_track.ingest.watch import SETTLED, Watcher

    root, experiment = three_folders(tmp_path / "exps", names), new_experiment("settle")
    assert ingest(root, backend, experiment).failures == []
    before = runs(backend, experiment)
    assert states(before)["writing"] == ["may still be running"]

    clock = Clock()
    watcher = Watcher(root, backend, experiment, rescan_every=3600, clock=clock)
    try:
        watcher.poll()  # within the window: nothing to do
        assert watcher.summary.counts == {}
        assert {p: [stored(r) for r in rows] for p, rows in runs(backend, experiment).items()} == \
            {p: [stored(r) for r in rows] for p, rows in before.items()}
        clock.now += LATER
        watcher.poll()
        watcher.poll()
        assert watcher.summary.counts == {SETTLED: 1}
    finally:
        watcher.close()
    after = runs(backend, experiment)
    assert states(after) == {n: ["done" if n == "timed" else "no timing"] for n in names}
    (was,), (now,) = before["writing"], after["writing"]
    assert now.run_id == was.run_id and stored(now)[:6] == stored(was)[:6]
    assert {p: [stored(r) for r in rows] for p, rows in after.items() if p != "writing"} == \
        {p: [stored(r) for r in rows] for p, rows in before.items() if p != "writing"}


class Clock:
    """The watcher's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_run_replaced_since_the_plan_read_it_is_left_alone(backend: str, tmp_path: Path) -> None:
    """Two ingests at once: the other one replaced (deleted) the run between this one's read and its settling
    write. Nothing is left to settle: skipped, not a store error, and the deleted run stays deleted."""
    from align_track.ingest.plan import Unchanged, settle_skipped
    from align_track.store.open_store import open_run_store

    root, experiment = three_folders(tmp_path / "exps", ("writing",)), new_experiment("settle")
    assert ingest(root, backend, experiment).failures == []
    (run,) = runs(backend, experiment)["writing"]
    store = open_run_store(backend, experiment)
    try:
        store.delete_run(run.run_id)
        known = Unchanged("key", ("adm", None, "target"), "writing", "default", run.run_id, settles_at=0)
        got = settle_skipped(store, known, "writing", time.time, lambda message: None)
    finally:
        store.close()
    assert (got.status, got.note, got.error) == (SKIPPED, "", None)
    assert runs(backend, experiment) == {}
