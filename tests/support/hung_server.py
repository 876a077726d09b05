"""A tracking server that hangs, and the real TUI in a pseudo-terminal, for fault tests.

:class:`HungServer` is a listening socket that accepts every connection and never sends a byte back
(optionally answering ``/health`` first, as a server whose API is wedged while its health check still
works). :func:`spawn_tui` runs ``align-track tui`` as a child on a pty of its own (its controlling
terminal, 100x30), so keys arrive as a terminal sends them and the process exits as it would for a user.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable

from tests.support.server_fixtures import align_track_cmd, cli_env

HEALTH_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK"


class HungServer:
    """Accepts connections and never answers (``/health`` answered when ``answer_health``); records request lines."""

    def __init__(self, answer_health: bool = False):
        self.answer_health = answer_health
        self.requests: list[str] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._held: list[socket.socket] = []
        self._closed = False
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, name="hung-server", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._held.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            line = data.split(b"\r\n", 1)[0].decode("latin-1")
            if line.split(" ")[0] in ("GET", "POST", "PATCH", "DELETE", "PUT"):
                self.requests.append(line)
                if self.answer_health and line.startswith("GET /health"):
                    conn.sendall(HEALTH_OK)  # and every other request on this connection hangs

    def api_requests(self) -> list[str]:
        return [r for r in self.requests if not r.startswith("GET /health")]

    def close(self) -> None:
        self._closed = True
        self._sock.close()
        for conn in self._held:
            conn.close()


class TuiProcess:
    """``align-track tui`` on its own pty; everything it draws is collected in :attr:`screen`."""

    def __init__(self, *args: str, size: tuple[int, int] = (100, 30)):
        env = cli_env(TERM="xterm-256color", COLUMNS=str(size[0]), LINES=str(size[1]))
        cmd = align_track_cmd("tui", *args)
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal; give it a size, then become the TUI
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
                os.execve(cmd[0], cmd, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.output = bytearray()
        self.status: int | None = None
        self._reader = threading.Thread(target=self._read, name="tui-pty", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO once the child has closed the terminal
                return
            if not data:
                return
            self.output.extend(data)

    @property
    def screen(self) -> str:
        return self.output.decode("utf-8", "replace")

    def press(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.exited():
                raise AssertionError(f"the TUI exited (status {self.status}) before {what}:\n{self.screen[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s:\n{self.screen[-2000:]}")
            time.sleep(0.05)

    def exited(self) -> bool:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                self._reader.join(5)
        return self.status is not None

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if still running after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.exited() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.status

    def kill(self) -> None:
        if not self.exited():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.status = -9
        try:
            os.close(self.fd)
        except OSError:
            pass
