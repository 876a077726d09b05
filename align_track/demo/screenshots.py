"""Save an SVG of every pane into screenshots/: ``python -m align_track.demo.screenshots [--out DIR]``.

Builds the demo store in a temp dir, drives the app with Pilot as a user would (keys only)
and saves runs.svg, scenes.svg, scene-zoom.svg, compare.svg, compare-scene.svg, ingest.svg (one folder
broken on purpose, to show how a failure reads), report.svg, analysis.svg, sweep.svg, mlflow.svg, help.svg.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from align_track.demo.store import build_demo_store, compared, loaded, scenes_loaded, settle, swept, wait_until

SIZE = (100, 30)


async def _shoot(app, out: Path, with_server: bool) -> list[Path]:
    saved: list[Path] = []

    def save(name: str) -> None:
        path = out / f"{name}.svg"
        app.save_screenshot(str(path))
        saved.append(path)

    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: loaded(app), what="runs")
        await settle(pilot)
        # Runs: narrow to the merit targets, sort by score (high first), mark two runs.
        await pilot.press("slash", *"merit", "enter")
        await pilot.press("s", "s", "s", "S", "home")
        await pilot.press("space", "space", "home")
        await settle(pilot)
        save("runs")

        # Compare: two runs of one ADM and target that differ only in temperature.
        await pilot.press("u", "slash", "ctrl+u", *"merit-0.5 baseline", "enter", "home", "space", "space", "c")
        await wait_until(pilot, lambda: compared(app), what="compare")
        await settle(pilot)
        save("compare")
        await pilot.press("enter")  # the first scene, the runs side by side
        await settle(pilot)
        save("compare-scene")
        await pilot.press("escape")

        await pilot.press("1", "enter")
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        await pilot.press("n", "d")  # next scene, scroll its text to the choices
        await settle(pilot)
        save("scenes")
        await pilot.press("z")  # the scene's text on the whole screen
        await settle(pilot)
        save("scene-zoom")
        await pilot.press("z")

        await pilot.press("1", "u", "slash", "escape", "5")  # report over every run: no marks, no filter
        await wait_until(pilot, lambda: app.report_pane.pivot is not None, what="pivot")
        await settle(pilot)
        save("report")

        await pilot.press("7")  # analysis: the alignment curve over every run
        await wait_until(pilot, lambda: app.query_one("#analysis").ready, what="analysis")
        await settle(pilot)
        save("analysis")

        await pilot.press("8", "s", "s", "s")  # sweep: every scene across runs, the most split first
        await wait_until(pilot, lambda: swept(app), what="sweep")
        await settle(pilot)
        save("sweep")

        await pilot.press("4", "e")  # e: edit the path (a pane key pressed instead switches panes)
        await pilot.press("ctrl+u", *"mo", "right", "enter")  # "mo" + → completes to "more/"
        await wait_until(pilot, lambda: app.ingest_pane.summary is not None, timeout=120, what="ingest")
        await pilot.press("escape")
        await settle(pilot)
        save("ingest")

        await pilot.press("6")
        if with_server:
            await pilot.press("m")
            await wait_until(pilot, lambda: not app.ui_busy, timeout=120, what="web UI")
            await settle(pilot)
        save("mlflow")

        await pilot.press("1", "question_mark")
        await settle(pilot)
        save("help")
        await pilot.press("escape")
        if with_server:
            app.stop_ui_server()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--no-server", action="store_true", help="do not start the MLflow web UI")
    args = parser.parse_args()
    from align_track.demo.generate import generate_demo
    from align_track.tui.app import AlignTrackApp

    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out.resolve()
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="align-track-shots-") as tmp:
        root = Path(tmp)
        uri, _ = build_demo_store(root)
        generate_demo(root / "more", run_folders=4, scenes=6, seed=7)
        broken = sorted((root / "more").rglob(".hydra/config.yaml"))[0]
        broken.write_text(broken.read_text() + "adm: [unclosed\n")  # one failure in the ingest shot
        os.chdir(root)  # paths on screen are relative: no temp dir names in the pictures
        try:
            app = AlignTrackApp(uri, experiments_dir="exps")
            saved = asyncio.run(_shoot(app, out, not args.no_server))
        finally:
            os.chdir(cwd)
    for path in saved:
        print(path)


if __name__ == "__main__":
    main()
