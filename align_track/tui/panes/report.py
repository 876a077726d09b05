"""Report pane: pivot the marked runs (else the shown ones) and export with align_track.query.report.

Selects offer only columns that exist in the runs; the pivot is computed in a worker so a
10,000-run frame never blocks the keyboard.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select

from align_track.errors import printable
from align_track.query.formats import REPORT_FORMATS, suffixes
from align_track.tui.models.selection import Selection
from align_track.tui.panes.base import Pane
from align_track.tui.widgets.fast_input import FastInput
from align_track.tui.widgets.vtable import Column, VirtualTable

if TYPE_CHECKING:
    import pandas

    from align_track.query.report import Pivot

_HIDDEN_TAG_PREFIXES = ("tags.align_track.", "tags.mlflow.")
_LABEL_COLUMNS = ("run_name", "status")


def group_columns(columns: list[str]) -> list[str]:
    """Columns worth grouping by: params, the data model's tags, run name and status."""
    out = [c for c in columns if c.startswith("params.")]
    out += [c for c in columns if c.startswith("tags.") and not c.startswith(_HIDDEN_TAG_PREFIXES)]
    out += [c for c in _LABEL_COLUMNS if c in columns]
    return out


def distinct_groups(frame: pandas.DataFrame, columns: list[str]) -> list[str]:
    """``columns`` without the tags that repeat a param of the same name (ingest writes ``adm`` and
    ``alignment_target_id`` as both): the select lists each choice once."""
    out = []
    for column in columns:
        twin = "params." + column.removeprefix("tags.")
        if column.startswith("tags.") and twin in columns:
            tag, param = (frame[c].fillna("").astype(str) for c in (column, twin))
            if bool((tag == param).all()):
                continue
        out.append(column)
    return out


def option_labels(columns: list[str]) -> dict[str, str]:
    """Column -> what the select shows: the short name (``adm``), or the full one (``params.adm``,
    ``tags.adm``) where two sources share a short name."""
    from align_track.query.select import short_name

    short = {c: short_name(c) for c in columns}
    counts: dict[str, int] = {}
    for name in short.values():
        counts[name] = counts.get(name, 0) + 1
    return {c: name if counts[name] == 1 else c for c, name in short.items()}


def value_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if c.startswith("metrics.")]


def _pick(options: list[str], *wanted: str) -> str | None:
    for name in wanted:
        if name in options:
            return name
    return options[0] if options else None


class ReportPane(Pane):
    """Select rows, columns, values and aggregation; the preview follows; ctrl+s writes xlsx/csv/json."""

    TITLE = "Report"
    SHORT = "Rep"
    KEY = "5"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "export", "Export",
                tooltip=f"Write the report to the path ({', '.join(REPORT_FORMATS)} by extension)"),
        Binding("e", "edit_path", "Path", tooltip="Edit the export path"),
        Binding("escape", "leave_input", "Leave input", show=False,
                tooltip="Leave the export path (then number keys, q and ? work)"),
    ]
    MORE_KEYS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("tab,shift+tab", "", "next / previous dropdown (rows, columns, values, aggregation), then the path"),
        ("enter,space,down,up", "", "on a dropdown: open it; then ↑/↓ to a choice, enter to pick it, esc to "
                                    "close it unchanged (the preview follows each pick)"),
    )
    DEFAULT_CSS = """
    ReportPane #report-selects { height: 2; }
    ReportPane .report-line { height: 1; }
    ReportPane .report-line Select { width: 3fr; }
    ReportPane .report-line Select.second { width: 2fr; }
    ReportPane .report-line Label { color: $text-muted; padding: 0 1; width: 13; text-align: right; }
    ReportPane .report-line Label.first { width: 8; }
    ReportPane #report-title { height: auto; max-height: 3; padding: 0 1; text-style: bold; width: 1fr;
                               background: $boost; }
    ReportPane #report-notes { height: auto; max-height: 4; padding: 0 1; width: 1fr; color: $text-muted; }
    ReportPane #report-export { height: 1; }
    ReportPane #report-export Label { width: auto; padding: 0 1; }
    ReportPane #report-path { width: 1fr; }
    ReportPane #report-status { height: auto; max-height: 3; padding: 0 1; width: 1fr; }
    """

    def __init__(self, selection: Selection, experiment_name: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.selection = selection
        self.experiment_name = experiment_name
        self.frame: pandas.DataFrame | None = None
        self.runs: list = []
        """The runs behind ``frame``: what the pivot leaves out is said from them."""
        self.pivot: Pivot | None = None
        self.source = ""
        self.marked_only = False
        self.note = ""
        self._options_for: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        # Two selects a line, each label beside its select, so 'alignment_target_id' and 'params.adm' are read
        # whole (four in a row left 17 cells each at 80 columns); rows and values, the longer names, get more.
        with Vertical(id="report-selects"):
            for pair in ((("rows", "rows"), ("cols", "columns")), (("values", "values"), ("agg", "aggregation"))):
                with Horizontal(classes="report-line"):
                    for n, (key, label) in enumerate(pair):
                        yield Label(label, classes="" if n else "first")
                        yield Select([], id=f"report-{key}", compact=True, allow_blank=True, prompt="–",
                                     classes="second" if n else "")
        yield Label("no runs loaded yet", id="report-title")
        yield VirtualTable(id="report-preview", empty_text="nothing to preview")
        yield Label("", id="report-notes")
        with Horizontal(id="report-export"):
            yield Label("Export to")
            # FastInput: ctrl+u, a path and enter in one burst (a paste, tmux send-keys) clear and submit in order
            yield FastInput("report.xlsx", id="report-path", compact=True, on_submit=lambda _: self.action_export(),
                            placeholder=f"path ending in {', '.join(suffixes(REPORT_FORMATS))}")
        yield Label("ctrl+s (or enter in the path) writes the report; format from the extension",
                    id="report-status")

    def focus_default(self) -> None:
        self.focus_now(self.query_one("#report-rows", Select))

    # ------------------------------------------------------------------ data

    def refresh_source(self) -> None:
        """Rebuild the frame from the selected runs (marked, else shown in the Runs pane)."""
        if self.selection.snapshot is None:
            return
        runs, marked = self.selection.report_runs()
        self.source = (f"only the {len(runs)} marked runs (u in Runs unmarks)" if marked
                       else f"all {len(runs)} runs shown in Runs (space there marks some)")
        self.marked_only = marked
        self.note = f"{len(runs)} {'marked' if marked else 'shown'} runs"
        self._build_frame(runs)

    @work(thread=True, exclusive=True, group="report-frame")
    def _build_frame(self, runs: list) -> None:
        from align_track.tui.models.data import runs_frame

        frame = runs_frame(runs)
        self.post_ui(self._frame_ready, frame, runs)

    def _frame_ready(self, frame: pandas.DataFrame, runs: list) -> None:
        from align_track.query.report import AGGREGATIONS, DEFAULT_COLS, DEFAULT_ROWS, DEFAULT_VALUES
        from align_track.query.select import short_name

        self.frame, self.runs = frame, runs
        columns = list(frame.columns)
        groups, values = distinct_groups(frame, group_columns(columns)), value_columns(columns)
        signature = tuple(groups + ["|"] + values)
        if signature != self._options_for:
            self._options_for = signature
            labels = option_labels(groups)
            self._set_options("rows", groups, _pick(groups, f"params.{DEFAULT_ROWS}"), labels.__getitem__)
            self._set_options("cols", groups, _pick(groups, f"params.{DEFAULT_COLS}"), labels.__getitem__)
            self._set_options("values", values, _pick(values, f"metrics.{DEFAULT_VALUES}"), short_name)
            self._set_options("agg", list(AGGREGATIONS), "mean", str)
        self.update_pivot()

    def _set_options(self, key: str, names: list[str], value: str | None, label: Any) -> None:
        select = self.query_one(f"#report-{key}", Select)
        with self.prevent(Select.Changed):
            select.set_options([(label(n), n) for n in names])
            if value is not None:
                select.value = value

    def _selected(self) -> tuple[str, str, str, str] | None:
        values = [self.query_one(f"#report-{k}", Select).value for k in ("rows", "cols", "values", "agg")]
        if any(v is Select.NULL or v is None for v in values):
            return None
        return tuple(str(v) for v in values)  # type: ignore[return-value]

    @on(Select.Changed)
    def _changed(self) -> None:
        self.update_pivot()

    def update_pivot(self) -> None:
        choice = self._selected()
        if self.frame is None or choice is None:
            return
        self._pivot(self.frame, self.runs, *choice)

    @work(thread=True, exclusive=True, group="report-pivot")
    def _pivot(self, frame: pandas.DataFrame, runs: list, rows: str, cols: str, values: str, agg: str) -> None:
        from align_track.query.report import annotate, build_pivot
        from align_track.query.select import QueryError

        try:
            pivot = annotate(build_pivot(frame, rows, cols, values, agg), runs)
        except QueryError as exc:
            self.post_ui(self._show_pivot, None, str(exc))
            return
        except Exception as exc:  # pandas refusing these columns: say so, keep the pane usable
            self.post_ui(self._show_pivot, None, f"{type(exc).__name__}: {exc}")
            return
        self.post_ui(self._show_pivot, pivot, "")

    def _show_pivot(self, pivot: Pivot | None, error: str) -> None:
        self.pivot = pivot
        title = self.query_one("#report-title", Label)
        table = self.query_one("#report-preview", VirtualTable)
        notes = self.query_one("#report-notes", Label)
        if pivot is None:
            title.update(f"cannot pivot: {error}")
            table.set_data([], [])
            notes.update("")
            return
        notes.update("\n".join(printable(line) for line in pivot.footnotes()))  # what is left out, and why
        text = Text()
        text.append(f"{self.source}", "bold yellow" if self.marked_only else "")
        text.append(f" · {pivot.title}")
        title.update(text)
        columns = [Column("label", pivot.corner, 34)]
        columns += [Column(f"c{i}", str(c), 20, numeric=True) for i, c in enumerate(pivot.table.columns)]
        fmt = "{:.0f}" if pivot.agg == "count" else "{:.3f}"
        rows = [tuple([str(r[0])] + ["–" if v is None else fmt.format(v) for v in r[1:]]) for r in pivot.cells()]
        table.empty_text = "no runs to pivot"
        table.set_data(columns, rows)

    # ------------------------------------------------------------------ export

    def action_edit_path(self) -> None:
        self.focus_now(self.query_one("#report-path", Input))

    def action_leave_input(self) -> None:
        self.focus_now(self.query_one("#report-preview", VirtualTable))

    def action_export(self) -> None:
        from align_track.query.formats import ExportError, format_for

        status = self.query_one("#report-status", Label)
        if self.pivot is None:
            status.update("nothing to export yet")
            return
        path = Path(self.query_one("#report-path", Input).value.strip()).expanduser()
        try:
            fmt = format_for(path, None, REPORT_FORMATS)
        except ExportError:
            status.update(f"✖ end the path in {', '.join(suffixes(REPORT_FORMATS))}")
            return
        status.update(f"writing {path}…")
        self._export(self.pivot, self.runs, path, fmt, self.note)

    @work(thread=True, exclusive=True, group="report-export")
    def _export(self, pivot: Pivot, runs: list, path: Path, fmt: str, note: str) -> None:
        from align_track.query.analysis import alignment_curve
        from align_track.query.export import ExportError
        from align_track.query.formats import FORMATS
        from align_track.query.report import write_report

        if FORMATS[fmt].image:  # the image draws the curve's runs only: its title says how many
            note = f"{pivot.curve_runs} of {note} plotted"
        try:
            write_report(pivot, path, fmt, f"{note} from experiment {self.experiment_name!r}",
                         alignment_curve(runs))
        except (ExportError, OSError) as exc:
            self.post_ui(self._exported, path, str(exc))
            return
        except Exception as exc:  # e.g. a value the xlsx writer refuses
            self.post_ui(self._exported, path, f"{type(exc).__name__}: {exc}")
            return
        self.post_ui(self._exported, path, "")

    def _exported(self, path: Path, error: str) -> None:
        status = self.query_one("#report-status", Label)
        title = self.pivot.title if self.pivot else ""
        shown = printable(str(path))  # a path typed or pasted may hold control or bidi characters
        status.update(f"✖ cannot write {shown}: {printable(error)}" if error else f"✔ wrote {shown} ({title})")
        if error:  # the line below the preview keeps three lines: the messages screen (!) keeps it all
            self.notify(f"cannot write {shown}: {printable(error)}", severity="error", timeout=8, markup=False)
        else:
            self.notify(f"wrote {shown}", timeout=4, markup=False)  # a path's [brackets] are not markup
