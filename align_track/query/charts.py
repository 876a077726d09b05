"""The alignment curve drawn: an xlsx chart sheet (openpyxl) and a png/svg image (matplotlib, imported lazily).

The points come from :func:`align_track.query.analysis.alignment_curve`; the registry's xlsx and image
writers call in here, so adding a chart never touches the CLI or the TUI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from align_track.query.analysis import CurvePoint, coincident, dodged
from align_track.query.xlsx import fill_sheet

CURVE_TITLE = "Alignment curve: mean true KDMA value of the chosen choices vs target value"
CURVE_TITLE_SHORT = "Alignment curve (the diagonal is perfect alignment)"
CURVE_X = "target value"
CURVE_Y = "chosen mean (true KDMA value)"
DIAGONAL = "perfect alignment"


def curve_rows(curve: dict[str, list[CurvePoint]]) -> list[list[Any]]:
    """[adm, kdma, target value, chosen mean, scenes, runs] per point, grouped by ADM."""
    return [[p.adm, p.kdma, p.target, p.chosen_mean, p.scenes, p.runs] for points in curve.values() for p in points]


def add_curve_sheets(wb: Any, curve: dict[str, list[CurvePoint]]) -> None:
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


def write_curve_image(curve: dict[str, list[CurvePoint]], path: str | Path, fmt: str, subtitle: str = "",
                      notes: list[str] | None = None) -> None:
    """The alignment curve as a png or svg (matplotlib, imported only here).

    Colour tells the ADM, marker shape the KDMA; a line joins one ADM's points of one KDMA. Points of several ADMs
    at one place are set side by side and labelled with how many share it, so none hides another; ``notes``
    (what was left out and why, ``coverage.curve_lines``) are printed below the legend.
    """
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    kdmas = sorted({p.kdma for points in curve.values() for p in points})
    shapes = dict(zip(kdmas, "osD^vP*Xh<>" * (len(kdmas) // 11 + 1), strict=False))
    xs = dodged(curve)
    text = "\n".join(textwrap.fill(f"left out: {line}", 110, subsequent_indent="    ") for line in notes or [])
    rows = (len(curve) + 1 + (len(kdmas) if len(kdmas) > 1 else 0) + 1) // 2
    below = 0.22 * rows + (0.13 * (text.count("\n") + 1) + 0.15 if text else 0.0) + 0.1
    fig = Figure(figsize=(7.5, 7.0 + below), dpi=110, layout="constrained")
    grid = fig.add_gridspec(2, 1, height_ratios=[7.0, below])
    ax = fig.add_subplot(grid[0])
    foot = fig.add_subplot(grid[1])  # the legend, then what was left out and why
    foot.axis("off")
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.55", linewidth=1)
    colours = matplotlib.colormaps["tab10"].colors
    handles = [Line2D([], [], linestyle="--", color="0.55", label=DIAGONAL)]
    for i, (adm, points) in enumerate(curve.items()):
        colour = colours[i % len(colours)]
        for kdma in kdmas:
            mine = [p for p in points if p.kdma == kdma]
            if mine:
                ax.plot([xs[(adm, kdma, p.target)] for p in mine], [p.chosen_mean for p in mine], color=colour,
                        linewidth=1.4, marker=shapes[kdma], markersize=8, fillstyle="none", markeredgewidth=1.8)
        handles.append(Line2D([], [], color=colour, linewidth=2, label=adm))
    for x, y, n in coincident(curve):
        ax.annotate(f"{n} points", (x, y), xytext=(0, 9), textcoords="offset points", ha="center", fontsize=7,
                    color="0.25")
    if len(kdmas) > 1:
        handles += [Line2D([], [], color="0.3", linestyle="none", marker=shapes[k], fillstyle="none", label=k)
                    for k in kdmas]
    ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel=CURVE_X, ylabel=CURVE_Y, aspect="equal")
    ax.set_title(f"{CURVE_TITLE_SHORT}\n{subtitle}" if subtitle else CURVE_TITLE_SHORT, fontsize=10)
    ax.grid(True, linewidth=0.4, alpha=0.5)
    foot.legend(handles=handles, loc="upper center", ncols=2, fontsize=8, frameon=False, borderaxespad=0)
    if text:
        foot.text(0.0, 0.0, text, transform=foot.transAxes, fontsize=7, va="bottom", ha="left", color="0.2")
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # an svg's words stay text: searchable, selectable
        fig.savefig(path, format=fmt)
