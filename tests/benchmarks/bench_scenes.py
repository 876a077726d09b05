"""Cold time to a run's first scenes: the TUI's fast SQL reader vs MLflow's search_traces, same store, same run.

Each sample is a fresh interpreter that does what the TUI does before a run is opened (import the app's
app, list the runs), then times reading the first page of scenes of the first run, either with
``scene_pages`` (spans_reader) or through MLflow's client (``import mlflow`` included: that is the cost the
TUI's scene view paid). Both sides run the same number of times, interleaved; medians are compared.
The store is a demo store ingested by align-track (SQLite; PostgreSQL too with --postgres).

With --tui, also in the app: Enter on the first run as soon as the runs are listed, until the frame that shows
the first scene is painted (and, on the fast side, neither mlflow nor pandas imported by then: the TUI's
mlflow warm-up steps aside while a run's first scenes load); the baseline is the same app with the fast reader
switched off. Each figure is the best of the repeats on both sides (medians printed and kept in the corpus
note); results go to bench-results/scenes.json.

usage: python -m tests.benchmarks.bench_scenes [--scenes N] [--repeats R] [--postgres] [--tui] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.results import REPO, Figure, Results

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import align_track.tui.app  # the TUI has imported itself (textual included) before a run can be opened
from align_track.tui.models.data import FIRST_PAGE, PAGE, _mlflow_scene_pages, load_runs, scene_pages
uri, experiment, mode = sys.argv[1:4]
snap = load_runs(uri, experiment)
run = snap.runs[0]
t = time.perf_counter()
if mode == "fast":
    page = next(scene_pages(snap.uri, snap.experiment_id, run.run_id))
else:
    page = next(_mlflow_scene_pages(snap.uri, snap.experiment_id, run.run_id, FIRST_PAGE, PAGE, set()))
done = time.perf_counter()
print(json.dumps({"first_scenes_s": done - t, "since_start_s": done - t0, "scenes": len(page),
                  "first": page[0].trace_id, "mlflow_imported": "mlflow" in sys.modules}))
"""


TUI_CHILD = """
import asyncio, json, sys, time
from align_track.demo.store import loaded, wait_until
from align_track.store import spans_reader
from align_track.tui.app import AlignTrackApp
from align_track.tui.panes.scenes import ScenesPane
from tests.benchmarks.bench_tui import send_key
uri, mode = sys.argv[1], sys.argv[2]
if mode == "mlflow":  # the TUI as it was: every scene page through MLflow's client
    spans_reader.supported = lambda uri: False
shown = []  # when the first scene's text was drawn into the detail pane

show_current = ScenesPane.show_current
def show_and_mark(self, *args, **kwargs):
    show_current(self, *args, **kwargs)
    if self.current is not None and not shown:
        shown.append(time.perf_counter())
ScenesPane.show_current = show_and_mark

async def main():
    app = AlignTrackApp(uri)
    painted = []
    display = app._display
    def display_and_mark(screen, renderable):  # a frame goes to the terminal (headless: computed, not written)
        display(screen, renderable)
        if renderable is not None and shown and not painted:
            painted.append((time.perf_counter(), "mlflow" in sys.modules, "pandas" in sys.modules,
                            len(app.scenes_pane.scenes)))
    app._display = display_and_mark
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: loaded(app), what="runs")
        # Enter at once, as the terminal delivers it (Pilot.press waits for idle); until the frame that
        # shows the first scene (its list row and its text) is painted.
        t = time.perf_counter()
        send_key(app, "enter")
        while not painted:
            await asyncio.sleep(0.001)
        done, mlflow_imported, pandas_imported, on_screen = painted[0]
        # the same run on both sides: its first scene once every page is in (a first page is any 50 of
        # a run whose traces share one timestamp, so what is first at the paint may differ)
        await wait_until(pilot, lambda: not app.scenes_pane.fetching, timeout=120, what="every scene")
        return {"first_scenes_s": done - t, "first": app.scenes_pane.scenes[0].trace_id,
                "scenes": on_screen, "mlflow_imported": mlflow_imported or pandas_imported}

print(json.dumps(asyncio.run(main())))
"""


def sample(uri: str, experiment: str, mode: str, tui: bool = False) -> dict:
    env = {**os.environ, "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-c", TUI_CHILD, uri, mode] if tui else [sys.executable, "-c", CHILD, uri, experiment, mode]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(label: str, uri: str, experiment: str, repeats: int, tui: bool = False) -> Figure:
    fast, slow = [], []
    for _ in range(repeats):  # interleaved, so a busy moment on the machine hits both sides
        fast.append(sample(uri, experiment, "fast", tui))
        slow.append(sample(uri, experiment, "mlflow", tui))
    assert {s["first"] for s in fast} == {s["first"] for s in slow}, "both paths must show the same first scene"
    assert not any(s["mlflow_imported"] for s in fast), "the fast path imported mlflow (or pandas)"
    f = statistics.median(s["first_scenes_s"] for s in fast) * 1000
    m = statistics.median(s["first_scenes_s"] for s in slow) * 1000
    where = "in the TUI (Enter as soon as the runs are listed -> first scene painted)" if tui else "read"
    print(f"{label}: first {fast[0]['scenes']} scenes of a run {where}, cold: spans_reader {f:.0f} ms, "
          f"mlflow search_traces {m:.0f} ms -> {m / f:.0f}x  (median of {repeats} fresh processes each; "
          f"max {max(s['first_scenes_s'] for s in fast) * 1000:.0f} / "
          f"{max(s['first_scenes_s'] for s in slow) * 1000:.0f} ms)")
    figure = ("Enter -> first scene on screen, TUI cold" if tui else "first scenes of a run read, cold") + f" ({label})"
    return Figure(figure, "ms", min(s["first_scenes_s"] for s in fast) * 1000,
                  min(s["first_scenes_s"] for s in slow) * 1000, "mlflow search_traces", repeats,
                  f"demo store, {fast[0]['scenes']} scenes shown; medians {f:.0f} / {m:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=6)
    parser.add_argument("--scenes", type=int, default=120, help="scenes per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="also on a fresh PostgreSQL database")
    parser.add_argument("--tui", action="store_true", help="also time it in the TUI, driven through Pilot")
    parser.add_argument("--json", type=Path, help="also write the results here (always: bench-results/scenes.json)")
    args = parser.parse_args()

    from align_track.demo.store import build_demo_store
    from align_track.store.uri import DEFAULT_EXPERIMENT

    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
    out = Results("scenes", notes={"scenes_per_run": args.scenes, "runs": args.experiments,
                                   "tui_goal_ms": 300, "figure": "align_track/baseline = best of the repeats"})
    with tempfile.TemporaryDirectory(prefix="bench-scenes-") as tmp:
        uri, exps = build_demo_store(Path(tmp), run_folders=args.experiments, scenes=args.scenes)
        out.add(compare("sqlite", uri, DEFAULT_EXPERIMENT, args.repeats))
        if args.tui:
            out.add(compare("sqlite", uri, DEFAULT_EXPERIMENT, args.repeats, tui=True))
        if args.postgres:
            from align_track.ingest.pipeline import ingest
            from tests.support.server_fixtures import fresh_database

            with fresh_database("align_track_bench") as pg:
                ingest(exps, pg, DEFAULT_EXPERIMENT)
                out.add(compare("postgresql", pg, DEFAULT_EXPERIMENT, args.repeats))
                if args.tui:
                    out.add(compare("postgresql", pg, DEFAULT_EXPERIMENT, args.repeats, tui=True))
                from align_track.store import runs_reader

                runs_reader._engine(pg).dispose()
    path = out.save()
    if args.json:
        args.json.write_text(path.read_text())


if __name__ == "__main__":
    main()
