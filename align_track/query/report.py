"""Pivot reports over runs (e.g. mean seconds per scene, alignment target x ADM) and their writers.

The pivot is computed with a plain groupby on relabelled columns rather than
``pandas.pivot_table``, so rows, columns and values may be any columns (even the same
one) and runs missing a label still count, under ``(none)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from align_track.errors import printable
from align_track.query.analysis import CurvePoint
from align_track.query.export import export_table, output_target
from align_track.query.formats import FORMATS, REPORT_FORMATS, ExportError
from align_track.query.select import QueryError, resolve_column, short_name
from align_track.schema import METRIC_AVG_SECONDS, METRIC_ORACLE_HIT_RATE, SCORE_PREFIX, RunLike

if TYPE_CHECKING:
    import pandas

AGGREGATIONS = ("mean", "median", "min", "max", "count")
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
    dropped_rows: list[str] = field(default_factory=list)
    """Row labels left out: no run there has a value (a row of '-' says nothing)."""
    dropped_cols: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Why runs have no value (``coverage.missing_lines``), set by :func:`annotate`."""
    curve_notes: list[str] = field(default_factory=list)
    """Why runs have no point on the alignment curve (``coverage.curve_lines``), set by :func:`annotate`."""
    curve_runs: int | None = None
    """Runs with a point on the alignment curve (None: not counted)."""

    @property
    def title(self) -> str:
        return (f"{self.agg} of {short_name(self.values)} by {short_name(self.rows)} (rows)"
                f" x {short_name(self.cols)} (columns)")

    @property
    def corner(self) -> str:
        return f"{short_name(self.rows)} \\ {short_name(self.cols)}"

    def footnotes(self) -> list[str]:
        """What the table leaves out and why: the rows and columns dropped, then the runs without a value."""
        out = []
        for what, labels in (("row", self.dropped_rows), ("column", self.dropped_cols)):
            if labels:
                named = ", ".join(labels[:6]) + (", …" if len(labels) > 6 else "")
                out.append(f"{len(labels)} {what}{'s' if len(labels) != 1 else ''} with no "
                           f"{short_name(self.values)} not shown: {named}")
        return out + self.notes

    def runs_table(self) -> tuple[list[str], list[list[Any]]]:
        """Header and plain rows of the runs behind the pivot (the xlsx report's 'runs' sheet)."""
        return export_table(self.runs, list(self.runs.columns))

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
    dropped_rows: list[str] = []
    dropped_cols: list[str] = []
    if agg != "count" and table.notna().to_numpy().any():  # rows and columns of '-' only: said, not drawn
        dropped_rows = [str(r) for r in table.index[table.isna().all(axis=1)]]
        dropped_cols = [str(c) for c in table.columns[table.isna().all(axis=0)]]
        table = table.drop(index=dropped_rows, columns=dropped_cols)
    behind = ["run_id", "run_name", "status", "start_time"]
    behind += [c for c in dict.fromkeys((row_col, col_col, val_col)) if c not in behind]
    return Pivot(table=table, rows=row_col, cols=col_col, values=val_col, agg=agg, runs=frame[behind],
                 dropped_rows=dropped_rows, dropped_cols=dropped_cols)


def annotate(pivot: Pivot, runs: Sequence[RunLike]) -> Pivot:
    """Say what ``pivot`` (and the alignment curve beside it) leaves out of ``runs``, and why."""
    from align_track.query import coverage

    pivot.notes = coverage.missing_lines(runs, pivot.values)
    pivot.curve_notes = coverage.curve_lines(runs)
    pivot.curve_runs = sum(1 for run in runs if coverage.has_curve_point(run))
    return pivot


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


def write_report(pivot: Pivot, path: str | Path | IO[bytes], fmt: str, subtitle: str = "",
                 curve: dict[str, list[CurvePoint]] | None = None, raw_cells: bool = False) -> None:
    """Write the pivot in a format of REPORT_FORMATS (xlsx adds a 'runs' sheet and, when ``curve`` has points,
    an alignment-curve chart); png/svg write the alignment curve as an image. To a file atomically, to a FIFO,
    device or open binary stream straight (:func:`~align_track.query.export.output_target`). ``raw_cells``:
    csv text cells as they are, even formula-like ones."""
    spec = FORMATS[fmt]
    if spec.write_pivot is None:
        raise ExportError(f"{fmt} cannot hold a report; choose one of {', '.join(REPORT_FORMATS)}")
    if spec.image and not any((curve or {}).values()):
        raise ExportError("no run has an alignment curve point (a scalar target and kdma.<name>.chosen_mean); "
                          "ingest runs with true KDMA values, or re-ingest runs ingested before these metrics")
    with output_target(path) as target:
        spec.write_pivot(pivot, target, subtitle, curve, raw_cells=raw_cells)


# --------------------------------------------------------------------------- text rendering


def plain_table(header: Sequence[str], rows: Sequence[Sequence[Any]], numbers: str = "{:.3f}") -> str:
    """A left-aligned text table (numbers right-aligned), for pipes, logs and previews; labels from the runs
    (ADM names, folders) with control and bidi characters escaped, never interpreted by the terminal."""
    header = [printable(str(h)) for h in header]
    text = [[printable(_text(v, numbers)) for v in row] for row in rows]
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
