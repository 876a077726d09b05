"""Write an experiment on an MLflow tracking server through its public protocols, without importing mlflow.

``import mlflow`` is most of what a small ingest over HTTP costs (1.5 s of CPU with cached bytecode, 4 s
without, before the first write). The requests themselves are MLflow's REST API (runs/create, runs/log-batch,
runs/update, runs/set-tag, runs/search, runs/delete, traces/link-to-run, the artifact proxy), StartTraceV3 (the
only request that stores a trace's tags and metadata) and the OTLP ``/v1/traces`` endpoint (the spans, as
protobuf): this module sends them as MLflow's client does (the same bodies, headers, retries and timeouts),
built from the same trace pieces as the SQL rows (store/sql_rows.py). tests/store/test_server.py reads what it
writes back through MLflow and requires it equal to an SQLite store's, field by field.

MLflow's client is still used where these protocols do not reach: artifacts kept in an object store (S3, ...),
a server older than 3.4 (no OTLP endpoint), records ``sql_rows`` does not reproduce. ``ALIGN_TRACK_DIRECT=0``
writes everything through MLflow's client (store/run_writer.py).
"""

from __future__ import annotations

import json
import mimetypes
import os
import posixpath
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from align_track.errors import one_line
from align_track.records import RunRecord, TraceRecord
from align_track.schema import TAG_CLAIM, TAG_COMPLETE, TAG_INGEST_TIME, TAG_KEY, USER
from align_track.store import artifact_dirs, sql_rows
from align_track.store.claims import ClaimRule, Written, claim_token
from align_track.store.dbapi import installed_mlflow
from align_track.store.provenance import provenance
from align_track.store.retries import retry_call
from align_track.store.runs_reader import RunRow, experiment_over_rest, load_runs
from align_track.store.uri import StoreError

CHUNK = 100
"""Traces per run-link + OTLP request (the most one run-link request may carry: MLflow's limit)."""
CHUNKS_IN_FLIGHT = 4
TRACES_IN_FLIGHT = 8
"""StartTraceV3 requests of one write in flight (one per trace), as store/trace_writer.py's public path."""
PARAMS_PER_BATCH, TAGS_PER_BATCH, ENTITIES_PER_BATCH = 100, 100, 1000
"""MLflow's log-batch limits (its client splits a bigger batch the same way)."""
TRANSIENT = (408, 429, 500, 502, 503, 504)
"""Answers MLflow's client retries."""
OTLP_MIN_SERVER = (3, 4)
TEXT_EXTENSIONS = frozenset({"txt", "log", "err", "cfg", "conf", "cnf", "cf", "ini", "properties", "prop", "hocon",
                             "toml", "yaml", "yml", "xml", "json", "js", "py", "py3", "csv", "tsv", "md", "rst",
                             "MLmodel", "mlproject"})


class ServerError(StoreError):
    """An error answer from the server (``error_code: message``, as MLflow's client words it)."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class Rest:
    """One tracking server's HTTP API with the settings MLflow's client uses: auth and TLS from the same
    environment variables, its retry policy (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, backoff, the transient codes),
    timeout and pool size, and its client-version headers."""

    def __init__(self, uri: str):
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.base = uri.rstrip("/")
        env = os.environ
        retries = int(env.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7"))
        backoff = float(env.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "2"))
        retry = Retry(total=retries, connect=retries, read=retries, redirect=retries, status=retries,
                      status_forcelist=TRANSIENT, backoff_factor=backoff,
                      backoff_jitter=float(env.get("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "1.0")),
                      raise_on_status=False, respect_retry_after_header=True, allowed_methods=None)
        pool = int(env.get("MLFLOW_HTTP_POOL_MAXSIZE", "10"))
        adapter = HTTPAdapter(pool_connections=int(env.get("MLFLOW_HTTP_POOL_CONNECTIONS", "10")), pool_maxsize=pool,
                              max_retries=retry)
        session = requests.Session()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        version = installed_mlflow() or "3"
        session.headers.update({"User-Agent": f"mlflow-python-client/{version}", "X-MLflow-Client-Version": version})
        if token := env.get("MLFLOW_TRACKING_TOKEN"):
            session.headers["Authorization"] = f"Bearer {token}"
        elif env.get("MLFLOW_TRACKING_USERNAME") and env.get("MLFLOW_TRACKING_PASSWORD"):
            session.auth = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
        if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            session.verify = False
        elif cert := env.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
            session.verify = cert
        if client_cert := env.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
            session.cert = client_cert
        self.session = session
        self.timeout = float(env.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "120"))

    def request(self, method: str, endpoint: str, body: Any = None, params: dict | None = None, data: Any = None,
                headers: dict[str, str] | None = None, timeout: float | None = None) -> Any:
        """The response (parsed JSON where there is one); ServerError for an error answer, StoreError when the
        server cannot be reached."""
        import requests

        url = endpoint if endpoint.startswith("http") else f"{self.base}{endpoint}"
        payload = data if body is None else json.dumps(body)
        all_headers = dict(headers or {})
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        try:
            response = self.session.request(method, url, params=params, data=payload, headers=all_headers,
                                            timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            raise StoreError(f"API request to {endpoint} failed: {one_line(exc)}") from exc
        text = response.text
        if response.status_code != 200:
            try:
                answer = json.loads(text)
            except ValueError:
                answer = None
            if isinstance(answer, dict):
                code = str(answer.get("error_code") or "INTERNAL_ERROR")
                raise ServerError(f"{code}: {answer.get('message', answer)}", code)
            raise ServerError(f"API request to endpoint {endpoint} failed with error code {response.status_code} "
                              f"!= 200. Response body: '{text}'")
        if not text.strip():
            return {}
        try:
            return json.loads(text)
        except ValueError:
            return text

    def api(self, method: str, endpoint: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request(method, f"/api/2.0/mlflow/{endpoint}", body, **kwargs)


def _server_version(rest: Rest) -> tuple[int, ...] | None:
    """The server's MLflow version (``GET /version``, 3 s, no retries: as MLflow's client asks it)."""
    import requests

    try:
        response = rest.session.get(f"{rest.base}/version", timeout=3)
        if response.status_code != 200:
            return None
        return tuple(int(part) for part in response.text.strip().split(".")[:2])
    except (requests.RequestException, ValueError):
        return None


class ServerStore:
    """The ingest's handle on one experiment of a tracking server, written without MLflow's client (the same
    methods as ``run_writer.RunStore``)."""

    direct = True
    """Written without MLflow (MLflow's client only for what the protocols do not reach)."""
    bulk = False
    kind = "http"

    def __init__(self, tracking_uri: str, experiment_name: str, experiment_id: str, artifact_location: str):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.experiment_id = experiment_id
        self.artifact_location = artifact_location
        self.rest = Rest(tracking_uri)
        self._version: tuple[int, ...] | None = None
        self._version_lock = threading.Lock()
        self._mlflow: Any = None

    @classmethod
    def open(cls, tracking_uri: str, experiment_name: str) -> ServerStore:
        """The experiment's writer; ExperimentNotFound (a StoreError) when it does not exist yet."""
        experiment_id, location = experiment_over_rest(tracking_uri, experiment_name)
        return cls(tracking_uri, experiment_name, experiment_id, location)

    def close(self) -> None:
        self.rest.session.close()

    def mlflow(self) -> Any:
        """MLflow's own writer for this experiment (imports mlflow): for what these protocols do not reach."""
        if self._mlflow is None:
            from align_track.store.run_writer import RunStore

            self._mlflow = RunStore(self.tracking_uri, self.experiment_name, create=False)
        return self._mlflow

    # ------------------------------------------------------------------ reads

    def live_runs(self) -> list[RunRow]:
        return load_runs(self.tracking_uri, self.experiment_id)

    def keyed_runs(self) -> list[RunRow]:
        return [r for r in self.live_runs() if TAG_KEY in r.tags]

    def runs_for_key(self, key: str) -> list[RunRow]:
        from align_track.store.runs_reader import _load_runs_http

        return _load_runs_http(self.tracking_uri, self.experiment_id, False, f"tags.`{TAG_KEY}` = '{key}'")

    def _run(self, run_id: str) -> dict:
        return self.rest.api("GET", "runs/get", params={"run_uuid": run_id, "run_id": run_id})["run"]

    def run_tag(self, run_id: str, key: str) -> str | None:
        tags = self._run(run_id).get("data", {}).get("tags", [])
        return next((t.get("value", "") for t in tags if t.get("key") == key), None)

    def artifact_sizes(self, run_id: str) -> dict[str, int] | None:
        """Sizes of the run's top-level artifact files by name; None when they cannot be listed."""
        try:
            uri = self._run(run_id)["info"]["artifact_uri"]
            proxied = self._proxied(uri)
            if proxied is not None:
                base, path = proxied
                found = self.rest.request("GET", f"{base}/api/2.0/mlflow-artifacts/artifacts", params={"path": path})
                return {posixpath.basename(f["path"]): int(f.get("file_size") or 0)
                        for f in found.get("files", []) if not f.get("is_dir")}
        except Exception:  # noqa: BLE001 - a run whose artifacts are elsewhere or gone: its contents are unknown
            return None
        if artifact_dirs.is_local(uri):
            return artifact_dirs.file_sizes(uri)
        return self.mlflow().artifact_sizes(run_id)

    def trace_ids(self, run_id: str) -> set[str]:
        """Ids of the traces linked to ``run_id`` (as ``search_traces(run_id=...)`` finds them)."""
        found: set[str] = set()
        token = None
        while True:
            body: dict[str, Any] = {"locations": [self._location()], "filter": f"attribute.run_id = '{run_id}'",
                                    "max_results": 500}
            if token:
                body["page_token"] = token
            page = self.rest.request("POST", "/api/3.0/mlflow/traces/search", body)
            found.update(t["trace_id"] for t in page.get("traces", []))
            token = page.get("next_page_token")
            if not token:
                return found

    def _location(self) -> dict:
        return {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": str(self.experiment_id)}}

    # ------------------------------------------------------------------ whole runs

    def write(self, record: RunRecord, key: str, force: bool, claim_lost: ClaimRule, superseded: ClaimRule,
              notice: Callable[[str], None] | None = None) -> Written:
        """create -> verify the claim -> traces -> mark complete, with no RUNNING half-run left behind if a step
        fails; then the runs it replaces deleted (as ``RunStore.write`` through MLflow's client)."""
        def call(fn: Callable[..., Any], *args: Any) -> Any:
            return retry_call(fn, *args, notice=notice)

        run_id = call(self.create_run, record)
        try:
            if claim_lost(run_id, call(self.runs_for_key, key)):
                self.delete_run(run_id)
                return Written(None, busy=True)
            call(self.write_traces, run_id, list(record.traces))
            call(self.mark_complete, run_id, record.end_ms)
        except BaseException:  # interrupted or refused: no RUNNING half-run left visible if we can help it
            _best_effort(partial(self.delete_run, run_id))
            raise
        for doomed in superseded(run_id, call(self.runs_for_key, key)):
            call(self.delete_run, doomed)
        return Written(run_id)

    def create_run(self, record: RunRecord) -> str:
        """The run RUNNING with its claim, params, metrics, tags and artifacts (no traces yet)."""
        now = int(time.time() * 1000)
        tags = {**provenance(), **record.tags, TAG_INGEST_TIME: str(now)}
        tags[TAG_CLAIM] = claim_token()
        run = self._create(record, tags, now)
        run_id = run["info"]["run_id"]
        try:
            calls = [partial(self.log_batch, run_id, {k: float(v) for k, v in record.metrics.items()},
                             record.params, {}, now)]
            calls += self._artifact_calls(run["info"]["artifact_uri"], run_id, record)
            with ThreadPoolExecutor(len(calls), thread_name_prefix="align-track-run") as pool:
                for future in [pool.submit(c) for c in calls]:
                    future.result()
        except BaseException:  # refused params, a lost server: no RUNNING half-run left behind if we can help it
            _best_effort(partial(self.delete_run, run_id))
            raise
        return run_id

    def _create(self, record: RunRecord, tags: dict[str, str], now: int) -> dict:
        body = {"experiment_id": str(self.experiment_id), "user_id": tags.get(USER, "unknown"),
                "run_name": record.run_name, "start_time": now if record.start_ms is None else record.start_ms,
                "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        return self.rest.api("POST", "runs/create", body)["run"]

    def log_batch(self, run_id: str, metrics: dict[str, float], params: dict[str, str], tags: dict[str, str],
                  now: int | None = None) -> None:
        """params, metrics and tags in as few ``log-batch`` requests as MLflow's limits allow."""
        now = int(time.time() * 1000) if now is None else now
        entries = ([("params", {"key": k, "value": v}) for k, v in params.items()]
                   + [("metrics", {"key": k, "value": v, "timestamp": now, "step": 0}) for k, v in metrics.items()]
                   + [("tags", {"key": k, "value": v}) for k, v in tags.items()])
        limits = {"params": PARAMS_PER_BATCH, "tags": TAGS_PER_BATCH, "metrics": ENTITIES_PER_BATCH}
        batch: dict[str, list] = {"metrics": [], "params": [], "tags": []}

        def send() -> None:
            self.rest.api("POST", "runs/log-batch", {"run_id": run_id, **batch})

        for kind, entry in entries:
            if len(batch[kind]) >= limits[kind] or sum(map(len, batch.values())) >= ENTITIES_PER_BATCH:
                send()
                batch = {"metrics": [], "params": [], "tags": []}
            batch[kind].append(entry)
        if entries:
            send()

    def _artifact_calls(self, artifact_uri: str, run_id: str, record: RunRecord) -> list[Callable[[], None]]:
        proxied = self._proxied(artifact_uri)
        if proxied is not None:
            base, root = proxied
            return [partial(self._put, base, posixpath.join(root, *([a.artifact_dir] if a.artifact_dir else []),
                                                            Path(a.path).name), a.path) for a in record.artifacts]
        if artifact_dirs.is_local(artifact_uri):  # the server's own disk, shared with us (as MLflow's client writes)
            return [partial(artifact_dirs.copy_files, artifact_dirs.local_path(artifact_uri), record.artifacts)]
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(artifact_uri, tracking_uri=self.tracking_uri)
        return [partial(repo.log_artifact, a.path, a.artifact_dir or None) for a in record.artifacts]

    def _proxied(self, artifact_uri: str) -> tuple[str, str] | None:
        """(server base URL, path) of an artifact URI the server proxies (``mlflow-artifacts:``), else None."""
        parsed = urlparse(artifact_uri)
        if parsed.scheme != "mlflow-artifacts":
            return None
        base = f"{urlparse(self.tracking_uri).scheme}://{parsed.netloc}" if parsed.netloc else self.rest.base
        return base, parsed.path.lstrip("/")

    def _put(self, base: str, path: str, local: str) -> None:
        name = Path(local).name
        extension = os.path.splitext(name)[-1].replace(".", "") or name
        mime = "text/plain" if extension in TEXT_EXTENSIONS else (mimetypes.guess_type(name)[0]
                                                                   or "application/octet-stream")
        with open(local, "rb") as handle:
            self.rest.request("PUT", f"{base}/api/2.0/mlflow-artifacts/artifacts/{quote(path)}", data=handle,
                              headers={"Content-Type": mime})

    def mark_complete(self, run_id: str, end_ms: int | None = None) -> None:
        """The commit point: FINISHED (ended at ``end_ms``, the experiment's end), then the complete tag (see
        ``RunStore.mark_complete``)."""
        self.set_terminated(run_id, "FINISHED", end_ms)
        self.rest.api("POST", "runs/set-tag", {"run_uuid": run_id, "key": TAG_COMPLETE, "value": "true",
                                                "run_id": run_id})

    def set_terminated(self, run_id: str, status: str, end_ms: int | None = None) -> None:
        end = int(time.time() * 1000) if end_ms is None else end_ms
        self.rest.api("POST", "runs/update", {"run_uuid": run_id, "status": status, "end_time": end,
                                               "run_id": run_id})

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.log_batch(run_id, {}, {}, tags)

    # ------------------------------------------------------------------ traces

    def write_traces(self, run_id: str, traces: Sequence[TraceRecord],
                     ids: Sequence[tuple[int, int]] | None = None) -> list[str]:
        """Per chunk of 100: link the trace ids to the run, create each trace with its info (StartTraceV3, 8 in
        flight), then one OTLP request with the chunk's spans; chunks overlap. Linking first means a trace never
        exists unlinked (see ``trace_writer._write_public``, the same requests through MLflow's client)."""
        if not traces:
            return []
        try:
            built = [sql_rows.build_trace(record, str(self.experiment_id), run_id, ids[i] if ids else None)
                     for i, record in enumerate(traces)]
        except sql_rows.NotReproduced:
            from align_track.store import trace_writer

            return trace_writer.write_traces(self.tracking_uri, self.experiment_id, run_id, list(traces),
                                             list(ids) if ids else None)
        if not self._otlp():
            from align_track.store import trace_writer

            return trace_writer.write_traces(self.tracking_uri, self.experiment_id, run_id, list(traces),
                                             list(ids) if ids else None)
        pool = ThreadPoolExecutor(TRACES_IN_FLIGHT, thread_name_prefix="align-track-traces")

        def chunk_write(chunk: list[sql_rows.BuiltTrace]) -> None:
            self.rest.api("POST", "traces/link-to-run", {"trace_ids": [t.trace_id for t in chunk], "run_id": run_id})
            for future in [pool.submit(self._start_trace, t) for t in chunk]:
                future.result()
            self._log_spans(chunk)

        chunks = [built[i : i + CHUNK] for i in range(0, len(built), CHUNK)]
        try:
            if len(chunks) == 1:
                chunk_write(chunks[0])
            else:
                chunk_pool = ThreadPoolExecutor(CHUNKS_IN_FLIGHT, thread_name_prefix="align-track-chunks")
                try:
                    for future in [chunk_pool.submit(chunk_write, c) for c in chunks]:
                        future.result()
                finally:  # on a failure, do not start the queued chunks: each would retry a dead server first
                    chunk_pool.shutdown(cancel_futures=True)
        finally:
            pool.shutdown(cancel_futures=True)
        return [t.trace_id for t in built]

    def _otlp(self) -> bool:
        """Whether the server takes spans on its OTLP endpoint (MLflow 3.4 and later), asked once."""
        with self._version_lock:
            for attempt in range(5):  # a busy server may miss the 3 s answer: ask again (as trace_writer does)
                if self._version is None:
                    self._version = _server_version(self.rest)
                if self._version is not None:
                    return self._version >= OTLP_MIN_SERVER
                time.sleep(1 + attempt)
        return False

    def _start_trace(self, built: sql_rows.BuiltTrace) -> None:
        """StartTraceV3: the trace info (tags and metadata cut as MLflow's TraceInfo.to_proto cuts them)."""
        info: dict[str, Any] = {
            "trace_id": built.trace_id,
            "trace_location": self._location(),
            "request_time": sql_rows.timestamp_json(built.start_ms),
            "execution_duration": _duration_json(built.duration_ms),
            "state": sql_rows.STATUS_OK,
            "trace_metadata": {k[: sql_rows.MAX_METADATA_CHARS]: str(v)[: sql_rows.MAX_METADATA_CHARS]
                               for k, v in built.metadata.items()},
            "tags": {k[: sql_rows.MAX_TAG_KEY_CHARS]: str(v)[: sql_rows.MAX_TAG_VALUE_CHARS]
                     for k, v in built.tags.items()},
        }
        if built.request_preview:
            info["request_preview"] = built.request_preview
        if built.response_preview:
            info["response_preview"] = built.response_preview
        self.rest.request("POST", "/api/3.0/mlflow/traces", {"trace": {"trace_info": info}})

    def _log_spans(self, chunk: list[sql_rows.BuiltTrace]) -> None:
        """One OTLP ``/v1/traces`` request (protobuf) with the chunk's spans, as MLflow's ``log_spans`` sends it."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
        from opentelemetry.proto.trace.v1.trace_pb2 import Status

        request = ExportTraceServiceRequest()
        scope = request.resource_spans.add().scope_spans.add()
        for built in chunk:
            span = scope.spans.add()
            span.trace_id = built.otel_trace_id.to_bytes(16, "big")
            span.span_id = built.span_id.to_bytes(8, "big")
            span.name = built.span["name"]
            span.start_time_unix_nano = built.span["start_time_unix_nano"]
            if built.span["end_time_unix_nano"]:
                span.end_time_unix_nano = built.span["end_time_unix_nano"]
            span.status.code = Status.STATUS_CODE_OK
            for key, text in built.span["attributes"].items():
                attribute = span.attributes.add()
                attribute.key = key
                _set_any_value(attribute.value, _attribute_value(text))
        self.rest.request("POST", "/v1/traces", data=request.SerializeToString(),
                          headers={"Content-Type": "application/x-protobuf",
                                   "x-mlflow-experiment-id": str(self.experiment_id)})

    def delete_traces(self, trace_ids: Sequence[str]) -> int:
        """Delete these traces, 100 per request; returns how many the server deleted."""
        ids = list(dict.fromkeys(trace_ids))
        deleted = 0
        for start in range(0, len(ids), 100):
            answer = self.rest.api("POST", "traces/delete-traces", {"experiment_id": str(self.experiment_id),
                                                                   "request_ids": ids[start : start + 100]})
            deleted += int(answer.get("traces_deleted", 0) or 0)
        return deleted

    def delete_run(self, run_id: str) -> None:
        """Remove a replaced, withdrawn or half-written run together with its traces."""
        self.delete_traces(sorted(self.trace_ids(run_id)))
        try:
            self.rest.api("POST", "runs/delete", {"run_id": run_id})
        except ServerError as exc:  # already deleted by a concurrent ingest
            if "RESOURCE_DOES_NOT_EXIST" not in str(exc) and "deleted" not in str(exc).lower():
                raise

    # ------------------------------------------------------------------ live runs (ingest --watch)

    def create_live(self, record: RunRecord, tags: dict[str, str], params: dict[str, str]) -> str:
        """A RUNNING run with ``tags`` and ``params`` and no traces."""
        run_id = self._create(record, tags, int(time.time() * 1000))["info"]["run_id"]
        if params:
            self.log_batch(run_id, {}, params, {})
        return run_id

    def append_traces(self, run_id: str, traces: list[TraceRecord], ids: list[tuple[int, int]],
                      tags: dict[str, str]) -> bool:
        """Write ``traces`` (idempotent for equal ids: a run link and OTLP spans) and set ``tags``."""
        if traces:
            self.write_traces(run_id, traces, ids)
        if tags:
            self.set_tags(run_id, tags)
        return True

    def finish_live(self, run_id: str, record: RunRecord, traces: list[TraceRecord], ids: list[tuple[int, int]],
                    stale: list[str], finished_tags: dict[str, str]) -> None:
        """Finish a live run in place: stale traces (scenes whose content changed) deleted first, then ``traces``
        (now timed) written under their ids: the server's StartTraceV3 and OTLP spans update a trace that exists in
        place (info, tags, metadata, spans), so the run never shows a scene twice (a changed scene is missing for a
        moment instead). Then the params it lacks, metrics, tags and artifacts, the commit point (``finished_tags``:
        complete), FINISHED."""
        if stale:
            self.delete_traces(stale)
        if traces:
            self.write_traces(run_id, traces, ids)
        run = self._run(run_id)
        have = {p["key"] for p in run.get("data", {}).get("params", [])}
        now = int(time.time() * 1000)
        self.log_batch(run_id, {k: float(v) for k, v in record.metrics.items()},
                       {k: v for k, v in record.params.items() if k not in have}, record.tags, now)
        for call in self._artifact_calls(run["info"]["artifact_uri"], run_id, record):
            call()
        self.set_tags(run_id, finished_tags)
        self.set_terminated(run_id, "FINISHED", record.end_ms)


def _attribute_value(text: str) -> Any:
    """A span attribute as MLflow's ``Span.attributes`` gives it (JSON-decoded; the text itself if it is not)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except Exception:  # noqa: BLE001 - as MLflow: the raw text
        return text


def _set_any_value(value: Any, item: Any) -> None:
    """MLflow's ``_set_otel_proto_anyvalue``: a Python value as an OTLP AnyValue (None left unset)."""
    from opentelemetry.proto.common.v1.common_pb2 import ArrayValue, KeyValueList

    if item is None:
        return
    if isinstance(item, bool):
        value.bool_value = item
    elif isinstance(item, str):
        value.string_value = _utf8(item)
    elif isinstance(item, int):
        value.int_value = item
    elif isinstance(item, float):
        value.double_value = item
    elif isinstance(item, bytes):
        value.bytes_value = item
    elif isinstance(item, (list, tuple)):
        array = ArrayValue()
        for element in item:
            _set_any_value(array.values.add(), element)
        value.array_value.CopyFrom(array)
    elif isinstance(item, dict):
        pairs = KeyValueList()
        for key, element in item.items():
            pair = pairs.values.add()
            pair.key = _utf8(str(key))
            _set_any_value(pair.value, element)
        value.kvlist_value.CopyFrom(pairs)
    else:
        value.string_value = _utf8(str(item))


def _utf8(text: str) -> str:
    return text.encode("utf-8", errors="replace").decode("utf-8")


def _duration_json(millis: int) -> str:
    """A protobuf Duration of ``millis`` (>= 0) as its JSON text (``0s``, ``1.500s``)."""
    seconds, rest = divmod(millis, 1000)
    return f"{seconds}s" if rest == 0 else f"{seconds}.{rest:03d}s"


def _best_effort(action: Callable[[], object]) -> None:
    try:
        action()
    except BaseException:  # noqa: BLE001 - cleanup after a failure; the next ingest removes what is left
        pass
