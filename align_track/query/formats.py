"""The one list of output formats: each format's name, suffixes and writers, for exports and reports alike.

The CLI's ``--format`` choices, the TUI report pane's path check and both writers (:mod:`.export` one row per
run, :mod:`.report` a pivot) read :data:`FORMATS`, so adding a format is one entry here. A format without a
pivot writer is offered for exports only.

Stdlib only at import (openpyxl is loaded when an xlsx is written), so the CLI can build its choices cheaply.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TableWriter = Callable[[Path, Sequence[str], Sequence[Sequence[Any]]], None]
Pivot = Any  # align_track.query.report.Pivot, which imports this module (so not imported back here)
PivotWriter = Callable[[Pivot, Path, str], None]

_XLSX_MAX_CELL = 32767


class ExportError(ValueError):
    """The output cannot be written as asked (unknown format, missing folder); the CLI exits 2."""


@dataclass(frozen=True)
class Format:
    """An output format: ``write_table`` writes a header and rows (exports); ``write_pivot`` a report, if any."""

    name: str
    suffixes: tuple[str, ...]
    write_table: TableWriter
    write_pivot: PivotWriter | None = None

    @property
    def pivot(self) -> bool:
        return self.write_pivot is not None


# --------------------------------------------------------------------------- table writers


def write_delimited(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]], sep: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, delimiter=sep, lineterminator="\n")
        out.writerow(header)
        out.writerows([["" if v is None else v for v in row] for row in rows])


def write_json(path: Path, payload: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, ensure_ascii=False, allow_nan=False, default=str)
        fh.write("\n")


def _csv_table(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    write_delimited(path, header, rows, ",")


def _tsv_table(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    write_delimited(path, header, rows, "\t")


def _json_table(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    write_json(path, [dict(zip(header, row, strict=True)) for row in rows])


def _xlsx_table(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "runs"
    fill_sheet(ws, header, rows)
    wb.save(path)


# --------------------------------------------------------------------------- pivot writers


def _csv_pivot(pivot: Pivot, path: Path, subtitle: str) -> None:
    write_delimited(path, [pivot.corner, *map(str, pivot.table.columns)], pivot.cells(), ",")


def _json_pivot(pivot: Pivot, path: Path, subtitle: str) -> None:
    columns = [str(c) for c in pivot.table.columns]
    payload = {
        "title": pivot.title,
        "agg": pivot.agg,
        "rows": pivot.rows,
        "cols": pivot.cols,
        "values": pivot.values,
        "runs": len(pivot.runs),
        "note": subtitle,
        "columns": columns,
        "table": {row[0]: dict(zip(columns, row[1:], strict=True)) for row in pivot.cells()},
    }
    write_json(path, payload)


def _xlsx_pivot(pivot: Pivot, path: Path, subtitle: str) -> None:
    """A formatted 'report' sheet (title, note, the pivot) and a 'runs' sheet with the runs behind it."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "report"
    ws["A1"] = pivot.title
    ws["A1"].font = Font(bold=True, size=13)
    ws["A2"] = subtitle or f"{len(pivot.runs)} runs"
    ws["A2"].data_type = "s"
    number_format = "0" if pivot.agg == "count" else "0.000"
    fill_sheet(ws, [pivot.corner, *map(str, pivot.table.columns)], pivot.cells(), first_row=4,
               freeze_cols=1, number_format=number_format)
    fill_sheet(wb.create_sheet("runs"), *pivot.runs_table())
    wb.save(path)


# --------------------------------------------------------------------------- the registry

FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("csv", (".csv",), _csv_table, _csv_pivot),
    Format("tsv", (".tsv",), _tsv_table),
    Format("json", (".json",), _json_table, _json_pivot),
    Format("xlsx", (".xlsx",), _xlsx_table, _xlsx_pivot),
)}
EXPORT_FORMATS = tuple(FORMATS)
REPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.pivot)


def format_for(path: str | Path, fmt: str | None, choices: Sequence[str] = EXPORT_FORMATS) -> str:
    """``fmt`` if given, else the one whose suffixes hold the output's suffix; an ExportError if neither names
    one of ``choices``."""
    if fmt:
        fmt = fmt.lower()
        if fmt not in choices:
            raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(choices)}")
        return fmt
    suffix = Path(path).suffix.lower()
    for name in choices:
        if suffix in FORMATS[name].suffixes:
            return name
    raise ExportError(
        f"cannot tell the format of {str(path)!r} from its suffix; use --format ({', '.join(choices)})"
    )


def suffixes(choices: Sequence[str]) -> list[str]:
    """Every suffix of ``choices``, for messages and placeholders (".xlsx, .csv or .json")."""
    return [s for name in choices for s in FORMATS[name].suffixes]


# --------------------------------------------------------------------------- xlsx helpers


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
