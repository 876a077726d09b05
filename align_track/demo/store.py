"""A reproducible demo store for screenshots, snapshot tests and benchmarks of the TUI.

Built with the real pieces (``generate_demo`` then ``ingest``); only the runs' start times
(the "ingested" column) are then set from the data, so two builds render the same pixels.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from align_track.store.uri import DEFAULT_EXPERIMENT

PINNED_START_MS = 1_749_542_400_000  # 2025-06-10 08:00 UTC
PINNED_STEP_MS = 7 * 60 * 1000


def build_demo_store(root: Path, run_folders: int = 24, scenes: int = 8, seed: int = 0,
                     experiment_name: str = DEFAULT_EXPERIMENT) -> tuple[str, Path]:
    """Write demo run folders under ``root/exps`` and ingest them into ``root/mlflow.db``."""
    from align_track.demo.generate import generate_demo
    from align_track.ingest.pipeline import ingest

    exps = root / "exps"
    generate_demo(exps, run_folders=run_folders, scenes=scenes, seed=seed)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    summary = ingest(exps, uri, experiment_name)
    if summary.failures:
        raise RuntimeError(f"demo ingest failed: {summary.failures[0].error}")
    pin_start_times(uri)
    return uri, exps


def pin_start_times(uri: str) -> None:
    """Start times (shown as 'started') pinned: ordered by experiment path and run name, minutes apart."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.begin() as conn:
            rows = conn.execute(sqlalchemy.text(
                "SELECT r.run_uuid, r.name, t.value FROM runs r "
                "LEFT JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'experiment_path'"
            )).fetchall()
            ordered = sorted(rows, key=lambda r: (r[2] or "", r[1] or ""))
            for i, (run_id, _, _) in enumerate(ordered):
                start = PINNED_START_MS + i * PINNED_STEP_MS
                conn.execute(sqlalchemy.text("UPDATE runs SET start_time = :s, end_time = :e WHERE run_uuid = :r"),
                             {"s": start, "e": start + 60_000, "r": run_id})
    finally:
        engine.dispose()


async def wait_until(pilot: Any, condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> None:
    """Let the app run until ``condition()`` is true (workers report back through the event loop)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)
    await pilot.pause()


def loaded(app: Any) -> bool:
    """The runs are on screen (or the store said why not, or that there is no store yet)."""
    return app.snapshot is not None or bool(app.status.error) or app.status.state == "no store yet"


def scenes_loaded(app: Any) -> bool:
    pane = app.scenes_pane
    return pane.run_row is not None and not pane.fetching


def compared(app: Any) -> bool:
    return app.compare_pane.comparison is not None


def swept(app: Any) -> bool:
    """The Sweep pane's index is read, its scenes' texts too, and the highlighted scene's details are shown."""
    pane = app.sweep_pane
    return (pane.index is not None and not pane.building and len(pane.index.texts) == len(pane.index.by_key)
            and all(d.trace_id in pane.details for d in pane.decisions))


async def settle(pilot: Any) -> None:
    """Wait for every worker, then for the screen to repaint."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await asyncio.sleep(0)
