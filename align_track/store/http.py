"""Talking to an MLflow tracking server (``http(s)://`` URIs): fail fast, quietly, and in parallel.

MLflow's own HTTP client is tuned for notebooks against hosted services: it retries a dead
server with exponential backoff for about four minutes, waits 120 s for an answer, keeps
10 pooled connections, and prints "View run ... at" links to stdout. For a command line (and
the TUI, whose screen such prints would break) we want a clear error within seconds, enough
connections for ``--workers`` times the parallel trace writers, and silence. Only defaults
are set: whatever the user exported wins.

MLflow's server (uvicorn) writes a response's headers and body as two TCP segments and holds the
second until the first is acknowledged (Nagle's algorithm); Linux acknowledges the first only after
its delayed-ACK timer, ~40 ms. So every request costs 40 ms or more of waiting, whatever the server's
load (a ``GET /health`` on a reused connection: 52 ms median, 8 ms with the fix below). The client can
end that wait: :func:`quick_acks` makes the sockets of MLflow's HTTP client (urllib3) acknowledge at once.
"""

from __future__ import annotations

import os
import socket

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


ABSENT_PROBES = ("dbruntime", "pyspark", "IPython")
"""Packages MLflow's client tries to import on every request to find out whether it runs in Databricks or a
notebook (``resolve_request_headers``: eleven failed imports, ~0.35 ms of CPU under the import lock)."""


def configure_mlflow_http() -> None:
    """Set :data:`HTTP_DEFAULTS` for this process where the user has not (read by MLflow per request), and
    answer MLflow's per-request environment probes at once where their packages are not installed.

    A failed import is not cached: each of the ~35 requests per run folder searched ``sys.path`` eleven
    times, holding the import lock, which the ingest's 30-odd request threads then queued on. A ``None``
    in ``sys.modules`` makes such an import fail at once, with the same answer (not in Databricks).
    """
    import importlib.util
    import sys

    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    for name in ABSENT_PROBES:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = None  # type: ignore[assignment]


class _QuickAckSocket(socket.socket):
    """A TCP socket that acknowledges received data at once (``TCP_QUICKACK`` before every read: Linux
    clears it again by itself, so it is set each time; one cheap system call)."""

    __slots__ = ()

    def recv_into(self, buffer, nbytes=0, flags=0):  # type: ignore[no-untyped-def,override]
        self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return super().recv_into(buffer, nbytes, flags)

    def recv(self, bufsize, flags=0):  # type: ignore[no-untyped-def,override]
        self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return super().recv(bufsize, flags)


def quick_acks() -> None:
    """Make urllib3's plain-HTTP connections (MLflow's client, ``requests``) use :class:`_QuickAckSocket`,
    in this process, once. Linux only (elsewhere nothing changes); HTTPS sockets are wrapped by TLS and keep
    the default."""
    if not hasattr(socket, "TCP_QUICKACK"):
        return
    from urllib3.connection import HTTPConnection

    new_conn = HTTPConnection._new_conn
    if getattr(new_conn, "quick_acks", False):
        return

    def _new_conn(self: HTTPConnection) -> socket.socket:
        sock = new_conn(self)
        if type(sock) is socket.socket and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.__class__ = _QuickAckSocket
        return sock

    _new_conn.quick_acks = True  # type: ignore[attr-defined]
    HTTPConnection._new_conn = _new_conn  # type: ignore[method-assign]


def check_server(uri: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise StoreError unless ``GET /health`` answers 200: before MLflow's client would retry for minutes.

    Also turns on :func:`quick_acks` for the requests to come.
    """
    if store_kind(uri) != "http":
        return
    import requests

    quick_acks()

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
