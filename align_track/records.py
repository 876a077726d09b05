"""Plain records passed between the pure mapping layer and the store writers.

They hold only JSON-able Python values so the mapping stays pure and testable
without MLflow, and so the same record can be written through MLflow's public
API or the bulk SQL path and must read back identically either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TraceRecord:
    """One scene as one MLflow trace with a single root span.

    ``inputs``/``outputs`` become the root span's inputs/outputs (and the trace's
    request/response previews); ``attributes`` become span attributes; ``tags``
    become trace tags (the writer adds the name as ``mlflow.traceName``).
    ``start_ns``/``end_ns`` are the span's wall-clock times in nanoseconds.
    """

    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    attributes: dict[str, Any]
    tags: dict[str, str]
    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class Artifact:
    """A file to upload: ``path`` on disk, stored under ``artifact_dir`` ('' = root)."""

    path: str
    artifact_dir: str = ""


@dataclass(frozen=True)
class RunRecord:
    """One run folder (or one target of a mixed-target folder) as one MLflow run."""

    run_name: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifacts: list[Artifact] = field(default_factory=list)
    traces: list[TraceRecord] = field(default_factory=list)
    start_ms: int | None = None
    """When the experiment started (epoch ms): the run's start_time on every backend (None: the write's time)."""
    end_ms: int | None = None
    """When it ended: start plus its recorded time, else its last file's time (None: the write's time)."""
