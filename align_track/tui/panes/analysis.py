"""Analysis pane: how well each ADM follows each target, drawn from the runs' alignment metrics.

Three views, one at a time so each is legible at 80x24: the alignment curve (x target value, y mean
true value of the chosen choices, one series per ADM, the diagonal is perfect alignment), the oracle
hit rate per target x ADM, and predicted-vs-true KDMA values of one run's choices (its scenes are read
in a worker). Plots use textual-plot's PlotWidget; series differ by marker character as well as colour,
so they stay apart in 16 colours and without colour. Self-contained: it reads the app's runs snapshot
when shown (or on ``g``) and calls nothing else on the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.widgets import ContentSwitcher, DataTable, Label, Static

from align_track import schema as S
from align_track.tui.panes.base import Pane

if TYPE_CHECKING:
    from align_track.query.analysis import CurvePoint, HitRates, HitTotals

# 16-colour styles and marker characters, paired: series i gets both, so either tells it apart
STYLES = ("bright_red", "bright_green", "bright_yellow", "bright_blue", "bright_magenta", "bright_cyan",
          "red", "green", "yellow", "blue", "magenta", "cyan")
MARKERS = "ox+*#@%&$=~^"
DIAGONAL_STYLE = "bright_black"
VIEWS = ("curve", "hits", "scatter")
ALL = "\0all"  # the key of the totals row and column (no target or ADM is named so)


def series_style(i: int) -> tuple[str, str]:
    return STYLES[i % len(STYLES)], MARKERS[i % len(MARKERS)]


def legend_text(names: list[str], extra: str = "", width: int = 78) -> Text:
    """'o name   x name …' in the series' colours, packed into lines of ``width`` without splitting an entry."""
    entries = []
    for i, name in enumerate(names):
        style, marker = series_style(i)
        entries.append(Text.assemble((f"{marker} ", f"bold {style}"), (name, style)))
    if extra:
        entries.append(Text(extra, style="dim"))
    lines: list[Text] = [Text()]
    for entry in entries:
        if lines[-1].cell_len and lines[-1].cell_len + 3 + entry.cell_len > width:
            lines.append(Text())
        if lines[-1].cell_len:
            lines[-1].append("   ")
        lines[-1].append_text(entry)
    return Text("\n").join(lines)


def rate_cell(cell: tuple[float, int] | None, bold: bool = False) -> Text:
    """``0.75 (8)``: hit rate and scenes, green from 0.75, yellow from 0.5, else red; ``-`` when none."""
    if cell is None:
        return Text("-", style="dim", justify="right")
    rate, scenes = cell
    style = "bright_green" if rate >= 0.75 else "bright_yellow" if rate >= 0.5 else "bright_red"
    return Text(f"{rate:.2f} ({scenes})", style=f"bold {style}" if bold else style, justify="right")


def short_label(name: str, width: int = 13) -> str:
    """A column header that fits: the start and end of a long name around an ellipsis."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return f"{name[:head]}…{name[-(width - 1 - head):]}"


def strip_common_prefix(labels: list[str]) -> tuple[list[str], str]:
    """Labels without the prefix (up to a '-') they all share, and that prefix."""
    if len(labels) < 2:
        return labels, ""
    prefix = labels[0]
    for label in labels[1:]:
        while not label.startswith(prefix):
            prefix = prefix[:-1]
    prefix = prefix[: prefix.rfind("-") + 1]
    return [label[len(prefix):] for label in labels], prefix


def quiet_plot_class(base: type) -> type:
    """textual-plot's PlotWidget with its zoom/pan keys kept but left out of the key bar (the legend names
    them), so the pane's own keys fit at 80 columns."""
    import dataclasses

    class Plot(base):  # type: ignore[misc, valid-type]
        BINDINGS: ClassVar[list[BindingType]] = [
            dataclasses.replace(b, show=False) if isinstance(b, Binding) else Binding(*b, show=False)
            for b in base.BINDINGS
        ]

    return Plot


def prediction_runs(runs: list[Any]) -> list[Any]:
    """Runs with at least one choice that has both a true and a predicted KDMA value, by name."""
    def has_pairs(run: Any) -> bool:
        return any((S.number(v) or 0) > 0 for k, v in run.metrics.items()
                   if (S.parse_kdma_metric(k) or ("", ""))[1] == S.KDMA_PREDICTION_CHOICES)

    return sorted((r for r in runs if has_pairs(r)), key=lambda r: r.run_name)


class AnalysisPane(Pane):
    """a/o/p switch view; k cycles the KDMA of the curve; n/N the run of the scatter; +/- and arrows zoom/pan."""

    TITLE = "Analysis"
    SHORT = "Ana"
    KEY = "7"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "view('curve')", "Curve", tooltip="Alignment curve: target value vs chosen mean, per ADM"),
        Binding("o", "view('hits')", "Hit rate", tooltip="Oracle hit rate per target x ADM"),
        Binding("p", "view('scatter')", "Predicted", tooltip="Predicted vs true KDMA values of one run's choices"),
        Binding("k", "next_kdma", "KDMA", tooltip="Curve: all KDMAs, or one KDMA at a time"),
        Binding("n", "next_run(1)", "Next run", tooltip="Predicted vs true: next run with predictions"),
        Binding("N", "next_run(-1)", "Prev run", show=False, tooltip="Predicted vs true: previous run"),
        Binding("g", "reload", "Reload", tooltip="Redraw from the runs loaded now"),
    ]
    SCOPED_CSS = False  # the -short rules start at the Screen
    MORE_KEYS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("plus,minus", "", "plot: zoom in / out"),
        ("ctrl+equals_sign,ctrl+minus,ctrl+shift+equals_sign,ctrl+shift+minus", "ctrl+= / ctrl+-",
         "plot: zoom the x axis only; with shift too, the y axis only"),
        ("left,right,up,down", "", "plot: pan; hit-rate table: move from cell to cell"),
        ("r", "", "plot: reset zoom and pan"),
        ("home,end,pageup,pagedown,ctrl+home,ctrl+end", "",
         "hit-rate table: first / last column, a page up / down, first / last row"),
        ("enter", "", "hit-rate table: select the cell"),
    )
    DEFAULT_CSS = """
    AnalysisPane #analysis-title { height: 1; padding: 0 1; text-style: bold; width: 1fr; background: $boost;
                                   text-wrap: nowrap; text-overflow: ellipsis; }
    AnalysisPane #analysis-views { height: 1fr; }
    AnalysisPane #analysis-views > Container { height: 1fr; }
    AnalysisPane PlotWidget { height: 1fr; }
    AnalysisPane .analysis-legend { height: auto; max-height: 7; padding: 0 1; }
    AnalysisPane #analysis-hits { height: 1fr; }
    AnalysisPane #hits-legend { max-height: 4; }
    Screen.-short AnalysisPane .analysis-legend { max-height: 6; }
    AnalysisPane #hits-cell { height: auto; max-height: 3; padding: 0 1; width: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.view = "curve"
        self.runs: list[Any] = []
        self.kdmas: list[str] = []
        self.kdma: str | None = None  # None: every KDMA pooled
        self.curve: dict[str, list[CurvePoint]] = {}
        self.scatter_runs: list[Any] = []
        self.scatter_index = 0
        self.pairs: list[tuple[str, str, float, float]] | None = None
        self.pairs_for = ""
        self.hit_rates: HitRates | None = None
        self.hit_totals: HitTotals | None = None
        self._plots_ready = False
        self._mounting = False
        self._drawn_width = 0

    can_focus = True  # holds focus (and so its keys) until the plots are mounted

    def compose(self) -> ComposeResult:
        yield Label("loading the plotting widget…", id="analysis-title")
        with ContentSwitcher(id="analysis-views", initial="curve"):
            with Container(id="curve"):
                yield Static(id="curve-legend", classes="analysis-legend")
            with Container(id="hits"):
                yield DataTable(id="analysis-hits", zebra_stripes=True, cursor_type="cell")
                yield Label(id="hits-cell")
                yield Static(id="hits-legend", classes="analysis-legend")
            with Container(id="scatter"):
                yield Static(id="scatter-legend", classes="analysis-legend")

    @property
    def ready(self) -> bool:
        """The plots are mounted and drawn from the runs loaded when the pane was last shown."""
        return self._plots_ready

    def focus_default(self) -> None:
        if self._plots_ready:
            self.load()
            self._focus_view()
            return
        self.focus_now(self)
        if not self._mounting:
            self._mounting = True
            self.run_worker(self._mount_plots(), exclusive=True, group="analysis-mount")

    async def _mount_plots(self) -> None:
        """textual-plot pulls in numpy (about 0.4 s): import it off the UI thread, then mount the plots."""
        import asyncio
        import importlib

        module = await asyncio.to_thread(importlib.import_module, "textual_plot")
        plot = quiet_plot_class(module.PlotWidget)
        for view in ("curve", "scatter"):
            widget = plot(id=f"{view}-plot")
            await self.query_one(f"#{view}", Container).mount(widget, before=0)
            widget.margin_top = 1  # the y label needs one row, not two: a row more for the legend
        # Draw once the plots have been laid out: drawn before they have a size, the first frame is drawn at
        # the wrong scale and redrawn a frame later (a screenshot taken in between shows the wrong plot).
        self.call_after_refresh(self._plots_mounted)

    def _plots_mounted(self) -> None:
        self._plots_ready = True
        self.load()
        if self.has_focus:
            self._focus_view()

    def _focus_view(self) -> None:
        widget = {"curve": "#curve-plot", "hits": "#analysis-hits", "scatter": "#scatter-plot"}[self.view]
        self.focus_now(self.query_one(widget))

    # ------------------------------------------------------------------ data

    def load(self) -> None:
        """Take the runs the app has loaded (all complete runs of the experiment) and redraw."""
        snapshot = getattr(self.app, "snapshot", None)
        self.runs = list(snapshot.runs) if snapshot is not None else []
        from align_track.query.analysis import curve_kdmas

        self.kdmas = curve_kdmas(self.runs)
        if self.kdma not in self.kdmas:
            self.kdma = None
        self.scatter_runs = prediction_runs(self.runs)
        self.scatter_index = min(self.scatter_index, max(0, len(self.scatter_runs) - 1))
        self._draw()

    def _draw(self) -> None:
        if not self._plots_ready:
            return
        self._drawn_width = self.size.width
        {"curve": self._draw_curve, "hits": self._draw_hits, "scatter": self._draw_scatter}[self.view]()

    def on_resize(self) -> None:
        """Legends and the hit-rate table's target names are fitted to the width: fit them again (a 60-column
        split widened to 200 kept its 60-column cuts)."""
        width = self.size.width
        if self._plots_ready and width and width != self._drawn_width:
            self._drawn_width = width
            self.call_after_refresh(self._draw)  # once the new size is laid out (drawn inside the resize, the
            # table measured its columns wrongly)

    def _legend_width(self) -> int:
        return max(40, (self.size.width or 80) - 2)

    def _title(self, text: str) -> None:
        self.query_one("#analysis-title", Label).update(text)

    # ------------------------------------------------------------------ alignment curve

    def _draw_curve(self) -> None:
        from textual_plot import HiResMode, PlotWidget

        from align_track.query.analysis import alignment_curve, coincident
        from align_track.query.coverage import curve_lines, curve_reason, group, has_curve_point
        from align_track.query.textfit import cut_middle

        self.curve = alignment_curve(self.runs, self.kdma)
        plot = self.query_one("#curve-plot", PlotWidget)
        plot.clear()
        plot.show_legend(is_visible=False)
        plot.plot([0.0, 1.0], [0.0, 1.0], line_style=DIAGONAL_STYLE, hires_mode=HiResMode.BRAILLE)
        for i, points in enumerate(self.curve.values()):
            style, marker = series_style(i)
            xs, ys = [p.target for p in points], [p.chosen_mean for p in points]
            if len(points) > 1 and self.kdma is not None:  # one KDMA: join the points along the target axis
                plot.plot(xs, ys, line_style=style, hires_mode=HiResMode.BRAILLE)
            plot.scatter(xs, ys, marker=marker, marker_style=f"bold {style}")
        plot.set_xlimits(-0.05, 1.05)
        plot.set_ylimits(-0.05, 1.05)
        plot.set_xlabel("target value")
        plot.set_ylabel("chosen mean")
        which = self.kdma or "all KDMAs"
        count = sum(len(p) for p in self.curve.values())
        self._title(f"Alignment curve · {which} · {count} points, {len(self.curve)} ADMs"
                    if count else f"Alignment curve · {which} · no run has a scalar target and chosen mean")
        # each ADM's points and mean offset from the diagonal: coinciding markers hide one another, so say where
        width = self._legend_width()
        # under 80 columns two entries share a line (names cut in the middle), so the plot keeps its rows
        room = (width - 3) // 2 - 13 if width < 78 else width
        names = [f"{cut_middle(adm, room)} ({len(pts)}, {sum(p.chosen_mean - p.target for p in pts) / len(pts):+.2f})"
                 for adm, pts in self.curve.items()]
        legend = legend_text(names, "(points, mean chosen−target)  ··· perfect alignment  k: KDMA" if width >= 78
                             else "(points, mean chosen−target) ··· ideal  k: KDMA", width)
        notes = [f"{n} points at ({x:.2f}, {y:.2f}) drawn as one" for x, y, n in coincident(self.curve)]
        if width >= 78:
            notes += [f"left out: {line}" for line in curve_lines(self.runs, names=False)]
        elif groups := group(self.runs, lambda r: not has_curve_point(r), curve_reason):  # one note, fewer rows
            notes.append("left out, no curve point: " + " · ".join(
                f"{len(runs)} run{'s' if len(runs) != 1 else ''}: {reason}" for reason, runs in groups))
        self.query_one("#curve-legend", Static).update(
            Text("\n").join([legend, *(Text(line, style="dim") for line in notes)]))

    def action_next_kdma(self) -> None:
        options: list[str | None] = [None, *self.kdmas]
        self.kdma = options[(options.index(self.kdma) + 1) % len(options)]
        if self.view != "curve":
            self.action_view("curve")
        else:
            self._draw()

    # ------------------------------------------------------------------ oracle hit rate

    def _draw_hits(self) -> None:
        """Targets down, ADMs across; the totals first (the ``all ADMs`` column and the ``all targets`` row stay
        in view with the target names while the cursor moves across and down), so every cell is reachable."""
        from align_track.query.analysis import hit_rate_totals, hit_rates
        from align_track.query.coverage import missing_lines
        from align_track.query.textfit import cut_middle

        rates = hit_rates(self.runs)
        totals = hit_rate_totals(rates)
        table = self.query_one("#analysis-hits", DataTable)
        was = table.cursor_coordinate if table.row_count and self.hit_rates is not None else None
        table.clear(columns=True)
        labels, prefix = strip_common_prefix(rates.targets)
        room = max(12, (self.size.width or 80) // 3)
        table.add_column(f"{prefix}… \\ ADM" if prefix else "target \\ ADM", key="target")
        table.add_column(Text("all ADMs", style="bold"), key=ALL)
        for i, adm in enumerate(rates.adms):
            style, marker = series_style(i)
            table.add_column(Text(f"{marker} {short_label(adm)}", style=f"bold {style}"), key=adm)
        if rates.targets:
            table.add_row(Text("all targets", style="bold"), rate_cell(totals.overall, bold=True),
                          *(rate_cell(totals.by_adm.get(a), bold=True) for a in rates.adms), key=ALL)
        for target, label in zip(rates.targets, labels, strict=True):
            table.add_row(cut_middle(label, room), rate_cell(totals.by_target.get(target)),
                          *(rate_cell(rates.cells.get((target, a))) for a in rates.adms), key=target)
        table.fixed_columns = 2
        table.fixed_rows = 1 if rates.targets else 0
        self.hit_rates, self.hit_totals = rates, totals
        self._title(f"Oracle hit rate (scenes) · {len(rates.targets)} targets x {len(rates.adms)} ADMs"
                    if rates.targets else "Oracle hit rate · no run has a scalar target with true KDMA values")
        left_out = missing_lines(self.runs, S.METRIC_ORACLE_HIT_RATE, names=False)
        self.query_one("#hits-legend", Static).update(Text("\n".join(f"left out: {line}" for line in left_out),
                                                           style="dim"))
        if rates.targets:  # a redraw (resize, reload) keeps the cursor's cell; the first one starts on the total
            row, column = (was.row, was.column) if was is not None else (0, 1)
            table.move_cursor(row=min(row, table.row_count - 1), column=min(column, len(table.columns) - 1))
        self._describe_cell()

    def _describe_cell(self) -> None:
        """The cell under the cursor in full: target and ADM names are cut in the table, never here."""
        rates, totals = self.hit_rates, self.hit_totals
        line = self.query_one("#hits-cell", Label)
        if rates is None or totals is None or not rates.targets:
            line.update("")
            return
        table = self.query_one("#analysis-hits", DataTable)
        row, column = table.cursor_coordinate
        target = rates.targets[row - 1] if 1 <= row <= len(rates.targets) else None
        adm = rates.adms[column - 2] if 2 <= column < 2 + len(rates.adms) else None
        cell = (rates.cells.get((target, adm)) if target and adm else totals.by_target.get(target) if target
                else totals.by_adm.get(adm) if adm else totals.overall)
        where = f"{adm or 'all ADMs'} · {target or 'all targets'}"
        what = "no scene covered" if cell is None else f"hit rate {cell[0]:.2f} over {cell[1]} scenes"
        line.update(Text.assemble((what, "bold"), f" · {where}"))

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        event.stop()
        self._describe_cell()

    # ------------------------------------------------------------------ predicted vs true

    def _scatter_run(self) -> Any:
        return self.scatter_runs[self.scatter_index] if self.scatter_runs else None

    def _draw_scatter(self) -> None:
        from textual_plot import HiResMode, PlotWidget

        plot = self.query_one("#scatter-plot", PlotWidget)
        plot.clear()
        plot.show_legend(is_visible=False)
        legend = self.query_one("#scatter-legend", Static)
        run = self._scatter_run()
        if run is None:
            self._title("Predicted vs true · no run has predicted KDMA values")
            legend.update("")
            return
        position = f"{self.scatter_index + 1}/{len(self.scatter_runs)}"
        if self.pairs_for != run.run_id:
            self._title(f"Predicted vs true · {position} · loading scenes… · {run.run_name}")
            legend.update("")
            self._load_pairs(run)
            return
        pairs = self.pairs or []
        plot.plot([0.0, 1.0], [0.0, 1.0], line_style=DIAGONAL_STYLE, hires_mode=HiResMode.BRAILLE)
        kdmas = sorted({k for _, k, _, _ in pairs})
        for i, kdma in enumerate(kdmas):
            style, marker = series_style(i)
            mine = [(t, g) for _, k, t, g in pairs if k == kdma]
            plot.scatter([t for t, _ in mine], [g for _, g in mine], marker=marker, marker_style=f"bold {style}")
        plot.set_xlimits(-0.05, 1.05)
        plot.set_ylimits(-0.05, 1.05)
        plot.set_xlabel("true value")
        plot.set_ylabel("predicted")
        mae = sum(abs(g - t) for _, _, t, g in pairs) / len(pairs) if pairs else None
        self._title(f"Predicted vs true · {position} · {len(pairs)} choices"
                    + (f" · MAE {mae:.3f}" if mae is not None else "") + f" · {run.run_name}")
        legend.update(legend_text(kdmas, "··· diagonal = exact  n/N: run  +/-: zoom", self._legend_width()))

    @work(thread=True, exclusive=True, group="analysis-scenes")
    def _load_pairs(self, run: Any) -> None:
        from align_track.alignment import prediction_pairs
        from align_track.tui.models.data import all_scenes

        snapshot = getattr(self.app, "snapshot", None)
        try:
            scenes = all_scenes(snapshot.uri, snapshot.experiment_id, run.run_id) or []
        except Exception as exc:  # the store went away: say so in the title, keep the pane usable
            self._post(self._title, f"Predicted vs true · {run.run_name} · {exc}")
            return
        pairs = [pair for scene in scenes
                 for pair in prediction_pairs(scene.attributes.get(S.ATTR_TRUE_KDMA),
                                              scene.attributes.get(S.ATTR_PREDICTED_KDMA))]
        self._post(self._pairs_loaded, run.run_id, pairs)

    def _post(self, callback: Any, *args: Any) -> None:
        """Run ``callback`` on the UI thread; nothing once the app is closing."""
        if not self.app.is_running:
            return
        try:
            self.app.call_from_thread(callback, *args)
        except RuntimeError:  # the app stopped between the check and the call
            if self.app.is_running:
                raise

    def _pairs_loaded(self, run_id: str, pairs: list[tuple[str, str, float, float]]) -> None:
        self.pairs, self.pairs_for = pairs, run_id
        if self.view == "scatter":
            self._draw()

    def action_next_run(self, step: int) -> None:
        if self.scatter_runs:
            self.scatter_index = (self.scatter_index + step) % len(self.scatter_runs)
        if self.view != "scatter":
            self.action_view("scatter")
        else:
            self._draw()

    # ------------------------------------------------------------------ views

    def action_view(self, view: str) -> None:
        self.view = view
        self.query_one("#analysis-views", ContentSwitcher).current = view
        if self._plots_ready:
            self._draw()
            self._focus_view()

    def action_reload(self) -> None:
        self.load()

    @property
    def waiting(self) -> bool:
        """The scatter view is waiting for a run's scenes."""
        run = self._scatter_run()
        return self.view == "scatter" and run is not None and self.pairs_for != run.run_id
