"""Ingest speed into a team server: ``mlflow server`` on PostgreSQL with proxied artifacts, against
../shared/bench/naive_ingest.py on the same server, same corpus, in the same run.

One fresh database and one server (``--serve-artifacts --artifacts-destination <tmp>``) for the whole
run; every ingest writes its own MLflow experiment. As in bench_ingest.py, fixed start-up (importing
mlflow, creating the experiment) is removed by comparing the marginal cost per scene:
(time(2N) - time(N)) / (scenes(2N) - scenes(N)), each time the best of ``--repeat`` runs (the same number
for every tool, interleaved).

Before each timing the machine is let settle (under 10% CPU busy), so what one ingest leaves behind
(PostgreSQL's autovacuum and checkpoints, the server finishing up) is not timed as the next one's.

Also printed, for reading the ratio:

* where the time goes: CPU per extra scene of the server's processes and of the client, for both tools
  (the least of the repeats, as for the times); on a machine this size, the server's CPU is most of the bound;
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

import psutil

from tests.benchmarks.bench_ingest import NAIVE, make_corpus, timed
from tests.benchmarks.results import Figure, Results
from tests.support.server_fixtures import cli_env, fresh_database, running_server


def align_track_cmd(corpus: Path, uri: str, name: str, workers: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "align_track", "ingest", "--experiments-dir", str(corpus), "--mlflow-uri", uri,
           "--experiment-name", name, "-q"]
    return cmd + (["--workers", str(workers)] if workers else [])


def naive_cmd(corpus: Path, uri: str, name: str, workers: int | None) -> list[str]:
    return [sys.executable, str(NAIVE), str(corpus), uri, name]


def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes (the server and its workers)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def settle(max_wait: float = 60.0) -> float:
    """Wait (at most ``max_wait`` s) until the machine is idle: under 10% of all CPUs busy over a second.

    What the previous ingest left running (PostgreSQL's autovacuum and checkpoint after thousands of rows,
    the server finishing requests) would otherwise be timed as part of the next tool's run. Returns the wait.
    """
    import psutil

    started = time.perf_counter()
    while psutil.cpu_percent(interval=1.0) > 10 and time.perf_counter() - started < max_wait:
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=20, help="N (the second corpus has 2N)")
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=None, help="align-track --workers (default: its own)")
    parser.add_argument("--repeat", type=int, default=3, help="best of R timings per tool and size")
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
        server_pids = [server.process.pid, *(c.pid for c in psutil.Process(server.process.pid).children(True))]
        cpu: dict[tuple[str, str], list[tuple[float, float]]] = {}  # (tool, size) -> [(server s, client s)]
        for attempt in range(args.repeat):  # interleaved, so a busy moment on the machine hits every tool
            for tool, build, uri in tools:
                for label, corpus in corpora.items():
                    name = f"{tool}-{label}-{attempt}-{time.time_ns()}"
                    settle()
                    server_before = process_cpu(server_pids)
                    seconds, client_cpu, rss, _out = timed(build(corpus, uri, name, args.workers), cwd=work)
                    cpu.setdefault((tool, label), []).append((process_cpu(server_pids) - server_before, client_cpu))
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
        # Where the time goes: CPU per extra scene (the least of the repeats, as the times are, 2N minus N), server
        # and client. On this machine's cores, (server + client + PostgreSQL) / cores bounds the marginal wall time.
        for tool in ("naive", "align-track"):
            least = {label: [min(c[i] for c in cpu[(tool, label)]) for i in (0, 1)] for label in ("N", "2N")}
            per_scene = [(least["2N"][i] - least["N"][i]) * 1000 / extra_scenes for i in (0, 1)]
            out.notes[f"{tool}_server_cpu_ms_per_scene"] = round(per_scene[0], 2)
            out.notes[f"{tool}_client_cpu_ms_per_scene"] = round(per_scene[1], 2)
            print(f"{tool:14} CPU per extra scene: server {per_scene[0]:.1f} ms, client {per_scene[1]:.1f} ms "
                  f"(on {os.cpu_count()} cores: >= {sum(per_scene) / (os.cpu_count() or 1):.1f} ms/scene of wall "
                  f"time, PostgreSQL not counted)", flush=True)
        first = timed(align_track_cmd(corpora["2N"], server.url, "rerun-check", args.workers), cwd=work)[0]
        again = timed(align_track_cmd(corpora["2N"], server.url, "rerun-check", args.workers), cwd=work)[0]
        print(f"ingest of {2 * n} run folders into a new experiment: {first:.2f}s; rerun (all skipped): {again:.2f}s")
        out.notes.update(first_ingest_s=round(first, 2), rerun_s=round(again, 2))
        out.save()


if __name__ == "__main__":
    main()
