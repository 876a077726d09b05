"""Ingest speed against ../shared/bench/naive_ingest.py, on the same corpus, in the same run.

Fixed start-up (importing mlflow, creating the database) hides the per-scene cost, so both tools ingest
a corpus of N and of 2N run folders (``make_corpus.py``, 10 scenes per run folder by default: the many
small runs of real integration sweeps) into fresh stores and we compare the marginal cost per scene:
(time(2N) - time(N)) / (scenes(2N) - scenes(N)), each the best of ``--repeat`` runs, the same number
for both tools, interleaved. Every figure is given in wall time (what the tool reports as ``seconds=``)
and in CPU time of the whole process tree (its own worker processes included), which a busy machine
disturbs much less.

Also measured, each with a baseline from the same run:

* the update path: every run folder of the N and 2N stores grows by one scene and is ingested again
  (all ``updated``: the new run written whole, the old one deleted with its traces); its marginal cost
  per scene written, against the naive tool's marginal cost per scene (which has no update path: a
  changed folder is one more fresh run for it);
* a rerun on an unchanged tree of ``--rerun-runs`` (1,000) run folders, all skipped after one store read,
  against the first ingest of the same tree;
* discover + parse + map against bare json.loads of the same files; peak RSS at N and 2N.

usage: python -m tests.benchmarks.bench_ingest [--experiments N] [--scenes S] [--repeat R] [--rerun-runs M]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.results import Figure, Results, best_of, seconds

REPO = Path(__file__).resolve().parents[2]
# a worktree elsewhere: set ALIGN_TRACK_SHARED (made absolute: the naive tool runs in its store's folder)
SHARED = Path(os.environ.get("ALIGN_TRACK_SHARED", REPO.parent / "shared")).resolve()
NAIVE = SHARED / "bench" / "naive_ingest.py"
MAKE_CORPUS = SHARED / "bench" / "make_corpus.py"
REAL = SHARED / "real-experiments"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, int, str]:
    """Seconds the tool itself reports (``seconds=`` in its last line: both tools time their ingest
    without interpreter start-up and the mlflow import, which vary by a second or more here), CPU seconds
    of the child and every process it waited for, its peak RSS (MiB, sampled every 20 ms) and its output."""
    import psutil

    started, cpu0 = time.perf_counter(), _children_cpu()
    # Output to a file, not a pipe: a pipe nobody reads until the end blocks a tool that prints a line per
    # run folder (64 KiB of progress) for good. cwd: the naive reference leaves artifacts in ./mlruns there.
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=cwd)
        watcher = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                peak = max(peak, watcher.memory_info().rss)
            except psutil.Error:
                break
            time.sleep(0.02)
        proc.wait()
        log.seek(0)
        output = log.read()
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{output}")
    reported = re.findall(r"\bseconds=([0-9.]+)", output)
    return (float(reported[-1]) if reported else wall), cpu, peak // (1024 * 1024), output


def make_corpus(out: Path, experiments: int, scenes: int) -> Path:
    if not (out / "done").exists():
        subprocess.run([sys.executable, str(MAKE_CORPUS), str(REAL), str(out), str(experiments), str(scenes)],
                       check=True, capture_output=True)
        (out / "done").write_text("")
    return out


def grow(corpus: Path) -> dict[Path, bytes]:
    """Every run folder gets one more scene (as align-system appends one); the old contents, to restore."""
    old: dict[Path, bytes] = {}
    for path in sorted(corpus.rglob("input_output.json")):
        old[path] = path.read_bytes()
        scenes = json.loads(old[path])
        extra = json.loads(json.dumps(scenes[-1]))
        extra["input"].setdefault("full_state", {}).setdefault("meta_info", {})["scene_id"] = f"S{len(scenes)}"
        path.write_text(json.dumps([*scenes, extra], indent=2))
    return old


def restore(old: dict[Path, bytes]) -> None:
    for path, data in old.items():
        path.write_bytes(data)


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


def _count(output: str, what: str) -> int:
    found = re.findall(rf"\b{what}=(\d+)", output)
    return int(found[-1]) if found else -1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=100, help="N (the second corpus has 2N)")
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="best of R timings, the same R for both tools")
    parser.add_argument("--rerun-runs", type=int, default=1000, help="run folders of the rerun tree (0: skip)")
    parser.add_argument("--rerun-only", action="store_true", help="only the rerun figure (a quick look)")
    args = parser.parse_args()
    if not NAIVE.exists():
        sys.exit(f"needs {NAIVE} (the shared benchmark material)")
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    n, s, repeats = args.experiments, args.scenes, args.repeat
    corpora = {"N": make_corpus(work / f"corpus-{n}", n, s), "2N": make_corpus(work / f"corpus-{2 * n}", 2 * n, s)}
    sizes = {"N": n, "2N": 2 * n}
    corpus = f"{n} and {2 * n} run folders of {s} scenes (make_corpus.py)"
    wall: dict[str, dict[str, float]] = {}
    cpu: dict[str, dict[str, float]] = {}

    def keep(table: dict[str, dict[str, float]], tool: str, label: str, value: float) -> None:
        table.setdefault(tool, {})[label] = min(table.get(tool, {}).get(label, float("inf")), value)

    for attempt in range(repeats if not args.rerun_only else 0):  # interleaved: a busy moment hits both tools
        for tool, build in (("naive", naive_cmd), ("align-track", align_track_cmd)):
            for label, folder in corpora.items():
                db = work / f"{tool}-{label}-{attempt}" / "mlflow.db"  # a fresh store each time
                db.parent.mkdir(parents=True, exist_ok=True)
                took, used, rss, _ = timed(build(folder, f"sqlite:///{db}"), cwd=db.parent)
                keep(wall, tool, label, took)
                keep(cpu, tool, label, used)
                print(f"{tool:12} {label:3} run folders={sizes[label]} scenes/folder={s} seconds={took:.2f} "
                      f"cpu_s={used:.2f} peak_rss_mib={rss}", flush=True)
                if tool != "align-track":
                    continue
                old = grow(folder)  # the update path, on the store just written
                try:
                    took, used, _, output = timed(build(folder, f"sqlite:///{db}"), cwd=db.parent)
                finally:
                    restore(old)
                if _count(output, "updated") != sizes[label]:
                    sys.exit(f"update round did not update every run folder:\n{output}")
                keep(wall, "update", label, took)
                keep(cpu, "update", label, used)
                print(f"{'update':12} {label:3} run folders={sizes[label]} scenes/folder={s + 1} seconds={took:.2f} "
                      f"cpu_s={used:.2f}", flush=True)
    out = Results("ingest" if not args.rerun_only else "ingest-rerun")

    def marginal(table: dict[str, float], per_run: int) -> float:
        value = (table["2N"] - table["N"]) * 1000 / (n * per_run)
        if value <= 0:  # best(2N) under best(N): the machine's noise is larger than the figure
            print(f"NOTE: a marginal cost came out {value:.3g} ms/scene: below this machine's timing noise; "
                  "rerun on a quiet machine or with more --repeat / --experiments", flush=True)
        return value

    if not args.rerun_only:
        naive_wall, naive_cpu = marginal(wall["naive"], s), marginal(cpu["naive"], s)
        out.add(Figure("ingest into SQLite, marginal cost per scene", "ms/scene", marginal(wall["align-track"], s),
                       naive_wall, "naive_ingest.py", repeats, corpus))
        out.add(Figure("ingest into SQLite, marginal CPU per scene (all processes)", "ms/scene",
                       marginal(cpu["align-track"], s), naive_cpu, "naive_ingest.py", repeats, corpus))
        grown = f"{corpus}, each grown by one scene and ingested again (all updated)"
        out.add(Figure("update path (changed run folders rewritten), marginal cost per scene", "ms/scene",
                       marginal(wall["update"], s + 1), naive_wall, "naive_ingest.py, fresh runs", repeats, grown))
        out.add(Figure("update path, marginal CPU per scene (all processes)", "ms/scene",
                       marginal(cpu["update"], s + 1), naive_cpu, "naive_ingest.py, fresh runs", repeats, grown))
        bare, parsed = parse_seconds(corpora["2N"], repeats)
        out.add(Figure("discover + parse + map every run folder", "s", parsed, bare,
                       "json.loads of every input_output.json", repeats, f"{2 * n} run folders of {s} scenes"))
    if args.rerun_runs:
        m = args.rerun_runs
        tree = make_corpus(work / f"corpus-{m}", m, s)
        firsts, cpus = [], []
        for attempt in range(repeats):
            db = work / f"rerun-{attempt}" / "mlflow.db"
            db.parent.mkdir(parents=True, exist_ok=True)
            took, used, _, _ = timed(align_track_cmd(tree, f"sqlite:///{db}"))
            firsts.append(took)
            cpus.append(used)
            print(f"{'first':12} run folders={m} seconds={took:.2f} cpu_s={used:.2f}", flush=True)
        reruns = []
        for _ in range(repeats):
            took, used, _, output = timed(align_track_cmd(tree, f"sqlite:///{work / 'rerun-0' / 'mlflow.db'}"))
            if _count(output, "skipped") != m:
                sys.exit(f"rerun did not skip every run folder:\n{output}")
            reruns.append((took, used))
            print(f"{'rerun':12} run folders={m} seconds={took:.2f} cpu_s={used:.2f}", flush=True)
        out.add(Figure("rerun on an unchanged tree (all skipped, one store read)", "s", min(r[0] for r in reruns),
                       min(firsts), "the first ingest of the same tree", repeats, f"{m} run folders of {s} scenes"))
        out.notes["rerun_cpu_s"] = min(r[1] for r in reruns)
        out.notes["first_ingest_cpu_s"] = min(cpus)
    out.notes["seconds"] = {"wall": wall, "cpu": cpu}
    out.save()


if __name__ == "__main__":
    main()
