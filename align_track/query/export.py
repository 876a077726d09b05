"""Export runs as a flat table (one row per run) to CSV, TSV, JSON or XLSX, written atomically.

A half-written export must never replace a good one (a spreadsheet left open, a Ctrl-C, a
full disk), so every writer goes to a temp file beside the target and ``os.replace``s it.
The sheet helpers here are shared with :mod:`align_track.query.report`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas

EXPORT_FORMATS = ("csv", "tsv", "json", "xlsx")
LEAD_COLUMNS = ("run_id", "run_name", "status", "start_time")
_SKIPPED_TAGS = ("tags.mlflow.runName",)  # repeated as run_name
_XLSX_MAX_CELL = 32767


class ExportError(ValueError):
    """The output cannot be written as asked (unknown format, missing folder); the CLI exits 2."""


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


def format_for(path: str | Path, fmt: str | None, choices: Sequence[str] = EXPORT_FORMATS) -> str:
    """``fmt`` if given, else the output's suffix; an ExportError if neither names a known format."""
    if fmt:
        fmt = fmt.lower()
        if fmt not in choices:
            raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(choices)}")
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in choices:
        return suffix
    raise ExportError(
        f"cannot tell the format of {str(path)!r} from its suffix; use --format ({', '.join(choices)})"
    )


def write_export(frame: pandas.DataFrame, path: str | Path, fmt: str, all_columns: bool = False) -> int:
    """Write one row per run of ``frame`` to ``path`` as ``fmt``; returns the number of rows."""
    header, rows = export_table(frame, export_columns(frame, all_columns))
    writers: dict[str, Callable[[Path], None]] = {
        "csv": lambda p: write_delimited(p, header, rows, ","),
        "tsv": lambda p: write_delimited(p, header, rows, "\t"),
        "json": lambda p: write_json(p, [dict(zip(header, row, strict=True)) for row in rows]),
        "xlsx": lambda p: write_xlsx_table(p, "runs", header, rows),
    }
    with atomic_write(path) as tmp:
        writers[fmt](tmp)
    return len(rows)


def write_delimited(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]], sep: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, delimiter=sep, lineterminator="\n")
        out.writerow(header)
        out.writerows([["" if v is None else v for v in row] for row in rows])


def write_json(path: Path, payload: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, ensure_ascii=False, allow_nan=False, default=str)
        fh.write("\n")


# --------------------------------------------------------------------------- xlsx helpers


def write_xlsx_table(path: Path, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = title
    fill_sheet(ws, header, rows)
    wb.save(path)


def fill_sheet(ws: Any, header: Sequence[str], rows: Sequence[Sequence[Any]], first_row: int = 1,
               freeze_cols: int = 0, number_format: str = "0.000") -> None:
    """A table at ``first_row``: bold header frozen in place, numbers formatted, columns sized to fit."""
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True)
    shade = PatternFill("solid", fgColor="DDE4EE")
    widths = [len(str(h)) for h in header]
    for j, name in enumerate(header, start=1):
        cell = ws.cell(row=first_row, column=j, value=xlsx_value(name))
        cell.data_type = "s"
        cell.font, cell.fill = bold, shade
    for i, row in enumerate(rows, start=first_row + 1):
        for j, value in enumerate(row, start=1):
            value = xlsx_value(value)
            cell = ws.cell(row=i, column=j, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # a value starting with '=' stays text, never a formula
            elif isinstance(value, float):
                cell.number_format = "0" if value.is_integer() and number_format == "0" else number_format
            widths[j - 1] = max(widths[j - 1], len(_shown(value)))
    for j, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(j)].width = min(max(width + 2, 8), 60)
    ws.freeze_panes = ws.cell(row=first_row + 1, column=freeze_cols + 1).coordinate


def xlsx_value(value: Any) -> Any:
    """A value openpyxl accepts: no control characters, within Excel's cell size, NaN as empty."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        return value[:_XLSX_MAX_CELL]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return str(value)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
