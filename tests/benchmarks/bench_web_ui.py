"""The MLflow web UI from the TUI: seconds from ``m`` to a server answering ``/health``, on the demo store.

Figures, best of ``--repeat``, interleaved with the baseline (``mlflow server`` started by hand on the same store
with MLflow's defaults, launch to its first ``/health`` 200):

* ``start_ui``: :func:`align_track.mlflow_ui.start_ui`, what the TUI's ``m`` runs (one uvicorn worker, no job
  runner), launch to ``/health`` 200;
* ``tui m``: the keys, end to end: ``m`` pressed on the runs table at 80x24 (Pilot) to the status line saying
  ``web UI http://...`` (the server answered ``/health``).

Issue 25's goal: serving within 10 s on a quiet machine (the load average is in the notes). Where the time goes
(the ``mlflow server`` CLI importing mlflow before it launches uvicorn, which imports it again) is in the notes too.
Results: bench-results/web_ui.json.

usage: python -m tests.benchmarks.bench_web_ui [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.results import Figure, Results

DEMO = {"run_folders": 12, "scenes": 6, "seed": 0}


def _health(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def by_hand(uri: str, port: int, log: Path) -> tuple[float, float]:
    """``mlflow server --backend-store-uri URI --port P`` with MLflow's defaults: (seconds to /health 200, seconds
    to its uvicorn child appearing: the CLI's own start-up)."""
    from align_track.mlflow_ui import UiServer, _session_members, stop_ui

    started = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
                                    "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    url, cli = f"http://127.0.0.1:{port}", 0.0
    try:
        while not _health(url):
            if process.poll() is not None:
                sys.exit(f"mlflow server exited: {log.read_text()[-2000:]}")
            if not cli and len(_session_members(process.pid)) > 1:
                cli = time.perf_counter() - started
            time.sleep(0.05)
        return time.perf_counter() - started, cli
    finally:
        stop_ui(UiServer("127.0.0.1", port, url, process))


def with_start_ui(uri: str, port: int) -> float:
    """What ``m`` runs in its worker thread, launch to /health 200."""
    from align_track.mlflow_ui import start_ui, stop_ui

    started = time.perf_counter()
    server = start_ui(uri, "127.0.0.1", port)
    wall = time.perf_counter() - started
    stop_ui(server)
    return wall


async def with_tui_keys(uri: str) -> float:
    """``m`` on the runs table to the URL in the status line (Pilot at 80x24)."""
    from align_track.demo.store import loaded, settle, wait_until
    from align_track.tui.app import AlignTrackApp

    app = AlignTrackApp(uri)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: loaded(app), what="runs")
        await settle(pilot)
        started = time.perf_counter()
        await pilot.press("m")
        await wait_until(pilot, lambda: "http://" in app.status.ui or not app.web_ui.busy, timeout=120,
                         what="web UI")
        wall = time.perf_counter() - started
        assert app.ui_server is not None and _health(app.ui_server.url), app.mlflow_pane.state
        await pilot.press("q")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    from align_track.demo.store import build_demo_store
    from align_track.mlflow_ui import find_free_port

    work = Path(tempfile.mkdtemp(prefix="bench-web-ui-"))
    uri, _ = build_demo_store(work, **DEMO)
    corpus = f"the demo store ({DEMO['run_folders']} run folders, {DEMO['scenes']} scenes each)"
    out = Results("web_ui")
    out.notes["load_average_at_start"] = round(os.getloadavg()[0], 2)
    hand: list[float] = []
    cli: list[float] = []
    ours: list[float] = []
    keys: list[float] = []
    for attempt in range(args.repeat):
        print(f"-- round {attempt + 1}/{args.repeat} (load {os.getloadavg()[0]:.2f})", flush=True)
        wall, cli_s = by_hand(uri, find_free_port("127.0.0.1", 5600), work / f"hand{attempt}.log")
        hand.append(wall)
        cli.append(cli_s)
        ours.append(with_start_ui(uri, find_free_port("127.0.0.1", 5600)))
        keys.append(asyncio.run(with_tui_keys(uri)))
        print(f"   by hand {wall:.2f} s (its CLI {cli_s:.2f} s)  start_ui {ours[-1]:.2f} s  tui m {keys[-1]:.2f} s",
              flush=True)
    baseline = "mlflow server (MLflow's defaults, by hand)"
    out.add(Figure("web UI start_ui to /health", "s", min(ours), min(hand), baseline, args.repeat, corpus))
    out.add(Figure("web UI m on the runs table to its URL", "s", min(keys), min(hand), baseline, args.repeat, corpus))
    out.notes["mlflow_server_cli_before_uvicorn_s"] = round(min(cli), 2)
    out.notes["goal"] = "m to serving within 10 s on a quiet machine (issue 25)"
    out.notes["load_average_at_end"] = round(os.getloadavg()[0], 2)
    out.save()


if __name__ == "__main__":
    main()
