"""The README's data model, named once: every param, metric, tag and trace field align-track writes or reads.

The mapping writes with these names; the runs table, compare pane, scene view and CLI read with them;
``RunSummary`` is the one view of a run that every surface shows. Nothing here imports MLflow.
"""

from __future__ import annotations

import math
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
LIVE_STATES = (STATE_RUNNING, STATE_STALLED)
TAG_SCENES = "align_track.scenes"
"""Scenes written so far to a live run (its num_scenarios param is logged only when it finishes)."""
TAG_LAST_SCENE = "align_track.last_scene_ms"
"""Epoch ms of input_output.json when the live run's last scene was written: when that scene landed."""
TAG_HEARTBEAT = "align_track.heartbeat_ms"
"""Epoch ms a live run's writer last touched it: renews the claim's lease for other hosts."""
BOOKKEEPING_PREFIX = "align_track."

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
TRACE_INPUTS = (IN_SCENARIO_ID, IN_STATE, IN_SCENE_ID, IN_UNSTRUCTURED, IN_CHARACTERS, IN_CHOICES)

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
            scenes=number(p.get(PARAM_NUM_SCENES)),
            avg_seconds=number(m.get(METRIC_AVG_SECONDS)),
            score=number(m.get(score_metric)),
            path=t.get(TAG_PATH) or "",
            start_time=run.start_time,
        )
