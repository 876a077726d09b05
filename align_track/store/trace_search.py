"""The tracking server's trace search (SearchTracesV3) as both HTTP readers call it: its path, an experiment
location, an id quoted for its filter, and how a server without an endpoint answers. Its own module so the index
reader (``scenes_over_http``) and the span reader (``traces_over_http``) share it without importing each other."""

from __future__ import annotations

from align_track.store.uri import StoreError

SEARCH = "/api/3.0/mlflow/traces/search"
NOT_SERVED = ("ENDPOINT_NOT_FOUND", "NOT_FOUND", "404")


def location(experiment_id: str) -> dict:
    return {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": str(experiment_id)}}


def quoted(text: str) -> str:
    """A value inside a single-quoted literal of MLflow's search filter (ids: hex, ``tr-`` and dashes)."""
    if "'" in text or "\\" in text:
        raise StoreError(f"cannot search the tracking server for the id {text!r} (it holds a quote)")
    return text


def not_served(exc: Exception) -> bool:
    """The server has no such endpoint (an older MLflow): its error code, or a plain 404 without a JSON body."""
    return getattr(exc, "code", "") in NOT_SERVED or " 404 " in str(exc)
