"""Decide, from the runs already in the store, what to do with one run identity.

Pure functions over run rows, so the rules that keep "exactly one complete run per
run folder" (skip, replace, clean up after a crash, let the loser of a race
withdraw) are tested without a store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from align_track.schema import (
    ADOPTED_TAGS,
    LIVE_STATES,
    PARAM_TARGET,
    STALL_SECONDS,
    TAG_ADOPTED_RUN,
    TAG_ADOPTED_START,
    TAG_ADOPTED_USER,
    TAG_CLAIM,
    TAG_COMPLETE,
    TAG_FINGERPRINT,
    TAG_HEARTBEAT,
    TAG_INGEST_TIME,
    TAG_PATH,
    TAG_STATE,
    TAG_TARGET,
    USER,
    may_still_be_running,
    written_by_align_track,
    written_ms,
)


class StoredRun(Protocol):
    run_id: str
    start_time: int | None
    end_time: int | None
    tags: dict[str, str]


class ForeignRun(StoredRun, Protocol):
    params: dict[str, str]


AliveFn = Callable[[str | None, int | None], bool]


def complete(run: StoredRun) -> bool:
    return run.tags.get(TAG_COMPLETE) == "true"


def lease_start(run: StoredRun) -> int | None:
    """When the run's claim was last renewed: a live run's heartbeat, else when it was written.

    A watcher keeps one run claimed for hours; its heartbeat tag keeps the lease that other hosts
    grant a claim (15 minutes) running.
    """
    try:
        beat = int(run.tags.get(TAG_HEARTBEAT) or 0)
    except ValueError:
        beat = 0
    return max(beat, written_ms(run.tags, run.start_time) or 0) or None


def _alive(run: StoredRun, alive: AliveFn) -> bool:
    return alive(run.tags.get(TAG_CLAIM), lease_start(run))


@dataclass
class Plan:
    """What to do for one identity: 'skip', 'create', 'update' or 'busy' (another live writer has it)."""

    action: str
    cleanup: list[str] = field(default_factory=list)
    """Run ids to delete: now when skipping, otherwise only after the new run is complete."""


def _rank(run: StoredRun) -> tuple[int, str]:
    """Newest written last (start and end times are the experiment's: equal for two writes of one folder)."""
    return (written_ms(run.tags, run.start_time) or 0, run.run_id)


def plan(fingerprint: str, runs: Sequence[StoredRun], force: bool, alive: AliveFn) -> Plan:
    """Skip when a complete run has this fingerprint; otherwise write a new run and clean up after.

    Dead writers' half runs are always cleaned up; a live writer's half run makes
    this identity 'busy' (unless forced) so two ingests do not write it twice.
    """
    done = [r for r in runs if complete(r)]
    half = [r for r in runs if not complete(r)]
    dead = [r.run_id for r in half if not _alive(r, alive)]
    current = [r for r in done if r.tags.get(TAG_FINGERPRINT) == fingerprint]
    if current and not force:
        keep = max(current, key=_rank)
        return Plan("skip", [r.run_id for r in done if r is not keep] + dead)
    if not force and len(dead) < len(half):
        return Plan("busy")
    return Plan("update" if done else "create", [r.run_id for r in done] + dead)


class TimedRun(StoredRun, Protocol):
    metrics: dict[str, float]


def settles_at(run: TimedRun) -> int | None:
    """Epoch ms from which a skip of this run's unchanged folder settles it: for a run that may still be running
    (``schema.may_still_be_running``, as every reader judges it), its end time (when its folder last changed)
    plus the stall window; None for every other run, whose skip writes nothing.

    An unchanged folder is skipped, so without this a run ingested while its folder was being written would say
    'may still be running' until the folder changed again, which a finished experiment's never does. ``run``
    must carry its metrics (the plan's one read of the store does): a timed run is told by them."""
    if run.end_time is None or not may_still_be_running(run.metrics, run.tags, run.end_time):
        return None
    return run.end_time + round(STALL_SECONDS * 1000)


def settle_tags(now_ms: int) -> dict[str, str]:
    """The one write that settles such a run (see :func:`settles_at`): when align-track wrote it, re-recorded now
    (its folder unchanged, the run is what ingesting it now would write), so readers judge it 'no timing'. The
    tag also marks the run as changed for readers that refresh incrementally (``runs_changed_since``)."""
    return {TAG_INGEST_TIME: str(now_ms)}


def lost_claim(mine: str, runs: Sequence[StoredRun], alive: AliveFn) -> bool:
    """Claim-then-verify: after creating our run, withdraw if another live claim ranks earlier.

    Every racer sees the same rows and ranks them the same way (write time, then id),
    so exactly one of them goes on.
    """
    me = next((r for r in runs if r.run_id == mine), None)
    if me is None:
        return True
    rivals = [
        r for r in runs
        if r.run_id != mine and not complete(r) and _alive(r, alive)
    ]
    key = lambda r: (written_ms(r.tags, r.start_time) or 0, r.run_id)  # noqa: E731
    return any(key(r) < key(me) for r in rivals)


def after_complete(mine: str, runs: Sequence[StoredRun], alive: AliveFn) -> list[str]:
    """Runs to delete once ours is complete: every other complete run ranked below the newest, and dead halves.

    If a rival completed after us, it is the newest and we are deleted (by it or by us):
    all writers agree, so one complete run remains.
    """
    done = [r for r in runs if complete(r)]
    if not done:
        return []
    newest = max(done, key=_rank)
    doomed = [r.run_id for r in done if r is not newest]
    doomed += [
        r.run_id for r in runs
        if not complete(r) and r.run_id != mine and not _alive(r, alive)
    ]
    return doomed


# --------------------------------------------------------------------------- runs other tools wrote


def foreign(run: StoredRun) -> bool:
    """A run without align-track's bookkeeping: written by another tool (e.g. the upstream align-track)."""
    return not written_by_align_track(run.tags)


def foreign_runs_for(runs: Sequence[ForeignRun], rel_path: str, target: str, several_targets: bool
                     ) -> list[ForeignRun]:
    """The foreign runs of one identity: same ``experiment_path``; for a folder that makes one run per
    target, also the same alignment target."""
    return [
        r for r in runs
        if foreign(r) and r.tags.get(TAG_PATH) == rel_path
        and (not several_targets or (r.params.get(PARAM_TARGET) or r.tags.get(TAG_TARGET)) == target)
    ]


def adopted_history(theirs: Sequence[StoredRun], own: Sequence[StoredRun]) -> dict[str, str]:
    """The adoption tags (``schema.ADOPTED_TAGS``) a new run of the folder carries, so its history survives the
    replacement MLflow needs (a run's params cannot be rewritten): those of the newest complete run of ours that
    has them (an adopted folder updated again), else the id, start and user of the oldest foreign run it replaces
    (when the folder first reached the store)."""
    for run in sorted((r for r in own if complete(r)), key=_rank, reverse=True):
        kept = {k: run.tags[k] for k in ADOPTED_TAGS if run.tags.get(k)}
        if kept:
            return kept
    if not theirs:
        return {}
    first = min(theirs, key=lambda r: (r.start_time or 0, r.run_id))
    out = {TAG_ADOPTED_RUN: first.run_id}
    if first.start_time:
        out[TAG_ADOPTED_START] = str(first.start_time)
    if first.tags.get(USER):
        out[TAG_ADOPTED_USER] = first.tags[USER]
    return out


def superseded(foreign_runs: Sequence[StoredRun], ours: StoredRun) -> list[str]:
    """Foreign runs older than our complete run of the same identity: an ingest replaced them and was
    interrupted before deleting them, so the next one finishes the job. Newer foreign runs stay."""
    return [r.run_id for r in foreign_runs if _rank(r) < _rank(ours)]


@dataclass
class LivePlan:
    """What a watcher does for one identity: 'skip', 'busy', 'adopt' (``run_id``) or 'create'."""

    action: str
    run_id: str | None = None
    cleanup: list[str] = field(default_factory=list)
    """Dead runs to delete now (half-written ones, other dead live runs, stale complete ones when skipping)."""


def plan_live(fingerprint: str, runs: Sequence[StoredRun], alive: AliveFn) -> LivePlan:
    """Skip a complete run with this fingerprint; wait for a live writer; resume a dead writer's live run.

    A live run (``align_track.state`` set) whose writer died keeps every scene written so far, so a
    watcher adopts it rather than starting over; a dead non-live half (a plain ingest's) is deleted.
    """
    done = [r for r in runs if complete(r)]
    half = [r for r in runs if not complete(r)]
    live_claims = [r for r in half if _alive(r, alive)]
    dead = [r for r in half if not _alive(r, alive)]
    current = [r for r in done if r.tags.get(TAG_FINGERPRINT) == fingerprint]
    if current:
        keep = max(current, key=_rank)
        stale = [r.run_id for r in done if r is not keep]
        return LivePlan("skip", cleanup=stale + ([] if live_claims else [r.run_id for r in dead]))
    if live_claims:
        return LivePlan("busy")
    resumable = [r for r in dead if r.tags.get(TAG_STATE) in LIVE_STATES]
    if resumable:
        pick = max(resumable, key=_rank)
        return LivePlan("adopt", pick.run_id, [r.run_id for r in dead if r is not pick])
    return LivePlan("create", cleanup=[r.run_id for r in dead])
