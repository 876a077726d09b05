"""Export runs as a flat table (one row per run) in any format of :mod:`align_track.query.formats`, atomically.

A half-written export must never replace a good one (a spreadsheet left open, a Ctrl-C, a
full disk), so a writer to a regular file (or a new path) goes to a temp file beside it and ``os.replace``s
it. Anything else is written as it is: a FIFO or a character device (``/dev/null``, ``/dev/stdout``) is opened
and written straight, never replaced by a file; a symlink is followed to its target (a dangling one creates
the path it names). :func:`output_target`, :func:`atomic_write` and :func:`export_table` are shared with
:mod:`align_track.query.report`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from align_track.query.formats import FORMATS, ExportError

if TYPE_CHECKING:
    import pandas

    from align_track.store.runs_reader import RunRow

LEAD_COLUMNS = ("run_id", "run_name", "status", "start_time")
_SKIPPED_TAGS = ("tags.mlflow.runName",)  # repeated as run_name


# --------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def output_target(path: str | Path | IO[bytes] | IO[str]) -> Iterator[Path | IO[bytes] | IO[str]]:
    """What a writer should write ``path``'s content to: a temp path that replaces a regular file (or creates a
    new one) atomically, or, for a FIFO or character device (and whatever /dev/stdout, /dev/fd/N or
    /proc/self/fd/N lead to), the path itself opened for writing (a FIFO waits for its reader, as
    ``cat > fifo`` does). A stream is given back as it is. Symlinks are followed.

    Raises ExportError for a directory (or a symlink to one), a block device, a socket or a missing folder; a
    failed write (``/dev/full``: no space left) raises the OSError, with nothing replaced.
    """
    if hasattr(path, "write"):
        yield path  # type: ignore[misc]
        return
    given = Path(path)  # type: ignore[arg-type]
    real, mode = _resolve(given)
    if (mode is not None and (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode))) or _fd_alias(given, real):
        with open(given, "wb") as stream:  # as given: /dev/stdout reaches the pipe itself, not "pipe:[...]"
            yield stream
        return
    with atomic_write(real) as tmp:
        yield tmp


_FD_ALIAS = re.compile(r"/dev/(std(out|err)|fd/\d+)|/proc/(self|\d+)/fd/\d+")


def _fd_alias(given: Path, real: Path) -> bool:
    """/dev/stdout, /dev/fd/N, /proc/self/fd/N: whatever they lead to (even the file a shell redirected to) is
    written straight, as every tool does, never replaced behind the shell's back."""
    return _FD_ALIAS.fullmatch(os.path.abspath(given)) is not None or str(real).startswith("/proc/")


def _resolve(path: Path) -> tuple[Path, int | None]:
    """``path`` with every symlink followed (a dangling one to the path it names) and the mode of what is there
    (None: nothing yet); an ExportError for what no export may be written to."""
    real = Path(os.path.realpath(path))
    try:
        mode = os.stat(path).st_mode  # the path as given: /proc's links to a pipe resolve only this way
    except FileNotFoundError:
        return real, None
    via = f" (via a symlink to {real})" if real != Path(os.path.abspath(path)) else ""
    if stat.S_ISDIR(mode):
        raise ExportError(f"is a directory{via}; give a file name")
    if stat.S_ISBLK(mode):
        raise ExportError(f"is a block device{via}; refusing to write over a disk")
    if stat.S_ISSOCK(mode):
        raise ExportError(f"is a socket{via}, which cannot be opened as a file")
    return real, mode


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path`` in one step.

    On any error (or Ctrl-C) the temp file is removed and an existing ``path`` is left as
    it was. The result gets the permissions a plain ``open(path, 'w')`` would have given.
    A symlink is followed (its target is replaced, the link kept); anything there that is not a regular file
    (a device, a FIFO, a directory) is an ExportError: :func:`output_target` writes those straight.
    """
    target, mode = _resolve(Path(path))
    if mode is not None and not stat.S_ISREG(mode):
        raise ExportError("not a regular file; it would be replaced by one")
    folder = target.parent
    if not folder.is_dir():
        raise ExportError(f"folder does not exist: {folder}")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _target_mode(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _target_mode(target: Path) -> int:
    """Keep an existing file's mode; a new file gets 0666 minus the umask (mkstemp makes 0600)."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


# --------------------------------------------------------------------------- the export table


BOOKKEEPING_PREFIX = "tags.align_track."
"""align-track's own tags (claim, fingerprint, key...): how ingest keeps track, not data to analyse."""


def export_columns(frame: pandas.DataFrame, all_columns: bool = False) -> list[str]:
    """run_id, run_name, status, start_time, then every params.*, metrics.* and tags.* column; align-track's
    bookkeeping tags only with ``all_columns``."""
    cols = [c for c in LEAD_COLUMNS if c in frame.columns]
    for prefix in ("params.", "metrics.", "tags."):
        cols += sorted(c for c in frame.columns if c.startswith(prefix) and c not in _SKIPPED_TAGS
                       and (all_columns or not c.startswith(BOOKKEEPING_PREFIX)))
    return cols


def export_table(frame: pandas.DataFrame, columns: Sequence[str] | None = None) -> tuple[list[str], list[list[Any]]]:
    """Header and plain-Python rows (ISO times, None for missing) of ``columns`` (default: the export's)."""
    columns = list(columns) if columns is not None else export_columns(frame)
    rows = [[_plain(value) for value in record] for record in frame[columns].itertuples(index=False, name=None)]
    return columns, rows


def _plain(value: Any) -> Any:
    """JSON/CSV-ready: NaN and NaT become None, timestamps ISO strings, numpy scalars Python ones."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)
    if hasattr(value, "isoformat"):  # pandas Timestamp (NaT compares unequal to itself)
        return None if value != value else value.isoformat()
    if hasattr(value, "item"):  # numpy integer or bool
        return value.item()
    return value


def write_export(frame: pandas.DataFrame, path: str | Path | IO[bytes] | IO[str], fmt: str,
                 all_columns: bool = False, raw_cells: bool = False) -> int:
    """Write one row per run of ``frame`` to ``path`` (see :func:`output_target`) as ``fmt`` (a name in FORMATS);
    returns the number of rows. ``raw_cells``: csv/tsv text cells as they are, even formula-like ones."""
    header, rows = export_table(frame, export_columns(frame, all_columns))
    with output_target(path) as target:
        FORMATS[fmt].write_table(target, header, rows, raw_cells=raw_cells)
    return len(rows)


# --------------------------------------------------------------------------- straight from the runs


def run_export_columns(runs: Sequence[RunRow], all_columns: bool = False) -> list[str]:
    """``export_columns`` of ``rows_to_frame(runs)``, found without building the frame."""
    cols = list(LEAD_COLUMNS)
    for prefix, attr in (("params.", "params"), ("metrics.", "metrics"), ("tags.", "tags")):
        keys: dict[str, None] = {}
        for run in runs:
            keys.update(dict.fromkeys(getattr(run, attr)))
        cols += sorted(c for c in (prefix + k for k in keys) if c not in _SKIPPED_TAGS
                       and (all_columns or not c.startswith(BOOKKEEPING_PREFIX)))
    return cols


def run_export_rows(runs: Iterable[RunRow], columns: Sequence[str]) -> Iterator[list[Any]]:
    """``export_table``'s rows for ``columns`` of ``run_export_columns``, one run at a time: the values the
    frame path gives (ISO UTC start times, None for missing or NaN), without pandas."""
    lead = [c for c in columns if c in LEAD_COLUMNS]
    if lead != list(LEAD_COLUMNS) or columns[: len(lead)] != lead:
        raise ValueError(f"export columns must start with {', '.join(LEAD_COLUMNS)}")
    fields = []
    for col in columns[len(lead):]:
        kind, key = col.split(".", 1)
        fields.append((kind, key))
    params = [k for kind, k in fields if kind == "params"]
    metrics = [k for kind, k in fields if kind == "metrics"]
    tags = [k for kind, k in fields if kind == "tags"]
    if [f"params.{k}" for k in params] + [f"metrics.{k}" for k in metrics] + [f"tags.{k}" for k in tags] \
            != list(columns[len(lead):]):
        raise ValueError("export columns must be params.*, then metrics.*, then tags.*")
    for run in runs:
        p, m, t = run.params.get, run.metrics.get, run.tags.get
        row = [run.run_id, run.run_name, run.status, iso_utc(run.start_time)]
        row += [p(k) for k in params]
        row += [None if (v := m(k)) is None or v != v else float(v) for k in metrics]
        row += [t(k) for k in tags]
        yield row


def iso_utc(ms: int | None) -> str | None:
    """Epoch milliseconds as pandas writes the UTC timestamp: ``2025-06-10T08:00:00.123000+00:00``."""
    if ms is None:
        return None
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat()


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def write_run_export(runs: Sequence[RunRow], target: str | Path | IO[bytes] | IO[str], fmt: str,
                     all_columns: bool = False, raw_cells: bool = False) -> int:
    """Write one row per run as ``fmt``, streamed as the rows are made: to an open stream as it is, to a path as
    :func:`output_target` says (atomically for a file). Returns the number of rows. The same bytes as
    ``write_export(rows_to_frame(runs), ...)``."""
    header = run_export_columns(runs, all_columns)
    rows = run_export_rows(runs, header)
    with output_target(target) as out:
        FORMATS[fmt].write_table(out, header, rows, raw_cells=raw_cells)
    return len(runs)
