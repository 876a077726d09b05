"""What ``y`` copies: a run's id, folder, MLflow web UI URL (run or trace) and ``align-app`` command."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from align_track.schema import TAG_PATH, TAG_SOURCE

DEFAULT_UI_URL = "http://127.0.0.1:5000"
"""Where ``align-track ui`` (and ``m``) serve the web UI unless told otherwise."""


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """The MLflow web UI page of a run."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def trace_url(base: str, experiment_id: str, trace_id: str) -> str:
    """The MLflow web UI's traces list of the experiment, opened at one trace."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/traces?selectedEvaluationId={trace_id}"


def align_app_command(folder: str) -> str:
    """``align-app --experiment <folder>``, shell-quoted so it pastes as one argument."""
    return f"align-app --experiment {shlex.quote(folder)}"


@dataclass(frozen=True)
class CopyItem:
    label: str
    text: str


def copy_items(base: str, experiment_id: str, run_id: str, tags: dict[str, str],
               trace_id: str | None = None) -> list[CopyItem]:
    """The things worth copying about a run (and its highlighted scene's trace), most asked-for first."""
    folder = tags.get(TAG_SOURCE) or tags.get(TAG_PATH) or ""
    items = [CopyItem("run id", run_id)]
    if folder:
        items.append(CopyItem("folder", folder))
    items.append(CopyItem("MLflow URL of the run", run_url(base, experiment_id, run_id)))
    if trace_id:
        items.append(CopyItem("MLflow URL of the scene's trace", trace_url(base, experiment_id, trace_id)))
        items.append(CopyItem("trace id", trace_id))
    if folder:
        items.append(CopyItem("align-app command", align_app_command(folder)))
    return items
