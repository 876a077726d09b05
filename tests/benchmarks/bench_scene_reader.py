"""Scene text at any size (issue 25): `f` on a scene whose justification is 12 MB froze the TUI for four minutes,
because the whole scene was wrapped by Rich in one draw. The reader now draws only the lines on screen.

Driven through Pilot at 80x24 on a demo store one of whose scenes (P3) has a 12 MB justification
(tests.support.huge_scene), each figure the best of ``--repeats``:

- key to painted frame for `f` (full text on), `G` (to the text's end), `n` into that scene with `f` on, and
  `r` (its raw JSON in full), against the old way in the same run: Rich wrapping the same text in one draw at
  the same width, as the widget before issue 25 did (Textual's own drawing on top of it left out, so the
  baseline is the old way's least cost);
- the longest the event loop was blocked (a 5 ms ticker's worst lateness) while those keys were handled on the
  12 MB scene, against the same keys on a scene of ordinary size (P2): the input never waits longer than that;
  the issue's goal is under 100 ms.

usage: python -m tests.benchmarks.bench_scene_reader [--repeats R] [--chars N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from tests.benchmarks.results import Figure, Results
from tests.support.huge_scene import HUGE_CHARS, HUGE_SCENE, build_huge_store

SIZE = (80, 24)


class Stalls:
    """The worst lateness of a 5 ms ticker on the app's event loop: how long a key could wait to be read."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task | None = None

    async def _tick(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - started - 0.005)

    def start(self) -> None:
        self.worst = 0.0
        self._task = asyncio.get_running_loop().create_task(self._tick())

    def stop(self) -> float:
        if self._task is not None:
            self._task.cancel()
        return self.worst


async def measure(uri: str, repeats: int) -> dict[str, list[float]]:
    from align_track.demo.store import loaded, scenes_loaded, settle, wait_until
    from align_track.tui.app import AlignTrackApp

    times: dict[str, list[float]] = {k: [] for k in ("f", "G", "n", "r", "stall_huge", "stall_small")}
    app = AlignTrackApp(uri)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: loaded(app), timeout=60, what="runs")
        await settle(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: scenes_loaded(app), timeout=60, what="scenes")
        await settle(pilot)
        pane = app.scenes_pane
        stalls = Stalls()

        async def timed(key: str) -> float:
            started = time.perf_counter()
            await pilot.press(key)
            await pilot.pause()
            return time.perf_counter() - started

        for _ in range(repeats):
            for scene, stall in (("P2", "stall_small"), (HUGE_SCENE, "stall_huge")):
                await pilot.press("g", *["n"] * (int(scene[1:]) - 1), "w")
                assert pane.current.scene_id == scene
                await settle(pilot)
                stalls.start()
                took = {"f": await timed("f")}
                pane.set_zoom(True)  # the reader takes the keys: G goes to the text's end
                took["G"] = await timed("G")
                pane.set_zoom(False)
                await pilot.press("p")
                took["n"] = await timed("n")
                took["r"] = await timed("r")
                await pilot.press("r", "f")
                await settle(pilot)
                times[stall].append(stalls.stop())
                if scene == HUGE_SCENE:
                    for key, value in took.items():
                        times[key].append(value)
    return times


def old_way(text: str, repeats: int) -> float:
    """Rich wrapping ``text`` in one draw at the reader's width, as the widget before issue 25 did."""
    from rich.console import Console
    from rich.text import Text

    console = Console(width=SIZE[0], file=open(os.devnull, "w"))  # noqa: SIM115
    options = console.options.update(width=SIZE[0] - 4)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        console.render_lines(Text(text), options, pad=True)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chars", type=int, default=HUGE_CHARS)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    with tempfile.TemporaryDirectory(prefix="bench-scene-reader-") as tmp:
        uri, justification = build_huge_store(Path(tmp), args.chars)
        times = asyncio.run(measure(uri, args.repeats))
    baseline = old_way(justification, args.repeats)
    corpus = f"demo store, scene {HUGE_SCENE}'s justification {len(justification):,} characters, {SIZE[0]}x{SIZE[1]}"
    out = Results("scene_reader")
    labels = {"f": "f (full text) on a 12 MB justification, key to frame",
              "G": "G to the end of a 12 MB justification, key to frame",
              "n": "n into a 12 MB justification with f on, key to frame",
              "r": "r (raw JSON in full) of a 12 MB justification, key to frame"}
    for key, label in labels.items():
        out.add(Figure(label, "s", min(times[key]), baseline, "Rich wrapping it in one draw (old reader)",
                       args.repeats, corpus))
    out.add(Figure("longest event-loop stall while f, G, n, r are handled on the 12 MB scene", "s",
                   min(times["stall_huge"]), min(times["stall_small"]), "the same keys on a scene of usual size",
                   args.repeats, corpus))
    out.notes["worst stalls (s), 12 MB scene"] = [round(t, 4) for t in times["stall_huge"]]
    out.notes["worst stalls (s), usual scene"] = [round(t, 4) for t in times["stall_small"]]
    out.save()


if __name__ == "__main__":
    main()
