"""Write stores the way other tools do: MLflow's fluent API (``start_run``, ``start_span``), no align-track writer.

``write_trace_fluent`` is MLflow's own public path for one scene: the reference the trace writers are
compared with. ``write_upstream_store`` writes a whole experiment tree as the upstream align-track
does: one FINISHED run per folder with the README's params, metrics, tags and artifacts, one
``start_span`` trace per scene tagged ``scene_id`` and ``mlflow.runId``, and none of align-track's
``align_track.*`` bookkeeping tags. The content comes from align-track's pure mapping (so a test can
compare the two tools field by field); only the writing is MLflow's.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
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
    runs: dict[str, str] = {}
    with _use_tracking_uri(uri):
        _fresh_tracer()
        experiment = mlflow.set_experiment(experiment_name)
        for record in upstream_records(experiments_dir):
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
