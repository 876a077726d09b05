"""The README's data model, named once: every param, metric, tag and trace field align-track writes or reads.

The mapping writes with these names; the runs table, compare pane, scene view and CLI read with them;
``RunSummary`` is the one view of a run that every surface shows. Nothing here imports MLflow.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Protocol

# --------------------------------------------------------------------------- run params
PARAM_ADM = "adm"
PARAM_LLM = "llm_backbone"
PARAM_TARGET = "alignment_target_id"
PARAM_KDMA_PREFIX = "kdma."
PARAM_VARIANT = "run_variant"
PARAM_NUM_SCENES = "num_scenarios"
PARAM_FIRST_SCENARIO = "first_scenario_id"

KDE_VALUE = "kde"
"""The ``kdma.<name>`` value of a KDE (distribution) target that has no scalar value."""
DEFAULT_VARIANT = "default"
"""``run_variant`` of a run alone in its ADM/LLM/target group."""
UNALIGNED = "unaligned"
UNKNOWN_ADM = "unknown_adm"

# --------------------------------------------------------------------------- run metrics
METRIC_TOTAL_SECONDS = "timing.total_seconds"
METRIC_AVG_SECONDS = "timing.avg_seconds"
METRIC_MIN_SECONDS = "timing.min_seconds"
METRIC_MAX_SECONDS = "timing.max_seconds"
SCORE_PREFIX = "score."
SCORE_METRIC = "score.alignment_score"
"""``scores.json``'s ``score``; its other numbers become ``score.<field>``."""
SCORES_FIELD = "score"

# alignment metrics computed from the scenes' own KDMA values (alignment.py; formulas in the README)
ALIGNMENT_PREFIX = "alignment."
METRIC_CHOSEN_DISTANCE = "alignment.chosen_distance"
"""Mean over scenes of the chosen choice's distance to the target: sum over target KDMAs of |true value - target|."""
METRIC_ORACLE_HIT_RATE = "alignment.oracle_hit_rate"
"""Share of scenes whose chosen choice is one of those at minimal distance to the target."""
METRIC_SCENES_COVERED = "alignment.scenes_covered"
"""Scenes behind chosen_distance and oracle_hit_rate."""
METRIC_LEFT_OUT_PREFIX = "alignment.scenes_left_out."
LEFT_OUT_UNALIGNED = "unaligned"
LEFT_OUT_KDE = "kde_target"
LEFT_OUT_NO_CHOICE = "no_choice"
LEFT_OUT_NO_TRUE_VALUES = "no_true_values"
LEFT_OUT_CHOSEN_UNKNOWN = "chosen_no_true_value"
LEFT_OUT_REASONS = (LEFT_OUT_UNALIGNED, LEFT_OUT_KDE, LEFT_OUT_NO_CHOICE, LEFT_OUT_NO_TRUE_VALUES,
                    LEFT_OUT_CHOSEN_UNKNOWN)
"""Why a scene is left out of the distance metrics (one reason per scene, checked in this order)."""
KDMA_METRIC_PREFIX = "kdma."
KDMA_CHOSEN_MEAN = "chosen_mean"
KDMA_CHOSEN_SCENES = "chosen_scenes"
KDMA_PREDICTION_MAE = "prediction_mae"
KDMA_PREDICTION_CHOICES = "prediction_choices"
KDMA_STATS = (KDMA_CHOSEN_MEAN, KDMA_CHOSEN_SCENES, KDMA_PREDICTION_MAE, KDMA_PREDICTION_CHOICES)

_METRIC_UNSAFE = re.compile(r"[^\w.\- ]")


def left_out_metric(reason: str) -> str:
    return f"{METRIC_LEFT_OUT_PREFIX}{reason}"


def metric_safe(name: str) -> str:
    """A KDMA name as part of a metric key: MLflow allows letters, digits, ``_ . - /`` and spaces (colons
    only off Windows); anything else, and ``/`` (a path separator in artifact views), becomes ``_``."""
    return _METRIC_UNSAFE.sub("_", name)


def kdma_metric(kdma: str, stat: str) -> str:
    """``kdma.<name>.<stat>`` with the KDMA name made metric-safe (``kdma.Moral judgement.chosen_mean``)."""
    return f"{KDMA_METRIC_PREFIX}{metric_safe(kdma)}.{stat}"


def parse_kdma_metric(key: str) -> tuple[str, str] | None:
    """(metric-safe KDMA name, stat) of a ``kdma.<name>.<stat>`` metric key, else None."""
    if not key.startswith(KDMA_METRIC_PREFIX):
        return None
    name, _, stat = key[len(KDMA_METRIC_PREFIX):].rpartition(".")
    return (name, stat) if name and stat in KDMA_STATS else None

# --------------------------------------------------------------------------- run tags
TAG_ADM = "adm"
TAG_LLM = "llm"
TAG_TARGET = "alignment_target_id"
TAG_PATH = "experiment_path"
"""The run folder relative to the ingested directory."""
TAG_TIMESTAMP = "experiment_timestamp"
TAG_HAS_HYDRA = "has_hydra_config"

# align-track's own bookkeeping tags, namespaced apart from the data model's tags
TAG_KEY = "align_track.key"
"""Identity of a run across re-ingests: absolute folder (plus target for a mixed-target folder)."""
TAG_FINGERPRINT = "align_track.fingerprint"
"""Sizes/mtimes of the folder's files plus the derived variant: a change means re-ingest."""
TAG_COMPLETE = "align_track.complete"
"""Set to 'true' only after every trace is written: the run's commit point."""
TAG_SOURCE = "align_track.source_path"
"""Absolute folder the run came from, for links back to it."""
TAG_CLAIM = "align_track.claim"
"""host:pid of the writer, so a later ingest can tell a dead writer's half run from a live one."""
TAG_STATE = "align_track.state"
"""A live run's state while its folder is still being written (``ingest --watch``): one of LIVE_STATES."""
STATE_RUNNING = "running"
STATE_STALLED = "stalled"
"""The folder stopped changing for ``--stall-after`` seconds without timing.json: never complete."""
STATE_FINISHED = "finished"
STALL_SECONDS = 600.0
"""A folder without timing.json whose files have not changed for this long is no longer being written: the
watcher marks its run stalled (``--stall-after``); a run ``ingest`` wrote from a folder that changed more recently
than this before it was read may still be running."""
DONE = "done"
"""A complete run whose folder had timing.json: the word every surface (TUI state column, CLI tables) shows."""
NO_TIMING = "no timing"
"""A complete run whose folder had no timing.json (align-system writes it last): it still counts as complete, as
many runs never record timing."""
MAYBE_RUNNING = "may still be running"
"""Such a run whose folder's files changed within STALL_SECONDS before it was ingested: align-system may still have
been writing it, and the store may hold part of it (a later ingest brings the rest)."""
LIVE_STATES = (STATE_RUNNING, STATE_STALLED)
TAG_SCENES = "align_track.scenes"
"""Scenes written so far to a live run (its num_scenarios param is logged only when it finishes)."""
TAG_LAST_SCENE = "align_track.last_scene_ms"
"""Epoch ms of input_output.json when the live run's last scene was written: when that scene landed."""
TAG_HEARTBEAT = "align_track.heartbeat_ms"
"""Epoch ms a live run's writer last touched it: renews the claim's lease for other hosts."""
TAG_ADOPTED_RUN = "align_track.adopted_run_id"
"""The run another tool (e.g. the upstream align-track) wrote for this folder, which this run replaced when ingest
brought it to today's mapping: its id, kept through later updates (MLflow runs cannot be rewritten in place)."""
TAG_ADOPTED_START = "align_track.adopted_start_ms"
"""That run's start time (epoch ms): when the folder first reached the store."""
TAG_ADOPTED_USER = "align_track.adopted_user"
"""That run's ``mlflow.user``: who first put the folder in the store."""
ADOPTED_TAGS = (TAG_ADOPTED_RUN, TAG_ADOPTED_START, TAG_ADOPTED_USER)
TAG_INGEST_TIME = "align_track.ingest_time_ms"
"""Epoch ms align-track wrote the run (created it; a live run: finished it; a run that may still be running:
confirmed it, when a later ingest found its folder unchanged and quiet past the stall window). The run's own
start/end times are the experiment's; this is what orders two writes of one folder and starts a fresh claim's
lease."""
BOOKKEEPING_PREFIX = "align_track."


def written_ms(tags: dict[str, str], start_time: int | None) -> int | None:
    """When the run was written: its ``align_track.ingest_time_ms`` tag, else its start time (runs written before
    the tag, or by another tool, started when they were ingested)."""
    try:
        return int(tags[TAG_INGEST_TIME])
    except (KeyError, TypeError, ValueError):
        return start_time



def may_still_be_running(metrics: dict[str, float], tags: dict[str, str], end_time: int | None,
                         written: int | None = None) -> bool:
    """MAYBE_RUNNING's rule, in one place for the readers (``query.live.timing_state``) and for the ingest that
    settles such a run (``ingest.reconcile.settles_at``): the run recorded no timing, and its folder last changed
    (the run's end time) within STALL_SECONDS before align-track wrote it (``written``: by default its
    ingest-time tag; a run without that tag is not judged so)."""
    if METRIC_TOTAL_SECONDS in metrics or end_time is None:
        return False
    if written is None:
        try:
            written = int(tags.get(TAG_INGEST_TIME) or "")
        except ValueError:
            return False
    return written - end_time < STALL_SECONDS * 1000


def written_by_align_track(tags: dict[str, str]) -> bool:
    """The run carries align-track's bookkeeping (identity or claim), so its completeness tag applies."""
    return TAG_KEY in tags or TAG_CLAIM in tags


def counts_as_complete(tags: dict[str, str]) -> bool:
    """Whether readers show the run: align-track's own runs once marked complete (every trace written);
    runs of the same data model that another tool wrote (no bookkeeping tags, e.g. the upstream
    align-track) as they are."""
    return tags.get(TAG_COMPLETE) == "true" if written_by_align_track(tags) else True


# --------------------------------------------------------------------------- run artifacts
INPUT_OUTPUT = "input_output.json"
TIMING = "timing.json"
SCORES = "scores.json"
HYDRA_DIR = ".hydra"
HYDRA_CONFIG = "config.yaml"

# --------------------------------------------------------------------------- traces (one per scene)
IN_SCENARIO_ID = "scenario_id"
IN_STATE = "state"
IN_SCENE_ID = "scene_id"
IN_UNSTRUCTURED = "unstructured"
IN_CHARACTERS = "characters"
IN_CHOICES = "choices"
TRACE_INPUTS = (IN_SCENE_ID, IN_SCENARIO_ID, IN_STATE, IN_UNSTRUCTURED, IN_CHARACTERS, IN_CHOICES)
"""In this order on every trace: the request preview (MLflow's web UI cuts it after a few dozen characters)
then starts with the scene id, not the long state text."""

OUT_CHOICE_INDEX = "choice_index"
OUT_ACTION = "action"
TRACE_OUTPUTS = (OUT_CHOICE_INDEX, OUT_ACTION)

ATTR_SCENE_INDEX = "scene_index"
ATTR_SCENARIO_ID = "scenario_id"
ATTR_ADM = "adm"
ATTR_TARGET = "alignment_target_id"
ATTR_TIMING = "timing_seconds"
ATTR_TRUE_KDMA = "true_kdma_values"
ATTR_PREDICTED_KDMA = "predicted_kdma_values"
ATTR_CHOICE_INDEX = "choice_index"
ATTR_CHOSEN_ACTION = "chosen_action"
TRACE_ATTRIBUTES = (ATTR_SCENE_INDEX, ATTR_SCENARIO_ID, ATTR_ADM, ATTR_TARGET, ATTR_TIMING, ATTR_TRUE_KDMA,
                    ATTR_PREDICTED_KDMA, ATTR_CHOICE_INDEX, ATTR_CHOSEN_ACTION)

TRACE_TAG_SCENE_ID = "scene_id"
TRACE_TAG_RUN_ID = "mlflow.runId"
"""The parent run's id as a trace tag, as the spec lists it (besides the run link and ``mlflow.sourceRun``)."""
TRACE_TAGS = (TRACE_TAG_SCENE_ID, TRACE_TAG_RUN_ID)
TRACE_TAG_SCENE_SUMMARY = "mlflow.align_track.scene_summary"
"""What the scenes-across-runs index reads of a trace, as one small JSON text (align_track/scene_summary.py): the
index reads these tags, not 80,000 spans' JSON. Absent where it would not fit MLflow's tag limit. In MLflow's
``mlflow.`` namespace on purpose: the web UI's Traces list hides ``mlflow.*`` tags and shows the others in the
server's (unordered) map order, first one and ``+1``: any other name put this JSON in place of ``scene_id: P3``
about every other time."""

# Trace metadata, as MLflow's own ``start_span`` inside an active run writes it (MLflow 3.17's names).
META_SOURCE_RUN = "mlflow.sourceRun"
"""The parent run: what the web UI's experiment-wide Traces list shows as each trace's run."""
META_SCHEMA_VERSION = "mlflow.trace_schema.version"
META_INPUTS = "mlflow.traceInputs"
META_OUTPUTS = "mlflow.traceOutputs"
META_SIZE_BYTES = "mlflow.trace.sizeBytes"
META_SIZE_STATS = "mlflow.trace.sizeStats"
META_INFO_FINALIZED = "mlflow.trace.infoFinalized"
"""Set by MLflow's store when the trace info arrives through ``start_trace`` (not written by align-track)."""

# Who wrote a run or trace: run tags and trace metadata alike, as MLflow's fluent API sets them.
USER = "mlflow.user"
"""The OS user who ingested: on a team server, how people tell their ingests apart."""
SOURCE_NAME = "mlflow.source.name"
SOURCE_TYPE = "mlflow.source.type"
SOURCE_TYPE_LOCAL = "LOCAL"
PROVENANCE = (USER, SOURCE_NAME, SOURCE_TYPE)
TRACE_METADATA = (META_SOURCE_RUN, META_SCHEMA_VERSION, META_INPUTS, META_OUTPUTS, *PROVENANCE, META_SIZE_BYTES,
                  META_SIZE_STATS, META_INFO_FINALIZED)
"""Every metadata key a stored trace carries."""


# --------------------------------------------------------------------------- reading a run back
class RunLike(Protocol):
    """What every reader's run row offers (MLflow's ``Run`` data flattened, or align-track's own ``RunRow``)."""

    run_id: str
    run_name: str
    start_time: int | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


def number(value: Any) -> float | None:
    """A param or metric as a float; text, None and NaN become None."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result


@dataclass(frozen=True)
class RunSummary:
    """The columns every surface shows for a run (runs table, compare headers, CLI tables), read one way."""

    run_id: str
    run_name: str
    adm: str
    llm: str
    target: str
    variant: str
    scenes: float | None
    avg_seconds: float | None
    score: float | None
    path: str
    start_time: int | None

    @classmethod
    def of(cls, run: RunLike, score_metric: str = SCORE_METRIC) -> RunSummary:
        p, t, m = run.params, run.tags, run.metrics
        return cls(
            run_id=run.run_id,
            run_name=run.run_name,
            adm=p.get(PARAM_ADM) or t.get(TAG_ADM) or "",
            llm=p.get(PARAM_LLM) or t.get(TAG_LLM) or "",
            target=p.get(PARAM_TARGET) or t.get(TAG_TARGET) or "",
            variant=p.get(PARAM_VARIANT) or "",
            scenes=number(p.get(PARAM_NUM_SCENES) or t.get(TAG_SCENES)),  # a live run: scenes so far
            avg_seconds=number(m.get(METRIC_AVG_SECONDS)),
            score=number(m.get(score_metric)),
            path=t.get(TAG_PATH) or "",
            start_time=run.start_time,
        )
