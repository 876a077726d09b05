"""Live sweeps: how soon a scene is in the store, what one appended scene costs, what an idle watcher costs.

1. Latency: a watcher process (``align-track ingest --watch``, default 1 s poll) and a writer adding scenes at
   irregular intervals; per scene, seconds from the file written to the run's scene count showing it in the
   store (read with query.live.live_runs every 20 ms). Median and max, on SQLite and over HTTP (a real
   ``mlflow server`` from tests/support/server_fixtures.py).
2. Append vs whole: a 500-scene running run gets one more scene (one ``Watcher.poll()``: stat walk, tail
   parse, trace append), against today's path for a changed folder (``ingest`` rewrites the run whole and
   deletes the old one with its traces), same store kind, same run. Ratio, goal >= 50x.
3. Idle CPU: a watcher process over 1,000 finished folders (already ingested), process CPU time over a window
   once its first pass is done, as a percentage of one core (default poll 1 s, full rescan every 60 s).

usage: python -m tests.benchmarks.bench_watch [--scenes 500] [--samples 12] [--folders 1000] [--window 60]
       [--skip-http] [--skip-latency] [--skip-idle]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.benchmarks.results import Figure, Results
from tests.support import live_writer as lw
from tests.support.factory import write_run_folder
from tests.support.server_fixtures import align_track_cmd, cli_env, start_server, stop_server

EXPERIMENT = "bench-watch"


def latency(uri: str, root: Path, samples: int) -> list[float]:
    from align_track.query.live import live_runs
    from align_track.store.run_writer import RunStore

    RunStore(uri, EXPERIMENT)  # the store exists before two processes open it
    folder = lw.start(root / "job")
    lw.write_scenes(folder, 1)
    watcher = subprocess.Popen(align_track_cmd("ingest", "--watch", "--experiments-dir", str(root), "--mlflow-uri",
                                               uri, "--experiment-name", EXPERIMENT, "--quiet"),
                               env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    rng = random.Random(0)
    out: list[float] = []
    try:
        _until(lambda: _scenes(live_runs(uri, EXPERIMENT)) >= 1, 120)
        for n in range(2, samples + 2):
            time.sleep(rng.uniform(0.2, 1.3))  # land anywhere in the poll cycle
            lw.write_scenes(folder, n)
            written = time.time()
            _until(lambda n=n: _scenes(live_runs(uri, EXPERIMENT)) >= n, 60, step=0.02)
            out.append(time.time() - written)
    finally:
        watcher.kill()
        watcher.wait()
    return out


def _scenes(live: list) -> int:
    return max((p.scenes for p in live), default=0)


def _until(condition, timeout: float, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out: the watcher did not keep up")
        time.sleep(step)


def append_vs_whole(uri: str, root: Path, scenes: int, repeats: int) -> tuple[float, float, float, float]:
    """Median seconds of one appended scene, and of today's whole re-ingest of the same changed folder; then the
    same two in CPU seconds of this process (both run in it; a server's own CPU is not counted)."""
    from align_track.ingest.pipeline import ingest
    from align_track.ingest.watch import Watcher

    live_root, whole_root = root / "live", root / "whole"
    folder = lw.start(live_root / "job")
    lw.write_scenes(folder, scenes)
    watcher = Watcher(live_root, uri, EXPERIMENT + "-live", stall_after=1e9)
    watcher.poll()  # the running run with its first `scenes` traces
    appends, append_cpu = [], []
    for k in range(repeats):
        lw.write_scenes(folder, scenes + 1 + k)
        started, cpu = time.perf_counter(), time.process_time()
        watcher.poll()
        appends.append(time.perf_counter() - started)
        append_cpu.append(time.process_time() - cpu)
    watcher.close()

    other = lw.start(whole_root / "job")
    lw.write_scenes(other, scenes)
    ingest(whole_root, uri, EXPERIMENT + "-whole")
    wholes, whole_cpu = [], []
    for k in range(max(2, repeats // 4)):
        lw.write_scenes(other, scenes + 1 + k)
        started, cpu = time.perf_counter(), time.process_time()
        summary = ingest(whole_root, uri, EXPERIMENT + "-whole")
        wholes.append(time.perf_counter() - started)
        whole_cpu.append(time.process_time() - cpu)
        assert summary.count("updated") == 1, summary.outcomes
    return (statistics.median(appends), statistics.median(wholes), statistics.median(append_cpu),
            statistics.median(whole_cpu))


def idle_cpu(root: Path, uri: str, folders: int, window: float) -> float:
    import psutil

    from align_track.ingest.pipeline import ingest

    for i in range(folders):
        write_run_folder(root / f"sweep{i // 100}" / f"job{i}", scenes=lw.scenes(2), timing=[1.0, 2.0])
    ingest(root, uri, EXPERIMENT)
    proc = subprocess.Popen(align_track_cmd("ingest", "--watch", "--experiments-dir", str(root), "--mlflow-uri", uri,
                                            "--experiment-name", EXPERIMENT, "--quiet"),
                            env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ps = psutil.Process(proc.pid)
    try:
        # first pass: every config read and every run looked up once; wait until it has settled
        quiet, last = 0, _cpu(ps)
        while quiet < 3:
            time.sleep(1.0)
            now = _cpu(ps)
            quiet = quiet + 1 if now - last < 0.05 else 0
            last = now
        start_cpu, started = _cpu(ps), time.monotonic()
        time.sleep(window)
        return (_cpu(ps) - start_cpu) / (time.monotonic() - started) * 100
    finally:
        proc.kill()
        proc.wait()


def _cpu(ps) -> float:
    t = ps.cpu_times()
    return t.user + t.system


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=500)
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--folders", type=int, default=1000)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-idle", action="store_true")
    args = parser.parse_args()
    out = Results("watch")
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        base = Path(tmp)
        kinds = [("sqlite", f"sqlite:///{base / 'sqlite' / 'mlflow.db'}")]
        server = None
        if not args.skip_http:
            server = start_server(f"sqlite:///{base / 'server.db'}", base / "server-artifacts", base / "server.log")
            kinds.append(("http", server.url))
        try:
            for kind, uri in kinds if not args.skip_latency else []:
                lat = latency(uri, base / f"lat-{kind}", args.samples)
                print(f"{kind:6} latency scene->store (poll 1 s): median {statistics.median(lat):.2f} s, "
                      f"max {max(lat):.2f} s over {len(lat)} scenes", flush=True)
                out.notes[f"latency_{kind}_median_s"] = round(statistics.median(lat), 2)
                out.notes[f"latency_{kind}_max_s"] = round(max(lat), 2)
            for kind, uri in kinds:
                append, whole, append_cpu, whole_cpu = append_vs_whole(uri, base / f"cost-{kind}", args.scenes,
                                                                       args.repeats)
                print(f"{kind:6} one scene on a {args.scenes}-scene running run: append {append * 1000:.1f} ms, "
                      f"whole re-ingest {whole * 1000:.0f} ms, ratio {whole / append:.0f}x (goal >= 50x); "
                      f"CPU of this process: append {append_cpu * 1000:.1f} ms, whole {whole_cpu * 1000:.0f} ms, "
                      f"ratio {whole_cpu / max(append_cpu, 1e-9):.0f}x", flush=True)
                corpus = (f"one {args.scenes}-scene running run, median of {args.repeats} appends and "
                          f"{max(2, args.repeats // 4)} re-ingests")
                out.add(Figure(f"one more scene on a running run ({kind}): append vs whole re-ingest", "ms",
                               append * 1000, whole * 1000, "ingest of the changed folder", args.repeats, corpus))
                out.add(Figure(f"one more scene on a running run ({kind}): CPU of the writing process", "ms",
                               append_cpu * 1000, whole_cpu * 1000, "ingest of the changed folder", args.repeats,
                               corpus))
        finally:
            if server is not None:
                stop_server(server)
        if args.skip_idle:
            out.save()
            return
        cpu = idle_cpu(base / "idle", f"sqlite:///{base / 'idle-store' / 'mlflow.db'}", args.folders, args.window)
        print(f"idle watcher over {args.folders} finished folders: {cpu:.2f}% of one core "
              f"({args.window:.0f} s window, poll 1 s)", flush=True)
        out.notes["idle_cpu_percent"] = round(cpu, 2)
    out.save()


if __name__ == "__main__":
    main()
