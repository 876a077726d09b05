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
from align_track.query.select import DEFAULT_SCORE_METRIC, QueryError, QueryResult, RunQuery, metric_key
from align_track.schema import METRIC_AVG_SECONDS, PARAM_NUM_SCENES, TAG_PATH, TAG_SOURCE, RunSummary
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


# --------------------------------------------------------------------------- search


def _scenes(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def summary_records(result: QueryResult, score_metric: str) -> list[dict[str, Any]]:
    """The columns search shows, per run, straight from the rows (no pandas needed)."""
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
        })
    return records


_TABLE_HEADINGS = ("run", "ADM", "LLM", "target", "variant", "scenes", "avg s", "score")


def _print_table(header: Sequence[str], rows: list[list[Any]], title: str) -> None:
    """A rich table on a terminal, a plain aligned one in a pipe (greppable, no escape codes)."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        from align_track.query.report import _text

        table = Table(title=title, title_justify="left")
        for i, name in enumerate(header):
            numeric = any(isinstance(row[i], (int, float)) for row in rows)
            table.add_column(name, justify="right" if numeric else "left", overflow="fold")
        for row in rows:
            table.add_row(*(_text(v, "{:.3f}") for v in row))
        Console().print(table)
    else:
        from align_track.query.report import plain_table

        click.echo(plain_table(header, rows))


def _emit_records(records: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(records, indent=2, ensure_ascii=False, default=str))
        return
    import csv
    import io

    buf = io.StringIO()
    header = list(records[0]) if records else []
    out = csv.writer(buf, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
    if header:
        out.writerow(header)
    out.writerows([["" if v is None else v for v in rec.values()] for rec in records])
    click.echo(buf.getvalue(), nl=False)


@click.command()
@mlflow_uri_option
@experiment_option
@query_options
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "tsv", "json"]), default="table",
              show_default=True, help="table: rich on a terminal, plain text in a pipe.")
def search(mlflow_uri: str | None, experiment_name: str, adm: str | None, llm: str | None,
           min_score: float | None, score_metric: str, filter_text: str | None, limit: int | None,
           fmt: str) -> None:
    """Search the ingested runs: ADM, LLM, target, variant, scenes, average seconds and score.

    Only complete runs count. When nothing matches, says why on stderr and exits 0
    (csv/tsv print nothing, json prints []), so scripts can tell "no match" from an error (2).
    """
    result = _select(mlflow_uri, experiment_name, adm, llm, min_score, score_metric, filter_text, limit)
    records = summary_records(result, score_metric)
    if not records:
        click.echo(result.empty_reason(), err=True)
        if fmt == "json":
            click.echo("[]")
        return
    if fmt != "table":
        _emit_records(records, fmt)
        return
    rows = [[rec["run_name"], rec["adm"], rec["llm"], rec["alignment_target_id"], rec["run_variant"],
             rec["num_scenarios"], rec["avg_seconds"], rec[metric_key(score_metric)]] for rec in records]
    headings = list(_TABLE_HEADINGS)
    if metric_key(score_metric) != DEFAULT_SCORE_METRIC:
        headings[-1] = metric_key(score_metric)
    _print_table(headings, rows, f"{len(rows)} of {result.complete} runs in {experiment_name!r}")


# --------------------------------------------------------------------------- export


@click.command()
@mlflow_uri_option
@experiment_option
@query_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write; its suffix picks the format unless --format is given.")
@click.option("--format", "fmt", type=click.Choice(["csv", "tsv", "json", "xlsx"]), default=None,
              help="Output format [default: from the -o suffix].")
def export(mlflow_uri: str | None, experiment_name: str, adm: str | None, llm: str | None,
           min_score: float | None, score_metric: str, filter_text: str | None, limit: int | None,
           output: Path, fmt: str | None) -> None:
    """Export runs, one row each: run_id, run_name, status, start_time, then every param, metric and tag.

    The file is written atomically (never half-written). Exits 1 without writing when no run matches.
    """
    from align_track.query.export import ExportError, format_for, write_export

    try:
        fmt = format_for(output, fmt)
    except ExportError as exc:
        fail(str(exc))
    result = _select(mlflow_uri, experiment_name, adm, llm, min_score, score_metric, filter_text, limit)
    if not result.rows:
        fail(f"nothing exported: {result.empty_reason()}", 1)
    try:
        count = write_export(result.frame, output, fmt)
    except (ExportError, OSError) as exc:
        fail(f"cannot write {output}: {exc}")
    click.echo(f"wrote {count} runs to {output} ({fmt})")


# --------------------------------------------------------------------------- report


@click.command()
@mlflow_uri_option
@experiment_option
@query_options
@click.option("--rows", "rows_name", default="alignment_target_id", show_default=True,
              help="Column whose values label the rows (params/metrics/tags prefix optional).")
@click.option("--cols", "cols_name", default="adm", show_default=True, help="Column whose values label the columns.")
@click.option("--values", "values_name", default=METRIC_AVG_SECONDS, show_default=True,
              help="Column to aggregate, e.g. metrics.score.alignment_score.")
@click.option("--agg", type=click.Choice(["mean", "median", "min", "max", "count"]), default="mean",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report here (.xlsx, .csv or .json); without it the table is only printed.")
@click.option("--format", "fmt", type=click.Choice(["xlsx", "csv", "json"]), default=None,
              help="Report format [default: from the -o suffix].")
def report(mlflow_uri: str | None, experiment_name: str, adm: str | None, llm: str | None,
           min_score: float | None, score_metric: str, filter_text: str | None, limit: int | None,
           rows_name: str, cols_name: str, values_name: str, agg: str, output: Path | None,
           fmt: str | None) -> None:
    """Pivot runs into a table (default: mean seconds per scene, alignment target x ADM).

    xlsx reports have a formatted pivot sheet and a 'runs' sheet with the runs behind it.
    An unknown column exits 2 listing the available ones; no matching run exits 1.
    """
    from align_track.query.export import ExportError, format_for
    from align_track.query.report import REPORT_FORMATS, build_pivot, plain_table, preview, write_report

    if output is not None:
        try:
            fmt = format_for(output, fmt, REPORT_FORMATS)
        except ExportError as exc:
            fail(str(exc))
    result = _select(mlflow_uri, experiment_name, adm, llm, min_score, score_metric, filter_text, limit)
    if not result.rows:
        fail(f"no report: {result.empty_reason()}", 1)
    try:
        pivot = build_pivot(result.frame, rows_name, cols_name, values_name, agg)
    except QueryError as exc:
        fail(str(exc))
    note = f"{len(result.rows)} runs from experiment {experiment_name!r}"
    if result.filter_string:
        note += f"; filter: {result.filter_string}"
    if output is None:
        click.echo(pivot.title)
        click.echo(plain_table([pivot.corner, *map(str, pivot.table.columns)], pivot.cells()))
        return
    try:
        write_report(pivot, output, fmt or "xlsx", note)
    except (ExportError, OSError) as exc:
        fail(f"cannot write {output}: {exc}")
    click.echo(f"wrote {pivot.title} ({note}) to {output}")
    click.echo(preview(pivot))


# --------------------------------------------------------------------------- list-runs


def experiment_folder(tags: dict[str, str], root: Path | None) -> Path | None:
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
              help="Where the experiment folders are now [default: where they were at ingest].")
def list_runs(mlflow_uri: str | None, experiment_name: str, adm: str | None, llm: str | None,
              min_score: float | None, score_metric: str, filter_text: str | None, limit: int | None,
              with_links: bool, experiments_root: Path | None) -> None:
    """List runs (ADM, target, variant, scenes, folder), optionally with align-app deep links.

    Links point at EXPERIMENTS_ROOT/<experiment_path>; a folder that no longer exists
    is marked MISSING.
    """
    result = _select(mlflow_uri, experiment_name, adm, llm, min_score, score_metric, filter_text, limit)
    if not result.rows:
        click.echo(result.empty_reason(), err=True)
        return
    if not (with_links or experiments_root is not None):
        summaries = [(RunSummary.of(r), r) for r in result.rows]
        rows = [[_shown(s.run_name), _shown(s.adm), _shown(s.target), _shown(s.variant),
                 _scenes(r.params.get(PARAM_NUM_SCENES)), _shown(s.path)] for s, r in summaries]
        _print_table(["run", "ADM", "target", "variant", "scenes", "folder"], rows,
                     f"{len(rows)} runs in {experiment_name!r}")
        return
    root = Path(os.path.abspath(experiments_root)) if experiments_root is not None else None
    missing = 0
    for r in result.rows:
        folder = experiment_folder(r.tags, root)
        s = RunSummary.of(r)
        details = " · ".join(v for v in (s.adm, s.target, s.variant) if v)
        click.echo(printable(f"{r.run_name}  [{details} · {r.params.get(PARAM_NUM_SCENES, '?')} scenes]"))
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
        click.echo(f"{missing} of {len(result.rows)} experiment folders not found", err=True)


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


COMMANDS = [search, export, report, list_runs, ui]
