"""When an experiment ran, from its folder: the run's start and end times (pure functions, no store).

Every writer stores these, so a run's start/end and its traces' timestamps are the experiment's on every
backend, whenever it is ingested. Start: the timestamp Hydra put in the output folder's path, read in local
time as Hydra writes it (``outputs/<YYYY-MM-DD>/<HH-MM-SS>``, ``multirun/<YYYY-MM-DD>/<HH-MM-SS>/<job>``,
``<collection>/<variant>/<YYYY-MM-DD_HH-MM-SS>``), else the folder's earliest file time. End: start plus the
time ``timing.json`` records, else the folder's last file time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import PurePath
from typing import Any

_DATE, _TIME = r"(\d{4})-(\d{2})-(\d{2})", r"(\d{2})-(\d{2})-(\d{2})"
_STAMP = re.compile(rf"{_DATE}_{_TIME}")
_DAY = re.compile(_DATE)
_CLOCK = re.compile(_TIME)


def _local(parts: Sequence[str]) -> float | None:
    try:
        return datetime(*map(int, parts)).timestamp()  # type: ignore[arg-type]  # naive: local time, as Hydra's
    except (ValueError, OverflowError, OSError):
        return None


def folder_timestamp(path: PurePath) -> float | None:
    """Epoch seconds of the Hydra timestamp in the folder's path (its last two or three parts), else None."""
    parts = path.parts
    if parts and (m := _STAMP.fullmatch(parts[-1])):
        return _local(m.groups())
    for day, clock in ((-2, -1), (-3, -2)):  # outputs/<date>/<time>, multirun/<date>/<time>/<job>
        if len(parts) >= -day and (d := _DAY.fullmatch(parts[day])) and (c := _CLOCK.fullmatch(parts[clock])):
            return _local(d.groups() + c.groups())
    return None


def _seconds(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if ok else None


def recorded_seconds(timing: Any, scene_seconds: Sequence[float | None]) -> float | None:
    """The experiment's total time: timing.json's ``total_time_s``, else the sum of its scenes' times."""
    total = _seconds(timing.get("total_time_s")) if isinstance(timing, dict) else None
    if total is not None:
        return total
    known = [t for t in scene_seconds if t is not None]
    return sum(known) if known else None


def run_times(path: PurePath, file_times: tuple[float, float] | None, timing: Any,
              scene_seconds: Sequence[float | None]) -> tuple[int, int] | None:
    """(start, end) in epoch ms of the experiment in ``path``; None when nothing tells (no file time either)."""
    start = folder_timestamp(path)
    if start is None:
        if file_times is None:
            return None
        start = file_times[0]
    total = recorded_seconds(timing, scene_seconds)
    end = start + total if total is not None else (file_times[1] if file_times else start)
    start_ms = round(start * 1000)
    return start_ms, max(start_ms, round(end * 1000))
