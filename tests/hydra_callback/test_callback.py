"""``align_track.hydra.IngestCallback`` with real hydra-core: a Hydra app shaped like align-system
(tests/support/hydra_app.py) run as a subprocess, single run and --multirun, succeeding, failing, and
against a store that cannot be reached (the job must not fail)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from align_track.hydra import cluster_spread, hostlist_count
from align_track.query.select import load_complete_runs
from tests.support.factory import config, scene, write_run_folder
from tests.support.live_store import keyed, scene_names
from tests.support.server_fixtures import cli_env, free_port, run_align_track

REPO = Path(__file__).resolve().parents[2]
CALLBACK = "+hydra.callbacks.align_track._target_=align_track.hydra.IngestCallback"


def run_app(*overrides: str, uri: str, **env: str) -> subprocess.CompletedProcess:
    flags = [o for o in overrides if o.startswith("--")]  # Hydra wants its flags before the overrides
    cmd = [sys.executable, "-m", "tests.support.hydra_app", *flags, CALLBACK,
           f"+hydra.callbacks.align_track.mlflow_uri={uri}", *[o for o in overrides if o not in flags]]
    return subprocess.run(cmd, cwd=REPO, env=cli_env(**env), capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def test_a_single_run_is_ingested_when_the_job_ends(tmp_path: Path, store_uri: str):
    out = tmp_path / "outputs" / "run1"
    done = run_app(f"hydra.run.dir={out}", "scenes=4", uri=store_uri)
    assert done.returncode == 0, done.stderr
    (run,) = load_complete_runs(store_uri)[2]
    assert run.status == "FINISHED"
    assert run.params["adm"] == "pipeline_baseline" and run.params["num_scenarios"] == "4"
    assert run.params["alignment_target_id"] == "ADEPT-June2025-merit-0.5"
    assert run.tags["align_track.source_path"] == str(out.resolve())
    assert run.metrics["timing.total_seconds"] == 1 + 2 + 3 + 4
    assert scene_names(store_uri, keyed(store_uri)[0]) == ["S0", "S1", "S2", "S3"]


def test_a_multirun_sweep_ingests_every_job_with_variants_from_the_sweep(tmp_path: Path, store_uri: str):
    """align-system's sweep layout, multirun/<date>/<time>/<job num>: each job is named as `ingest` of
    multirun/<date> names it (``<time>/<job num>``, not the job number alone), and a later plain ingest of that
    folder finds them as its own. Another sweep of the same day is left for that ingest (nobody asked the callback
    for it)."""
    day = tmp_path / "multirun" / "2025-06-12"
    write_run_folder(day / "08-00-00" / "0", scenes=[scene("A")], cfg=config(adm="random"))
    done = run_app("--multirun", f"hydra.sweep.dir={day / '10-00-00'}", "adm.temperature=0.1,0.9", "scenes=2",
                   uri=store_uri)
    assert done.returncode == 0, done.stderr
    runs = load_complete_runs(store_uri)[2]
    assert sorted(r.tags["experiment_path"] for r in runs) == ["10-00-00/0", "10-00-00/1"]
    # both jobs share ADM, LLM and target: the variant names the job folder, as `ingest` of the sweep does
    # (job 0 ended alone as "default"; the sweep's end brings it in line)
    assert sorted(r.params["run_variant"] for r in runs) == ["0", "1"]
    assert all(r.status == "FINISHED" for r in runs)

    plain = run_align_track("ingest", "--experiments-dir", str(day), "--mlflow-uri", store_uri)
    assert plain.returncode == 0, plain.stderr
    assert "ingested=1" in plain.stdout and "skipped=2" in plain.stdout, plain.stdout
    again = load_complete_runs(store_uri)[2]
    assert sorted(r.tags["experiment_path"] for r in again) == ["08-00-00/0", "10-00-00/0", "10-00-00/1"]
    assert {r.run_id for r in runs} <= {r.run_id for r in again}


def test_a_single_run_is_named_as_an_ingest_of_the_folder_above_it_and_never_twice(tmp_path: Path, store_uri: str):
    """align-system's single-run layout (Hydra's default), outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}: the run is
    ``<time>`` (it was ``.``), as a plain ingest of outputs/<date> names it, and that ingest skips it."""
    done = run_app(f"hydra.run.dir={tmp_path / 'outputs'}/${{now:%Y-%m-%d}}/${{now:%H-%M-%S}}", "scenes=2",
                   uri=store_uri)
    assert done.returncode == 0, done.stderr
    (job,) = (tmp_path / "outputs").glob("*/*")
    day = job.parent
    (run,) = load_complete_runs(store_uri)[2]
    assert run.tags["experiment_path"] == job.name
    plain = run_align_track("ingest", "--experiments-dir", str(day), "--mlflow-uri", store_uri)
    assert plain.returncode == 0, plain.stderr
    assert "skipped=1" in plain.stdout and "ingested=0" in plain.stdout, plain.stdout
    (again,) = load_complete_runs(store_uri)[2]
    assert (again.run_id, again.tags["experiment_path"]) == (run.run_id, job.name)


def test_a_failed_job_is_ingested_with_status_failed_and_hydra_reports_the_job_error(
        tmp_path: Path, store_uri: str):
    out = tmp_path / "outputs" / "crash"
    done = run_app(f"hydra.run.dir={out}", "scenes=5", "fail_after=2", uri=store_uri)
    assert done.returncode != 0 and "the ADM crashed" in done.stderr
    (run,) = load_complete_runs(store_uri)[2]
    assert run.status == "FAILED" and run.params["num_scenarios"] == "2"


def test_an_unreachable_store_is_a_warning_in_the_job_log_never_a_failed_job(tmp_path: Path):
    out = tmp_path / "outputs" / "offline"
    dead = f"http://127.0.0.1:{free_port()}"
    done = run_app(f"hydra.run.dir={out}", "scenes=2", uri=dead)
    assert done.returncode == 0, done.stderr
    job_log = (out / "hydra_app.log").read_text()
    assert "could not ingest" in job_log and "not reachable" in job_log, job_log
    assert (out / "timing.json").is_file()


def test_without_an_output_file_the_callback_does_nothing(tmp_path: Path, store_uri: str):
    out = tmp_path / "outputs" / "empty"
    done = run_app(f"hydra.run.dir={out}", "scenes=0", uri=store_uri)
    assert done.returncode == 0, done.stderr
    assert not Path(store_uri.removeprefix("sqlite:///")).exists()


SLURM_4_NODES = {"SLURM_JOB_ID": "81234", "SLURM_JOB_NUM_NODES": "4", "SLURM_NODELIST": "node[01-04]"}


def test_a_sweep_over_several_nodes_never_writes_sqlite_on_a_network_filesystem(tmp_path: Path, store_uri: str):
    out = tmp_path / "outputs" / "node02"
    done = run_app(f"hydra.run.dir={out}", "scenes=2", uri=store_uri, ALIGN_TRACK_STORE_FS="lustre", **SLURM_4_NODES)
    assert done.returncode == 0, done.stderr
    assert not Path(store_uri.removeprefix("sqlite:///")).exists()  # nothing ingested, no store made
    job_log = (out / "hydra_app.log").read_text()
    (line,) = [line for line in job_log.splitlines() if "align-track" in line]
    assert "not ingesting" in line and "lustre" in line and "SLURM job 81234 on 4 nodes (node[01-04])" in line
    assert "mlflow_uri=http://" in line and "allow_sqlite_on_network_fs=true" in line


def test_allowing_the_risk_or_a_local_disk_ingests_under_slurm(tmp_path: Path, store_uri: str):
    allowed = run_app(f"hydra.run.dir={tmp_path / 'a'}", "scenes=2",
                      "+hydra.callbacks.align_track.allow_sqlite_on_network_fs=true", uri=store_uri,
                      ALIGN_TRACK_STORE_FS="nfs", SLURM_JOB_ID="7", SLURM_ARRAY_JOB_ID="6", SLURM_JOB_NUM_NODES="1")
    assert allowed.returncode == 0, allowed.stderr
    local = run_app(f"hydra.run.dir={tmp_path / 'b'}", "scenes=2", uri=store_uri, ALIGN_TRACK_STORE_FS="local",
                    **SLURM_4_NODES)
    assert local.returncode == 0, local.stderr
    assert len(load_complete_runs(store_uri)[2]) == 2


def test_a_single_node_job_writes_says_the_risk_and_another_hosts_writer_is_a_warning(tmp_path: Path, store_uri: str):
    one_node = {"SLURM_JOB_ID": "5", "SLURM_JOB_NUM_NODES": "1", "SLURM_NODELIST": "node07"}
    first = tmp_path / "outputs" / "first"
    done = run_app(f"hydra.run.dir={first}", "scenes=2", uri=store_uri, ALIGN_TRACK_STORE_FS="nfs", **one_node)
    assert done.returncode == 0, done.stderr
    assert "SQLite's locks are unreliable" in (first / "hydra_app.log").read_text()
    assert len(load_complete_runs(store_uri)[2]) == 1
    db = Path(store_uri.removeprefix("sqlite:///"))
    claims = db.parent / (db.name + ".writers")
    (claims / "host").write_text("node-b:4242:1\n")  # another host writing now
    second = tmp_path / "outputs" / "second"
    done = run_app(f"hydra.run.dir={second}", "scenes=2", uri=store_uri, ALIGN_TRACK_STORE_FS="nfs", **one_node)
    assert done.returncode == 0, done.stderr  # the job never fails
    warning = [line for line in (second / "hydra_app.log").read_text().splitlines() if "could not ingest" in line]
    assert len(warning) == 1 and "refusing to write" in warning[0] and "host node-b (pid 4242)" in warning[0]
    assert len(load_complete_runs(store_uri)[2]) == 1


def test_a_cluster_spread_is_read_from_the_slurm_environment():
    assert cluster_spread({}) is None
    assert cluster_spread({"SLURM_JOB_ID": "5", "SLURM_JOB_NUM_NODES": "1", "SLURM_NODELIST": "n1"}) is None
    assert cluster_spread({"SLURM_JOB_ID": "5", "SLURM_NODELIST": "n[1-3],gpu[2,4]"}) == \
        "SLURM job 5 on 5 nodes (n[1-3],gpu[2,4])"
    assert cluster_spread({"SLURM_JOB_ID": "9", "SLURM_ARRAY_JOB_ID": "8", "SLURM_JOB_NUM_NODES": "1"}).startswith(
        "SLURM array job 8")
    assert hostlist_count("r[1-2]n[01-03],login") == 7
