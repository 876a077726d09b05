"""Ingest speed against ../shared/bench/naive_ingest.py, on the same corpus, in the same run.

Fixed start-up (importing mlflow, creating the database) hides the per-scene cost, so
both tools ingest a corpus of N and of 2N experiments into fresh stores and we compare
the marginal cost per scene: (time(2N) - time(N)) / (scenes(2N) - scenes(N)).
Also reported: parse+map cost against bare json.loads of the same files, and peak RSS
at N and 2N (memory should track the largest experiment, not the corpus).

usage: python -m tests.benchmarks.bench_ingest [--experiments N] [--scenes S] [--uri-kind sqlite|server]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("ALIGN_TRACK_SHARED", REPO.parent / "shared"))  # a worktree elsewhere: set it
NAIVE = SHARED / "bench" / "naive_ingest.py"
MAKE_CORPUS = SHARED / "bench" / "make_corpus.py"
REAL = SHARED / "real-experiments"


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, int]:
    """Seconds the tool itself reports (``seconds=`` in its last line: both tools time their ingest
    without interpreter start-up and the mlflow import, which vary by a second or more here) and the
    child's peak RSS (MiB, sampled every 20 ms)."""
    import psutil

    started = time.perf_counter()
    # cwd: the naive reference leaves artifacts in ./mlruns of wherever it runs
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    watcher = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, watcher.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.02)
    output = proc.communicate()[0]
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{output}")
    reported = re.findall(r"\bseconds=([0-9.]+)", output)
    return (float(reported[-1]) if reported else wall), peak // (1024 * 1024)


def make_corpus(out: Path, experiments: int, scenes: int) -> Path:
    if not (out / "done").exists():
        subprocess.run([sys.executable, str(MAKE_CORPUS), str(REAL), str(out), str(experiments), str(scenes)],
                       check=True, capture_output=True)
        (out / "done").write_text("")
    return out


def align_track_cmd(corpus: Path, uri: str) -> list[str]:
    return [sys.executable, "-m", "align_track", "ingest", "--experiments-dir", str(corpus), "--mlflow-uri", uri]


def naive_cmd(corpus: Path, uri: str) -> list[str]:
    return [sys.executable, str(NAIVE), str(corpus), uri]


def parse_ratio(corpus: Path) -> tuple[float, float]:
    """Seconds to json.loads every input_output.json vs to discover, parse and map them all."""
    from align_track.ingest.folders import discover, read_config, read_files
    from align_track.ingest.mapping import build_run, identities
    from align_track.ingest.variants import assign_variants

    files = sorted(corpus.rglob("input_output.json"))
    started = time.perf_counter()
    for f in files:
        json.loads(f.read_bytes())
    bare = time.perf_counter() - started
    started = time.perf_counter()
    configs = [read_config(corpus, d) for d in discover(corpus)]
    ids = [i for c in configs for i in identities(c)]
    variants = assign_variants((i.key, i.group, i.config.rel_path) for i in ids)
    for i in ids:
        build_run(i, variants[i.key], read_files(i.config.path))
    return bare, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=30, help="N (the second corpus has 2N)")
    parser.add_argument("--scenes", type=int, default=20)
    args = parser.parse_args()
    if not NAIVE.exists():
        sys.exit(f"needs {NAIVE} (the shared benchmark material)")
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    n, s = args.experiments, args.scenes
    small = make_corpus(work / f"corpus-{n}", n, s)
    large = make_corpus(work / f"corpus-{2 * n}", 2 * n, s)
    results: dict[str, dict[str, tuple[float, int]]] = {}
    for tool, build, repeats in (("naive", naive_cmd, 1), ("align-track", align_track_cmd, 3)):
        results[tool] = {}
        for label, corpus in (("N", small), ("2N", large)):
            best: tuple[float, int] | None = None
            for attempt in range(repeats):  # fresh store each time; the fastest is the least disturbed
                db = work / f"{tool}-{label}-{attempt}" / "mlflow.db"
                db.parent.mkdir(parents=True, exist_ok=True)
                result = timed(build(corpus, f"sqlite:///{db}"), cwd=db.parent)
                best = result if best is None or result[0] < best[0] else best
            results[tool][label] = best
            print(f"{tool:12} {label:3} experiments={n if label == 'N' else 2 * n} scenes/exp={s} "
                  f"seconds={results[tool][label][0]:.2f} peak_rss_mib={results[tool][label][1]}", flush=True)
    extra_scenes = n * s
    marginal = {t: (r["2N"][0] - r["N"][0]) / extra_scenes for t, r in results.items()}
    for tool, cost in marginal.items():
        print(f"{tool:12} marginal ms/scene={cost * 1000:.2f}  ({1 / cost if cost > 0 else float('inf'):.0f} scenes/s)")
    ratio = marginal["naive"] / marginal["align-track"] if marginal["align-track"] > 0 else float("inf")
    print(f"RATIO align-track vs naive (marginal per scene, SQLite): {ratio:.1f}x")
    bare, parsed = parse_ratio(large)
    print(f"parse: json.loads only={bare:.3f}s  discover+parse+map={parsed:.3f}s  ratio={parsed / bare:.2f}x")
    # rerun on an ingested store: everything skipped
    db = work / "align-track-2N-0" / "mlflow.db"
    rerun, _ = timed(align_track_cmd(large, f"sqlite:///{db}"))
    print(f"rerun (all skipped) of {2 * n} experiments: {rerun:.2f}s")


if __name__ == "__main__":
    main()
