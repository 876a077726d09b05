"""Write stores the way other tools do: MLflow's fluent API (``start_run``, ``start_span``), no align-track writer.

``write_trace_fluent`` is MLflow's own public path for one scene: the reference the trace writers are
compared with. ``write_upstream_store`` writes a whole experiment tree as the upstream align-track
does: one FINISHED run per folder with the README's params, metrics, tags and artifacts, one
``start_span`` trace per scene tagged ``scene_id`` and ``mlflow.runId``, and none of align-track's
``align_track.*`` bookkeeping tags. The content comes from align-track's pure mapping (so a test can
compare the two tools field by field); only the writing is MLflow's.

``write_legacy_store`` is the upstream align-track's own ingest code path, mapping included (as the naive
reference ingest in the project's shared bench material writes it): ``adm.name`` else ``unknown_adm``, the LLM
only from ``adm.structured_inference_engine``, the config's target else ``unaligned``, one run per folder,
variant ``default``, timing and score metrics and none of the ``alignment.*``/``kdma.*`` ones. What a store
the upstream wrote really holds, for the tests of bringing such runs to today's mapping.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import yaml
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from align_track import schema
from align_track.ingest.folders import discover, read_config, read_files
from align_track.ingest.mapping import build_run, identities
from align_track.ingest.variants import assign_variants
from align_track.records import RunRecord, TraceRecord


def _span(record: TraceRecord, run_id: str) -> str:
    """One scene as ``mlflow.start_span`` inside the active run; returns the trace id."""
    with mlflow.start_span(name=record.name) as span:
        span.set_inputs(record.inputs)
        span.set_outputs(record.outputs)
        span.set_attributes(record.attributes)
        mlflow.update_current_trace(tags={**record.tags, schema.TRACE_TAG_RUN_ID: run_id})
        return span.trace_id


def _fresh_tracer() -> None:
    """A tracer bound to the current store, with the environment metadata (git keys of the cwd's
    checkout, if any) resolved anew: MLflow caches both per process."""
    from mlflow.tracing.utils.environment import resolve_env_metadata

    resolve_env_metadata.cache_clear()
    mlflow.tracing.reset()


def write_trace_fluent(uri: str, experiment_id: str, run_id: str, records: list[TraceRecord]) -> list[str]:
    """Traces written by MLflow's fluent API inside the (resumed) run ``run_id``; their ids in order."""
    with _use_tracking_uri(uri):
        _fresh_tracer()
        with mlflow.start_run(run_id=run_id, experiment_id=experiment_id):
            ids = [_span(record, run_id) for record in records]
        mlflow.flush_trace_async_logging()
        _fresh_tracer()
    return ids


def upstream_record(record: RunRecord) -> RunRecord:
    """The run as the upstream tool writes it: the data model's fields, no align-track bookkeeping."""
    tags = {k: v for k, v in record.tags.items() if not k.startswith(schema.BOOKKEEPING_PREFIX)}
    return RunRecord(record.run_name, record.params, record.metrics, tags, record.artifacts, record.traces)


def upstream_records(experiments_dir: Path) -> list[RunRecord]:
    """Every run of the tree as the upstream tool would write it."""
    root = Path(experiments_dir).resolve()
    configs = {folder: read_config(root, folder) for folder in discover(root)}
    ids = {folder: identities(cfg) for folder, cfg in configs.items()}
    variants = assign_variants((i.key, i.group, i.config.rel_path) for group in ids.values() for i in group)
    return [upstream_record(build_run(identity, variants[identity.key], read_files(folder)))
            for folder, group in ids.items() for identity in group]


def write_upstream_store(uri: str, experiment_name: str, experiments_dir: Path) -> dict[str, str]:
    """Ingest ``experiments_dir`` the upstream way; returns run id by ``experiment_path``."""
    return _write_records(uri, experiment_name, upstream_records(experiments_dir))


def _write_records(uri: str, experiment_name: str, records: list[RunRecord]) -> dict[str, str]:
    """Each record as one FINISHED run with MLflow's fluent API, its scenes as ``start_span`` traces."""
    runs: dict[str, str] = {}
    with _use_tracking_uri(uri):
        _fresh_tracer()
        experiment = mlflow.set_experiment(experiment_name)
        for record in records:
            with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=record.run_name) as run:
                run_id = run.info.run_id
                mlflow.log_params(record.params)
                mlflow.log_metrics(record.metrics)
                mlflow.set_tags(record.tags)
                for artifact in record.artifacts:
                    mlflow.log_artifact(artifact.path, artifact.artifact_dir or None)
                for trace in record.traces:
                    _span(trace, run_id)
            runs[record.tags[schema.TAG_PATH]] = run_id
        mlflow.flush_trace_async_logging()
        _fresh_tracer()
    return runs


# --------------------------------------------------------------------------- the upstream's own mapping


def _legacy_files(folder: Path) -> tuple[list, dict, object, object]:
    def load(path: Path) -> object:
        return json.loads(path.read_text()) if path.exists() else None

    cfg_file = folder / schema.HYDRA_DIR / schema.HYDRA_CONFIG
    cfg = yaml.safe_load(cfg_file.read_text()) if cfg_file.exists() else {}
    items = load(folder / schema.INPUT_OUTPUT) or []
    return items, cfg or {}, load(folder / schema.TIMING), load(folder / schema.SCORES)


def _legacy_scene_id(item: dict, index: int) -> str:
    meta = ((item.get("input") or {}).get("full_state") or {}).get("meta_info") or {}
    return str(meta.get("scene_id") or f"scene_{index}")


def legacy_record(root: Path, folder: Path) -> RunRecord:
    """One run folder as the upstream align-track mapped it (see the module docstring)."""
    from align_track.records import Artifact

    items, cfg, timing, scores = _legacy_files(folder)
    adm_cfg = cfg.get("adm") or {}
    adm = adm_cfg.get("name", schema.UNKNOWN_ADM)
    llm = (adm_cfg.get("structured_inference_engine") or {}).get("model_name")
    target = cfg.get("alignment_target") or {}
    target_id = target.get("id", schema.UNALIGNED)
    raw = [t for t in ((timing or {}).get("raw_times_s") or []) if isinstance(t, (int, float))]
    params = {schema.PARAM_ADM: adm, **({schema.PARAM_LLM: llm} if llm else {}), schema.PARAM_TARGET: target_id}
    for kv in target.get("kdma_values") or []:
        params[f"{schema.PARAM_KDMA_PREFIX}{kv['kdma']}"] = str(kv["value"])
    params.update({schema.PARAM_VARIANT: schema.DEFAULT_VARIANT, schema.PARAM_NUM_SCENES: str(len(items))})
    if items:
        params[schema.PARAM_FIRST_SCENARIO] = str(items[0]["input"].get("scenario_id"))
    metrics: dict[str, float] = {}
    if raw:
        metrics.update({schema.METRIC_TOTAL_SECONDS: sum(raw), schema.METRIC_AVG_SECONDS: sum(raw) / len(raw),
                        schema.METRIC_MIN_SECONDS: min(raw), schema.METRIC_MAX_SECONDS: max(raw)})
    for entry in scores if isinstance(scores, list) else []:
        for key, value in entry.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                metrics[f"{schema.SCORE_PREFIX}{key}"] = float(value)
    rel = folder.relative_to(root).as_posix()
    has_config = (folder / schema.HYDRA_DIR / schema.HYDRA_CONFIG).exists()
    tags = {schema.TAG_ADM: adm, **({schema.TAG_LLM: llm} if llm else {}), schema.TAG_TARGET: target_id,
            schema.TAG_PATH: rel, schema.TAG_HAS_HYDRA: str(has_config)}
    artifacts = [Artifact(str(folder / name)) for name in (schema.INPUT_OUTPUT, schema.TIMING, schema.SCORES)
                 if (folder / name).exists()]
    if has_config:
        artifacts.append(Artifact(str(folder / schema.HYDRA_DIR / schema.HYDRA_CONFIG), schema.HYDRA_DIR))
    traces = []
    for index, item in enumerate(items):
        inp = item.get("input") or {}
        state = inp.get("full_state") or {}
        output = item.get("output") or {}
        info = item.get("choice_info") or {}
        scene = _legacy_scene_id(item, index)
        attributes = {schema.ATTR_SCENE_INDEX: index, schema.ATTR_SCENARIO_ID: inp.get("scenario_id"),
                      schema.ATTR_ADM: adm, schema.ATTR_TARGET: target_id}
        if index < len(raw):
            attributes[schema.ATTR_TIMING] = raw[index]
        for key, attr in (("true_kdma_values", schema.ATTR_TRUE_KDMA), ("predicted_kdma_values",
                                                                        schema.ATTR_PREDICTED_KDMA)):
            if info.get(key):
                attributes[attr] = json.dumps(info[key])
        traces.append(TraceRecord(
            name=scene,
            inputs={schema.IN_SCENARIO_ID: inp.get("scenario_id"), schema.IN_STATE: inp.get("state"),
                    schema.IN_SCENE_ID: scene, schema.IN_UNSTRUCTURED: state.get("unstructured"),
                    schema.IN_CHARACTERS: state.get("characters"), schema.IN_CHOICES: inp.get("choices")},
            outputs={schema.OUT_CHOICE_INDEX: output.get("choice"), schema.OUT_ACTION: output.get("action")},
            attributes=attributes, tags={schema.TRACE_TAG_SCENE_ID: scene}, start_ns=0, end_ns=0))
    return RunRecord(folder.name, params, metrics, tags, artifacts, traces)


def legacy_records(experiments_dir: Path) -> list[RunRecord]:
    root = Path(experiments_dir).resolve()
    return [legacy_record(root, marker.parent) for marker in sorted(root.rglob(schema.INPUT_OUTPUT))]


def write_legacy_store(uri: str, experiment_name: str, experiments_dir: Path) -> dict[str, str]:
    """Ingest ``experiments_dir`` as the upstream align-track's own code path does; run id by ``experiment_path``."""
    return _write_records(uri, experiment_name, legacy_records(experiments_dir))
