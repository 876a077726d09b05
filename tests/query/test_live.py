"""The live read side: runs_changed_since (incremental reads for a self-refreshing runs table), live runs with
progress, and the sweep's running / finished / stalled / failed counts; on SQLite and over HTTP."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mlflow import MlflowClient

from align_track.ingest.watch import Watcher
from align_track.query.live import live_runs, sweep_counts, sweep_summary
from align_track.query.select import load_complete_runs
from align_track.store.runs_reader import get_experiment_id, load_runs, runs_changed_since
from tests.support import live_writer as lw
from tests.support.factory import write_run_folder

_names = iter(range(10_000))


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_sweep_in_progress_reads_back_incrementally_with_progress_and_counts(tmp_path: Path, uri: str):
    experiment = f"sweep-{os.getpid()}-{next(_names)}"
    root = tmp_path / "exp"
    running = lw.start(root / "running")
    stalled = lw.start(root / "stalled")
    lw.write_scenes(running, 2)
    lw.write_scenes(stalled, 1)
    write_run_folder(root / "done")
    write_run_folder(root / "crashed")
    clock = Clock()
    watcher = Watcher(root, uri, experiment, stall_after=600, clock=clock)
    watcher.poll()
    # the stalled folder stops changing long ago; the running one changes now
    old = time.time() - 3600
    for name in ("input_output.json", ".hydra/config.yaml"):
        os.utime(stalled / name, (old, old))
    lw.write_scenes(running, 3)
    watcher.poll()
    experiment_id = get_experiment_id(uri, experiment)
    crashed = next(r for r in load_runs(uri, experiment_id) if r.tags.get("experiment_path") == "crashed")
    MlflowClient(uri).set_terminated(crashed.run_id, "FAILED")

    counts = sweep_summary(uri, experiment)
    assert (counts.running, counts.finished, counts.stalled, counts.failed) == (1, 1, 1, 1)
    assert counts.line() == "running 1 · finished 1 · stalled 1 · failed 1"
    live = {p.path: p for p in live_runs(uri, experiment)}
    assert set(live) == {"running", "stalled"}
    assert (live["running"].state, live["running"].scenes) == ("running", 3)
    assert (live["stalled"].state, live["stalled"].scenes) == ("stalled", 1)
    assert live["running"].last_scene_ms is not None and live["running"].elapsed_s >= 0
    # search/export/report still see complete runs only (the failed job's run is complete, status FAILED)
    assert sorted(r.tags["experiment_path"] for r in load_complete_runs(uri, experiment)[2]) == ["crashed", "done"]

    # Incremental: nothing new since the last read -> only the live runs come back
    first = runs_changed_since(uri, experiment_id, 0)
    assert len(first.rows) == 4
    delta = runs_changed_since(uri, experiment_id, first.as_of_ms + 1)
    assert sorted(r.tags["experiment_path"] for r in delta.rows) == ["running", "stalled"]
    # a scene lands, then the run finishes in place: each read carries the change
    lw.write_scenes(running, 4)
    watcher.poll()
    delta = runs_changed_since(uri, experiment_id, first.as_of_ms + 1)
    row = next(r for r in delta.rows if r.tags["experiment_path"] == "running")
    assert row.tags["align_track.scenes"] == "4"
    before_finish = delta.as_of_ms
    lw.finish(running, 4)
    watcher.poll()
    delta = runs_changed_since(uri, experiment_id, before_finish)
    row = next(r for r in delta.rows if r.tags["experiment_path"] == "running")
    assert row.tags.get("align_track.complete") == "true" and row.status == "FINISHED"
    assert "done" not in {r.tags["experiment_path"] for r in delta.rows}
    assert sweep_counts(load_runs(uri, experiment_id)).finished == 2
    # a replaced run is reported deleted where the store can say so
    write_run_folder(root / "done", timing=[9.0, 9.0, 9.0])
    since = runs_changed_since(uri, experiment_id, 0).as_of_ms
    clock.now = time.time() + 120  # past the full rescan: finished folders' files are stat'ed again
    watcher.poll()
    delta = runs_changed_since(uri, experiment_id, since)
    if uri.startswith("sqlite"):
        assert delta.deleted is not None and len(delta.deleted) == 1
    else:
        assert delta.deleted is None
    new_done = [r for r in delta.rows if r.tags["experiment_path"] == "done"]
    assert len(new_done) == 1 and new_done[0].metrics["timing.total_seconds"] == 27.0
    watcher.close()


def test_runs_of_past_experiments_are_new_when_written_not_when_they_ran(tmp_path: Path, uri: str):
    """A run's start/end are its experiment's (here June 2025): the incremental read still finds it once
    written (its ``align_track.ingest_time_ms``), and a live run of such a folder when it finishes in place."""
    from align_track.ingest.pipeline import ingest

    experiment = f"past-{os.getpid()}-{next(_names)}"
    root = tmp_path / "exp"
    write_run_folder(root / "outputs/2025-06-12/10-31-02")
    assert not ingest(root, uri, experiment).failures
    experiment_id = get_experiment_id(uri, experiment)
    since = runs_changed_since(uri, experiment_id, 0).as_of_ms + 1
    assert runs_changed_since(uri, experiment_id, since).rows == []
    write_run_folder(root / "outputs/2025-06-12/11-02-40")
    assert not ingest(root, uri, experiment).failures
    delta = runs_changed_since(uri, experiment_id, since)  # the first run too: rewritten with its new variant
    assert sorted(r.tags["experiment_path"] for r in delta.rows) == ["outputs/2025-06-12/10-31-02",
                                                                     "outputs/2025-06-12/11-02-40"]
    assert all(r.start_time < since - 86_400_000 for r in delta.rows)  # started long before they were written

    live = lw.start(root / "multirun/2025-06-12/12-00-00/0")
    lw.write_scenes(live, 2)
    watcher = Watcher(root, uri, experiment, stall_after=600)
    watcher.poll()
    before_finish = runs_changed_since(uri, experiment_id, 0).as_of_ms + 1
    lw.finish(live, 2)
    watcher.poll()
    delta = runs_changed_since(uri, experiment_id, before_finish)
    row = next(r for r in delta.rows if r.tags["experiment_path"] == "multirun/2025-06-12/12-00-00/0")
    assert row.status == "FINISHED" and row.end_time < before_finish - 86_400_000
    watcher.close()


def test_timing_state_says_no_timing_and_may_still_be_running_from_the_run_alone() -> None:
    """A complete run without timing metrics: 'no timing'; 'may still be running' when its end (the folder's last
    file time, for such a folder) lies within the stall window before align-track wrote it (issue 25 item 7)."""
    from align_track.query.live import timing_state
    from align_track.schema import MAYBE_RUNNING, NO_TIMING, STALL_SECONDS, TAG_INGEST_TIME
    from align_track.store.runs_reader import RunRow

    def run(metrics: dict, end: int | None, ingested: int | None) -> RunRow:
        tags = {} if ingested is None else {TAG_INGEST_TIME: str(ingested)}
        return RunRow("r", "n", "FINISHED", 0, end, "active", "", metrics=metrics, tags=tags)

    stall_ms = int(STALL_SECONDS * 1000)
    assert timing_state(run({"timing.total_seconds": 3.0}, 1_000, 1_000)) == ""
    assert timing_state(run({}, 1_000_000, 1_000_000 + stall_ms - 1)) == MAYBE_RUNNING
    assert timing_state(run({}, 1_000_000, 1_000_000 + stall_ms)) == NO_TIMING
    assert timing_state(run({}, 1_000_000, None)) == NO_TIMING  # written before the tag (or by another tool)
    assert timing_state(run({}, None, 1_000_000)) == NO_TIMING


def test_timing_note_looks_at_the_folder(tmp_path: Path) -> None:
    from align_track.ingest.folders import timing_note
    from align_track.schema import MAYBE_RUNNING, NO_TIMING, STALL_SECONDS

    timed = write_run_folder(tmp_path / "timed")
    untimed = write_run_folder(tmp_path / "untimed", timing=False)
    now = time.time()
    assert timing_note(timed, now) == ("", None)
    note, age = timing_note(untimed, now)
    assert note == MAYBE_RUNNING and 0 <= age < 60
    assert timing_note(untimed, now + STALL_SECONDS + 1)[0] == NO_TIMING
