"""Live sweeps, read side: which runs are still running or stalled (with progress), and the sweep's counts.

Search, export and report keep showing complete runs only (query/select.py); these functions are for
surfaces that show a sweep while it runs (the TUI's runs table and its summary line).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from align_track.schema import (
    DONE,
    MAYBE_RUNNING,
    METRIC_TOTAL_SECONDS,
    NO_TIMING,
    STATE_RUNNING,
    STATE_STALLED,
    TAG_CLAIM,
    TAG_COMPLETE,
    TAG_HEARTBEAT,
    TAG_LAST_SCENE,
    TAG_PATH,
    TAG_SCENES,
    TAG_STATE,
    may_still_be_running,
    written_ms,
)
from align_track.store.runs_reader import RunRow, get_experiment_id, load_runs, runs_changed_since
from align_track.store.uri import DEFAULT_EXPERIMENT, resolve_tracking_uri

RUNNING, STALLED, FINISHED, FAILED = "running", "stalled", "finished", "failed"
LEASE_MS = 900_000
"""A live run whose writer has not renewed its heartbeat for this long (15 min, the claim lease) is stalled."""


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def sweep_state(row: RunRow, now_ms: int | None = None) -> str | None:
    """'running', 'stalled', 'finished' or 'failed'; None for a run no one is writing any more and never
    finished (a plain ingest's half-written run, which the next ingest deletes)."""
    if row.tags.get(TAG_COMPLETE) == "true":
        return FAILED if row.status in ("FAILED", "KILLED") else FINISHED
    state = row.tags.get(TAG_STATE)
    if state == STATE_STALLED:
        return STALLED
    if state != STATE_RUNNING:
        return None
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    beat = max(_int(row.tags.get(TAG_HEARTBEAT)) or 0, written_ms(row.tags, row.start_time) or 0)
    if ":" not in (row.tags.get(TAG_CLAIM) or "") or now - beat > LEASE_MS:
        return STALLED  # released by a stopped watcher, or its writer went quiet: nobody is moving it now
    return RUNNING


def timing_state(row: RunRow) -> str:
    """What a complete run's timing tells: '' when it has some; NO_TIMING when its folder had no timing.json;
    MAYBE_RUNNING when, besides, the folder's files last changed (the run's end time, for such a folder) within
    ``STALL_SECONDS`` before align-track wrote it: align-system may still have been writing it (``schema.
    may_still_be_running``). Known from the run alone (no stat of a folder that may be on another host), so the same
    on every reload; an ingest that later finds the folder unchanged and quiet re-records when it wrote the run, so
    the run settles to NO_TIMING (``ingest.reconcile.settles_at``)."""
    if METRIC_TOTAL_SECONDS in row.metrics:
        return ""
    return MAYBE_RUNNING if may_still_be_running(row.metrics, row.tags, row.end_time) else NO_TIMING


def complete_state(row: RunRow) -> str:
    """A complete run's state word as the TUI's state column says it: DONE, NO_TIMING or MAYBE_RUNNING
    (``timing_state``), so the CLI's tables and exports say the same of the same run."""
    return timing_state(row) or DONE


@dataclass(frozen=True)
class LiveProgress:
    """A running or stalled run as the TUI shows it."""

    run_id: str
    run_name: str
    path: str
    state: str
    scenes: int
    started_ms: int | None
    last_scene_ms: int | None
    elapsed_s: float
    """Seconds since the experiment started (the run's start time)."""


def progress(row: RunRow, now_ms: int | None = None) -> LiveProgress | None:
    """Progress of a live run; None for a run that is not live."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    state = sweep_state(row, now)
    if state not in (RUNNING, STALLED):
        return None
    return LiveProgress(
        run_id=row.run_id, run_name=row.run_name, path=row.tags.get(TAG_PATH, ""), state=state,
        scenes=_int(row.tags.get(TAG_SCENES)) or 0, started_ms=row.start_time,
        last_scene_ms=_int(row.tags.get(TAG_LAST_SCENE)),
        elapsed_s=max(0.0, (now - (row.start_time or now)) / 1000.0),
    )


@dataclass(frozen=True)
class SweepCounts:
    running: int = 0
    finished: int = 0
    stalled: int = 0
    failed: int = 0

    def line(self) -> str:
        return f"running {self.running} · finished {self.finished} · stalled {self.stalled} · failed {self.failed}"


def sweep_counts(rows: list[RunRow], now_ms: int | None = None) -> SweepCounts:
    """Counts of the sweep's runs by state (pure: works on rows the caller already holds)."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    tally = {RUNNING: 0, FINISHED: 0, STALLED: 0, FAILED: 0}
    for row in rows:
        state = sweep_state(row, now)
        if state is not None:
            tally[state] += 1
    return SweepCounts(**tally)


def live_runs(tracking_uri: str | None, experiment_name: str = DEFAULT_EXPERIMENT) -> list[LiveProgress]:
    """Running and stalled runs with their progress, newest first (one incremental read, not the whole store)."""
    uri = resolve_tracking_uri(tracking_uri)
    delta = runs_changed_since(uri, get_experiment_id(uri, experiment_name), 1 << 62)  # only the live set
    now = int(time.time() * 1000)
    return [p for row in delta.rows if (p := progress(row, now)) is not None]


def sweep_summary(tracking_uri: str | None, experiment_name: str = DEFAULT_EXPERIMENT) -> SweepCounts:
    """running / finished / stalled / failed over the whole experiment (a full read: call it on a timer)."""
    uri = resolve_tracking_uri(tracking_uri)
    return sweep_counts(load_runs(uri, get_experiment_id(uri, experiment_name)))
