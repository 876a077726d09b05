"""TUI speed on a 10,000-run store: first paint, listing every run, and each filter keystroke, each against
the same operation done the usual way in the same run: ``mlflow.search_runs`` into a DataFrame for the
listing, a pandas substring filter over the same rows (lowercased text built once, as the TUI does) for each
keystroke.

The store (align-track-shaped params, metrics and tags, all runs complete) is written with
direct SQL into a schema MLflow created itself and cached under /tmp, so only the first
run pays for it. Everything is driven through Pilot, the way the tests drive the app; the app and
the baseline are each measured ``--repeat`` times and the best taken.

usage: python -m tests.benchmarks.bench_tui [--runs N] [--rebuild] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.benchmarks.results import Figure, Results, best_of, seconds
from tests.benchmarks.run_store import building_path, insert_runs, new_store, run_row

REPO = Path(__file__).resolve().parents[2]

EXPERIMENT = "align-system-experiments"
ADMS = ["pipeline_baseline", "pipeline_comparative_regression", "pipeline_kaleido", "pipeline_random",
        "outlines_transformers_structured"]
LLMS = ["mistralai/Mistral-7B-Instruct-v0.3", "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct"]
KDMAS = ["merit", "affiliation", "search", "personal_safety"]
T0 = 1_749_542_400_000


def build_store(db: Path, runs: int) -> None:
    """MLflow creates the schema and experiment; the runs go in with executemany in one transaction."""
    tmp = building_path(db)
    artifacts = (db.parent / "artifacts").as_uri()
    eid = new_store(tmp, EXPERIMENT, artifacts)

    rng = random.Random(0)
    run_rows, params, tags, latest = [], [], [], []
    for i in range(runs):
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex
        adm, llm, kdma = rng.choice(ADMS), rng.choice(LLMS), rng.choice(KDMAS)
        target = f"ADEPT-June2025-{kdma}-{rng.randint(0, 10) / 10}"
        variant = "default" if i % 3 else f"temperature-{rng.choice([0.0, 0.3, 0.7])}/{i:05d}"
        name = f"{adm}/{target}" + ("" if variant == "default" else f"/{variant}")
        start = T0 + i * 1000
        run_rows.append(run_row(run_id, name, "FINISHED", start, artifacts, eid))
        values = {"adm": adm, "llm_backbone": llm, "alignment_target_id": target, f"kdma.{kdma}": target[-3:],
                  "run_variant": variant, "num_scenarios": str(rng.choice([8, 16, 100]))}
        params += [(k, v, run_id) for k, v in values.items()]
        tag_values = {"adm": adm, "llm": llm, "alignment_target_id": target, "experiment_path": f"exp/{i:05d}",
                      "align_track.key": f"key-{i:05d}", "align_track.complete": "true", "mlflow.runName": name}
        tags += [(k, v, run_id) for k, v in tag_values.items()]
        metrics = {"timing.avg_seconds": rng.uniform(2, 40), "timing.total_seconds": rng.uniform(50, 900)}
        if rng.random() < 0.8:
            metrics["score.alignment_score"] = rng.random()
        latest += [(k, v, start, 0, 0, run_id) for k, v in metrics.items()]

    insert_runs(tmp, run_rows, params, tags, [(k, v, t, r, 0, 0) for k, v, t, _, _, r in latest], latest)
    tmp.replace(db)


def import_seconds() -> float:
    """Wall time of importing the app module in a fresh interpreter (what `align-track tui` pays first)."""
    code = "import time; t = time.perf_counter(); import align_track.tui.app; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return float(out.stdout.strip())


def instrument(app) -> tuple[list[float], list[float]]:
    """Record when each screen frame is composed and when each filter re-render ends (bench only)."""
    frames: list[float] = []
    filtered: list[float] = []
    screen, pane = app.screen, app.runs_pane
    compose, refresh_view = screen._compositor_refresh, pane.refresh_view

    def timed_compose(*args, **kwargs):
        out = compose(*args, **kwargs)
        frames.append(time.perf_counter())
        return out

    def timed_refresh_view(*args, **kwargs) -> None:
        refresh_view(*args, **kwargs)
        filtered.append(time.perf_counter())

    screen._compositor_refresh = timed_compose
    pane.refresh_view = timed_refresh_view
    return frames, filtered


def send_key(app, key: str) -> None:
    """Deliver a key as the terminal driver would (no Pilot waits around it)."""
    from textual import events

    app._driver.send_message(events.Key(key, key if len(key) == 1 else None))


async def key_latency(app, frames: list[float], filtered: list[float], ch: str) -> float:
    """Key sent -> the first screen frame painted after the filter ran, as a user sees it."""
    frame_mark, filter_mark = len(frames), len(filtered)
    t = time.perf_counter()
    send_key(app, "backspace" if ch == "\b" else ch)
    while len(filtered) == filter_mark or not any(f > filtered[-1] for f in frames[frame_mark:]):
        await asyncio.sleep(0)
    return next(f for f in frames[frame_mark:] if f > filtered[-1]) - t


async def type_query(app, frames: list[float], filtered: list[float], query: str) -> list[float]:
    """Type the query, then delete it; one latency (ms) per key."""
    return [await key_latency(app, frames, filtered, ch) * 1000 for ch in query + "\b" * len(query)]


async def drive(uri: str, runs: int, query: str) -> dict[str, float | list[float]]:
    from align_track.tui.app import AlignTrackApp

    started = time.perf_counter()
    app = AlignTrackApp(uri)
    result: dict[str, float | list[float]] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        result["first_paint_s"] = time.perf_counter() - started
        assert app.status.state == "connecting…", app.status.state
        while app.snapshot is None:
            if app.status.error:
                raise SystemExit(app.status.error)
            await asyncio.sleep(0.005)
        await pilot.pause()
        result["listed_s"] = time.perf_counter() - started
        result["listed_cpu_s"] = time.process_time()  # the process's CPU so far (imports included): what a busy
        # shared machine inflates least
        pane = app.runs_pane
        assert len(pane.model) == runs, len(pane.model)
        frames, filtered = instrument(app)
        # Typing at once, while mlflow is imported in the background for the scene views.
        send_key(app, "slash")
        await asyncio.sleep(0.05)
        result["keystroke_warming_ms"] = await type_query(app, frames, filtered, query)
        await app.workers.wait_for_complete()
        await pilot.pause()
        latency, handler, paint = [], [], []
        for ch in query + "\b" * len(query):
            latency.append(await key_latency(app, frames, filtered, ch))
            await pilot.pause()
            # The same work in isolation: filter + new view, then painting the visible lines.
            t = time.perf_counter()
            pane.refresh_view()
            handler.append(time.perf_counter() - t)
            t = time.perf_counter()
            for y in range(pane.table.size.height):
                pane.table.render_line(y)
            paint.append(time.perf_counter() - t)
        result["keystroke_latency_ms"] = [x * 1000 for x in latency]
        result["keystroke_filter_ms"] = [x * 1000 for x in handler]
        result["keystroke_paint_ms"] = [x * 1000 for x in paint]
        result["shown_after_query"] = float(len(pane.table.view))
    return result


def baseline(uri: str, query: str, repeats: int) -> dict[str, float]:
    """The same listing and per-keystroke filtering through mlflow.search_runs and pandas (best of ``repeats``)."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        eid = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
        mlflow.search_runs(experiment_ids=[eid], max_results=1)  # warm-up, as the app's store is warm
        listed = best_of(repeats, lambda: seconds(lambda: mlflow.search_runs(experiment_ids=[eid])))
        frame = mlflow.search_runs(experiment_ids=[eid])
    import pandas as pd

    # built once, like the TUI's haystacks
    hay = pd.Series(["\t".join(map(str, row)).lower() for row in frame.itertuples(index=False, name=None)])
    prefixes = [query[:i] for i in range(1, len(query) + 1)] + [query[:i] for i in range(len(query) - 1, -1, -1)]

    def keystroke(text: str) -> None:
        mask = hay.str.len() >= 0
        for term in text.lower().split():
            mask &= hay.str.contains(term, regex=False)
        frame[mask]

    per_key = [best_of(repeats, lambda t=text: seconds(lambda: keystroke(t))) * 1000 for text in prefixes]
    return {"listed_s": listed, "keystroke_filter_ms": statistics.median(per_key)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--query", default="merit 0.5 llama")
    parser.add_argument("--repeat", type=int, default=3, help="best of R, the same R for the app and the baseline")
    args = parser.parse_args()

    cache = Path("/tmp/align-track-bench-tui")
    cache.mkdir(parents=True, exist_ok=True)
    db = cache / f"mlflow-{args.runs}.db"
    if args.rebuild or not db.exists():
        t = time.perf_counter()
        build_store(db, args.runs)
        print(f"built {args.runs} runs in {time.perf_counter() - t:.1f}s -> {db}")
    uri, repeats = f"sqlite:///{db}", args.repeat
    print(f"import align_track.tui.app: {import_seconds() * 1000:.0f} ms (fresh interpreter)")
    drives = [asyncio.run(drive(uri, args.runs, args.query)) for _ in range(repeats)]
    res = min(drives, key=lambda r: r["listed_s"])
    print(f"first paint (app running, 'connecting…' shown): {res['first_paint_s'] * 1000:.0f} ms")
    print(f"{args.runs} runs listed: {res['listed_s'] * 1000:.0f} ms after start")
    for label, key in (("key -> frame painted, while mlflow imports", "keystroke_warming_ms"),
                       ("key -> frame painted", "keystroke_latency_ms"), ("filter + view", "keystroke_filter_ms"),
                       ("paint visible lines", "keystroke_paint_ms")):
        values = res[key]
        assert isinstance(values, list)
        print(f"per keystroke, {label}: median {statistics.median(values):.1f} ms, max {max(values):.1f} ms "
              f"({len(values)} keys, typing then deleting {args.query!r})")

    def best_median(key: str) -> float:
        return min(statistics.median(d[key]) for d in drives)  # type: ignore[arg-type]

    base = baseline(uri, args.query, repeats)
    corpus = f"{args.runs} runs, query {args.query!r} typed then deleted"
    out = Results("tui")
    out.add(Figure("start -> every run listed", "ms", res["listed_s"] * 1000, base["listed_s"] * 1000,
                   "mlflow.search_runs into a DataFrame (warm, nothing shown)", repeats, corpus))
    out.add(Figure("filter per keystroke (median)", "ms", best_median("keystroke_filter_ms"),
                   base["keystroke_filter_ms"], "pandas str.contains over the same rows", repeats, corpus))
    out.notes["key_to_frame_painted_median_ms"] = round(best_median("keystroke_latency_ms"), 1)
    out.save()


if __name__ == "__main__":
    main()
