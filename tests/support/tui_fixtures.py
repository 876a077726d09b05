"""Stores for the TUI tests, filled by the real ingest: a demo store built once per session, and small
factory-built run folders whose choices the compare test controls.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from align_track.demo.store import build_demo_store, loaded, settle, wait_until
from align_track.tui.app import AlignTrackApp
from align_track.tui.models.runs import RunsModel
from tests.support.factory import config, scene, write_run_folder

DEMO_RUN_FOLDERS, DEMO_SCENES, DEMO_SEED = 12, 6, 0


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(uri, experiments dir) of a demo store; read-only for tests (build once: ingest takes seconds)."""
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    root = tmp_path_factory.mktemp("tui-demo")
    return build_demo_store(root, run_folders=DEMO_RUN_FOLDERS, scenes=DEMO_SCENES, seed=DEMO_SEED)


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch):
    """Show times in UTC so rendered 'ingested' columns do not depend on the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def table_text(table) -> str:
    """What a VirtualTable paints, top to bottom (header included)."""
    return "\n".join(table.render_line(y).text for y in range(table.size.height))


def static_text(widget, width: int | None = None) -> str:
    """What a Static (or Label) shows, as a console of the widget's width (or ``width``) prints it."""
    import io

    from rich.console import Console

    console = Console(width=width or widget.size.width or 80, file=io.StringIO(), record=True)
    console.print(widget.content if hasattr(widget, "content") else widget.render())
    return console.export_text()


async def opened(app: AlignTrackApp, pilot: Any) -> None:
    """Runs listed without an error, and mlflow imported in the background (Pilot's key presses wait while
    the CPU is busy)."""
    await wait_until(pilot, lambda: loaded(app), what="runs")
    await settle(pilot)
    assert app.status.error == ""


@asynccontextmanager
async def app_on(uri: str, size: tuple[int, int], **kwargs: Any) -> AsyncIterator[tuple[AlignTrackApp, Any]]:
    """The TUI on ``uri`` at ``size``, its runs listed: ``async with app_on(uri, SIZE) as (app, pilot):``."""
    app = AlignTrackApp(uri, **kwargs)
    async with app.run_test(size=size) as pilot:
        await opened(app, pilot)
        yield app, pilot


CHOICES = [
    {"action_id": "treat_a", "action_type": "APPLY_TREATMENT", "unstructured": "Treat Patient A",
     "character_id": "P1", "kdma_association": {"merit": 0.2}},
    {"action_id": "treat_b", "action_type": "APPLY_TREATMENT", "unstructured": "Treat Patient B",
     "character_id": "P2", "kdma_association": {"merit": 0.8}},
]


def choosing_scene(scene_id: str, choice: int, scenario: str = "June2025-MF-eval") -> dict:
    """A factory scene whose output action is the chosen choice (as align-system writes it)."""
    item = scene(scene_id, scenario=scenario, choice=choice)
    action = dict(CHOICES[choice])
    action["justification"] = f"Justification of {scene_id}: choice {choice}."
    item["output"]["action"] = action
    return item


def write_choices(path: Path, adm: str, choices: list[int], scene_ids: list[str] | None = None) -> Path:
    """One run folder for ``adm`` whose scene i chooses ``choices[i]``."""
    ids = scene_ids or [f"S{i}" for i in range(len(choices))]
    scenes = [choosing_scene(sid, c) for sid, c in zip(ids, choices, strict=True)]
    return write_run_folder(path, scenes=scenes, cfg=config(adm=adm))


def shortest_unique_part(model: RunsModel, row: int, folder: str) -> str:
    """The shortest piece of ``folder`` that the ``/`` filter matches in this run only."""
    for size in range(1, len(folder) + 1):
        for start in range(len(folder) - size + 1):
            part = folder[start:start + size]
            if part.strip() != part:
                continue
            model.text = part
            if model.view() == [row]:
                model.text = ""
                return part
    model.text = ""
    raise AssertionError(f"no part of {folder!r} picks out its run alone")
