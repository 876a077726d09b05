"""Read live runs back through MLflow's public APIs, and wait for a store to reach a state (subprocess tests)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

from mlflow import MlflowClient
from mlflow.tracing.client import TracingClient

from align_track.schema import TAG_KEY
from align_track.store.uri import DEFAULT_EXPERIMENT


def runs(uri: str) -> list[Any]:
    """Every active run of the default experiment ([] before the experiment exists)."""
    client = MlflowClient(uri)
    try:
        experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    except Exception:  # the SQLite file is not there yet
        return []
    if experiment is None:
        return []
    return list(client.search_runs([experiment.experiment_id], max_results=1000))


def keyed(uri: str) -> list[Any]:
    return [r for r in runs(uri) if TAG_KEY in r.data.tags]


def traces(uri: str, run: Any) -> list[Any]:
    """Every trace linked to ``run``, with spans, sorted by scene index."""
    client = TracingClient(uri)
    found, token = [], None
    while True:
        page = client.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id, max_results=500,
                                    page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            break
    return sorted(found, key=lambda t: t.data.spans[0].attributes["scene_index"])


def scene_names(uri: str, run: Any) -> list[str]:
    return [t.info.tags.get("mlflow.traceName") or t.data.spans[0].name for t in traces(uri, run)]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 180.0,
             processes: tuple[subprocess.Popen, ...] = ()) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` (and dead processes' output)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # a store mid-creation (SQLite file without tables yet)
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            logs = []
            for p in processes:
                if p.poll() is not None and p.stderr is not None:
                    logs.append(p.stderr.read() if not isinstance(p.stderr, int) else "")
            raise AssertionError(f"timed out waiting for {what}; {logs}")
        time.sleep(0.1)
