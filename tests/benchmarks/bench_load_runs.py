"""load_runs + runs_to_frame against mlflow.search_runs on the same store, in the same process.

The store (N runs, 7 params, 5 metrics logged at 3 steps, 6 tags each) is written with
direct SQL inserts into a schema MLflow created itself (runs, params, tags, metrics and
latest_metrics, as MLflow's own log_batch fills them) and cached under /tmp, so only the
first run pays for it. Both readers are warmed up (engine creation, schema check) before
timing, then each is timed best of ``--repeat``; the two frames must be equal or the benchmark fails.

usage: python -m tests.benchmarks.bench_load_runs [--runs N] [--server] [--rebuild] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from pathlib import Path

from tests.benchmarks.results import Figure, Results, best_of, seconds
from tests.benchmarks.run_store import building_path, insert_runs, new_store, run_row

REPO = Path(__file__).resolve().parents[2]

EXPERIMENT = "bench-load-runs"
PARAMS = ["lr", "model", "seed", "batch", "scenario", "target", "variant"]
METRICS = ["loss", "accuracy", "alignment", "latency_s", "tokens"]
TAGS = ["team", "variant", "align_track.key", "mlflow.user", "mlflow.source.type"]  # + mlflow.runName
STEPS = 3
T0 = 1_760_000_000_000


def build_store(db: Path, runs: int) -> None:
    """Let MLflow create the schema and experiment, then insert the runs in one transaction."""
    from mlflow import MlflowClient

    tmp = building_path(db)
    artifacts = (db.parent / "artifacts").as_uri()
    eid = new_store(tmp, EXPERIMENT, artifacts)

    rng = random.Random(0)
    run_rows, params, tags, metrics, latest = [], [], [], [], []
    for i in range(runs):
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex
        name = f"run-{i:05d}"
        start = T0 + i * 1000
        status = "FAILED" if i % 17 == 0 else "FINISHED"
        run_rows.append(run_row(run_id, name, status, start, artifacts, eid))
        values = [f"{rng.choice([0.1, 0.01, 0.001])}", rng.choice(["llama", "mistral", "qwen"]), str(i),
                  str(rng.choice([8, 16, 32])), f"scenario-{i % 40}", f"target-{i % 9}", f"v{i % 5}"]
        params += [(k, v, run_id) for k, v in zip(PARAMS, values, strict=True)]
        tag_values = [f"team-{i % 3}", f"v{i % 5}", f"key-{i:05d}", "bench", "LOCAL"]
        tags += [(k, v, run_id) for k, v in zip(TAGS, tag_values, strict=True)] + [("mlflow.runName", name, run_id)]
        for key in METRICS:
            for step in range(STEPS):
                value = rng.random() * 100
                metrics.append((key, value, start + step, run_id, step, 0))
            latest.append((key, value, start + STEPS - 1, STEPS - 1, 0, run_id))  # the last step logged

    insert_runs(tmp, run_rows, params, tags, metrics, latest)

    # MLflow must read what we wrote: one run through its own API, metric history included.
    check = MlflowClient(tracking_uri=f"sqlite:///{tmp}")
    sample = check.get_run(run_rows[-1][0])
    assert sample.info.run_name == run_rows[-1][1] and len(sample.data.params) == len(PARAMS)
    assert len(sample.data.tags) == len(TAGS) + 1 and len(sample.data.metrics) == len(METRICS)
    assert len(check.get_metric_history(sample.info.run_id, "loss")) == STEPS
    check._tracking_client.store.engine.dispose()
    os.replace(tmp, db)


def normalised(df):
    import pandas as pd

    df = df.sort_values("run_id").reset_index(drop=True)
    df = df[sorted(df.columns)].copy()
    for col in ("start_time", "end_time"):
        df[col] = pd.to_datetime(df[col], utc=True).astype("datetime64[ns, UTC]")
    return df


def compare(uri: str, eid: str, label: str, repeats: int) -> Figure:
    """Time both readers on ``uri`` (best of ``repeats`` each); fail unless they return the same frame."""
    import mlflow
    import pandas as pd
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    from align_track.store.runs_reader import get_experiment_id, load_runs, runs_to_frame

    with _use_tracking_uri(uri):
        # warm-up both sides: engines, schema check, pandas code paths (each builds a 1-row frame)
        mlflow.search_runs(experiment_ids=[eid], max_results=1)
        get_experiment_id(uri, EXPERIMENT)
        runs_to_frame(load_runs(uri, eid)[:1])

        expected = mlflow.search_runs(experiment_ids=[eid])
        ours = runs_to_frame(load_runs(uri, eid))
        t_search = best_of(repeats, lambda: seconds(lambda: mlflow.search_runs(experiment_ids=[eid])))
        t_ours = best_of(repeats, lambda: seconds(lambda: runs_to_frame(load_runs(uri, eid))))

    assert list(ours["run_id"]) == list(expected["run_id"]), "different rows or order"
    pd.testing.assert_frame_equal(normalised(ours), normalised(expected))
    print(f"[{label}] runs={len(ours)} columns={ours.shape[1]} same data: yes")
    return Figure(f"all runs into a DataFrame ({label})", "s", t_ours, t_search, "mlflow.search_runs", repeats,
                  f"{len(ours)} runs x {len(PARAMS)} params, {len(METRICS)} metrics, {len(TAGS) + 1} tags")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/align-track-bench"))
    parser.add_argument("--rebuild", action="store_true", help="rewrite the cached store")
    parser.add_argument("--server", action="store_true",
                        help="also compare through an `mlflow server` on the same store (http path)")
    parser.add_argument("--repeat", type=int, default=3, help="best of R timings, the same R for both readers")
    args = parser.parse_args()

    db = args.cache_dir / f"load-runs-{args.runs}" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    if args.rebuild:
        db.unlink(missing_ok=True)
    if not db.exists():
        started = time.perf_counter()
        build_store(db, args.runs)
        print(f"built {db} ({args.runs} runs) in {time.perf_counter() - started:.1f}s")
    else:
        print(f"reusing {db}")
    uri = f"sqlite:///{db}"

    from align_track.store.runs_reader import get_experiment_id

    eid = get_experiment_id(uri, EXPERIMENT)
    out = Results("load_runs")
    out.add(compare(uri, eid, "sqlite", args.repeat))
    if args.server:
        from align_track.mlflow_ui import find_free_port, start_ui, stop_ui

        server = start_ui(uri, port=find_free_port(start=5500), workers=1)
        try:
            out.add(compare(server.url, eid, "server", args.repeat))
        finally:
            stop_ui(server)
    out.save()


if __name__ == "__main__":
    main()
