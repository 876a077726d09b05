"""Standard output for every command: a write that fails is one line on stderr and exit 2, never a traceback.

``align-track search > /dev/full`` once printed a 27-line ``OSError`` traceback, and output still buffered when
the command returned failed only at interpreter exit (or not at all). While a command runs, ``sys.stdout`` is a
thin guard over the real stream: a failed write or flush becomes :class:`StdoutFailed`, which no command's
``except OSError`` mistakes for a problem with its own files; what is still buffered is flushed before the
command returns, so that failure is caught too. A closed pipe (``| head -1``, EPIPE) stays what click makes of
it: a quiet exit.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

STDOUT_FAILED_EXIT = 2
"""As for any other output the command could not write (``-o PATH``): the command did not do what was asked."""


class StdoutFailed(Exception):
    """Standard output refused a write (full disk, /dev/full, I/O error); not an OSError on purpose."""

    def __init__(self, error: OSError):
        super().__init__(error.strerror or str(error))
        self.error = error


class _Guarded:
    """A stream whose failed writes raise :class:`StdoutFailed` (EPIPE as it is); everything else passes through."""

    def __init__(self, stream: Any, owner: _Guarded | None = None):
        self._stream = stream
        self._owner = owner or self
        self.failed = False

    def write(self, data: Any) -> int:
        try:
            return self._stream.write(data)
        except OSError as exc:
            raise self._failure(exc) from None

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._failure(exc) from None

    @property
    def buffer(self) -> _Guarded:
        """The binary stream beneath (an xlsx or png to a pipe), guarded the same way."""
        return _Guarded(self._stream.buffer, owner=self._owner)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, tell...: the real stream's
        return getattr(self._stream, name)

    def _failure(self, exc: OSError) -> OSError | StdoutFailed:
        self._owner.failed = True
        return exc if exc.errno == errno.EPIPE else StdoutFailed(exc)


class GuardedGroup(click.Group):
    """The ``align-track`` group: every command, ``--help`` and ``--version`` run with standard output guarded."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        with guarded_stdout():
            return super().main(*args, **kwargs)


@contextlib.contextmanager
def guarded_stdout() -> Iterator[None]:
    """Run with ``sys.stdout`` guarded; a failed write ends the command with one line on stderr (exit 2).

    A closed pipe is left to click (which exits 1 without a word), and is kept quiet at interpreter exit too."""
    real = sys.stdout
    guarded = _Guarded(real)
    sys.stdout = guarded  # type: ignore[assignment]
    try:
        try:
            yield
        finally:
            sys.stdout = real
            try:
                guarded.flush()  # what is still buffered fails now, not at interpreter exit
            except OSError:  # EPIPE: the reader went away after the last write
                _discard(real)
                sys.exit(1)
            if guarded.failed:  # click already handled a closed pipe: drop what the pipe refused
                _discard(real)
    except StdoutFailed as exc:
        _discard(real)
        with contextlib.suppress(OSError):
            click.echo(f"error: cannot write to standard output: {exc}", err=True)
        sys.exit(STDOUT_FAILED_EXIT)


def _discard(stream: IO[str]) -> None:
    """Point the failed descriptor at /dev/null, so the bytes still buffered in ``stream`` (which the device
    refused) do not fail again, with an "Exception ignored" message, when the interpreter flushes at exit."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):  # not a real descriptor (click's test runner): nothing to do
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def stdout_binary() -> IO[bytes]:
    """Standard output for bytes (an xlsx or png to a pipe), after what was printed as text."""
    sys.stdout.flush()
    return sys.stdout.buffer
