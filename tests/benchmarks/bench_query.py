"""Client-side filtering (query.filter_rows) against mlflow.search_runs(filter_string=...) on the same store.

Reuses bench_load_runs' cached store (N runs written by direct SQL). Both sides must select
the same runs; we time load+filter for an option-style filter (no mlflow import needed) and
a ``--filter`` string matched by MLflow's own SearchUtils, plus pivot and export of the result.

usage: python -m tests.benchmarks.bench_query [--runs N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FILTER = "params.model = 'mistral' AND metrics.accuracy > 50 AND tags.team != 'team-1'"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/align-track-bench"))
    args = parser.parse_args()

    from bench_load_runs import EXPERIMENT, build_store

    db = args.cache_dir / f"load-runs-{args.runs}" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    if not db.exists():
        build_store(db, args.runs)
    uri = f"sqlite:///{db}"

    import mlflow

    from align_track.query.export import write_export
    from align_track.query.report import build_pivot
    from align_track.query.select import filter_rows, parse_filter, rows_to_frame
    from align_track.store.runs_reader import get_experiment_id, load_runs

    eid = get_experiment_id(uri, EXPERIMENT)
    load_runs(uri, eid)  # warm-up: engine, schema
    mlflow.set_tracking_uri(uri)
    mlflow.search_runs(experiment_ids=[eid], max_results=1)

    started = time.perf_counter()
    expected = mlflow.search_runs(experiment_ids=[eid], filter_string=FILTER)
    t_mlflow = time.perf_counter() - started

    started = time.perf_counter()
    rows = filter_rows(load_runs(uri, eid), parsed=parse_filter(FILTER))
    frame = rows_to_frame(rows)
    t_ours = time.perf_counter() - started
    assert set(frame["run_id"]) == set(expected["run_id"]), "different runs selected"

    option = [{"type": "tag", "key": "team", "comparator": "=", "value": "team-2"}]
    started = time.perf_counter()
    picked = filter_rows(load_runs(uri, eid), options=option)
    t_option = time.perf_counter() - started
    assert len(picked) == len(mlflow.search_runs(experiment_ids=[eid], filter_string="tags.team = 'team-2'"))

    started = time.perf_counter()
    build_pivot(frame, rows="params.target", cols="params.model", values="metrics.latency_s")
    t_pivot = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        write_export(frame, Path(tmp) / "runs.xlsx", "xlsx")
        t_xlsx = time.perf_counter() - started

    print(f"runs={args.runs} selected={len(frame)} same runs: yes")
    print(f"search_runs(filter)={t_mlflow:.2f}s load+filter+frame={t_ours:.2f}s ratio={t_mlflow / t_ours:.1f}")
    print(f"option filter (no mlflow matcher)={t_option:.2f}s pivot={t_pivot:.3f}s xlsx export={t_xlsx:.2f}s")


if __name__ == "__main__":
    main()
