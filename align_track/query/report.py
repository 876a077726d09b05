"""Pivot reports over runs (e.g. mean seconds per scene, alignment target x ADM) and their writers.

The pivot is computed with a plain groupby on relabelled columns rather than
``pandas.pivot_table``, so rows, columns and values may be any columns (even the same
one) and runs missing a label still count, under ``(none)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from align_track.query.analysis import CurvePoint
from align_track.query.export import (
    ExportError,
    atomic_write,
    export_table,
    fill_sheet,
    write_delimited,
    write_json,
)
from align_track.query.select import QueryError, resolve_column, short_name
from align_track.schema import METRIC_AVG_SECONDS, METRIC_ORACLE_HIT_RATE, SCORE_PREFIX, RunLike

if TYPE_CHECKING:
    import pandas

AGGREGATIONS = ("mean", "median", "min", "max", "count")
REPORT_FORMATS = ("xlsx", "csv", "json", "png", "svg")
IMAGE_FORMATS = ("png", "svg")
"""Formats that hold the alignment curve plot rather than the pivot."""
DEFAULT_ROWS = "alignment_target_id"
DEFAULT_COLS = "adm"
DEFAULT_VALUES = METRIC_AVG_SECONDS
MISSING_LABEL = "(none)"


@dataclass
class Pivot:
    """An aggregated table plus the runs it was computed from."""

    table: pandas.DataFrame
    """Index: row labels; columns: column labels; cells: the aggregate (NaN where no run has a value)."""
    rows: str
    cols: str
    values: str
    agg: str
    runs: pandas.DataFrame

    @property
    def title(self) -> str:
        return (f"{self.agg} of {short_name(self.values)} by {short_name(self.rows)} (rows)"
                f" x {short_name(self.cols)} (columns)")

    @property
    def corner(self) -> str:
        return f"{short_name(self.rows)} \\ {short_name(self.cols)}"

    def cells(self) -> list[list[Any]]:
        """Rows of [label, value, ...] with None for empty cells (counts as ints)."""
        out = []
        for label, values in zip(self.table.index, self.table.itertuples(index=False, name=None), strict=True):
            out.append([label] + [_cell(v, self.agg) for v in values])
        return out


def _cell(value: Any, agg: str) -> float | int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value) if agg == "count" else float(value)


def _labels(series: pandas.Series) -> pandas.Series:
    """Group labels as text; a missing value is its own group rather than dropped."""
    return series.map(lambda v: MISSING_LABEL if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))


def build_pivot(frame: pandas.DataFrame, rows: str = DEFAULT_ROWS, cols: str = DEFAULT_COLS,
                values: str = DEFAULT_VALUES, agg: str = "mean") -> Pivot:
    """Aggregate ``values`` by ``rows`` x ``cols``; names resolve as in :func:`resolve_column`."""
    import pandas as pd

    if agg not in AGGREGATIONS:
        raise QueryError(f"unknown aggregation {agg!r}; choose one of {', '.join(AGGREGATIONS)}")
    row_col, col_col, val_col = (resolve_column(frame.columns, name) for name in (rows, cols, values))
    raw = frame[val_col]
    numbers = raw if pd.api.types.is_numeric_dtype(raw) else pd.to_numeric(raw, errors="coerce")
    if agg != "count" and raw.notna().any() and numbers.notna().sum() == 0:
        example = raw.dropna().iloc[0]
        raise QueryError(f"column {short_name(val_col)!r} is not numeric (e.g. {example!r}); "
                         "pick a metric for --values or use --agg count")
    if agg == "count":  # runs that have a value, numeric or not
        numbers = raw.notna().astype("float64").where(raw.notna())
    data = pd.DataFrame({"r": _labels(frame[row_col]), "c": _labels(frame[col_col]),
                         "v": numbers.astype("float64")})
    table = data.groupby(["r", "c"])["v"].agg(agg).unstack("c")
    table = table.reindex(index=sorted(table.index, key=_label_key), columns=sorted(table.columns, key=_label_key))
    if agg == "count":
        table = table.fillna(0)
    table.index.name, table.columns.name = None, None
    behind = ["run_id", "run_name", "status", "start_time"]
    behind += [c for c in dict.fromkeys((row_col, col_col, val_col)) if c not in behind]
    return Pivot(table=table, rows=row_col, cols=col_col, values=val_col, agg=agg, runs=frame[behind])


def _label_key(label: str) -> tuple[bool, str]:
    return (label == MISSING_LABEL, label)


def default_values(runs: Sequence[RunLike]) -> tuple[str, str]:
    """The metric a report pivots when none is asked for, and a note saying why if it is not timing.

    Runs scored by a scoring server keep the timing default; when no run has a ``score.*`` metric but some
    have an oracle hit rate (from the scenes' own KDMA values), that is what a reader wants to see first.
    """
    if any(k.startswith(SCORE_PREFIX) for run in runs for k in run.metrics):
        return DEFAULT_VALUES, ""
    if any(METRIC_ORACLE_HIT_RATE in run.metrics for run in runs):
        return METRIC_ORACLE_HIT_RATE, (f"no run has a {SCORE_PREFIX}* metric: pivoting {METRIC_ORACLE_HIT_RATE} "
                                        f"instead of {DEFAULT_VALUES}")
    return DEFAULT_VALUES, ""


# --------------------------------------------------------------------------- writers


def write_report(pivot: Pivot, path: str | Path, fmt: str, subtitle: str = "",
                 curve: dict[str, list[CurvePoint]] | None = None) -> None:
    """Write the pivot as xlsx (with a 'runs' sheet, and an alignment-curve chart sheet when ``curve``
    has points), csv or json; or, for png/svg, the alignment curve as an image. Atomically."""
    if fmt in IMAGE_FORMATS:
        write_curve_image(curve or {}, path, fmt, subtitle)
        return
    with atomic_write(path) as tmp:
        if fmt == "xlsx":
            _write_xlsx(pivot, tmp, subtitle, curve)
        else:
            {"csv": _write_csv, "json": _write_json}[fmt](pivot, tmp, subtitle)


def _write_csv(pivot: Pivot, path: Path, subtitle: str) -> None:
    write_delimited(path, [pivot.corner, *map(str, pivot.table.columns)], pivot.cells(), ",")


def _write_json(pivot: Pivot, path: Path, subtitle: str) -> None:
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


def _write_xlsx(pivot: Pivot, path: Path, subtitle: str, curve: dict[str, list[CurvePoint]] | None = None) -> None:
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
    header, rows = export_table(pivot.runs, list(pivot.runs.columns))
    fill_sheet(wb.create_sheet("runs"), header, rows)
    if curve and any(curve.values()):
        _add_curve_sheets(wb, curve)
    wb.save(path)


# --------------------------------------------------------------------------- the alignment curve

CURVE_TITLE = "Alignment curve: mean true KDMA value of the chosen choices vs target value"
CURVE_TITLE_SHORT = "Alignment curve (the diagonal is perfect alignment)"
CURVE_X = "target value"
CURVE_Y = "chosen mean (true KDMA value)"
DIAGONAL = "perfect alignment"


def curve_rows(curve: dict[str, list[CurvePoint]]) -> list[list[Any]]:
    """[adm, kdma, target value, chosen mean, scenes, runs] per point, grouped by ADM."""
    return [[p.adm, p.kdma, p.target, p.chosen_mean, p.scenes, p.runs] for points in curve.values() for p in points]


def _add_curve_sheets(wb: Any, curve: dict[str, list[CurvePoint]]) -> None:
    """An 'alignment curve' chart sheet right after the pivot, and a 'curve data' sheet with its points."""
    from openpyxl.chart import Reference, ScatterChart, Series

    data = wb.create_sheet("curve data", 1)
    fill_sheet(data, ["adm", "kdma", CURVE_X, CURVE_Y, "scenes", "runs"], curve_rows(curve), number_format="0.000")
    chart = ScatterChart()
    chart.title = CURVE_TITLE
    chart.style = 13
    chart.x_axis.title, chart.y_axis.title = CURVE_X, CURVE_Y
    for axis in (chart.x_axis, chart.y_axis):
        axis.scaling.min, axis.scaling.max = 0, 1
        axis.delete = False
    row = 2
    for adm, points in curve.items():
        last = row + len(points) - 1
        series = Series(Reference(data, min_col=4, min_row=row, max_row=last),
                        Reference(data, min_col=3, min_row=row, max_row=last), title=adm)
        series.marker.symbol = "circle"
        chart.series.append(series)
        row = last + 1
    # the diagonal: two points (0, 0) and (1, 1) below the data
    base = row + 1
    data.cell(base, 1, DIAGONAL)
    for i, v in enumerate((0.0, 1.0)):
        data.cell(base + i, 3, v)
        data.cell(base + i, 4, v)
    diagonal = Series(Reference(data, min_col=4, min_row=base, max_row=base + 1),
                      Reference(data, min_col=3, min_row=base, max_row=base + 1), title=DIAGONAL)
    diagonal.marker.symbol = "none"
    diagonal.graphicalProperties.line.dashStyle = "dash"
    diagonal.graphicalProperties.line.solidFill = "808080"
    chart.series.append(diagonal)
    sheet = wb.create_chartsheet("alignment curve", 1)
    sheet.add_chart(chart)


def write_curve_image(curve: dict[str, list[CurvePoint]], path: str | Path, fmt: str, subtitle: str = "") -> None:
    """The alignment curve as a png or svg (matplotlib, imported only here); atomically.

    Colour tells the ADM, marker shape the KDMA; a line joins one ADM's points of one KDMA. Markers are
    hollow and shrink series by series, so ADMs at the same point stay visible.
    """
    if not any(curve.values()):
        raise ExportError("no run has an alignment curve point (a scalar target and kdma.<name>.chosen_mean); "
                          "ingest runs with true KDMA values, or re-ingest runs ingested before these metrics")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    kdmas = sorted({p.kdma for points in curve.values() for p in points})
    shapes = dict(zip(kdmas, "osD^vP*Xh<>" * (len(kdmas) // 11 + 1), strict=False))
    fig = Figure(figsize=(7.5, 7.5), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.55", linewidth=1)
    colours = matplotlib.colormaps["tab10"].colors
    handles = [Line2D([], [], linestyle="--", color="0.55", label=DIAGONAL)]
    for i, (adm, points) in enumerate(curve.items()):
        colour = colours[i % len(colours)]
        size = max(5.0, 11.0 - 1.5 * i)
        for kdma in kdmas:
            mine = [p for p in points if p.kdma == kdma]
            if mine:
                ax.plot([p.target for p in mine], [p.chosen_mean for p in mine], color=colour, linewidth=1.4,
                        marker=shapes[kdma], markersize=size, fillstyle="none", markeredgewidth=1.6)
        handles.append(Line2D([], [], color=colour, linewidth=2, label=adm))
    if len(kdmas) > 1:
        handles += [Line2D([], [], color="0.3", linestyle="none", marker=shapes[k], fillstyle="none", label=k)
                    for k in kdmas]
    ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel=CURVE_X, ylabel=CURVE_Y, aspect="equal")
    ax.set_title(f"{CURVE_TITLE_SHORT}\n{subtitle}" if subtitle else CURVE_TITLE_SHORT, fontsize=10)
    ax.grid(True, linewidth=0.4, alpha=0.5)
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format=fmt)


# --------------------------------------------------------------------------- text rendering


def plain_table(header: Sequence[str], rows: Sequence[Sequence[Any]], numbers: str = "{:.3f}") -> str:
    """A left-aligned text table (numbers right-aligned), for pipes, logs and previews."""
    text = [[_text(v, numbers) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(header)]
    right = [any(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows)
             for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in text)])


def _text(value: Any, numbers: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return numbers.format(value)
    return str(value)


def preview(pivot: Pivot, max_rows: int = 10, max_cols: int = 6) -> str:
    """The top-left corner of the pivot as text, saying how much was cut."""
    columns = [str(c) for c in pivot.table.columns]
    cells = pivot.cells()
    text = plain_table([pivot.corner, *columns[:max_cols]], [row[: max_cols + 1] for row in cells[:max_rows]])
    cut = []
    if len(cells) > max_rows:
        cut.append(f"{len(cells) - max_rows} more rows")
    if len(columns) > max_cols:
        cut.append(f"{len(columns) - max_cols} more columns")
    return text + (f"\n... {', '.join(cut)}" if cut else "")
