"""Ingest speed against ../shared/bench/naive_ingest.py, on the same corpus, in the same run.

Fixed start-up (importing mlflow, creating the database) hides the per-scene cost, so
both tools ingest a corpus of N and of 2N run folders into fresh stores and we compare
the marginal cost per scene: (time(2N) - time(N)) / (scenes(2N) - scenes(N)), each the best of
``--repeat`` runs, the same number for both tools, interleaved. Also reported: parse+map cost against
bare json.loads of the same files, a rerun against the first ingest, and peak RSS at N and 2N
(memory should track the largest run folder, not the corpus).

usage: python -m tests.benchmarks.bench_ingest [--experiments N] [--scenes S] [--repeat R]
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

from tests.benchmarks.results import Figure, Results, best_of, seconds

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


def parse_seconds(corpus: Path, repeats: int) -> tuple[float, float]:
    """Seconds to json.loads every input_output.json vs to discover, parse and map them all (best of each)."""
    from align_track.ingest.folders import discover, read_config, read_files
    from align_track.ingest.mapping import build_run, identities
    from align_track.ingest.variants import assign_variants

    files = sorted(corpus.rglob("input_output.json"))

    def bare() -> None:
        for f in files:
            json.loads(f.read_bytes())

    def parsed() -> None:
        configs = [read_config(corpus, d) for d in discover(corpus)]
        ids = [i for c in configs for i in identities(c)]
        variants = assign_variants((i.key, i.group, i.config.rel_path) for i in ids)
        for i in ids:
            build_run(i, variants[i.key], read_files(i.config.path))

    return best_of(repeats, lambda: seconds(bare)), best_of(repeats, lambda: seconds(parsed))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=30, help="N (the second corpus has 2N)")
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="best of R timings, the same R for both tools")
    args = parser.parse_args()
    if not NAIVE.exists():
        sys.exit(f"needs {NAIVE} (the shared benchmark material)")
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    n, s, repeats = args.experiments, args.scenes, args.repeat
    corpora = {"N": make_corpus(work / f"corpus-{n}", n, s), "2N": make_corpus(work / f"corpus-{2 * n}", 2 * n, s)}
    corpus = f"{n} and {2 * n} run folders of {s} scenes (make_corpus.py)"
    results: dict[str, dict[str, float]] = {}
    for attempt in range(repeats):  # interleaved, so a busy moment on the machine hits both tools
        for tool, build in (("naive", naive_cmd), ("align-track", align_track_cmd)):
            for label, folder in corpora.items():
                db = work / f"{tool}-{label}-{attempt}" / "mlflow.db"  # a fresh store each time
                db.parent.mkdir(parents=True, exist_ok=True)
                took, rss = timed(build(folder, f"sqlite:///{db}"), cwd=db.parent)
                results.setdefault(tool, {})[label] = min(results.get(tool, {}).get(label, float("inf")), took)
                print(f"{tool:12} {label:3} run folders={n if label == 'N' else 2 * n} scenes/folder={s} "
                      f"seconds={took:.2f} peak_rss_mib={rss}", flush=True)
    out = Results("ingest")
    marginal = {t: (r["2N"] - r["N"]) * 1000 / (n * s) for t, r in results.items()}
    out.add(Figure("ingest into SQLite, marginal cost per scene", "ms/scene", marginal["align-track"],
                   marginal["naive"], "naive_ingest.py", repeats, corpus))
    bare, parsed = parse_seconds(corpora["2N"], repeats)
    out.add(Figure("discover + parse + map every run folder", "s", parsed, bare,
                   "json.loads of every input_output.json", repeats, f"{2 * n} run folders of {s} scenes"))
    # rerun on an ingested store: everything skipped, against that store's first ingest
    db = work / "align-track-2N-0" / "mlflow.db"
    rerun = best_of(repeats, lambda: timed(align_track_cmd(corpora["2N"], f"sqlite:///{db}"))[0])
    out.add(Figure("rerun on an ingested store (all skipped)", "s", rerun, results["align-track"]["2N"],
                   "the first ingest of the same folders", repeats, f"{2 * n} run folders of {s} scenes"))
    out.save()


if __name__ == "__main__":
    main()
