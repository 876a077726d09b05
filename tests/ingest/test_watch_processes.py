"""Real processes: ``align-track ingest --watch`` killed with kill -9 while a folder grows, restarted, two
watchers on overlapping trees, and an align-system writer killed halfway; on SQLite and over HTTP (a real
``mlflow server``). The store must converge: one run per folder, one trace per scene, complete only once
timing.json is there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from align_track.schema import STATE_STALLED, TAG_COMPLETE, TAG_SCENES, TAG_STATE
from tests.support import live_writer as lw
from tests.support.live_store import keyed, scene_names, wait_for
from tests.support.server_fixtures import align_track_cmd, cli_env

_experiments = iter(range(10_000))


@pytest.fixture
def experiment(uri: str) -> str:
    """A fresh experiment per test (the HTTP server is shared by the module), created before any process
    starts: two processes creating one SQLite store at once race in MLflow's schema migration."""
    from align_track.store.run_writer import RunStore

    name = f"live-{os.getpid()}-{next(_experiments)}"
    RunStore(uri, name)
    return name


def start_watcher(root: Path, uri: str, experiment: str, *extra: str) -> subprocess.Popen:
    cmd = align_track_cmd("ingest", "--watch", "--experiments-dir", str(root), "--mlflow-uri", uri,
                          "--experiment-name", experiment, "--poll-interval", "0.1", *extra)
    return subprocess.Popen(cmd, env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def kill9(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def runs_of(uri: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return [r for r in client.search_runs([found.experiment_id], max_results=1000) if "align_track.key" in r.data.tags]


def scenes_tag(uri: str, experiment: str, at_least: int) -> bool:
    found = runs_of(uri, experiment)
    return len(found) == 1 and int(found[0].data.tags.get(TAG_SCENES, 0)) >= at_least


def test_watcher_killed_9_at_any_moment_and_restarted_converges(tmp_path: Path, uri: str, experiment: str):
    root = tmp_path / "exp"
    folder = lw.start(root / "sweep" / "job0")
    lw.write_scenes(folder, 2)
    watcher = start_watcher(root, uri, experiment)
    wait_for(lambda: scenes_tag(uri, experiment, 2), "2 scenes", processes=(watcher,))
    lw.write_scenes(folder, 3)
    wait_for(lambda: scenes_tag(uri, experiment, 3), "3 scenes", processes=(watcher,))
    kill9(watcher)  # between appends

    lw.write_scenes(folder, 6)
    watcher = start_watcher(root, uri, experiment)
    # killed as soon as it started writing: any point of the adopt/append sequence
    wait_for(lambda: scenes_tag(uri, experiment, 4) or _traces_at_least(uri, experiment, 4), "an append",
             processes=(watcher,))
    kill9(watcher)

    lw.write_scenes(folder, 8)
    watcher = start_watcher(root, uri, experiment)
    wait_for(lambda: scenes_tag(uri, experiment, 8), "8 scenes", processes=(watcher,))
    (run,) = runs_of(uri, experiment)
    assert run.info.status == "RUNNING" and TAG_COMPLETE not in run.data.tags
    lw.finish(folder, 8)
    wait_for(lambda: runs_of(uri, experiment)[0].data.tags.get(TAG_COMPLETE) == "true", "completion",
             processes=(watcher,))
    watcher.send_signal(signal.SIGINT)
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    assert "finished=1" in out
    (run,) = runs_of(uri, experiment)
    assert run.info.status == "FINISHED"
    assert scene_names(uri, run) == [f"S{i}" for i in range(8)]
    assert run.data.params["num_scenarios"] == "8"


def _traces_at_least(uri: str, experiment: str, count: int) -> bool:
    found = runs_of(uri, experiment)
    return len(found) == 1 and len(scene_names(uri, found[0])) >= count


def test_two_watchers_on_overlapping_trees_write_each_scene_once(tmp_path: Path, uri: str, experiment: str):
    root = tmp_path / "exp"
    folders = [lw.start(root / "sweep" / f"job{i}") for i in range(2)]
    for f in folders:
        lw.write_scenes(f, 1)
    watchers = [start_watcher(root, uri, experiment), start_watcher(root / "sweep", uri, experiment)]
    for n in range(2, 5):
        for f in folders:
            lw.write_scenes(f, n)
    for f in folders:
        lw.finish(f, 4)

    def both_complete() -> bool:
        found = runs_of(uri, experiment)
        return len(found) == 2 and all(r.data.tags.get(TAG_COMPLETE) == "true" for r in found)

    wait_for(both_complete, "two complete runs", processes=tuple(watchers))
    for w in watchers:
        w.send_signal(signal.SIGINT)
        _, err = w.communicate(timeout=60)
        assert w.returncode == 0, err
    found = runs_of(uri, experiment)
    # experiment_path is relative to whichever watcher wrote the run; the folder itself is one of ours
    assert sorted(r.data.tags["align_track.source_path"] for r in found) == [str(f.resolve()) for f in folders]
    for run in found:
        assert scene_names(uri, run) == ["S0", "S1", "S2", "S3"]


def test_a_writer_killed_halfway_leaves_a_stalled_run_never_a_complete_one(tmp_path: Path, uri: str,
                                                                           experiment: str):
    root = tmp_path / "exp"
    folder = root / "job"
    writer = subprocess.Popen([sys.executable, "-m", "tests.support.live_writer", str(folder), "--scenes", "500",
                               "--delay", "0.05"], stdout=subprocess.PIPE, text=True, env=cli_env())
    assert writer.stdout is not None
    for line in writer.stdout:
        if line.strip() == "scene 3":
            break
    kill9(writer)
    written = len(lw.scenes(0)) + len(__import__("json").loads((folder / "input_output.json").read_text()))
    watcher = start_watcher(root, uri, experiment, "--stall-after", "1")
    wait_for(lambda: (r := runs_of(uri, experiment)) and r[0].data.tags.get(TAG_STATE) == STATE_STALLED,
             "a stalled run", processes=(watcher,))
    watcher.send_signal(signal.SIGINT)
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    assert "stalled=1" in out and "live_left=1" in out
    (run,) = runs_of(uri, experiment)
    assert run.info.status == "RUNNING" and TAG_COMPLETE not in run.data.tags
    assert run.data.tags["align_track.claim"] == "released"
    assert len(scene_names(uri, run)) == written
    # readers hide it
    from align_track.query.select import load_complete_runs

    assert load_complete_runs(uri, experiment)[2] == []
    assert keyed  # (the helper module is shared with the in-process tests)
