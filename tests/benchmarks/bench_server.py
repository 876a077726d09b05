"""Ingest speed into a team server: ``mlflow server`` on PostgreSQL with proxied artifacts, against
../shared/bench/naive_ingest.py on the same server, same corpus, in the same run.

One fresh database and one server (``--serve-artifacts --artifacts-destination <tmp>``) for the whole
run; every ingest writes its own MLflow experiment. As in bench_ingest.py, fixed start-up (importing
mlflow, creating the experiment) is removed by comparing the marginal cost per scene:
(time(2N) - time(N)) / (scenes(2N) - scenes(N)), each time the best of ``--repeat`` runs (the same number
for every tool, interleaved).

Also printed, for reading the ratio:

* the server's floor: what the server spends per trace on the cheapest trace write it offers (the
  batched OTLP ``/v1/traces`` request align-track uses, plus the run link), measured here at full
  concurrency with nothing else going on; no client over http can beat it;
* align-track writing the same server's database directly (``postgresql://``, the bulk SQL path).

usage: python -m tests.benchmarks.bench_server [--experiments N] [--scenes S] [--workers W] [--repeat R]
                                               [--server-workers K]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.bench_ingest import NAIVE, make_corpus, timed
from tests.benchmarks.results import Figure, Results
from tests.support.server_fixtures import cli_env, fresh_database, running_server


def align_track_cmd(corpus: Path, uri: str, name: str, workers: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "align_track", "ingest", "--experiments-dir", str(corpus), "--mlflow-uri", uri,
           "--experiment-name", name, "-q"]
    return cmd + (["--workers", str(workers)] if workers else [])


def naive_cmd(corpus: Path, uri: str, name: str, workers: int | None) -> list[str]:
    return [sys.executable, str(NAIVE), str(corpus), uri, name]


def server_floor(url: str, corpus: Path, chunks: int = 48, threads: int = 8) -> float:
    """Milliseconds per trace for the server to link and store traces sent as align-track sends them (per
    experiment's scenes: one run link, one StartTraceV3 per trace for its tags and metadata, one OTLP request),
    ``threads`` experiments in flight, traces pre-built."""
    from concurrent.futures import ThreadPoolExecutor

    from mlflow import MlflowClient

    from align_track.ingest.folders import discover, read_config, read_files
    from align_track.ingest.mapping import build_run, identities
    from align_track.store.http import quick_acks
    from align_track.store.trace_writer import _build_trace, _write_public

    quick_acks()  # as align-track's ingest does (http.check_server)

    folder = discover(corpus)[0]
    identity = identities(read_config(corpus, folder))[0]
    records = list(build_run(identity, "default", read_files(folder)).traces)
    client = MlflowClient(url)
    experiment_id = client.create_experiment(f"floor-{time.time_ns()}")
    run_id = client.create_run(experiment_id).info.run_id
    batches = [[_build_trace(record, experiment_id, run_id) for record in records] for _ in range(chunks)]

    def send(batch: list) -> None:
        _write_public(url, experiment_id, run_id, batch)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, batches[:threads]))  # connections, warm caches
        started = time.perf_counter()
        list(pool.map(send, batches[threads:]))
    return (time.perf_counter() - started) * 1000 / sum(len(batch) for batch in batches[threads:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=20, help="N (the second corpus has 2N)")
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=None, help="align-track --workers (default: its own)")
    parser.add_argument("--repeat", type=int, default=2, help="best of R timings per tool and size")
    parser.add_argument("--server-workers", type=int, default=4,
                        help="mlflow server --workers (uvicorn processes; mlflow's own default is 4)")
    args = parser.parse_args()
    if not NAIVE.exists():
        sys.exit(f"needs {NAIVE} (the shared benchmark material)")
    work = Path(tempfile.mkdtemp(prefix="bench-server-"))
    n, s = args.experiments, args.scenes
    corpora = {"N": make_corpus(work / f"corpus-{n}", n, s), "2N": make_corpus(work / f"corpus-{2 * n}", 2 * n, s)}
    os.environ.update({k: v for k, v in cli_env().items() if k == "PYTHONPYCACHEPREFIX"})
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # children compile mlflow once, not every run
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    with fresh_database("align_track_bench") as db, \
            running_server(db, work / "artifacts", work / "server.log", workers=args.server_workers) as server:
        print(f"server {server.url} --workers {args.server_workers} backend {db.rsplit('/', 1)[1]} "
              f"artifacts {work / 'artifacts'}", flush=True)
        os.environ["ALIGN_TRACK_ARTIFACTS_ROOT"] = str(work / "direct-artifacts")  # postgresql:// runs only
        tools = (("naive", naive_cmd, server.url), ("align-track", align_track_cmd, server.url),
                 ("align-track-pg", align_track_cmd, db))
        results: dict[str, dict[str, float]] = {}
        for attempt in range(args.repeat):  # interleaved, so a busy moment on the machine hits every tool
            for tool, build, uri in tools:
                for label, corpus in corpora.items():
                    name = f"{tool}-{label}-{attempt}-{time.time_ns()}"
                    seconds, _cpu, rss, _out = timed(build(corpus, uri, name, args.workers), cwd=work)
                    results.setdefault(tool, {})[label] = min(results.get(tool, {}).get(label, 1e9), seconds)
                    print(f"{tool:14} {label:3} run folders={n if label == 'N' else 2 * n} scenes/folder={s} "
                          f"seconds={seconds:.2f} peak_rss_mib={rss}", flush=True)
        extra_scenes = n * s
        marginal = {t: (r["2N"] - r["N"]) / extra_scenes for t, r in results.items()}
        for tool, cost in marginal.items():
            rate = 1 / cost if cost > 0 else float("inf")
            print(f"{tool:14} marginal ms/scene={cost * 1000:.2f}  ({rate:.0f} scenes/s)")

        out = Results("server")
        corpus = f"{n} and {2 * n} run folders of {s} scenes, server --workers {args.server_workers}"
        out.add(Figure("ingest over HTTP (mlflow server + PostgreSQL), marginal cost per scene", "ms/scene",
                       marginal["align-track"] * 1000, marginal["naive"] * 1000, "naive_ingest.py via the server",
                       args.repeat, corpus))
        out.add(Figure("ingest writing the server's PostgreSQL directly, marginal cost per scene", "ms/scene",
                       marginal["align-track-pg"] * 1000, marginal["naive"] * 1000, "naive_ingest.py via the server",
                       args.repeat, corpus))
        if marginal["align-track-pg"] <= 0:
            print("(the direct path's marginal cost is below the timing noise: use more --experiments)")
        floor = server_floor(server.url, corpora["N"])
        out.notes["server_floor_ms_per_trace"] = round(floor, 2)
        print(f"server floor: {floor:.2f} ms per trace (link, StartTraceV3 each, OTLP; 8 runs in flight) -> "
              f"about {marginal['naive'] * 1000 / floor:.1f}x at most over http, before runs and artifacts")
        first = timed(align_track_cmd(corpora["2N"], server.url, "rerun-check", args.workers), cwd=work)[0]
        again = timed(align_track_cmd(corpora["2N"], server.url, "rerun-check", args.workers), cwd=work)[0]
        print(f"ingest of {2 * n} run folders into a new experiment: {first:.2f}s; rerun (all skipped): {again:.2f}s")
        out.notes.update(first_ingest_s=round(first, 2), rerun_s=round(again, 2))
        out.save()


if __name__ == "__main__":
    main()
