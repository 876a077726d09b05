"""Grow a live run scene by scene: append new traces to the existing run, never delete-and-rewrite.

A run folder that align-system is still writing (``input_output.json`` rewritten after each scene,
``timing.json`` written last) is one RUNNING run (tag ``align_track.state``) claimed by its watcher.
Every scene's trace gets ids derived from the run, the scene index and the scene's content, so
writing a scene twice lands on the same rows: a watcher killed at any moment and restarted (or two
watchers racing for one run) re-reads which ids exist and writes only the missing ones. On a SQL store
an append (traces plus progress tags) is one transaction; through a server it is one trace write
(link + OTLP spans, both idempotent for equal ids) and one ``log-batch`` of tags.

Params are immutable in MLflow, so a live run gets the ones known from its config when it is created
and ``num_scenarios``, ``run_variant`` and ``first_scenario_id`` only when it finishes; progress rides
on tags (``align_track.scenes``, ``align_track.last_scene_ms``, ``align_track.heartbeat_ms``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from align_track.records import RunRecord, TraceRecord
from align_track.schema import (
    PARAM_FIRST_SCENARIO,
    PARAM_NUM_SCENES,
    PARAM_VARIANT,
    STATE_FINISHED,
    STATE_RUNNING,
    TAG_CLAIM,
    TAG_COMPLETE,
    TAG_FINGERPRINT,
    TAG_HEARTBEAT,
    TAG_STATE,
)
from align_track.store import trace_writer
from align_track.store.provenance import provenance
from align_track.store.run_writer import RunStore, claim_token

FINISH_PARAMS = (PARAM_NUM_SCENES, PARAM_VARIANT, PARAM_FIRST_SCENARIO)
"""Params a live run gets only when it finishes (they change while it runs, and params are immutable)."""

RELEASED = "released"
"""Claim value a watcher leaves on its live runs when it stops cleanly: any other watcher may resume them."""


class AppendConflict(Exception):
    """Another writer wrote some of these scenes or finished the run first: re-read and retry."""


def scene_digest(record: TraceRecord) -> str:
    """What a scene's trace says, without its span times (those are only known once timing.json lands)."""
    body = json.dumps([record.name, record.inputs, record.outputs, record.attributes], sort_keys=True,
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
    """The writes a watcher makes to live runs of one experiment (bulk SQL where the store allows)."""

    store: RunStore

    def create(self, record: RunRecord, tags: dict[str, str]) -> str:
        """A RUNNING run with the record's tags (no fingerprint yet), its config params and ``tags``; no traces."""
        from mlflow.entities import Param

        run_tags = {**provenance(), **{k: v for k, v in record.tags.items() if k != TAG_FINGERPRINT}}
        run_tags.update(tags)
        run_tags[TAG_CLAIM] = claim_token()
        run_tags[TAG_STATE] = STATE_RUNNING
        run_tags[TAG_HEARTBEAT] = str(now_ms())
        client = self.store.client
        run = client.create_run(self.store.experiment_id, start_time=now_ms(), tags=run_tags,
                                run_name=record.run_name)
        params = [Param(k, v) for k, v in record.params.items() if k not in FINISH_PARAMS]
        if params:
            client.log_batch(run.info.run_id, params=params)
        return run.info.run_id

    def claim(self, run_id: str) -> None:
        """Adopt a dead writer's live run: our claim, a fresh heartbeat, running again."""
        self.set_tags(run_id, {TAG_CLAIM: claim_token(), TAG_HEARTBEAT: str(now_ms()), TAG_STATE: STATE_RUNNING})

    def claimed_by_me(self, run_id: str) -> bool:
        return self.store.client.get_run(run_id).data.tags.get(TAG_CLAIM) == claim_token()

    def release(self, run_id: str) -> None:
        """Leave a live run for any watcher to resume at once (a clean stop)."""
        self.set_tags(run_id, {TAG_CLAIM: RELEASED})

    def trace_ids(self, run_id: str) -> set[str]:
        return trace_writer.run_trace_ids(self.store.tracking_uri, self.store.experiment_id, run_id)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.store.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def append(self, run_id: str, traces: Sequence[TraceRecord], ids: Sequence[tuple[int, int]],
               tags: dict[str, str]) -> None:
        """Write ``traces`` (with their ``ids``) and ``tags`` to the live run; AppendConflict if some
        already exist (bulk) or the run was finished by someone else meanwhile."""
        tags = {**tags, TAG_HEARTBEAT: str(now_ms())}
        if self.store.bulk:
            self._append_bulk(run_id, list(traces), list(ids), tags)
            return
        if traces:
            trace_writer.write_traces(self.store.tracking_uri, self.store.experiment_id, run_id, list(traces),
                                      list(ids))
        self.set_tags(run_id, tags)

    def _append_bulk(self, run_id: str, traces: list[TraceRecord], ids: list[tuple[int, int]],
                     tags: dict[str, str]) -> None:
        from sqlalchemy.exc import IntegrityError

        store = trace_writer.sql_store(self.store.tracking_uri)
        done_q, drop_q, add_q = _append_statements()
        try:
            with store.engine.begin() as conn:
                trace_writer.begin_write(conn, store.db_type)
                if conn.execute(done_q, {"run": run_id}).scalar() == "true":
                    raise AppendConflict(f"run {run_id} was finished by another writer")
                if traces:
                    trace_writer.insert_traces(conn, store, self.store.experiment_id, run_id, traces, ids)
                conn.execute(drop_q, {"run": run_id, "keys": list(tags)})
                conn.execute(add_q, [{"key": k, "value": v, "run_uuid": run_id} for k, v in tags.items()])
        except IntegrityError as exc:
            raise AppendConflict(f"run {run_id}: some scenes were written by another writer") from exc

    def finish(self, run_id: str, record: RunRecord, traces: Sequence[TraceRecord],
               ids: Sequence[tuple[int, int]], stale: Sequence[str], tags: dict[str, str]) -> None:
        """Finish in place: the missing (now timed) traces, the last params, metrics, tags and artifacts,
        stale traces deleted, then the commit point (``align_track.complete``, FINISHED)."""
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        if traces:
            self.append(run_id, traces, ids, {})
        client = self.store.client
        run = client.get_run(run_id)
        have = run.data.params
        now = now_ms()
        params = [Param(k, v) for k, v in record.params.items() if k not in have]
        run_tags = {**record.tags, **tags}
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in record.metrics.items()],
                         params=params, tags=[RunTag(k, v) for k, v in run_tags.items()])
        repo = get_artifact_repository(run.info.artifact_uri, tracking_uri=self.store.tracking_uri)
        for artifact in record.artifacts:
            repo.log_artifact(artifact.path, artifact.artifact_dir or None)
        if stale:
            trace_writer.delete_traces(self.store.tracking_uri, self.store.experiment_id, list(stale))
        # The commit point, as RunStore.mark_complete: complete (and state finished, in the same write) first.
        self.set_tags(run_id, {TAG_STATE: STATE_FINISHED, TAG_COMPLETE: "true"})
        client.set_terminated(run_id, "FINISHED")


@functools.cache
def _append_statements() -> tuple[Any, Any, Any]:
    """The append's tag statements, built once: building SQLAlchemy statements anew cost more CPU than
    running them (an append is a few rows)."""
    from mlflow.store.tracking.dbmodels.models import SqlTag
    from sqlalchemy import bindparam, delete, insert, select

    table = SqlTag.__table__
    done = select(table.c.value).where(table.c.run_uuid == bindparam("run"), table.c.key == TAG_COMPLETE)
    drop = delete(table).where(table.c.run_uuid == bindparam("run"), table.c.key.in_(bindparam("keys", expanding=True)))
    return done, drop, insert(table)
