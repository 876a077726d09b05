"""Stores written by other tools: the upstream align-track's runs are complete runs for every reader, and a plain
``align-track ingest`` brings them to today's mapping (each replaced like an update, its history kept in tags, no
second run per folder), crash-safe as align-track's own replacements."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from align_track import schema
from align_track.cli.main import main
from align_track.demo.generate import generate_demo
from align_track.ingest import reconcile
from align_track.ingest.pipeline import ingest
from align_track.query.select import RunQuery, run_query
from align_track.store import run_writer, sql_direct
from align_track.store.runs_reader import RunRow
from align_track.store.uri import DEFAULT_EXPERIMENT
from tests.support import server_fixtures
from tests.support.factory import write_run_folder
from tests.support.readback import WRITE_PATHS, spy_write_path
from tests.support.upstream import legacy_records, upstream_records, write_legacy_store, write_upstream_store

pg_db = server_fixtures.pg_db


def runs_by_path(uri: str) -> dict[str, list]:
    """Active runs grouped by experiment_path (and target, for folders with several)."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    out: dict[str, list] = {}
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        key = f"{run.data.tags[schema.TAG_PATH]}|{run.data.params.get(schema.PARAM_TARGET)}"
        out.setdefault(key, []).append(run)
    return out


def trace_total(uri: str) -> int:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    return len(client.search_traces(locations=[experiment.experiment_id], max_results=5000, include_spans=False))


@pytest.fixture(params=["direct", "public"])
def upstream(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
             ) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """A store the upstream tool wrote (its experiment's artifacts in ./mlruns, as mlflow.set_experiment makes
    it), then ingested by align-track's writer without MLflow and, once more, through MLflow (public API)."""
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=6, scenes=2, seed=21)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    run_ids = write_upstream_store(uri, DEFAULT_EXPERIMENT, tree)
    for name, value in WRITE_PATHS[request.param].items():
        monkeypatch.setenv(name, value)
    used = spy_write_path(monkeypatch)
    yield tree, uri, run_ids
    assert set(used) <= {request.param}  # every ingest of the test took that path


def test_upstream_runs_are_complete_runs_for_every_reader(upstream: tuple) -> None:
    tree, uri, _ = upstream
    names = {record.run_name for record in upstream_records(tree)}
    result = run_query(uri, DEFAULT_EXPERIMENT, RunQuery())
    assert {row.run_name for row in result.rows} == names and result.complete == len(names)
    assert all(schema.TAG_KEY not in row.tags for row in result.rows)

    runner = CliRunner()
    found = runner.invoke(main, ["search", "--mlflow-uri", uri, "--format", "json"])
    assert found.exit_code == 0, found.output
    assert {row["run_name"] for row in json.loads(found.output)} == names
    folders = {record.tags[schema.TAG_PATH] for record in upstream_records(tree)}
    listed = runner.invoke(main, ["list-runs", "--mlflow-uri", uri])
    assert listed.exit_code == 0 and all(folder in listed.output for folder in folders), listed.output
    report = runner.invoke(main, ["report", "--mlflow-uri", uri, "--values", "timing.total_seconds", "--agg", "count",
                                  "--format", "json", "-o", str(tree.parent / "report.json")])
    assert report.exit_code == 0, report.output

    from align_track.tui.models.data import all_scenes, load_runs

    snap = load_runs(uri, DEFAULT_EXPERIMENT)
    assert {r.run_name for r in snap.runs} == names
    run = next(r for r in snap.runs if int(r.params[schema.PARAM_NUM_SCENES]) > 0)
    assert len(all_scenes(snap.uri, snap.experiment_id, run.run_id)) == int(run.params[schema.PARAM_NUM_SCENES])


def test_only_align_tracks_own_unfinished_runs_are_hidden() -> None:
    def row(tags: dict[str, str]) -> RunRow:
        return RunRow("r", "n", "FINISHED", 1, 2, "active", "", tags=tags)

    assert schema.counts_as_complete(row({schema.TAG_PATH: "a"}).tags)  # another tool's run
    assert not schema.counts_as_complete({schema.TAG_KEY: "/a", schema.TAG_CLAIM: "h:1:2"})  # ours, half written
    assert not schema.counts_as_complete({schema.TAG_CLAIM: "h:1:2"})
    assert schema.counts_as_complete({schema.TAG_KEY: "/a", schema.TAG_COMPLETE: "true"})


def _data_model(run) -> dict:
    """What a reader sees of a run: params, metrics and the data model's tags (no bookkeeping, no provenance)."""
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith((schema.BOOKKEEPING_PREFIX, "mlflow."))}
    return {"name": run.info.run_name, "params": run.data.params, "metrics": run.data.metrics, "tags": tags}


@pytest.fixture(params=["sqlite-direct", "sqlite-mlflow", "postgresql-direct", "postgresql-mlflow"])
def legacy(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """A store the upstream align-track's own ingest code path wrote (its mapping: unknown_adm for configs
    without ``adm.name``, no alignment or KDMA metrics), on SQLite or PostgreSQL, then ingested by align-track's
    writer without MLflow or through MLflow's store (ALIGN_TRACK_DIRECT=0)."""
    backend, path = request.param.split("-")
    tree = tmp_path / "exps"
    generate_demo(tree, run_folders=6, scenes=2, seed=21)
    write_run_folder(tree / "real-shaped" / "comp_reg_icl", cfg={  # align-system's config without adm.name
        "adm": {"instance": {"_target_": "align_system.algorithms.OutlinesTransformersADM",
                             "model_name": "mistralai/Mistral-7B-Instruct-v0.3"}}})
    sqlite = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    uri = request.getfixturevalue("pg_db") if backend == "postgresql" else sqlite
    run_ids = write_legacy_store(uri, DEFAULT_EXPERIMENT, tree)
    reference = f"sqlite:///{tmp_path / 'reference' / 'mlflow.db'}"  # the same tree into a store of our own
    assert not ingest(tree, reference).failures
    if path == "mlflow":
        monkeypatch.setenv("ALIGN_TRACK_DIRECT", "0")
    used = spy_write_path(monkeypatch)
    yield tree, uri, run_ids
    # every ingest of the test took that path (through MLflow: its public API, as the experiment the upstream
    # made has an artifact location without a file: scheme, which the bulk rows need)
    assert used and set(used) <= ({"direct"} if path == "direct" else {"bulk", "public"})


def test_plain_ingest_brings_upstream_runs_to_todays_mapping(legacy: tuple, tmp_path: Path) -> None:
    tree, uri, run_ids = legacy
    before = runs_by_path(uri)
    assert sum(len(v) for v in before.values()) == len(legacy_records(tree)) == len(run_ids)
    stale = {r.data.params["adm"] for runs in before.values() for r in runs}
    assert schema.UNKNOWN_ADM in stale  # what the upstream wrote for the config without adm.name
    assert not any(k.startswith(("alignment.", "kdma.")) for runs in before.values() for r in runs
                   for k in r.data.metrics)

    summary = ingest(tree, uri)
    assert not summary.failures
    assert summary.count("updated") == len(run_ids) and summary.count("skipped") == 0, summary.outcomes
    after = runs_by_path(uri)
    assert all(len(runs) == 1 for runs in after.values()), after
    assert sum(len(v) for v in after.values()) == len(run_ids)  # replaced, never duplicated

    reference = f"sqlite:///{tmp_path / 'reference' / 'mlflow.db'}"  # made by the fixture, from the same tree
    ours = {k: _data_model(v[0]) for k, v in runs_by_path(reference).items()}
    assert {k: _data_model(v[0]) for k, v in after.items()} == ours  # every field and metric of today's mapping
    assert all(any(m.startswith("alignment.") for m in run["metrics"]) for run in ours.values())
    assert trace_total(uri) == trace_total(reference)

    client = MlflowClient(uri)
    for key, [run] in after.items():  # each run's history: the upstream's run it replaced, its start and user
        path = key.split("|")[0]
        old = client.get_run(run_ids[path])
        assert old.info.lifecycle_stage == "deleted"
        assert run.data.tags[schema.TAG_ADOPTED_RUN] == old.info.run_id
        assert run.data.tags[schema.TAG_ADOPTED_START] == str(old.info.start_time)
        assert run.data.tags[schema.TAG_ADOPTED_USER] == old.data.tags["mlflow.user"]

    again = ingest(tree, uri)  # today's mapping now: the instant path decides every folder unchanged
    assert not again.failures and again.count("skipped") == len(again.outcomes) == len(run_ids)
    assert {k: [r.info.run_id for r in v] for k, v in runs_by_path(uri).items()} == \
        {k: [r.info.run_id for r in v] for k, v in after.items()}


def test_a_watcher_replaces_upstream_runs_as_ingest_does(legacy: tuple, tmp_path: Path) -> None:
    """``ingest --watch`` on the upstream's store wrote a second run beside each of the upstream's (8 runs for 4
    folders): it now replaces them as a plain ingest does; a folder still being written (no timing.json) keeps the
    upstream's run as its complete one until the watcher's live run of it finishes."""
    from align_track.ingest.watch import Watcher

    tree, uri, run_ids = legacy
    watcher = Watcher(tree, uri, stall_after=3600)
    try:
        watcher.poll()
        _check_watched(tree, uri, run_ids, tmp_path)
        for folder in {p for p in run_ids if not (tree / p / schema.TIMING).exists()}:
            (tree / folder / schema.TIMING).write_text(json.dumps({"raw_times_s": [1.0, 2.0]}))
        watcher.poll()  # the live run finishes: the upstream's run of that folder goes
    finally:
        watcher.close()
    after = runs_by_path(uri)
    assert all(len(runs) == 1 and runs[0].data.tags[schema.TAG_ADOPTED_RUN] == run_ids[k.split("|")[0]]
               and schema.counts_as_complete(runs[0].data.tags) and schema.TAG_KEY in runs[0].data.tags
               for k, runs in after.items()), after


def _check_watched(tree: Path, uri: str, run_ids: dict[str, str], tmp_path: Path) -> None:
    after = runs_by_path(uri)
    shown = {k: [r for r in v if schema.counts_as_complete(r.data.tags)] for k, v in after.items()}
    assert all(len(runs) == 1 for runs in shown.values()), shown  # what every reader counts: one run per folder
    assert len(shown) == len(run_ids)
    reference = {k: _data_model(v[0]) for k, v in runs_by_path(f"sqlite:///{tmp_path / 'reference' / 'mlflow.db'}")
                 .items()}
    finished = {k for k in shown if (tree / k.split("|")[0] / schema.TIMING).exists()}
    assert finished and len(finished) < len(shown)  # the demo tree has a folder still being written
    for key, [run] in shown.items():
        path = key.split("|")[0]
        if key in finished:
            assert _data_model(run) == reference[key]
            assert run.data.tags[schema.TAG_ADOPTED_RUN] == run_ids[path]
        else:
            assert run.info.run_id == run_ids[path]  # until the live run of it is complete


def test_history_survives_the_next_update(legacy: tuple) -> None:
    """An adopted folder that changes again is replaced by align-track's rules; the adoption tags go along."""
    tree, uri, run_ids = legacy
    assert not ingest(tree, uri).failures
    changed = sorted(run_ids)[0]
    io_file = tree / changed / schema.INPUT_OUTPUT
    io_file.write_text(json.dumps(json.loads(io_file.read_text())[:1], indent=2))
    summary = ingest(tree, uri)
    assert {o.path: o.status for o in summary.outcomes}[changed] == "updated"
    [run] = [runs[0] for key, runs in runs_by_path(uri).items() if key.startswith(f"{changed}|")]
    assert run.data.params[schema.PARAM_NUM_SCENES] == "1"
    assert run.data.tags[schema.TAG_ADOPTED_RUN] == run_ids[changed]


def test_changed_folder_replaces_the_upstream_run_and_force_replaces_all(upstream: tuple) -> None:
    tree, uri, run_ids = upstream
    changed = sorted(run_ids)[0]
    io_file = tree / changed / schema.INPUT_OUTPUT
    scenes = json.loads(io_file.read_text())
    io_file.write_text(json.dumps(scenes[:1], indent=2))  # the experiment was re-run with fewer scenes

    summary = ingest(tree, uri)
    assert not summary.failures
    statuses = {o.path: o.status for o in summary.outcomes}
    assert statuses.pop(changed) == "updated"
    assert set(statuses.values()) == {"updated"}  # another tool's runs are never taken as today's mapping
    after = runs_by_path(uri)
    assert all(len(runs) == 1 for runs in after.values()), after
    [replaced] = [runs[0] for key, runs in after.items() if key.startswith(f"{changed}|")]
    assert replaced.info.run_id != run_ids[changed]
    assert replaced.data.tags[schema.TAG_COMPLETE] == "true"
    assert replaced.data.params[schema.PARAM_NUM_SCENES] == "1"
    assert MlflowClient(uri).get_run(run_ids[changed]).info.lifecycle_stage == "deleted"
    assert trace_total(uri) == sum(int(r[0].data.params[schema.PARAM_NUM_SCENES]) for r in after.values())

    forced = ingest(tree, uri, force=True)
    assert not forced.failures and forced.count("skipped") == 0
    after = runs_by_path(uri)
    assert all(len(runs) == 1 and schema.TAG_KEY in runs[0].data.tags for runs in after.values())
    assert trace_total(uri) == sum(int(r[0].data.params[schema.PARAM_NUM_SCENES]) for r in after.values())


def test_interrupted_replacement_converges(upstream: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our run is complete but the foreign run it replaces was not deleted yet: the next ingest deletes it."""
    tree, uri, run_ids = upstream
    with monkeypatch.context() as patch:
        for writer in (run_writer.RunStore, sql_direct.DirectStore):  # the process died here
            patch.setattr(writer, "delete_run", lambda self, run_id: None)
        assert not ingest(tree, uri, force=True).failures
    doubled = runs_by_path(uri)
    assert all(len(runs) == 2 for runs in doubled.values())  # what the crash leaves
    assert not (summary := ingest(tree, uri)).failures and summary.count("skipped") == len(summary.outcomes)
    after = runs_by_path(uri)
    assert all(len(runs) == 1 and schema.TAG_KEY in runs[0].data.tags for runs in after.values())
    assert not set(run_ids.values()) & {runs[0].info.run_id for runs in after.values()}
    assert trace_total(uri) == sum(int(r[0].data.params[schema.PARAM_NUM_SCENES]) for r in after.values())


def test_foreign_run_rules() -> None:
    def run(run_id: str, tags: dict[str, str], params: dict[str, str] | None = None, end: int = 10) -> RunRow:
        return RunRow(run_id, run_id, "FINISHED", end - 1, end, "active", "", params=params or {}, tags=tags)

    a = run("a", {schema.TAG_PATH: "x/y"}, {schema.PARAM_TARGET: "t1"}, end=5)
    b = run("b", {schema.TAG_PATH: "x/y"}, {schema.PARAM_TARGET: "t2"}, end=50)
    ours = run("o", {schema.TAG_PATH: "x/y", schema.TAG_KEY: "/x/y", schema.TAG_COMPLETE: "true"}, end=20)
    assert reconcile.foreign_runs_for([a, b, ours], "x/y", "t1", several_targets=False) == [a, b]
    assert reconcile.foreign_runs_for([a, b, ours], "x/y", "t1", several_targets=True) == [a]
    assert reconcile.foreign_runs_for([a, b], "x", "t1", several_targets=False) == []
    assert reconcile.superseded([a, b], ours) == ["a"]  # b is newer than ours: someone re-ran the other tool
    a.tags["mlflow.user"] = "alice"
    assert reconcile.adopted_history([b, a], []) == {schema.TAG_ADOPTED_RUN: "a", schema.TAG_ADOPTED_START: "4",
                                                     schema.TAG_ADOPTED_USER: "alice"}  # the first one
    kept = {schema.TAG_ADOPTED_RUN: "z", schema.TAG_ADOPTED_START: "1"}
    ours_adopted = run("p", {**ours.tags, **kept}, end=30)
    assert reconcile.adopted_history([a], [ours, ours_adopted]) == kept  # carried through later updates
    assert reconcile.adopted_history([], [ours]) == {}
    assert Counter(reconcile.foreign(r) for r in (a, b, ours)) == Counter({True: 2, False: 1})
