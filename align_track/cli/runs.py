"""``search``, ``export``, ``report``, ``list-runs`` and ``ui``: the read side of the CLI.

Only click and light align_track modules are imported here; pandas, mlflow and rich load
inside the command that needs them, so ``align-track --help`` stays instant. The option
helpers mirror :mod:`align_track.cli.main`'s rather than importing them, because ``cli`` imports
this module while it is itself being imported.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from align_track.cli.options import experiment_option, fail, mlflow_uri_option
from align_track.errors import printable
from align_track.query.formats import EXPORT_FORMATS, FORMATS, IMAGE_FORMATS, REPORT_FORMATS, format_for, suffixes
from align_track.query.select import DEFAULT_SCORE_METRIC, QueryError, QueryResult, RunQuery, metric_key
from align_track.schema import (
    METRIC_AVG_SECONDS,
    METRIC_ORACLE_HIT_RATE,
    PARAM_NUM_SCENES,
    TAG_PATH,
    TAG_SOURCE,
    RunSummary,
)
from align_track.store.uri import StoreError


def query_options(func: Callable) -> Callable:
    """The run filters shared by search, export, report and list-runs (all ANDed together)."""
    options = [
        click.option("--adm", metavar="NAME", help="Only runs of this ADM (exact match)."),
        click.option("--llm", metavar="MODEL", help="Only runs with this LLM backbone (exact match)."),
        click.option("--min-score", type=float, metavar="X",
                     help="Only runs whose score metric is >= X (runs without a score are left out)."),
        click.option("--score-metric", default=DEFAULT_SCORE_METRIC, show_default=True, metavar="METRIC",
                     help="The metric --min-score compares."),
        click.option("--filter", "filter_text", metavar="EXPR",
                     help="MLflow filter string, e.g. \"params.adm = 'pipeline_baseline'\"; keys with "
                          "spaces in backticks: \"params.`kdma.Moral judgement` = '0.2'\"."),
        click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N runs, newest first."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _select(mlflow_uri: str | None, experiment_name: str, adm: str | None, llm: str | None,
            min_score: float | None, score_metric: str, filter_text: str | None, limit: int | None) -> QueryResult:
    """The runs the shared query options select; a store or filter problem is a one-line error (exit 2)."""
    from align_track.query.select import run_query

    query = RunQuery(adm=adm, llm=llm, min_score=min_score, score_metric=score_metric, filter=filter_text,
                     limit=limit)
    try:
        return run_query(mlflow_uri, experiment_name, query)
    except (StoreError, QueryError) as exc:
        fail(str(exc))


# --------------------------------------------------------------------------- output


def raw_cells_option(func: Callable) -> Callable:
    return click.option(
        "--raw-cells", is_flag=True,
        help="csv/tsv: write text cells as they are. By default a text cell starting with =, +, -, @, tab or CR "
             "gets a leading ' so a spreadsheet shows it instead of running it as a formula (plain numbers "
             "such as -0.5 are left alone).")(func)


BINARY_ON_A_TERMINAL = ("{fmt} is a binary file and standard output is a terminal: redirect it "
                        "(-o - > out.{fmt}) or write a file with -o out.{fmt}")


def _to_stdout(output: Path | None) -> bool:
    return output is not None and str(output) == "-"


def _stdout_target(fmt: str) -> Any:
    """Standard output as bytes, which every format's writer takes (text ones as UTF-8, as in a file); a binary
    format (xlsx, png) is refused on a terminal, where it would only be noise, but flows into a pipe or a
    redirected file."""
    from align_track.cli.output import stdout_binary

    if FORMATS[fmt].binary and sys.stdout.isatty():
        fail(BINARY_ON_A_TERMINAL.format(fmt=fmt))
    return stdout_binary()


# --------------------------------------------------------------------------- search


def _scenes(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def summary_records(result: QueryResult, score_metric: str) -> list[dict[str, Any]]:
    """The columns search shows, per run, straight from the rows (no pandas needed). ``state`` is the TUI's
    word for the run (``query.live.complete_state``): 'done', 'no timing' or 'may still be running'."""
    from align_track.query.live import complete_state

    score = metric_key(score_metric)
    records = []
    for r in result.rows:
        s = RunSummary.of(r, score)
        records.append({
            "run_id": s.run_id,
            "run_name": s.run_name,
            "adm": s.adm or None,
            "llm": s.llm or None,
            "alignment_target_id": s.target or None,
            "run_variant": s.variant or None,
            "num_scenarios": _scenes(r.params.get(PARAM_NUM_SCENES)),
            "avg_seconds": s.avg_seconds,
            score: s.score,
            "state": complete_state(r),
            "experiment_path": s.path or None,
        })
    return records


# Table columns by the name --columns takes: (heading, record key). The run name is left out by default:
# it repeats ADM and target; the folder is in, since it is how a row is traced back to its run folder.
SEARCH_COLUMNS: dict[str, tuple[str, str]] = {
    "run_id": ("run id", "run_id"),
    "run": ("run", "run_name"),
    "adm": ("ADM", "adm"),
    "llm": ("LLM", "llm"),
    "target": ("target", "alignment_target_id"),
    "variant": ("variant", "run_variant"),
    "scenes": ("scenes", "num_scenarios"),
    "avg_s": ("avg s", "avg_seconds"),
    "score": ("score", "score"),
    "state": ("state", "state"),
    "folder": ("folder", "experiment_path"),
}
DEFAULT_SEARCH_COLUMNS = ("adm", "target", "variant", "scenes", "avg_s", "score", "state", "folder", "llm")
DEFAULT_LIST_COLUMNS = ("adm", "target", "variant", "scenes", "state", "folder")
MIN_TEXT_WIDTH = 14
"""A text column is cut in the middle down to this; below it, default columns are dropped from the right."""


def columns_option(default: Sequence[str]) -> Callable:
    return click.option(
        "--columns", "columns", metavar="NAMES", default=",".join(default), show_default=True,
        help=f"Comma-separated table columns, from: {', '.join(SEARCH_COLUMNS)}.")


def parse_columns(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SEARCH_COLUMNS]
    if unknown or not names:
        fail(f"unknown column(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SEARCH_COLUMNS)}")
    return names


def _print_table(header: Sequence[str], rows: list[list[Any]], title: str, droppable: bool = False) -> None:
    """On a terminal, a table fitted to its width: long values cut in the middle, never folded mid-word;
    ``droppable`` (the default columns) drops columns from the right that would not fit, and says so.
    In a pipe, a plain aligned table with every value in full (greppable, no escape codes)."""
    if sys.stdout.isatty():
        from rich.cells import cell_len
        from rich.console import Console
        from rich.table import Table

        from align_track.errors import printable
        from align_track.query.report import _text
        from align_track.query.textfit import cut_middle, fit_widths

        console = Console()
        header = list(header)
        cells = [[printable(_text(v, "{:.3f}")) for v in row] for row in rows]
        numeric = [any(isinstance(row[i], (int, float)) for row in rows) for i in range(len(header))]
        natural = [max([cell_len(h)] + [cell_len(c[i]) for c in cells]) for i, h in enumerate(header)]
        minimum = [n if numeric[i] else min(n, max(MIN_TEXT_WIDTH, cell_len(header[i])))
                   for i, n in enumerate(natural)]

        def room(count: int) -> int:  # the box: 1 cell of padding each side of a column, 1 border between
            return console.width - 3 * count - 1

        hidden = []
        while droppable and len(header) > 2 and sum(minimum) > room(len(header)):
            hidden.insert(0, header.pop())
            for column in (natural, minimum, numeric, *cells):
                column.pop()
        if hidden:
            title += f" · not shown at this width: {', '.join(hidden)} (--columns chooses)"
        widths = fit_widths(natural, minimum, room(len(header)))
        table = Table(title=title, title_justify="left")
        for i, name in enumerate(header):
            table.add_column(name, justify="right" if numeric[i] else "left", no_wrap=True,
                             min_width=widths[i], max_width=widths[i])
        for row in cells:
            table.add_row(*(cut_middle(c, widths[i]) for i, c in enumerate(row)))
        console.print(table)
    else:
        from align_track.errors import printable
        from align_track.query.report import plain_table

        click.echo(plain_table(header, [[printable(v) if isinstance(v, str) else v for v in row] for row in rows]))


def _emit_records(records: list[dict[str, Any]], fmt: str, raw_cells: bool = False) -> None:
    if fmt == "json":
        click.echo(json.dumps(records, indent=2, ensure_ascii=False, default=str))
        return
    from align_track.query.formats import write_delimited

    header = list(records[0]) if records else []
    write_delimited(sys.stdout, header, [list(rec.values()) for rec in records], "\t" if fmt == "tsv" else ",",
                    raw_cells)


@click.command()
@mlflow_uri_option
@experiment_option
@query_options
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "tsv", "json"]), default="table",
              show_default=True, help="table: fitted to a terminal, plain and complete in a pipe.")
@columns_option(DEFAULT_SEARCH_COLUMNS)
@raw_cells_option
def search(mlflow_uri: str | None, experiment_name: str, adm: str | None, llm: str | None,
           min_score: float | None, score_metric: str, filter_text: str | None, limit: int | None,
           fmt: str, columns: str, raw_cells: bool) -> None:
    """Search the ingested runs: ADM, LLM, target, variant, scenes, average seconds, score and state.

    Only complete runs count. The state is the TUI's: done; 'no timing' (no timing.json: the run recorded
    none, or stopped; still counted); 'may still be running' (its files changed within the stall window
    before the ingest that wrote it: ingest again once it is done).

    When nothing matches, says why on stderr and exits 0 (csv/tsv print nothing, json prints []),
    so scripts can tell "no match" from an error (2).
    """
    names = parse_columns(columns)
    result = _select(mlflow_uri, experiment_name, adm, llm, min_score, score_metric, filter_text, limit)
    records = summary_records(result, score_metric)
    if not records:
        click.echo(printable(result.empty_reason()), err=True)
        if fmt == "json":
            click.echo("[]")
        return
    if fmt != "table":
        _emit_records(records, fmt, raw_cells)
        return
    score = metric_key(score_metric)
    keys = [score if n == "score" else SEARCH_COLUMNS[n][1] for n in names]
    headings = [score if n == "score" and score != DEFAULT_SCORE_METRIC else SEARCH_COLUMNS[n][0] for n in names]
    rows = [[rec[k] for k in keys] for rec in records]
    _print_table(headings, rows, f"{len(rows)} of {result.complete} runs in {experiment_name!r}",
                 droppable=names == list(DEFAULT_SEARCH_COLUMNS))


# --------------------------------------------------------------------------- export


@click.command()
@mlflow_uri_option
@experiment_option
@query_options
@click.option("-o", "--output", required=True, type=click.Path(allow_dash=True, path_type=Path),
              help="File to write ('-': standard output, csv unless --format); its suffix picks the format "
                   "unless --format is given. A FIFO or device is written straight, a symlink followed.")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default=None,
              help="Output format [default: from the -o suffix].")
@click.option("--all-columns", is_flag=True,
              help="Also export align-track's bookkeeping tags (tags.align_track.*).")
@raw_cells_option
def export(mlflow_uri: str | None, experiment_name: str, adm: str | None, llm: str | None,
           min_score: float | None, score_metric: str, filter_text: str | None, limit: int | None,
           output: Path, fmt: str | None, all_columns: bool, raw_cells: bool) -> None:
    """Export runs, one row each: run_id, run_name, status, start_time, then every param, metric and tag
    (tags.experiment_path names the run folder).

    A file is written atomically (never half-written). Exits 1 without writing when no run matches.
    """
    from align_track.query.export import ExportError, write_run_export

    to_stdout = _to_stdout(output)
    try:
        fmt = (fmt or "csv") if to_stdout else format_for(output, fmt)
    except ExportError as exc:
        fail(str(exc))
    if to_stdout and FORMATS[fmt].binary and sys.stdout.isatty():  # before reading the store
        fail(BINARY_ON_A_TERMINAL.format(fmt=fmt))
    result = _select(mlflow_uri, experiment_name, adm, llm, min_score, score_metric, filter_text, limit)
    if not result.rows:
        fail(f"nothing exported: {result.empty_reason()}", 1)
    from align_track.query.coverage import alignment_lines

    if to_stdout:  # the bytes a file would get, streamed as the rows are made; a failed write: cli.output
        write_run_export(result.rows, _stdout_target(fmt), fmt, all_columns, raw_cells)
    else:
        try:
            count = write_run_export(result.rows, output, fmt, all_columns, raw_cells)
        except (ExportError, OSError) as exc:
            fail(f"cannot write {output}: {_reason(exc)}")
        if not _is_stdout(output):  # -o /dev/stdout: the line would land in the data
            click.echo(printable(f"wrote {count} runs to {output} ({fmt})"))
    for line in alignment_lines(result.rows):  # the empty alignment cells, explained (never in the data)
        click.echo(printable(f"note: {line}"), err=True)


def _is_stdout(path: Path) -> bool:
    """Whether ``path`` is where standard output goes (/dev/stdout, /dev/fd/1, the file it is redirected to)."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError):  # no such path, or no real descriptor (click's test runner)
        return False


def _reason(exc: Exception) -> str:
    """An OSError as its reason (``No space left on device``), without the errno and path Python adds."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


# --------------------------------------------------------------------------- report


@click.command()
@mlflow_uri_option
@experiment_option
@query_options
@click.option("--rows", "rows_name", default="alignment_target_id", show_default=True,
              help="Column whose values label the rows (params/metrics/tags prefix optional).")
@click.option("--cols", "cols_name", default="adm", show_default=True, help="Column whose values label the columns.")
@click.option("--values", "values_name", default=None,
              help=f"Column to aggregate, e.g. metrics.score.alignment_score [default: {METRIC_AVG_SECONDS}, or "
                   f"{METRIC_ORACLE_HIT_RATE} when no run has a score.* metric].")
@click.option("--agg", type=click.Choice(["mean", "median", "min", "max", "count"]), default="mean",
              show_default=True)
@click.option("-o", "--output", type=click.Path(allow_dash=True, path_type=Path), default=None,
              help=f"Write the report here ({', '.join(suffixes(REPORT_FORMATS))}; .png/.svg: the alignment curve "
                   "plot; '-': standard output, csv unless --format); without it the table is only printed.")
@click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default=None,
              help="Report format [default: from the -o suffix].")
@raw_cells_option
def report(mlflow_uri: str | None, experiment_name: str, adm: str | None, llm: str | None,
           min_score: float | None, score_metric: str, filter_text: str | None, limit: int | None,
           rows_name: str, cols_name: str, values_name: str | None, agg: str, output: Path | None,
           fmt: str | None, raw_cells: bool) -> None:
    """Pivot runs into a table (default: mean seconds per scene, alignment target x ADM; the oracle hit rate
    when no run has a score.* metric).

    xlsx reports have a formatted pivot sheet, an alignment-curve chart sheet and a 'runs' sheet with the runs
    behind it; .png/.svg write the alignment curve (target value vs chosen mean, per ADM) as an image.
    An unknown column exits 2 listing the available ones; no matching run exits 1.
    """
    from align_track.query.analysis import alignment_curve
    from align_track.query.export import ExportError
    from align_track.query.report import annotate, build_pivot, default_values, plain_table, preview, write_report

    to_stdout = _to_stdout(output)
    if to_stdout:
        fmt = fmt or "csv"
        if FORMATS[fmt].binary and sys.stdout.isatty():  # before reading the store
            fail(BINARY_ON_A_TERMINAL.format(fmt=fmt))
    elif output is not None:
        try:
            fmt = format_for(output, fmt, REPORT_FORMATS)
        except ExportError as exc:
            fail(str(exc))
    result = _select(mlflow_uri, experiment_name, adm, llm, min_score, score_metric, filter_text, limit)
    if not result.rows:
        fail(f"no report: {result.empty_reason()}", 1)
    why = ""
    if values_name is None:
        values_name, why = default_values(result.rows)
    try:
        pivot = annotate(build_pivot(result.frame, rows_name, cols_name, values_name, agg), result.rows)
    except QueryError as exc:
        from align_track.query.coverage import alignment_lines

        why = alignment_lines(result.rows, names=False) if "alignment." in values_name or "kdma." in values_name \
            else []
        fail("\n".join([str(exc), *(f"note: {line}" for line in why)]))
    note = f"{len(result.rows)} runs from experiment {experiment_name!r}"
    if result.filter_string:
        note += f"; filter: {result.filter_string}"
    if why:
        click.echo(f"note: {why}", err=True)
    if output is None:
        click.echo(printable(pivot.title))
        click.echo(plain_table([pivot.corner, *map(str, pivot.table.columns)], pivot.cells()))
        for line in pivot.footnotes():  # what the table leaves out, and why
            click.echo(printable(f"note: {line}"))
        return
    fmt = fmt or "xlsx"
    if fmt in IMAGE_FORMATS:  # the image draws the curve's runs only: its title says how many of them
        note = f"{pivot.curve_runs} of {note.replace(' runs', ' runs plotted', 1)}"
    if to_stdout:  # only the report itself on standard output; a failed write is cli.output's one line
        try:
            write_report(pivot, _stdout_target(fmt), fmt, note, alignment_curve(result.rows), raw_cells)
        except ExportError as exc:
            fail(str(exc))
        for line in pivot.curve_notes if fmt in IMAGE_FORMATS else pivot.footnotes():
            click.echo(printable(f"note: {line}"), err=True)
        return
    try:
        write_report(pivot, output, fmt, note, alignment_curve(result.rows), raw_cells)
    except (ExportError, OSError) as exc:
        fail(f"cannot write {output}: {_reason(exc)}")
    if _is_stdout(output):  # -o /dev/stdout: the lines would land in the report
        return
    if fmt in IMAGE_FORMATS:
        click.echo(printable(f"wrote the alignment curve ({note}) to {output}"))
        for line in pivot.curve_notes:
            click.echo(printable(f"note: {line}"))
        return
    click.echo(printable(f"wrote {pivot.title} ({note}) to {output}"))
    click.echo(preview(pivot))
    for line in pivot.footnotes():
        click.echo(printable(f"note: {line}"))


# --------------------------------------------------------------------------- scenes


SCENE_SORTS = ("scene", "runs", "choices", "agreement", "oracle", "distance")  # query.scene_index.SORTS


@click.command()
@mlflow_uri_option
@experiment_option
@query_options
@click.option("--scenario", metavar="ID", help="Only scenes of this scenario.")
@click.option("--scene", "scene_id", metavar="ID",
              help="List every run's decision on this scene (with --scenario where several scenarios have it).")
@click.option("--text", metavar="WORDS", help="Only scenes whose scenario, scene id, state text or choices "
                                              "hold every word (case-insensitive).")
@click.option("--splits", is_flag=True, help="Only scenes where the runs did not all choose alike.")
@click.option("--sort", "sort_by", type=click.Choice(SCENE_SORTS), default="scene", show_default=True,
              help="agreement: the scenes that split the runs most first; --reverse turns any order round.")
@click.option("--reverse", is_flag=True, help="Reverse the order.")
@click.option("--format", "fmt", type=click.Choice(["table", *EXPORT_FORMATS]), default=None,
              help="table: fitted to a terminal, plain and complete in a pipe [default: table, or from the -o "
                   "suffix].")
@click.option("-o", "--output", type=click.Path(allow_dash=True, path_type=Path), default=None,
              help="Write to this file (its suffix picks the format unless --format); '-': standard output. "
                   "A FIFO or device is written straight, a symlink followed.")
@raw_cells_option
def scenes(mlflow_uri: str | None, experiment_name: str, adm: str | None, llm: str | None,
           min_score: float | None, score_metric: str, filter_text: str | None, limit: int | None,
           scenario: str | None, scene_id: str | None, text: str | None, splits: bool, sort_by: str,
           reverse: bool, fmt: str | None, output: Path | None, raw_cells: bool) -> None:
    """Scenes across runs: every (scenario, scene) of the selected runs, how many runs met it, the choices they
    took (and how many took each), agreement (share of the most common choice), oracle hit rate and mean
    chosen-KDMA distance (runs with a scalar target). With --scene, every run's decision on that scene, grouped
    by ADM, LLM and target: choice, oracle hit, distance, true and predicted KDMA values of the chosen choice,
    justification.

    Choices are compared by the chosen action's text, not its index. No scene: says why on stderr, exits 0.
    """
    from align_track.query.export import ExportError, output_target
    from align_track.query.scene_index import (
        DECISION_HEADER,
        SCENE_HEADER,
        attach_state_texts,
        build_index,
        decision_records,
        haystack,
        matches,
        scene_records,
        sort_rows,
    )

    to_stdout = output is None or str(output) == "-"
    try:
        if fmt is None:
            fmt = "table" if to_stdout else format_for(output, None)
        elif fmt != "table" and not to_stdout:
            fmt = format_for(output, fmt)
    except ExportError as exc:
        fail(str(exc))
    if fmt == "table" and not to_stdout:
        fail("a table is printed, not written: choose --format csv, tsv, json or xlsx for -o")
    if to_stdout and fmt != "table" and FORMATS[fmt].binary and sys.stdout.isatty():  # before reading the store
        fail(BINARY_ON_A_TERMINAL.format(fmt=fmt))
    result = _select(mlflow_uri, experiment_name, adm, llm, min_score, score_metric, filter_text, limit)
    if not result.rows:
        click.echo(printable(result.empty_reason()), err=True)
        if fmt == "json":
            click.echo("[]")
        return
    names = None if scene_id is None else [scene_id.split("#", 1)[0]]
    try:
        index = build_index(result.tracking_uri, result.experiment_id, result.rows, names=names)
    except StoreError as exc:
        fail(str(exc))
    rows = index.rows()
    if scenario is not None:
        rows = [r for r in rows if r.key[0] == scenario]
    if scene_id is not None:
        rows = [r for r in rows if r.key[1] == scene_id]
    if text:
        attach_state_texts(index, result.tracking_uri, result.experiment_id, [r.key for r in rows])
        rows = [r for r in rows if matches(haystack(r, index.texts.get(r.key, "")), text)]
    if splits:
        rows = [r for r in rows if r.split]
    where = f"{len(result.rows)} runs of {experiment_name!r}"
    if not rows:
        what = f"scene {scene_id!r} matches" if scene_id else "scenes match"
        only = "; only scenes where the runs split (--splits)" if splits else ""
        click.echo(printable(f"no {what} ({where}; scenario: {scenario or 'any'}; text: {text or 'any'}{only})"),
                   err=True)
        if fmt == "json":
            click.echo("[]")
        return
    if scene_id is None:
        rows = sort_rows(rows, sort_by, reverse)
        header, records = list(SCENE_HEADER), scene_records(rows, structured=fmt == "json")
        title = f"{len(rows)} scenes over {where}"
        table_cols = ["scenario_id", "scene_id", "runs", "agreement", "oracle_hit_rate", "chosen_distance", "choices"]
    else:
        scenarios = sorted({r.key[0] for r in rows})
        if len(scenarios) > 1:
            fail(f"scene {scene_id!r} is in {len(scenarios)} scenarios ({', '.join(scenarios)}): "
                 "choose one with --scenario")
        from align_track.store.scenes_reader import read_details

        decisions = index.decisions_of(rows[0].key)
        try:
            details = read_details(result.tracking_uri, result.experiment_id, [d.trace_id for d in decisions])
        except StoreError as exc:
            fail(str(exc))
        header = list(DECISION_HEADER)
        records = decision_records(index, decisions, details, structured=fmt == "json")
        if fmt == "table":
            just = header.index("justification")
            from align_track.query.scene_index import first_line

            for rec in records:
                rec[just] = first_line(rec[just])
        title = (f"{len(records)} decisions on scene {rows[0].key[1]} of {rows[0].key[0]} "
                 f"({rows[0].choices_text(', ')})")
        table_cols = ["adm", "llm", "alignment_target_id", "run_variant", "choice", "oracle_hit", "chosen_distance",
                      "true_kdma", "predicted_kdma", "justification"]
    if fmt == "table":
        keep = [header.index(c) for c in table_cols]
        shown = [[_scene_cell(header[i], rec[i]) for i in keep] for rec in records]
        _print_table([_SCENE_HEADINGS.get(header[i], header[i]) for i in keep], shown, title)
        return
    if to_stdout:  # the bytes a file would get; a failed write: cli.output's one line
        FORMATS[fmt].write_table(_stdout_target(fmt), header, records, raw_cells=raw_cells)
        return
    try:
        with output_target(output) as target:
            FORMATS[fmt].write_table(target, header, records, raw_cells=raw_cells)
    except (ExportError, OSError) as exc:
        fail(f"cannot write {output}: {_reason(exc)}")
    if not _is_stdout(output):  # -o /dev/stdout: the line would land in the data
        click.echo(printable(f"wrote {len(records)} {'scenes' if scene_id is None else 'decisions'} to {output} "
                             f"({fmt})"))


_SCENE_HEADINGS = {"scenario_id": "scenario", "scene_id": "scene", "oracle_hit_rate": "oracle",
                   "chosen_distance": "dist", "alignment_target_id": "target", "run_variant": "variant",
                   "oracle_hit": "hit", "true_kdma": "true", "predicted_kdma": "predicted", "adm": "ADM",
                   "llm": "LLM", "justification": "why"}


def _scene_cell(column: str, value: Any) -> Any:
    """A table cell: shares as percentages, hits as ✓/✗, the LLM without its organisation."""
    if value is None:
        return ""
    if column in ("agreement", "oracle_hit_rate"):
        return f"{value * 100:.0f}%"
    if column == "oracle_hit":
        return "✓" if value else "✗"
    if column == "llm":
        return str(value).rsplit("/", 1)[-1]
    return value


# --------------------------------------------------------------------------- list-runs


def run_folder(tags: dict[str, str], root: Path | None) -> Path | None:
    """The run's folder: ``root / experiment_path`` if a root is given, else the path recorded at ingest."""
    if root is not None:
        rel = tags.get(TAG_PATH)
        return Path(os.path.abspath(root / rel)) if rel is not None else None
    source = tags.get(TAG_SOURCE)
    return Path(source) if source else None


def _shown(value: str | None) -> str | None:
    """A cell as the terminal may show it: names from folders can hold escape sequences."""
    return printable(value) if value else None


@click.command("list-runs")
@mlflow_uri_option
@experiment_option
@query_options
@click.option("--with-links", is_flag=True, help="Print an `align-app --experiment PATH` command per run.")
@click.option("--experiments-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the run folders are now [default: where they were at ingest].")
@columns_option(DEFAULT_LIST_COLUMNS)
def list_runs(mlflow_uri: str | None, experiment_name: str, adm: str | None, llm: str | None,
              min_score: float | None, score_metric: str, filter_text: str | None, limit: int | None,
              with_links: bool, experiments_root: Path | None, columns: str) -> None:
    """List runs (ADM, target, variant, scenes, state, folder), optionally with align-app deep links.

    The state is search's (done, 'no timing', 'may still be running'). Links point at
    EXPERIMENTS_ROOT/<experiment_path>; a folder that no longer exists is marked MISSING.
    """
    names = parse_columns(columns)
    result = _select(mlflow_uri, experiment_name, adm, llm, min_score, score_metric, filter_text, limit)
    if not result.rows:
        click.echo(printable(result.empty_reason()), err=True)
        return
    if not (with_links or experiments_root is not None):
        score = metric_key(score_metric)
        keys = [score if n == "score" else SEARCH_COLUMNS[n][1] for n in names]
        rows = [[rec[k] for k in keys] for rec in summary_records(result, score_metric)]
        _print_table([SEARCH_COLUMNS[n][0] for n in names], rows, f"{len(rows)} runs in {experiment_name!r}",
                     droppable=names == list(DEFAULT_LIST_COLUMNS))
        return
    from align_track.query.live import timing_state

    root = Path(os.path.abspath(experiments_root)) if experiments_root is not None else None
    missing = 0
    for r in result.rows:
        folder = run_folder(r.tags, root)
        s = RunSummary.of(r)
        details = " · ".join(v for v in (s.adm, s.target, s.variant) if v)
        state = f" · {state}" if (state := timing_state(r)) else ""  # a finished run says nothing more
        click.echo(printable(f"{r.run_name}  [{details} · {r.params.get(PARAM_NUM_SCENES, '?')} scenes{state}]"))
        if folder is None:
            missing += 1
            click.echo("  # no folder recorded for this run: pass --experiments-root")
            continue
        line = f"  align-app --experiment {shlex.quote(str(folder))}"
        if not folder.is_dir():
            missing += 1
            line += "  # MISSING: folder no longer exists"
        click.echo(printable(line))  # a name with escape sequences is shown escaped, never interpreted
    if missing:
        click.echo(f"{missing} of {len(result.rows)} run folders not found", err=True)


# --------------------------------------------------------------------------- ui


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@click.command()
@mlflow_uri_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 exposes the unauthenticated UI to the network.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--allowed-hosts", default=None, metavar="LIST",
              help="Host headers the server accepts (passed to mlflow server --allowed-hosts), "
                   "for reaching a 0.0.0.0 UI by hostname.")
@click.option("--timeout", default=90.0, show_default=True, hidden=True, help="Seconds to wait for /health.")
def ui(mlflow_uri: str | None, host: str, port: int, allowed_hosts: str | None, timeout: float) -> None:
    """Start the MLflow web UI on the store and keep it running until Ctrl-C.

    Waits until the server answers, prints its URL (and, inside an SSH session, the
    `ssh -N -L` command to run on your laptop). Ctrl-C or SIGTERM stops the server and
    all of its workers. A busy port exits 2 naming a free one.
    """
    from align_track.mlflow_ui import exposure_warning, ssh_forward_hint, start_ui, stop_ui
    from align_track.store.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(mlflow_uri)
    warning = exposure_warning(host)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    previous = {sig: signal.signal(sig, _interrupt) for sig in _stop_signals()}
    server = None
    try:
        try:
            server = start_ui(uri, host=host, port=port, timeout=timeout, allowed_hosts=allowed_hosts)
        except StoreError as exc:  # includes PortBusy and UiError
            fail(str(exc))
        if not server.owned:
            click.echo(f"{uri} is a tracking server: its UI is at {server.url}")
            return
        click.echo(f"MLflow UI: {server.url}  (store {uri})")
        if host in ("0.0.0.0", "::") and allowed_hosts is None:
            import socket

            name = socket.gethostname()
            click.echo(f"note: MLflow only answers Host headers that are localhost or a private IP; to open "
                       f"http://{name}:{port} rerun with --allowed-hosts '{name}:*'", err=True)
        hint = ssh_forward_hint(port, host)
        if hint:
            click.echo(f"over SSH: on your laptop run\n  {hint}\nthen open http://localhost:{port}")
        click.echo("press Ctrl-C to stop")
        while server.alive():
            time.sleep(0.3)
        code = server.process.poll() if server.process else None
        fail(f"mlflow server exited on its own (code {code}); log: {server.log_path}", 1)
    except KeyboardInterrupt:
        click.echo("stopping the MLflow UI...", err=True)
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not leave workers behind
        if server is not None:
            stop_ui(server)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("stopped", err=True)


def _stop_signals() -> list[int]:
    names = ("SIGINT", "SIGTERM", "SIGHUP")
    return [getattr(signal, n) for n in names if hasattr(signal, n)]


COMMANDS = [search, export, report, list_runs, scenes, ui]
