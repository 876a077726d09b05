"""The one list of output formats: each format's name, suffixes and writers, for exports and reports alike.

The CLI's ``--format`` choices, the TUI report pane's path check and both writers (:mod:`.export` one row per
run, :mod:`.report` a pivot) read :data:`FORMATS`, so adding a format is one entry here. A format without a
pivot writer is offered for exports only.

Stdlib only at import (openpyxl is loaded when an xlsx is written), so the CLI can build its choices cheaply.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from align_track.query.xlsx import fill_sheet, save_workbook, xlsx_value

TableWriter = Callable[..., None]
"""``(target, header, rows, raw_cells=False)``: writes a header and rows (any iterable: they are written as they
come) to a path or an open stream (binary for every format; text too for csv/tsv/json), so an export streams to
standard output or a FIFO without a temp file. ``raw_cells``: see :func:`neutralise`."""
Pivot = Any  # align_track.query.report.Pivot, which imports this module (so not imported back here)
Curve = Any  # {adm: [align_track.query.analysis.CurvePoint]}: the alignment curve, for charts and images
PivotWriter = Callable[..., None]
"""``(pivot, target, subtitle, curve, raw_cells=False)``: a report to a path or an open (binary) stream."""

class ExportError(ValueError):
    """The output cannot be written as asked (unknown format, missing folder); the CLI exits 2."""


@dataclass(frozen=True)
class Format:
    """An output format: ``write_table`` writes a header and rows (exports); ``write_pivot`` a report, if any."""

    name: str
    suffixes: tuple[str, ...]
    write_table: TableWriter | None
    write_pivot: PivotWriter | None = None
    image: bool = False
    """The report is the alignment-curve plot, not the pivot."""
    binary: bool = False
    """Not text: refused on a terminal when written to standard output."""

    @property
    def pivot(self) -> bool:
        return self.write_pivot is not None


# --------------------------------------------------------------------------- spreadsheet formulas

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these is a formula to Excel, LibreOffice Calc and Google Sheets (OWASP's list)."""
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
"""Text a spreadsheet reads as a number and nothing else (``-0.5``, ``+3``, ``1e-3``): no formula hides in it."""


def neutralise(cell: Any) -> Any:
    """A csv/tsv cell a spreadsheet will not run as a formula: text starting with ``=``, ``+``, ``-``, ``@``, tab
    or CR gets a leading ``'`` (OWASP's advice: the spreadsheet shows the text, the quote marks it as text).

    Only text is touched: numbers (metrics) are written as numbers, and text that is a plain number (a param
    ``-0.5``) is left as it is, since a spreadsheet reads it as that number, never as a formula.
    """
    if type(cell) is str and cell.startswith(FORMULA_TRIGGERS) and _PLAIN_NUMBER.fullmatch(cell) is None:
        return "'" + cell
    return cell


# --------------------------------------------------------------------------- table writers


@contextmanager
def _text_out(target: Path | IO[str] | IO[bytes], newline: str | None = None) -> Iterator[IO[str]]:
    """``target`` itself when it is an open text stream, a UTF-8 text layer over an open binary stream (left
    open), else the file at that path opened for writing."""
    if hasattr(target, "write"):
        if hasattr(target, "encoding"):  # a text stream (sys.stdout, StringIO)
            yield target  # type: ignore[misc]
            return
        text = io.TextIOWrapper(target, encoding="utf-8", newline=newline)  # type: ignore[arg-type]
        try:
            yield text
            text.flush()
        finally:
            text.detach()  # the caller closes the binary stream
        return
    with open(target, "w", newline=newline, encoding="utf-8") as fh:  # type: ignore[arg-type]
        yield fh


def write_delimited(path: Path | IO[str] | IO[bytes], header: Sequence[str], rows: Iterable[Sequence[Any]], sep: str,
                    raw_cells: bool = False) -> None:
    """CSV/TSV; None is an empty cell (the csv module's own rule), floats as Python writes them, and text cells
    a spreadsheet would run as a formula neutralised (:func:`neutralise`) unless ``raw_cells``. Lines end in
    ``\\n``; a cell holding a CR or LF is quoted."""
    with _text_out(path, newline="") as fh:
        out = csv.writer(_LineFeedEnds(fh), delimiter=sep, lineterminator="\r\n")
        if raw_cells:
            out.writerow(header)
            out.writerows(rows)
            return
        out.writerow([neutralise(h) for h in header])
        triggers = FORMULA_TRIGGERS  # inline test first: most cells are numbers or plain text (~2x faster)
        out.writerows([neutralise(c) if type(c) is str and c.startswith(triggers) else c for c in row]
                      for row in rows)


class _LineFeedEnds:
    """The csv module quotes a cell holding a lone CR only when CR is part of its line terminator; left bare, the
    CR ends the row for every reader (the csv module, pandas, spreadsheets). So rows are made with ``\\r\\n``
    and written with ``\\n`` (the writer hands over each row in one ``write``)."""

    __slots__ = ("write",)

    def __init__(self, stream: IO[str]):
        write = stream.write
        self.write = lambda line: write(line[:-2] + "\n")


def write_json(path: Path | IO[str] | IO[bytes], payload: Any) -> None:
    with _text_out(path) as fh:
        json.dump(payload, fh, indent=2, ensure_ascii=False, allow_nan=False, default=str)
        fh.write("\n")


def _csv_table(path: Path | IO[str], header: Sequence[str], rows: Iterable[Sequence[Any]],
               raw_cells: bool = False) -> None:
    write_delimited(path, header, rows, ",", raw_cells)


def _tsv_table(path: Path | IO[str], header: Sequence[str], rows: Iterable[Sequence[Any]],
               raw_cells: bool = False) -> None:
    write_delimited(path, header, rows, "\t", raw_cells)


def _json_table(path: Path | IO[str], header: Sequence[str], rows: Iterable[Sequence[Any]],
                raw_cells: bool = False) -> None:
    write_json(path, [dict(zip(header, row, strict=True)) for row in rows])


def _xlsx_table(path: Path | IO[bytes], header: Sequence[str], rows: Iterable[Sequence[Any]],
                raw_cells: bool = False) -> None:
    """Text cells are stored as strings (``fill_sheet``), never formulas, so there is nothing to neutralise."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "runs"
    fill_sheet(ws, header, rows)
    save_workbook(wb, path)


# --------------------------------------------------------------------------- pivot writers


def _csv_pivot(pivot: Pivot, path: Path, subtitle: str, curve: Curve = None, raw_cells: bool = False) -> None:
    write_delimited(path, [pivot.corner, *map(str, pivot.table.columns)], pivot.cells(), ",", raw_cells)


def _json_pivot(pivot: Pivot, path: Path, subtitle: str, curve: Curve = None, raw_cells: bool = False) -> None:
    columns = [str(c) for c in pivot.table.columns]
    payload = {
        "title": pivot.title,
        "agg": pivot.agg,
        "rows": pivot.rows,
        "cols": pivot.cols,
        "values": pivot.values,
        "runs": len(pivot.runs),
        "note": subtitle,
        "left_out": pivot.footnotes(),
        "columns": columns,
        "table": {row[0]: dict(zip(columns, row[1:], strict=True)) for row in pivot.cells()},
    }
    write_json(path, payload)


def _xlsx_pivot(pivot: Pivot, path: Path, subtitle: str, curve: Curve = None, raw_cells: bool = False) -> None:
    """A formatted 'report' sheet (title, note, the pivot), an alignment-curve chart sheet when the curve has
    points, and a 'runs' sheet with the runs behind it."""
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
    below = 4 + len(pivot.cells()) + 2
    for i, line in enumerate(pivot.footnotes()):  # what the table leaves out, and why
        ws.cell(below + i, 1, xlsx_value(line)).data_type = "s"
    fill_sheet(wb.create_sheet("runs"), *pivot.runs_table())
    if curve and any(curve.values()):
        from align_track.query.charts import add_curve_sheets

        add_curve_sheets(wb, curve)
    save_workbook(wb, path)


def _image_pivot(fmt: str) -> PivotWriter:
    def write(pivot: Pivot, path: Path, subtitle: str, curve: Curve = None, raw_cells: bool = False) -> None:
        from align_track.query.charts import write_curve_image

        write_curve_image(curve or {}, path, fmt, subtitle, pivot.curve_notes)

    return write


# --------------------------------------------------------------------------- the registry

FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("csv", (".csv",), _csv_table, _csv_pivot),
    Format("tsv", (".tsv",), _tsv_table),
    Format("json", (".json",), _json_table, _json_pivot),
    Format("xlsx", (".xlsx",), _xlsx_table, _xlsx_pivot, binary=True),
    Format("png", (".png",), None, _image_pivot("png"), image=True, binary=True),
    Format("svg", (".svg",), None, _image_pivot("svg"), image=True),
)}
EXPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.write_table is not None)
REPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.pivot)
IMAGE_FORMATS = tuple(name for name, f in FORMATS.items() if f.image)


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
