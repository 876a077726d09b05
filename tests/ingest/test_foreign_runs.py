"""Stores written by other tools: the upstream align-track's runs are complete runs for every reader, and
``align-track ingest`` adopts them (no second run per folder), replacing one only when its folder changed
or with ``--force``, crash-safe as align-track's own replacements."""

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
from tests.support.readback import WRITE_PATHS, spy_write_path
from tests.support.upstream import upstream_records, write_upstream_store


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


def test_ingest_adopts_unchanged_upstream_runs(upstream: tuple) -> None:
    tree, uri, run_ids = upstream
    before = runs_by_path(uri)
    traces = trace_total(uri)
    summary = ingest(tree, uri)
    assert not summary.failures and summary.traces == 0
    assert summary.count("skipped") == len(summary.outcomes)
    after = runs_by_path(uri)
    assert {k: [r.info.run_id for r in v] for k, v in after.items()} == \
        {k: [r.info.run_id for r in v] for k, v in before.items()}
    assert all(len(runs) == 1 for runs in after.values())
    assert trace_total(uri) == traces


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
    assert set(statuses.values()) == {"skipped"}
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
    disk = {"input_output.json": 10, "timing.json": 3}
    assert reconcile.same_files(dict(disk), disk)
    assert not reconcile.same_files({**disk, "timing.json": 4}, disk)
    assert not reconcile.same_files({"input_output.json": 10}, disk)
    assert not reconcile.same_files(None, disk)
    assert Counter(reconcile.foreign(r) for r in (a, b, ours)) == Counter({True: 2, False: 1})
