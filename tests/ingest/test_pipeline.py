"""Ingest end to end against real SQLite MLflow stores: complete, lossless, idempotent, crash-safe."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from align_track.cli.main import main
from align_track.demo.generate import generate_demo
from align_track.ingest.pipeline import ingest
from align_track.store.uri import DEFAULT_EXPERIMENT
from tests.support.factory import config, merit_target, scene, write_run_folder

EXP = DEFAULT_EXPERIMENT


def active_runs(uri: str, name: str = EXP) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    return client.search_runs([experiment.experiment_id], max_results=10000)


def complete_runs(uri: str) -> list:
    return [r for r in active_runs(uri) if r.data.tags.get("align_track.complete") == "true"]


def traces_of(uri: str, run) -> list:
    mlflow.set_tracking_uri(uri)
    return mlflow.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id, return_type="list")


def small_tree(root: Path) -> Path:
    write_run_folder(root / "pipeline_baseline" / "merit-0.5" / "run_a", timing=[1.0, 2.0, 3.0],
                     scores=[{"alignment_target_id": "ADEPT-June2025-merit-0.5", "score": 0.9}])
    write_run_folder(root / "random", cfg=config(adm=None, llm=None,
                                                 instance={"_target_": "align_system.algorithms.RandomADM"}),
                     timing=False)
    mixed = [scene("A1", target="ADEPT-June2025-merit-0.0"), scene("B1", target="ADEPT-June2025-affiliation-1.0")]
    write_run_folder(root / "eval" / "mixed", scenes=mixed, cfg=config(adm="pipeline_kaleido"), timing=[4.0, 5.0])
    return root


def _count_scene_parses(monkeypatch, root: Path) -> Counter:
    """Every parse of an input_output.json, by run folder (folders.read_json is the one JSON reader)."""
    from align_track.ingest import folders

    parses: Counter = Counter()
    real = folders.read_json

    def counting(path: Path, folder: Path | None = None):
        if path.name == "input_output.json":
            parses[path.parent.relative_to(root).as_posix()] += 1
        return real(path, folder)

    monkeypatch.setattr(folders, "read_json", counting)
    return parses


def _parse_tree(root: Path) -> Path:
    small_tree(root)  # a configured target, an instance-only config, a mixed-target folder
    write_run_folder(root / "unaligned", cfg=config())  # a config without a target: the scenes name it
    write_run_folder(root / "no_config", cfg=False)
    return root


def test_each_written_folder_parses_its_input_output_json_once(tmp_path: Path, store_uri: str,
                                                               monkeypatch) -> None:
    """The scenes read at plan time for a config without a target serve the write too (issue 9)."""
    root = _parse_tree(tmp_path / "exps")
    parses = _count_scene_parses(monkeypatch, root)
    summary = ingest(root, store_uri)
    assert (summary.count("ingested"), summary.count("failed")) == (5, 0), summary.failures
    assert len(complete_runs(store_uri)) == 6
    folders = ["eval/mixed", "no_config", "pipeline_baseline/merit-0.5/run_a", "random", "unaligned"]
    assert dict(parses) == dict.fromkeys(folders, 1)

    parses.clear()  # unchanged: decided from file sizes and times; only a mixed-target folder (a run per target
    assert ingest(root, store_uri).count("skipped") == 5  # in its scenes) reads its scenes to plan
    assert dict(parses) == {"eval/mixed": 1}


def test_scenes_past_the_keep_budget_are_parsed_again_and_written_alike(tmp_path: Path, store_uri: str,
                                                                        monkeypatch) -> None:
    """Memory stays bounded on a huge tree: past the budget a folder's scenes are dropped and read again."""
    from align_track.ingest import plan

    monkeypatch.setattr(plan, "KEEP_SCENES_BYTES", 0)
    root = _parse_tree(tmp_path / "exps")
    parses = _count_scene_parses(monkeypatch, root)
    summary = ingest(root, store_uri)
    assert (summary.count("ingested"), summary.count("failed"), summary.traces) == (5, 0, 14)
    assert len(complete_runs(store_uri)) == 6
    assert parses["unaligned"] == 2 and parses["pipeline_baseline/merit-0.5/run_a"] == 1


def test_ingest_writes_runs_traces_and_artifacts(tmp_path: Path, store_uri: str) -> None:
    root = small_tree(tmp_path / "exps")
    summary = ingest(root, store_uri)
    assert (summary.count("ingested"), summary.count("failed"), summary.traces) == (3, 0, 8)
    runs = complete_runs(store_uri)
    assert len(runs) == 4  # the mixed folder gives two runs
    by_adm = {r.data.params["adm"]: r for r in runs}
    baseline = by_adm["pipeline_baseline"]
    assert baseline.data.metrics["timing.avg_seconds"] == 2.0
    assert baseline.data.metrics["score.alignment_score"] == 0.9
    assert baseline.data.tags["experiment_path"] == "pipeline_baseline/merit-0.5/run_a"
    assert baseline.info.status == "FINISHED"
    assert by_adm["RandomADM"].data.params["alignment_target_id"] == "unaligned"
    # artifacts live beside the database, not in ./mlruns of the working directory
    db_dir = Path(store_uri.removeprefix("sqlite:///")).parent
    assert baseline.info.artifact_uri.startswith((db_dir / "artifacts").as_uri())
    artifacts = {f.path for f in MlflowClient(store_uri).list_artifacts(baseline.info.run_id)}
    assert {"input_output.json", "timing.json", "scores.json", ".hydra"} <= artifacts
    assert not Path("mlruns").exists()
    traces = traces_of(store_uri, baseline)
    assert sorted(t.info.tags["mlflow.traceName"] for t in traces) == ["S0", "S1", "S2"]
    span = traces[0].data.spans[0]
    assert span.attributes["adm"] == "pipeline_baseline"
    mixed = [r for r in runs if r.data.tags["experiment_path"] == "eval/mixed"]
    assert sorted(len(traces_of(store_uri, r)) for r in mixed) == [1, 1]


def test_rerun_skips_unchanged_with_one_lookup(tmp_path: Path, store_uri: str, monkeypatch) -> None:
    root = small_tree(tmp_path / "exps")
    ingest(root, store_uri)
    from align_track.store import run_writer, sql_direct

    calls = {"search": 0}

    def counting(original):
        def count(self, key):
            calls["search"] += 1
            return original(self, key)
        return count

    for writer in (run_writer.RunStore, sql_direct.DirectStore):
        monkeypatch.setattr(writer, "runs_for_key", counting(writer.runs_for_key))
    again = ingest(root, store_uri)
    assert again.count("skipped") == 3 and again.traces == 0
    assert calls["search"] == 0  # decisions came from the single bulk read, not one query per folder
    assert len(complete_runs(store_uri)) == 4


def test_changed_run_folder_is_updated_in_place(tmp_path: Path, store_uri: str) -> None:
    root = small_tree(tmp_path / "exps")
    ingest(root, store_uri)
    folder = root / "pipeline_baseline" / "merit-0.5" / "run_a"
    old = [r for r in complete_runs(store_uri) if r.data.params["adm"] == "pipeline_baseline"][0]
    scenes = json.loads((folder / "input_output.json").read_text())
    scenes.append(scene("S3", choice=1))
    time.sleep(0.01)
    (folder / "input_output.json").write_text(json.dumps(scenes))
    summary = ingest(root, store_uri)
    assert summary.count("updated") == 1 and summary.count("skipped") == 2
    runs = [r for r in active_runs(store_uri) if r.data.params.get("adm") == "pipeline_baseline"]
    assert len(runs) == 1 and runs[0].info.run_id != old.info.run_id
    assert runs[0].data.params["num_scenarios"] == "4"
    assert len(traces_of(store_uri, runs[0])) == 4
    assert MlflowClient(store_uri).get_run(old.info.run_id).info.lifecycle_stage == "deleted"
    assert traces_of(store_uri, old) == []


def test_force_reingests_everything_without_duplicates(tmp_path: Path, store_uri: str) -> None:
    root = small_tree(tmp_path / "exps")
    ingest(root, store_uri)
    summary = ingest(root, store_uri, force=True)
    assert summary.count("updated") == 3
    assert len(active_runs(store_uri)) == 4


def test_damaged_folders_fail_alone(tmp_path: Path, store_uri: str) -> None:
    root = small_tree(tmp_path / "exps")
    write_run_folder(root / "broken" / "truncated", raw_io='[{"input": {"scenario_id": "x"')
    write_run_folder(root / "broken" / "not_a_list", raw_io='{"scenes": []}')
    bad_yaml = write_run_folder(root / "broken" / "bad_yaml")
    (bad_yaml / ".hydra" / "config.yaml").write_text("adm: [oops\n")
    result = CliRunner().invoke(main, ["ingest", "--experiments-dir", str(root), "--mlflow-uri", store_uri])
    assert result.exit_code == 1
    assert "failed=3" in result.output
    assert "truncated/input_output.json: invalid JSON" in result.output
    assert "not_a_list/input_output.json: expected a list of scenes" in result.output
    assert "bad_yaml/.hydra/config.yaml: invalid YAML" in result.output
    assert len(complete_runs(store_uri)) == 4


def test_half_written_run_is_replaced(tmp_path: Path, store_uri: str) -> None:
    root = tmp_path / "exps"
    write_run_folder(root / "one")
    ingest(root, store_uri)
    (good,) = complete_runs(store_uri)
    client = MlflowClient(store_uri)
    # what a writer killed before its commit point leaves: same identity, no complete tag, dead claim
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid on this host that no longer runs
    claim = f"{socket.gethostname()}:{gone.pid}"
    half = client.create_run(good.info.experiment_id, tags={
        "align_track.key": good.data.tags["align_track.key"], "align_track.claim": claim})
    (root / "one" / "timing.json").write_text(json.dumps({"raw_times_s": [9.0, 9.0, 9.0]}))
    summary = ingest(root, store_uri)
    assert summary.count("updated") == 1
    (final,) = active_runs(store_uri)
    assert final.data.tags["align_track.complete"] == "true" and final.info.run_id != half.info.run_id


def test_kill_9_mid_ingest_converges(tmp_path: Path, store_uri: str) -> None:
    root = tmp_path / "exps"
    generate_demo(root, run_folders=80, scenes=4, seed=3)  # still running when killed
    cmd = [sys.executable, "-m", "align_track", "ingest", "--experiments-dir", str(root), "--mlflow-uri", store_uri]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:  # plain progress lines (not a TTY): kill after a few run folders
        if line.startswith("[3/"):
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = complete_runs(store_uri)
    assert 0 < len(partial) < 80
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    runs = active_runs(store_uri)
    assert all(r.data.tags.get("align_track.complete") == "true" for r in runs)
    keys = [r.data.tags["align_track.key"] for r in runs]
    assert len(keys) == len(set(keys))
    # exactly one complete run per identity the corpus defines
    again = ingest(root, store_uri)
    assert again.count("ingested") == 0 and again.count("updated") == 0 and again.count("failed") == 0
    for run in runs:
        assert len(traces_of(store_uri, run)) == int(run.data.params["num_scenarios"])


def test_outdated_folders_are_ignored(tmp_path: Path, store_uri: str) -> None:
    root = tmp_path / "exps"
    write_run_folder(root / "keep")
    write_run_folder(root / "OUTDATED" / "old")
    write_run_folder(root / "sweep_outdated_2024" / "x")
    summary = ingest(root, store_uri)
    assert [o.path for o in summary.outcomes] == ["keep"]


def test_sweep_siblings_are_distinct_runs(tmp_path: Path, store_uri: str) -> None:
    root = tmp_path / "exps"
    for day in ("2025-06-12", "2025-06-13"):
        write_run_folder(root / "outputs" / day / "10-31-02", cfg=config(target=merit_target(0.0)))
    ingest(root, store_uri)
    variants = sorted(r.data.params["run_variant"] for r in complete_runs(store_uri))
    assert variants == ["2025-06-12", "2025-06-13"]


def test_cli_progress_and_quiet(tmp_path: Path, store_uri: str) -> None:
    root = small_tree(tmp_path / "exps")
    result = CliRunner().invoke(main, ["ingest", "--experiments-dir", str(root), "--mlflow-uri", store_uri])
    assert result.exit_code == 0
    assert "[3/3] ingested" in result.output and "ingested=3" in result.output
    quiet = CliRunner().invoke(main, ["ingest", "--experiments-dir", str(root), "--mlflow-uri", store_uri, "-q"])
    assert quiet.exit_code == 0 and quiet.output.strip() == ""


def test_missing_experiments_dir_is_a_clear_error(tmp_path: Path, store_uri: str) -> None:
    args = ["ingest", "--experiments-dir", str(tmp_path / "nope"), "--mlflow-uri", store_uri]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "experiments directory not found" in result.output


def test_help_does_not_import_heavy_modules() -> None:
    code = ("import sys; from align_track.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('mlflow', 'pandas', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_python_m_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "align_track", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "ingest" in result.stdout


def test_claim_of_a_reused_pid_is_dead() -> None:
    from align_track.store.run_writer import claim_is_alive, claim_token

    mine = claim_token()
    assert claim_is_alive(mine, None)
    host, pid, started = mine.split(":")
    assert started  # /proc gives the process start time here
    assert not claim_is_alive(f"{host}:{pid}:{int(started) + 1}", None)  # same pid, another process


def test_runs_ingested_before_the_alignment_metrics_get_them_on_the_next_ingest(
        tmp_path: Path, store_uri: str, monkeypatch) -> None:
    from align_track.ingest import mapping

    root = small_tree(tmp_path / "exps")
    with monkeypatch.context() as old:  # what mapping version 1 wrote: no alignment.* or kdma.* metrics
        old.setattr(mapping, "MAPPING_VERSION", "1")
        old.setattr(mapping, "alignment_metrics", lambda *args: {})
        ingest(root, store_uri)
    assert not any(k.startswith(("alignment.", "kdma.")) for r in complete_runs(store_uri) for k in r.data.metrics)
    summary = ingest(root, store_uri)
    assert summary.count("updated") == 3 and summary.count("skipped") == 0
    runs = complete_runs(store_uri)
    assert len(runs) == 4
    assert all("alignment.scenes_covered" in r.data.metrics for r in runs)
    baseline = next(r for r in runs if r.data.params["adm"] == "pipeline_baseline")
    assert baseline.data.metrics["alignment.oracle_hit_rate"] == 1.0  # A (0.2) and B (0.8) tie around 0.5


def test_runs_written_in_one_batch_keep_the_folders_order_newest_last(tmp_path: Path, store_uri: str) -> None:
    """Several runs share a transaction; each still gets its own write time (``align_track.ingest_time_ms``), in
    folder order, as one-by-one writes give, so 'last written' is one stable order (not ties broken by random run
    ids); their start times are their experiments' (here: the folders' file times, the reverse order)."""
    for n, name in enumerate("abcdef"):
        folder = write_run_folder(tmp_path / "exps" / name, timing=False)
        for path in [*folder.glob("*"), *folder.glob(".hydra/*")]:
            if path.is_file():
                os.utime(path, (1_700_000_000 - n, 1_700_000_000 - n))
    assert not ingest(tmp_path / "exps", store_uri).failures
    runs = sorted(active_runs(store_uri), key=lambda r: int(r.data.tags["align_track.ingest_time_ms"]))
    assert [r.data.tags["experiment_path"] for r in runs] == list("abcdef")
    assert len({r.data.tags["align_track.ingest_time_ms"] for r in runs}) == 6
    assert [r.info.start_time for r in runs] == [(1_700_000_000 - n) * 1000 for n in range(6)]


def _count_config_parses(monkeypatch) -> Counter:
    """Every Hydra config parsed, by run folder name (folders.read_yaml is the one YAML reader)."""
    from align_track.ingest import folders

    parses: Counter = Counter()
    real = folders.read_yaml

    def counting(path: Path, folder: Path | None = None):
        parses[path.parent.parent.name] += 1
        return real(path, folder)

    monkeypatch.setattr(folders, "read_yaml", counting)
    return parses


def test_an_unchanged_rerun_parses_no_config_and_a_new_sibling_renames_the_variant(tmp_path: Path, store_uri: str,
                                                                                    monkeypatch) -> None:
    """Unchanged folders are decided from file sizes and times and the store's runs; a folder that joins a group
    changes its siblings' run_variant, which rewrites them, exactly as parsing every config did."""
    root = tmp_path / "exps"
    write_run_folder(root / "sweep" / "temp-0.7", cfg=config(target=merit_target()))
    write_run_folder(root / "other", cfg=config(adm="pipeline_kaleido", target=merit_target()))
    assert ingest(root, store_uri).count("ingested") == 2
    parses = _count_config_parses(monkeypatch)
    again = ingest(root, store_uri)
    assert again.count("skipped") == 2 and not parses  # nothing parsed

    write_run_folder(root / "sweep" / "temp-0.9", cfg=config(target=merit_target()))  # same ADM, LLM, target
    grown = ingest(root, store_uri)
    statuses = {o.path: o.status for o in grown.outcomes}
    assert statuses == {"other": "skipped", "sweep/temp-0.7": "updated", "sweep/temp-0.9": "ingested"}
    assert parses == Counter({"temp-0.7": 1, "temp-0.9": 1})  # the renamed sibling is read again, "other" not
    variants = {r.data.tags["experiment_path"]: r.data.params["run_variant"] for r in complete_runs(store_uri)}
    assert variants == {"other": "default", "sweep/temp-0.7": "temp-0.7", "sweep/temp-0.9": "temp-0.9"}
    assert len(complete_runs(store_uri)) == 3

    monkeypatch.setenv("ALIGN_TRACK_DIRECT", "0")  # the path that parses every config decides the same
    parses.clear()
    assert ingest(root, store_uri).count("skipped") == 3 and sum(parses.values()) == 3


NO_MLFLOW = """
import sys
from align_track.ingest.pipeline import ingest
from align_track.ingest.watch import Watcher
summary = ingest(sys.argv[1], sys.argv[2])
watcher = Watcher(sys.argv[1], sys.argv[2])
watcher.poll()
watcher.close()
print(summary.count("ingested"), summary.count("skipped"), sorted(m for m in ("mlflow", "sqlalchemy", "pandas")
                                                                  if m in sys.modules))
"""


@pytest.mark.parametrize("kind", ["sqlite", "http"])
def test_writing_a_store_it_knows_imports_no_mlflow(tmp_path: Path, kind: str, request) -> None:
    """The point of the writers without MLflow: an ingest (and a watcher's start) into an existing store never pays
    ``import mlflow`` (seconds) nor SQLAlchemy's. Forcing MLflow's path (ALIGN_TRACK_DIRECT=0) imports it."""
    from tests.support.server_fixtures import cli_env

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}" if kind == "sqlite" else request.getfixturevalue(
        "http_server")
    tree = tmp_path / "exps"
    write_run_folder(tree / "a", cfg=config(adm=f"adm_{kind}_{os.getpid()}", target=merit_target()))
    ingest(tree, uri)  # the store and experiment exist (made through MLflow)
    write_run_folder(tree / "b", cfg=config(adm=f"other_{kind}_{os.getpid()}", target=merit_target()))
    done = subprocess.run([sys.executable, "-c", NO_MLFLOW, str(tree), uri], env=cli_env(), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.stdout.split("\n")[0] == "1 1 []", (done.stdout, done.stderr)
    write_run_folder(tree / "c", cfg=config(adm=f"third_{kind}_{os.getpid()}", target=merit_target()))
    forced = subprocess.run([sys.executable, "-c", NO_MLFLOW, str(tree), uri], env=cli_env(ALIGN_TRACK_DIRECT="0"),
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert forced.stdout.startswith("1 2 ['mlflow'"), (forced.stdout, forced.stderr)


def test_progress_says_what_the_plan_is_doing_and_counts_the_folders_to_write(tmp_path: Path,
                                                                               store_uri: str) -> None:
    """Before the folders are known the events say what the ingest is doing (the scan's folders seen, the store's
    runs, the configs); the plan then says how many folders have runs to write, and each folder event how many
    of those are done: the TUI's ETA is measured on them, not on the scan nor on folders skipped as unchanged
    (issue 25 item 9)."""
    root = tmp_path / "exps"
    for name in ("a", "b", "c"):
        write_run_folder(root / "day1" / name)
    ingest(root, store_uri)
    for name in ("d", "e"):  # other ADMs: the first three keep their variant, so stay unchanged
        write_run_folder(root / "day2" / name, cfg=config(adm=f"adm_{name}"))
    events: list = []
    ingest(root, store_uri, on_event=events.append)
    kinds = [e.kind for e in events]
    planned = kinds.index("planned")
    before = [e.message for e in events[:planned] if e.kind == "activity"]
    assert before[0].startswith("opening the sqlite store"), before
    assert any(m.startswith("scanning: 1 folder seen, 0 run folders, now in .") for m in before), before
    assert "reading the store's runs (5 run folders found)" in before
    assert "reading configs: 0/2 run folders" in before  # the three unchanged ones are not parsed
    assert "activity" not in kinds[planned:]
    assert (events[planned].total, events[planned].to_write) == (5, 2)
    folders = [e for e in events if e.kind == "run_folder"]
    written = {e.outcome.path: (e.outcome.status, e.written) for e in folders}
    assert [written[f"day1/{n}"] for n in "abc"] == [("skipped", 0)] * 3  # no time of theirs in the pace
    assert sorted(written[f"day2/{n}"] for n in "de") == [("ingested", 1), ("ingested", 2)]
    assert folders[-1].written == 2 and folders[-1].to_write == 2
