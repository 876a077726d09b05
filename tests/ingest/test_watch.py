"""``ingest --watch`` on a real SQLite store: a folder growing scene by scene becomes a RUNNING run whose
traces are appended (never rewritten), finished in place when timing.json lands, stalled (never complete)
when it stops changing, and a restarted watcher resumes it without duplicating a scene."""

from __future__ import annotations

from pathlib import Path

import pytest

from align_track.ingest.pipeline import ingest
from align_track.ingest.scene_log import SceneLog
from align_track.ingest.watch import Watcher
from align_track.query.select import load_complete_runs
from align_track.schema import (
    BOOKKEEPING_PREFIX,
    STATE_FINISHED,
    STATE_RUNNING,
    STATE_STALLED,
    TAG_COMPLETE,
    TAG_SCENES,
    TAG_STATE,
)
from align_track.store.run_appender import LiveRunWriter, mlflow_trace_id, scene_ids
from tests.support import live_writer as lw
from tests.support.factory import scene, write_run_folder
from tests.support.live_store import keyed, scene_names, traces
from tests.support.server_fixtures import run_align_track


class Clock:
    """The watcher's wall clock, moved by the test (stall decisions compare it with file mtimes)."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def one_run(uri: str):
    found = keyed(uri)
    assert len(found) == 1, [r.info.run_id for r in found]
    return found[0]


def test_a_growing_folder_is_one_running_run_whose_traces_are_appended(tmp_path: Path, store_uri: str):
    folder = lw.start(tmp_path / "exp" / "sweep" / "job0")
    watcher = Watcher(tmp_path / "exp", store_uri, stall_after=3600)
    ids_so_far: dict[str, str] = {}
    for n in range(1, 6):
        lw.write_scenes(folder, n)
        watcher.poll()
        run = one_run(store_uri)
        assert run.info.status == "RUNNING"
        assert run.data.tags[TAG_STATE] == STATE_RUNNING and TAG_COMPLETE not in run.data.tags
        assert run.data.tags[TAG_SCENES] == str(n)
        got = {t.data.spans[0].name: t.info.trace_id for t in traces(store_uri, run)}
        assert sorted(got) == [f"S{i}" for i in range(n)]
        # appended, not rewritten: every earlier scene keeps its trace
        assert {k: got[k] for k in ids_so_far} == ids_so_far
        ids_so_far = got
        # readers keep hiding it
        assert load_complete_runs(store_uri)[2] == []
    running_id = run.info.run_id

    lw.finish(folder, 5)
    watcher.poll()
    run = one_run(store_uri)
    assert run.info.run_id == running_id, "finished in place"
    assert run.info.status == "FINISHED"
    assert run.data.tags[TAG_COMPLETE] == "true" and run.data.tags[TAG_STATE] == STATE_FINISHED
    assert [r.run_id for r in load_complete_runs(store_uri)[2]] == [running_id]
    assert scene_names(store_uri, run) == [f"S{i}" for i in range(5)]
    assert sorted(a.path for a in _client(store_uri).list_artifacts(running_id)) == [
        ".hydra", "input_output.json", "timing.json"]

    # The finished run says what a plain ingest of the same folder says.
    plain = f"sqlite:///{tmp_path / 'plain' / 'mlflow.db'}"
    ingest(tmp_path / "exp", plain)
    other = one_run(plain)
    assert run.data.params == other.data.params
    assert run.data.metrics == other.data.metrics
    public = lambda tags: {k: v for k, v in tags.items() if not k.startswith(BOOKKEEPING_PREFIX)}  # noqa: E731
    assert public(run.data.tags) == public(other.data.tags)
    mine, theirs = traces(store_uri, run), traces(plain, other)
    for a, b in zip(mine, theirs, strict=True):
        sa, sb = a.data.spans[0], b.data.spans[0]
        assert (sa.name, sa.inputs, sa.outputs) == (sb.name, sb.inputs, sb.outputs)
        assert {k: v for k, v in sa.attributes.items() if not k.startswith("mlflow.")} == \
            {k: v for k, v in sb.attributes.items() if not k.startswith("mlflow.")}
        assert "timing_seconds" in sa.attributes


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def test_a_folder_that_stops_changing_is_stalled_never_complete_and_a_change_resumes_it(
        tmp_path: Path, store_uri: str):
    folder = lw.start(tmp_path / "exp" / "job")
    lw.write_scenes(folder, 2)
    clock = Clock()
    watcher = Watcher(tmp_path / "exp", store_uri, stall_after=60, clock=clock)
    watcher.poll()
    assert one_run(store_uri).data.tags[TAG_STATE] == STATE_RUNNING
    clock.now += 3600
    watcher.poll()
    run = one_run(store_uri)
    assert run.data.tags[TAG_STATE] == STATE_STALLED
    assert run.info.status == "RUNNING" and TAG_COMPLETE not in run.data.tags
    assert load_complete_runs(store_uri)[2] == []
    clock.now += 3600  # staying stalled is not reported twice
    watcher.poll()
    assert watcher.summary.counts["stalled"] == 1

    lw.write_scenes(folder, 3)
    import time

    clock.now = time.time()
    watcher.poll()
    run = one_run(store_uri)
    assert run.data.tags[TAG_STATE] == STATE_RUNNING and run.data.tags[TAG_SCENES] == "3"
    assert scene_names(store_uri, run) == ["S0", "S1", "S2"]


def test_a_restarted_watcher_resumes_the_run_and_writes_each_scene_once(tmp_path: Path, store_uri: str):
    """A watcher dropped mid-way (its claim counts as dead to the next one) left 3 scenes, and a crash
    inside an append left scene 3's trace written without the progress tags: the next watcher adopts the
    run, finds both by id and writes only scene 4."""
    folder = lw.start(tmp_path / "exp" / "job")
    lw.write_scenes(folder, 3)
    first = Watcher(tmp_path / "exp", store_uri, stall_after=3600)
    first.poll()
    run = one_run(store_uri)
    lw.write_scenes(folder, 5)
    # the crash: scene S3's trace is in the store (same deterministic ids), its tags never were
    scenes = SceneLog(folder / "input_output.json").read()
    identity = first.folders[str(folder)].ids[0]
    from align_track.ingest.folders import RunFolderFiles
    from align_track.ingest.mapping import build_traces

    files = RunFolderFiles(scenes=scenes, timing=None, scores=None, meta=None)
    (record,) = build_traces(identity, files, [3], [None] * 5)
    pair = scene_ids(run.info.run_id, 3, record)
    LiveRunWriter(first.store).append(run.info.run_id, [record], [pair], {})
    del first  # no close(): as after kill -9

    second = Watcher(tmp_path / "exp", store_uri, stall_after=3600)
    second.poll()
    run = one_run(store_uri)
    names = scene_names(store_uri, run)
    assert names == ["S0", "S1", "S2", "S3", "S4"], names
    assert mlflow_trace_id(pair) in {t.info.trace_id for t in traces(store_uri, run)}
    assert second.summary.counts["resumed"] == 1
    lw.finish(folder, 5)
    second.poll()
    run = one_run(store_uri)
    assert run.data.tags[TAG_COMPLETE] == "true"
    assert scene_names(store_uri, run) == ["S0", "S1", "S2", "S3", "S4"]


def test_finished_folders_are_written_whole_and_a_plain_ingest_leaves_a_live_run_alone(
        tmp_path: Path, store_uri: str):
    write_run_folder(tmp_path / "exp" / "done", scenes=[scene("A"), scene("B")])
    live = lw.start(tmp_path / "exp" / "live")
    lw.write_scenes(live, 2)
    watcher = Watcher(tmp_path / "exp", store_uri, stall_after=3600)
    watcher.poll()
    assert watcher.summary.counts["ingested"] == 1 and watcher.summary.counts["created"] == 1
    complete = load_complete_runs(store_uri)[2]
    assert [r.tags["experiment_path"] for r in complete] == ["done"]
    # a plain ingest meanwhile (another process): the live run is this watcher's (busy), the done one skipped
    done = run_align_track("ingest", "--experiments-dir", str(tmp_path / "exp"), "--mlflow-uri", store_uri)
    assert done.returncode == 0, done.stderr
    assert "skipped=1 busy=1" in done.stdout
    assert len(keyed(store_uri)) == 2
    watcher.poll()  # nothing changed: nothing written
    assert watcher.summary.counts["appended"] == 1


def test_a_truncated_scene_file_is_retried_quietly_and_fails_only_once_stalled(tmp_path: Path, store_uri: str):
    folder = lw.start(tmp_path / "exp" / "job")
    lw.write_scenes(folder, 2)
    events = []
    clock = Clock()
    watcher = Watcher(tmp_path / "exp", store_uri, stall_after=60, clock=clock, on_event=events.append)
    watcher.poll()
    text = (folder / "input_output.json").read_text()
    (folder / "input_output.json").write_text(text[: len(text) // 2])  # caught mid-rewrite
    watcher.poll()
    watcher.poll()
    assert [e.kind for e in events] == ["created", "appended"], events
    lw.write_scenes(folder, 3)
    watcher.poll()
    assert scene_names(store_uri, one_run(store_uri)) == ["S0", "S1", "S2"]
    assert watcher.summary.counts["failed"] == 0

    # still unreadable once it stalls: now it is a failure, said once
    (folder / "input_output.json").write_text(text[: len(text) // 2])
    watcher.poll()
    assert "failed" not in [e.kind for e in events]
    clock.now += 3600
    watcher.poll()
    watcher.poll()
    failed = [e for e in events if e.kind == "failed"]
    assert len(failed) == 1 and "input_output.json" in failed[0].message and "JSON" in failed[0].message, events
    assert watcher.summary.counts["failed"] == 1


def test_a_finished_folder_whose_scene_file_does_not_read_fails_at_once(tmp_path: Path, store_uri: str):
    folder = lw.start(tmp_path / "exp" / "job")
    lw.write_scenes(folder, 2)
    events = []
    watcher = Watcher(tmp_path / "exp", store_uri, stall_after=3600, on_event=events.append)
    watcher.poll()
    text = (folder / "input_output.json").read_text()
    (folder / "input_output.json").write_text(text[: len(text) // 2])
    lw.finish(folder, 2)
    watcher.poll()
    assert [e.kind for e in events] == ["created", "appended", "failed"], events
    assert one_run(store_uri).data.tags.get(TAG_COMPLETE) is None


def test_a_writer_that_truncates_then_rewrites_is_never_reported_failed(tmp_path: Path, store_uri: str):
    """A real writer thread rewriting input_output.json non-atomically (truncate, half, pause, the rest), 12 scenes;
    the watcher polls while each rewrite is half done (the writer waits for it) and when it is whole."""
    import threading

    folder = lw.start(tmp_path / "exp" / "job")
    half_written, looked = threading.Event(), threading.Event()
    done = threading.Event()

    def writer() -> None:
        import json

        for n in range(1, 13):
            body = json.dumps(lw.scenes(n), indent=2)
            with open(folder / "input_output.json", "w") as handle:  # truncates
                handle.write(body[: len(body) // 2])
                handle.flush()
                half_written.set()
                looked.wait(30)
                looked.clear()
                handle.write(body[len(body) // 2:])
            half_written.set()
            looked.wait(30)
            looked.clear()
        lw.finish(folder, 12)
        done.set()

    events = []
    watcher = Watcher(tmp_path / "exp", store_uri, stall_after=3600, on_event=events.append)
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    for _ in range(24):  # each scene: once half written, once whole
        assert half_written.wait(30), "the writer stopped"
        half_written.clear()
        watcher.poll()
        looked.set()
    assert done.wait(30)
    watcher.poll()
    assert [e.kind for e in events if e.kind == "failed"] == [], [e.message for e in events if e.kind == "failed"]
    assert watcher.summary.counts["failed"] == 0 and watcher.summary.counts["finished"] == 1
    run = one_run(store_uri)
    assert run.data.tags[TAG_COMPLETE] == "true"
    assert scene_names(store_uri, run) == [f"S{i}" for i in range(12)]


@pytest.mark.parametrize("edit", ["append", "rewrite_earlier", "empty_then_grow"])
def test_scene_log_reads_only_the_tail_and_falls_back_when_the_file_is_not_a_prefix(tmp_path: Path, edit: str):
    import json

    path = tmp_path / "input_output.json"
    log = SceneLog(path)
    if edit == "empty_then_grow":
        path.write_text("[]")
        assert log.read() == []
    lw.write_scenes(tmp_path, 3)
    assert [s["input"]["full_state"]["meta_info"]["scene_id"] for s in log.read()] == ["S0", "S1", "S2"]
    parses = log.full_parses
    if edit == "rewrite_earlier":
        changed = lw.scenes(4)
        changed[0]["output"]["choice"] = 1
        path.write_text(json.dumps(changed, indent=2))
        assert log.read() == changed
        assert log.full_parses == parses + 1
    else:
        lw.write_scenes(tmp_path, 4)
        assert log.read() == lw.scenes(4)
        assert log.full_parses == parses, "only the new scene was parsed"


def test_a_store_kept_inside_the_watched_tree_does_not_ingest_its_own_artifacts(tmp_path: Path):
    root = tmp_path / "exp"
    write_run_folder(root / "done")
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"  # artifacts (with input_output.json copies) under root
    watcher = Watcher(root, uri, stall_after=3600)
    watcher.poll()
    watcher.poll()
    assert list(root.glob("mlflow/artifacts/**/input_output.json")), "the artifacts are inside the tree"
    assert [r.data.tags["experiment_path"] for r in keyed(uri)] == ["done"]


def test_watched_folders_meet_mlflow_limits_exactly_as_ingest(tmp_path: Path, store_uri: str):
    """The watcher maps through ingest's map_run: an over-long param is truncated with a note (whole runs and
    live runs finished in place alike) and a key MLflow refuses fails the folder, as a plain ingest does."""
    from align_track.ingest.watch import FAILED, NOTE
    from tests.support.factory import config, merit_target

    long_llm = config(llm="m" * 20_000, target=merit_target())
    write_run_folder(tmp_path / "exp" / "whole", cfg=long_llm)  # found finished: written whole
    live = lw.start(tmp_path / "exp" / "live", cfg=long_llm)  # found running: created, then finished in place
    lw.write_scenes(live, 2)
    bad_key = config(target={"id": "t", "kdma_values": [{"kdma": "../../etc/passwd", "value": 1}]})
    write_run_folder(tmp_path / "exp" / "bad_key", cfg=bad_key)
    events = []
    watcher = Watcher(tmp_path / "exp", store_uri, stall_after=3600, on_event=events.append)
    watcher.poll()
    lw.finish(live, 2)
    watcher.poll()
    assert watcher.summary.counts["finished"] == 1 and watcher.summary.counts["ingested"] == 1, events

    plain = f"sqlite:///{tmp_path / 'plain' / 'mlflow.db'}"
    notices = []
    summary = ingest(tmp_path / "exp", plain, on_event=lambda e: e.kind == "message" and notices.append(e.message))
    by_path = lambda uri: {r.data.tags["experiment_path"]: r for r in keyed(uri)}  # noqa: E731
    watched, ingested = by_path(store_uri), by_path(plain)
    assert sorted(watched) == sorted(ingested) == ["live", "whole"]
    for path in ("live", "whole"):
        assert watched[path].data.params == ingested[path].data.params, path
        assert watched[path].data.params["llm_backbone"] == "m" * 6000
        assert watched[path].data.tags["llm"] == ingested[path].data.tags["llm"] == "m" * 8000

    truncated = ["param 'llm_backbone': 20000 characters truncated to 6000 (MLflow's limit)",
                 "tag 'llm': 20000 characters truncated to 8000 (MLflow's limit)"]
    notes = sorted(e.message for e in events if e.kind == NOTE)
    assert notes == [f"{path}: {what}" for path in ("live", "whole") for what in truncated], notes  # once per run
    assert sorted(notices) == notes
    failed = [e.message for e in events if e.kind == FAILED]
    (reason,) = [o.error for o in summary.failures]
    assert len(failed) == 1 and "bad_key" in failed[0] and "store error" not in failed[0], failed
    assert failed[0].split(": ", 1)[1] == reason.split(": ", 1)[1]
    assert "'kdma.../../etc/passwd' is refused by MLflow" in reason


def test_the_scene_log_refuses_a_scene_whose_input_is_a_list_as_ingest_does(tmp_path: Path):
    """Read incrementally, a scene that is not the data model's fails with the plain reader's words."""
    import json

    from align_track.ingest.folders import RunFolderError

    path = tmp_path / "input_output.json"
    good = lw.scenes(3)
    path.write_text(json.dumps(good[:2]))
    log = SceneLog(path)
    assert len(log.read()) == 2
    bad = good + [dict(good[0], input=["a", "list"])]
    path.write_text(json.dumps(bad))
    with pytest.raises(RunFolderError, match="input_output.json: scene 3: input is a list, expected an object"):
        log.read()


def test_live_runs_read_back_the_same_on_every_write_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         http_server: str):
    """One folder watched while it grows, stalls, resumes and finishes, by a watcher per write path (on SQLite: the
    writer without MLflow, MLflow's store with the bulk rows, MLflow's public API; on a tracking server: its protocols
    spoken without MLflow, MLflow's client), in lockstep: after every step the stores read back the same through
    MLflow (runs, params, metrics, tags, artifacts, every trace field)."""
    import os

    from align_track.store.uri import DEFAULT_EXPERIMENT
    from tests.support.readback import SERVER_WRITE_PATHS, WRITE_PATHS, snapshot

    folder = lw.start(tmp_path / "exp" / "sweep" / "job")
    clock = Clock()
    stores = {path: (f"sqlite:///{tmp_path / path / 'mlflow.db'}", DEFAULT_EXPERIMENT, env)
              for path, env in WRITE_PATHS.items()}
    stores.update({f"server-{path}": (http_server, f"live-{os.getpid()}-{path}", env)
                   for path, env in SERVER_WRITE_PATHS.items()})
    watchers: dict[str, Watcher] = {}
    for path, (uri, experiment, env) in stores.items():
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            watchers[path] = Watcher(tmp_path / "exp", uri, experiment, stall_after=60, clock=clock)
    assert [w.store.direct for w in watchers.values()] == [True, False, False, True, False]
    assert [w.store.bulk for w in watchers.values()] == [True, True, False, False, False]

    def same(step: str) -> None:
        for watcher in watchers.values():
            watcher.poll()
        views = {path: snapshot(w.uri, volatile={"align_track.heartbeat_ms"}, experiment_name=stores[path][1])
                 for path, w in watchers.items()}
        assert len(views["direct"]) == 1
        for path, view in views.items():
            assert view == views["direct"], (step, path)

    for n in (1, 3):
        lw.write_scenes(folder, n)
        same(f"{n} scenes")
    clock.now += 3600
    same("stalled")
    lw.write_scenes(folder, 4)
    clock.now = __import__("time").time()
    same("resumed")
    lw.finish(folder, 4)
    same("finished")
    for watcher in watchers.values():
        watcher.close()


def test_a_watcher_starting_on_an_ingested_tree_parses_no_config(tmp_path: Path, store_uri: str,
                                                                  monkeypatch: pytest.MonkeyPatch):
    """Start-up costs a stat per file and one store read: folders whose runs were written from their current
    files are settled unparsed, as ``ingest`` decides them; a folder that changes later is read as before."""
    from align_track.ingest import folders

    for name in ("a", "b", "c"):
        lw.finish(_finished(tmp_path / "exp" / name), 2)
    assert ingest(tmp_path / "exp", store_uri).count("ingested") == 3
    parsed: list[str] = []
    real = folders.read_yaml
    monkeypatch.setattr(folders, "read_yaml", lambda path, folder=None: parsed.append(path.parent.parent.name)
                        or real(path, folder))
    watcher = Watcher(tmp_path / "exp", store_uri, stall_after=3600, rescan_every=0)  # every poll stats all files
    watcher.poll()
    assert parsed == [] and all(f.settled for f in watcher.folders.values())
    assert watcher.summary.counts == {} and len(keyed(store_uri)) == 3

    lw.write_scenes(tmp_path / "exp" / "b", 3)  # b grows again: read, rewritten as it now is
    lw.finish(tmp_path / "exp" / "b", 3)
    watcher.poll()
    assert parsed == ["b"] and watcher.summary.counts["replaced"] == 1
    runs = {r.data.tags["experiment_path"]: r for r in keyed(store_uri)}
    assert runs["b"].data.params["num_scenarios"] == "3" and len(runs) == 3
    watcher.close()


def _finished(folder: Path) -> Path:
    lw.start(folder)
    lw.write_scenes(folder, 2)
    return folder


def test_a_resumed_run_reports_its_scenes_once_when_it_stalls(tmp_path: Path, store_uri: str):
    """After an adoption each scene is known by two keys for a while (its stored id, then its index): the events
    count scenes, not keys (``resumed ... scenes=3`` then ``stalled ... scenes=6`` was the bug)."""
    folder = lw.start(tmp_path / "exp" / "job")
    lw.write_scenes(folder, 3)
    first = Watcher(tmp_path / "exp", store_uri, stall_after=3600)
    first.poll()
    del first  # no close(): as after kill -9
    events = []
    clock = Clock()
    second = Watcher(tmp_path / "exp", store_uri, stall_after=60, clock=clock, on_event=events.append)
    second.poll()
    clock.now += 3600
    second.poll()
    got = [(e.kind, e.scenes) for e in events]
    assert got == [("resumed", 3), ("stalled", 3)], got
    lw.write_scenes(folder, 4)
    clock.now = __import__("time").time()
    second.poll()
    assert [(e.kind, e.scenes) for e in events[2:]] == [("resumed", 4), ("appended", 4)], events[2:]
    assert one_run(store_uri).data.tags[TAG_SCENES] == "4"
