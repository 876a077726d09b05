"""Not a benchmark: the held-out real align-system tree (../shared/real-experiments) ingested over HTTP (``mlflow
server`` on a fresh PostgreSQL database, proxied artifacts) and read back with MLflow's own API, every README field
checked against the folders' ``input_output.json``: trace name, inputs, outputs, attributes, tags, metadata and the
run link (``mlflow.search_traces(run_id=...)``, ``tags.`mlflow.runId```, ``tags.scene_id`` filters).

Lives here because it needs ../shared (tests may not). Prints one line per run and every problem; exit 1 if any.

usage: ALIGN_TRACK_SHARED=/work/shared python -m tests.benchmarks.check_real_http
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from align_track import schema
from align_track.store.uri import DEFAULT_EXPERIMENT
from tests.benchmarks.bench_ingest import SHARED
from tests.support.server_fixtures import fresh_database, running_server

ROOT = SHARED / "real-experiments"


def check_trace(trace, item: dict, run_id: str) -> list[str]:
    """What is wrong with one read-back trace, against its scene in ``input_output.json``."""
    info, [span] = trace.info, trace.data.spans
    scene = ((item["input"].get("full_state") or {}).get("meta_info") or {}).get("scene_id")
    output = item.get("output") or {}
    name = info.tags.get("mlflow.traceName")
    checks = {
        "name is the scene id": span.name == name == info.tags.get(schema.TRACE_TAG_SCENE_ID)
        and (scene is None or name == scene),
        "tag mlflow.runId": info.tags.get(schema.TRACE_TAG_RUN_ID) == run_id,
        "metadata keys": set(schema.TRACE_METADATA) <= set(info.trace_metadata),
        "metadata mlflow.sourceRun": info.trace_metadata.get(schema.META_SOURCE_RUN) == run_id,
        "input keys": set(span.inputs) == set(schema.TRACE_INPUTS),
        "input values": all(span.inputs[k] == item["input"].get(k) for k in (schema.IN_STATE, schema.IN_CHOICES,
                                                                                schema.IN_SCENARIO_ID)),
        "output keys": set(span.outputs) == set(schema.TRACE_OUTPUTS),
        "output values": span.outputs[schema.OUT_CHOICE_INDEX] == output.get("choice")
        and span.outputs[schema.OUT_ACTION] == output.get("action"),
        "attribute keys": set(schema.TRACE_ATTRIBUTES) <= set(span.attributes),
        "state OK": info.state.value == "OK",
    }
    return [what for what, ok in checks.items() if not ok]


def main() -> None:
    import mlflow
    from mlflow import MlflowClient

    if not ROOT.exists():
        sys.exit(f"needs {ROOT} (the shared material)")
    work = Path(tempfile.mkdtemp(prefix="check-real-http-"))
    problems: list[str] = []
    with fresh_database("align_track_real") as db, \
            running_server(db, work / "artifacts", work / "server.log", workers=4) as server:
        ingest = subprocess.run([sys.executable, "-m", "align_track", "ingest", "--experiments-dir", str(ROOT),
                                 "--mlflow-uri", server.url, "-q"], capture_output=True, text=True)
        if ingest.returncode:
            sys.exit(f"ingest failed ({ingest.returncode}): {ingest.stderr[-2000:]}")
        mlflow.set_tracking_uri(server.url)  # mlflow.search_traces is the fluent API
        client = MlflowClient(server.url)
        experiment_id = client.get_experiment_by_name(DEFAULT_EXPERIMENT).experiment_id
        runs = client.search_runs([experiment_id])
        folders = {p.parent for p in ROOT.rglob("input_output.json")}
        if len(runs) != len(folders):
            problems.append(f"{len(runs)} runs for {len(folders)} run folders")
        scene_ids = []
        for run in runs:
            items = json.loads((ROOT / run.data.tags["experiment_path"] / "input_output.json").read_text())
            traces = mlflow.search_traces(locations=[experiment_id], run_id=run.info.run_id, return_type="list")
            tagged = client.search_traces(locations=[experiment_id],
                                          filter_string=f"tags.`mlflow.runId` = '{run.info.run_id}'")
            print(f"{run.info.run_name}: {len(traces)} traces for {len(items)} scenes "
                  f"(tags.mlflow.runId finds {len(tagged)}); run tag mlflow.user={run.data.tags.get('mlflow.user')}")
            if not len(traces) == len(tagged) == len(items):
                problems.append(f"{run.info.run_name}: {len(traces)} / {len(tagged)} traces, {len(items)} scenes")
            for found in traces:
                trace = client.get_trace(found.info.trace_id)
                [span] = trace.data.spans
                index = span.attributes[schema.ATTR_SCENE_INDEX]
                scene_ids.append(span.name)
                problems += [f"{run.info.run_name} scene {index}: {what}"
                             for what in check_trace(trace, items[index], run.info.run_id)]
        for scene_id in sorted(set(scene_ids)):
            found = client.search_traces(locations=[experiment_id], filter_string=f"tags.scene_id = '{scene_id}'")
            if len(found) != scene_ids.count(scene_id):
                problems.append(f"tags.scene_id = '{scene_id}' finds {len(found)} of {scene_ids.count(scene_id)}")
        print(f"{len(runs)} runs, {len(scene_ids)} traces read back; problems: {len(problems)}")
    for problem in problems:
        print("  " + problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
