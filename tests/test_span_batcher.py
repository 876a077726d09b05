"""SpanBatcher: concurrent writers share requests, and each learns whether its own spans were stored."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from align_track.store.span_batcher import SpanBatcher


class Server:
    """Records what each send carried; refuses spans named 'bad' as invalid, or everything when down."""

    def __init__(self) -> None:
        self.requests: list[list[str]] = []
        self.down = False
        self.lock = threading.Lock()

    def send(self, spans: list[str]) -> None:
        with self.lock:
            self.requests.append(list(spans))
        if self.down:
            raise ConnectionError("connection refused")
        if "bad" in spans:
            raise RuntimeError("INVALID_PARAMETER_VALUE: cannot convert span")


def submit_all(batcher: SpanBatcher, writers: list[list[str]]) -> list[BaseException | None]:
    start = threading.Barrier(len(writers))

    def write(spans: list[str]) -> BaseException | None:
        start.wait()
        try:
            batcher.submit(spans, len(spans))
        except BaseException as exc:  # noqa: BLE001
            return exc
        return None

    with ThreadPoolExecutor(len(writers)) as pool:
        return list(pool.map(write, writers))


def test_concurrent_writers_share_requests_and_every_span_is_sent_once() -> None:
    server = Server()
    batcher = SpanBatcher(server.send, max_traces=1000, linger_s=0.3)
    writers = [[f"run{r}-span{s}" for s in range(20)] for r in range(6)]
    assert submit_all(batcher, writers) == [None] * 6
    sent = [span for request in server.requests for span in request]
    assert sorted(sent) == sorted(span for spans in writers for span in spans)
    assert len(server.requests) < len(writers)
    for spans in writers:  # a writer's spans stay together and in order
        request = next(r for r in server.requests if spans[0] in r)
        assert request[request.index(spans[0]):][: len(spans)] == spans


def test_a_full_batch_goes_without_waiting_for_the_linger() -> None:
    server = Server()
    batcher = SpanBatcher(server.send, max_traces=40, linger_s=30)
    started = time.monotonic()
    assert submit_all(batcher, [[f"a{i}" for i in range(20)], [f"b{i}" for i in range(20)]]) == [None, None]
    assert time.monotonic() - started < 10
    assert len(server.requests) == 1 and len(server.requests[0]) == 40


def test_one_invalid_writer_does_not_fail_the_others() -> None:
    server = Server()
    batcher = SpanBatcher(server.send, max_traces=1000, linger_s=0.3)
    results = submit_all(batcher, [["a1", "a2"], ["bad"], ["c1"]])
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], RuntimeError) and "INVALID_PARAMETER_VALUE" in str(results[1])
    stored = [span for request in server.requests if "bad" not in request for span in request]
    assert sorted(stored) == ["a1", "a2", "c1"]


def test_a_dead_server_fails_every_writer_with_one_request() -> None:
    server = Server()
    server.down = True
    batcher = SpanBatcher(server.send, max_traces=1000, linger_s=0.3)
    results = submit_all(batcher, [["a"], ["b"], ["c"]])
    assert all(isinstance(result, ConnectionError) for result in results)
    assert len(server.requests) <= 2  # not resent writer by writer: each resend would wait out the retries


def test_a_lone_writer_is_sent_after_the_linger() -> None:
    server = Server()
    batcher = SpanBatcher(server.send, max_traces=100, linger_s=0.05)
    batcher.submit(["x"], 1)
    assert server.requests == [["x"]]
    with pytest.raises(ConnectionError):
        server.down = True
        batcher.submit(["y"], 1)
