"""Talking to an MLflow tracking server (``http(s)://`` URIs): fail fast, quietly, and in parallel.

MLflow's own HTTP client is tuned for notebooks against hosted services: it retries a dead
server with exponential backoff for about four minutes, waits 120 s for an answer, keeps
10 pooled connections, and prints "View run ... at" links to stdout. For a command line (and
the TUI, whose screen such prints would break) we want a clear error within seconds, enough
connections for ``--workers`` times the parallel trace writers, and silence. Only defaults
are set: whatever the user exported wins.
"""

from __future__ import annotations

import os

from align_track.store.uri import StoreError, store_kind

HTTP_DEFAULTS = {
    # ~7 s of retries (0 s, 2 s, 4 s plus jitter) rides out a restart blip but not a dead server.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    "MLFLOW_HTTP_POOL_MAXSIZE": "64",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}

PROBE_TIMEOUT = 5.0
"""Seconds to connect to and hear back from ``/health``: an unreachable server is reported well within 10 s."""


def configure_mlflow_http() -> None:
    """Set :data:`HTTP_DEFAULTS` for this process where the user has not (read by MLflow per request)."""
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def check_server(uri: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise StoreError unless ``GET /health`` answers 200: before MLflow's client would retry for minutes."""
    if store_kind(uri) != "http":
        return
    import requests

    base = uri.rstrip("/")
    try:
        response = requests.get(f"{base}/health", timeout=(timeout, timeout),
                                verify=_verify())
    except requests.RequestException as exc:
        reason = "timed out" if isinstance(exc, requests.Timeout) else "connection refused or host unreachable"
        raise StoreError(f"tracking server {base} is not reachable ({reason})") from None
    if response.status_code != 200:
        raise StoreError(f"{base} does not look like an MLflow tracking server (GET /health answered "
                         f"{response.status_code})")


def server_answers(uri: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when ``GET /health`` answers at all within ``timeout`` (used to tell slow from hung)."""
    try:
        check_server(uri, timeout)
    except StoreError:
        return False
    return True


def _verify() -> bool | str:
    """The TLS verification MLflow's client would use."""
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        return False
    return os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True


def prepare(uri: str) -> None:
    """For a tracking server: set the client defaults and check that it answers (StoreError if not)."""
    if store_kind(uri) == "http":
        configure_mlflow_http()
        check_server(uri)
