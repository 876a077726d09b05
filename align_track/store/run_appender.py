"""Grow a live run scene by scene: append new traces to the existing run, never delete-and-rewrite.

A run folder that align-system is still writing (``input_output.json`` rewritten after each scene,
``timing.json`` written last) is one RUNNING run (tag ``align_track.state``) claimed by its watcher.
Every scene's trace gets ids derived from the run, the scene index and the scene's content (not its time),
so writing a scene twice lands on the same rows, and the finish replaces each live trace by its timed one under
the same id (readers never see a scene twice): a watcher killed at any moment and restarted (or two
watchers racing for one run) re-reads which ids exist and writes only the missing ones. On a SQL store
an append (traces plus progress tags) is one transaction; through a server it is one trace write
(link + OTLP spans, both idempotent for equal ids) and one ``log-batch`` of tags.

Params are immutable in MLflow, so a live run gets the ones known from its config when it is created
and ``num_scenarios``, ``run_variant`` and ``first_scenario_id`` only when it finishes; progress rides
on tags (``align_track.scenes``, ``align_track.last_scene_ms``, ``align_track.heartbeat_ms``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from align_track.records import RunRecord, TraceRecord
from align_track.schema import (
    ATTR_TIMING,
    PARAM_FIRST_SCENARIO,
    PARAM_NUM_SCENES,
    PARAM_VARIANT,
    STATE_FINISHED,
    STATE_RUNNING,
    TAG_CLAIM,
    TAG_COMPLETE,
    TAG_FINGERPRINT,
    TAG_HEARTBEAT,
    TAG_INGEST_TIME,
    TAG_STATE,
)
from align_track.store.claims import AppendConflict, claim_token
from align_track.store.provenance import provenance

if TYPE_CHECKING:
    from align_track.store.run_writer import RunStore
    from align_track.store.sql_direct import DirectStore

FINISH_PARAMS = (PARAM_NUM_SCENES, PARAM_VARIANT, PARAM_FIRST_SCENARIO)
"""Params a live run gets only when it finishes (they change while it runs, and params are immutable)."""

RELEASED = "released"
"""Claim value a watcher leaves on its live runs when it stops cleanly: any other watcher may resume them."""


def scene_digest(record: TraceRecord) -> str:
    """What a scene's trace says, without its time (span times and ``timing_seconds``: only known once timing.json
    lands), so the timed trace of a scene has its live trace's id and the finish replaces it in place. The
    attribute counts as null, as on a live trace, so live traces keep the ids they always had."""
    attributes = record.attributes
    if attributes.get(ATTR_TIMING) is not None:
        attributes = {**attributes, ATTR_TIMING: None}
    body = json.dumps([record.name, record.inputs, record.outputs, attributes], sort_keys=True,
                      default=str, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


def scene_ids(run_id: str, index: int, record: TraceRecord) -> tuple[int, int]:
    """(OTel trace id, span id) of one scene of one run: equal content, equal ids."""
    raw = hashlib.sha256(f"{run_id}|{index}|{scene_digest(record)}".encode()).digest()
    return int.from_bytes(raw[:16], "big") or 1, int.from_bytes(raw[16:24], "big") or 1


def mlflow_trace_id(ids: tuple[int, int]) -> str:
    """MLflow's ``tr-<32 hex>`` id for an OTel trace id."""
    return f"tr-{ids[0]:032x}"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class LiveRunWriter:
    """The writes a watcher makes to live runs of one experiment, through the store's writer (without MLflow on
    the SQL stores it knows, else through MLflow: the store decides)."""

    store: RunStore | DirectStore

    def create(self, record: RunRecord, tags: dict[str, str]) -> str:
        """A RUNNING run with the record's tags (no fingerprint yet), its config params and ``tags``; no traces."""
        run_tags = {**provenance(), **{k: v for k, v in record.tags.items() if k != TAG_FINGERPRINT}}
        run_tags.update(tags)
        run_tags[TAG_CLAIM] = claim_token()
        run_tags[TAG_STATE] = STATE_RUNNING
        run_tags[TAG_HEARTBEAT] = run_tags[TAG_INGEST_TIME] = str(now_ms())
        params = {k: v for k, v in record.params.items() if k not in FINISH_PARAMS}
        return self.store.create_live(record, run_tags, params)

    def claim(self, run_id: str) -> None:
        """Adopt a dead writer's live run: our claim, a fresh heartbeat, running again."""
        self.set_tags(run_id, {TAG_CLAIM: claim_token(), TAG_HEARTBEAT: str(now_ms()), TAG_STATE: STATE_RUNNING})

    def claimed_by_me(self, run_id: str) -> bool:
        return self.store.run_tag(run_id, TAG_CLAIM) == claim_token()

    def release(self, run_id: str) -> None:
        """Leave a live run for any watcher to resume at once (a clean stop)."""
        self.set_tags(run_id, {TAG_CLAIM: RELEASED})

    def trace_ids(self, run_id: str) -> set[str]:
        return self.store.trace_ids(run_id)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.store.set_tags(run_id, tags)

    def append(self, run_id: str, traces: Sequence[TraceRecord], ids: Sequence[tuple[int, int]],
               tags: dict[str, str]) -> None:
        """Write ``traces`` (with their ``ids``) and ``tags`` to the live run; AppendConflict if some
        already exist or the run was finished by someone else meanwhile."""
        tags = {**tags, TAG_HEARTBEAT: str(now_ms())}
        if not self.store.append_traces(run_id, list(traces), list(ids), tags):
            raise AppendConflict(f"run {run_id} was finished by another writer")

    def finish(self, run_id: str, record: RunRecord, traces: Sequence[TraceRecord],
               ids: Sequence[tuple[int, int]], stale: Sequence[str], tags: dict[str, str]) -> None:
        """Finish in place: ``traces`` (now timed) replace the traces of the same ids or are added, ``stale`` ones
        (scenes whose content changed) deleted, so a reader never sees a scene twice (store/README: how each store
        keeps that); the last params, metrics, tags and artifacts, then the commit point (``align_track.complete``,
        FINISHED)."""
        record = replace(record, tags={**record.tags, **tags, TAG_INGEST_TIME: str(now_ms())})  # written now
        self.store.finish_live(run_id, record, list(traces), list(ids), list(stale),
                               {TAG_STATE: STATE_FINISHED, TAG_COMPLETE: "true"})
