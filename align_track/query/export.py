"""Export runs as a flat table (one row per run) in any format of :mod:`align_track.query.formats`, atomically.

A half-written export must never replace a good one (a spreadsheet left open, a Ctrl-C, a
full disk), so every writer goes to a temp file beside the target and ``os.replace``s it.
:func:`atomic_write` and :func:`export_table` are shared with :mod:`align_track.query.report`.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from align_track.query.formats import FORMATS, ExportError

if TYPE_CHECKING:
    import pandas

LEAD_COLUMNS = ("run_id", "run_name", "status", "start_time")
_SKIPPED_TAGS = ("tags.mlflow.runName",)  # repeated as run_name


# --------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path`` in one step.

    On any error (or Ctrl-C) the temp file is removed and an existing ``path`` is left as
    it was. The result gets the permissions a plain ``open(path, 'w')`` would have given.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
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


def write_export(frame: pandas.DataFrame, path: str | Path, fmt: str, all_columns: bool = False) -> int:
    """Write one row per run of ``frame`` to ``path`` as ``fmt`` (a name in FORMATS); returns the number of rows."""
    header, rows = export_table(frame, export_columns(frame, all_columns))
    with atomic_write(path) as tmp:
        FORMATS[fmt].write_table(tmp, header, rows)
    return len(rows)
