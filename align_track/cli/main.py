"""The ``align-track`` command line.

Imports stay light at module level (click only): mlflow, pandas and textual load
inside the command that needs them, so ``align-track --help`` answers at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from align_track.cli import runs as cli_query
from align_track.cli import store as cli_store
from align_track.cli.options import experiment_option, fail, mlflow_uri_option
from align_track.cli.output import GuardedGroup
from align_track.errors import printable
from align_track.schema import STALL_SECONDS
from align_track.store.uri import StoreError


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="align-track")
def main() -> None:
    """Turn align-system run folders into MLflow runs and traces, and explore them."""


@main.command()
@click.option("--experiments-dir", required=True, type=click.Path(path_type=Path),
              help="Folder holding align-system run folders (searched recursively).")
@mlflow_uri_option
@experiment_option
@click.option("--force", is_flag=True, help="Re-ingest every experiment, even unchanged ones.")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Run folders written at once [default: 4 for an http(s) server, 1 for a database].")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors and the summary's failures.")
@click.option("--watch", is_flag=True,
              help="Keep running: ingest new folders as they appear and grow running ones scene by scene.")
@click.option("--poll-interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True, metavar="S",
              help="With --watch: seconds between two looks at the tree (a stat walk; works on NFS/Lustre/GPFS).")
@click.option("--stall-after", type=click.FloatRange(min=0), default=STALL_SECONDS, show_default=True, metavar="S",
              help="With --watch: a running folder unchanged this long without timing.json is marked stalled.")
@click.option("--allow-sqlite-on-network-fs", "allow_network_fs", is_flag=True,
              help="Write a SQLite store on NFS/Lustre/GPFS/... even while another host writes it (risks "
                   "corrupting it; see \"On a cluster\" in the README).")
def ingest(experiments_dir: Path, mlflow_uri: str | None, experiment_name: str, force: bool,
           workers: int | None, quiet: bool, watch: bool, poll_interval: float, stall_after: float,
           allow_network_fs: bool) -> None:
    """Ingest experiments: one MLflow run per experiment, one trace per scene.

    Unchanged run folders are skipped, changed ones replaced; exits 1 if any
    run folder failed (each failure is listed with its file and reason).
    With --watch, keeps going until Ctrl-C: see "Live sweeps" in the README.
    """
    if not os.path.isdir(experiments_dir) or not os.access(experiments_dir, os.R_OK | os.X_OK):
        fail(f"experiments directory not found or not readable: {printable(str(experiments_dir))}")
    if watch:
        _watch(experiments_dir, mlflow_uri, experiment_name, poll_interval, stall_after, quiet, allow_network_fs)
        return
    from align_track.cli.progress import make_reporter
    from align_track.ingest.pipeline import ingest as run_ingest
    from align_track.ingest.pipeline import summary_lines

    reporter = make_reporter(quiet)
    try:
        summary = run_ingest(experiments_dir, mlflow_uri, experiment_name, force=force, on_event=reporter,
                             workers=workers, allow_network_fs=allow_network_fs)
    except StoreError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        click.echo("interrupted: completed runs are kept; rerun to finish the rest", err=True)
        sys.exit(130)
    finally:
        if reporter is not None:
            reporter.close()
    lines = summary_lines(summary)
    if not quiet:
        click.echo(lines[0])
        from align_track.cli.progress import timing_lines

        for line in timing_lines(summary, _list_runs_command(mlflow_uri, experiment_name)):
            click.echo(line, err=True)  # stdout keeps the one key=value line
    for line in lines[1:]:
        click.echo(line, err=True)
    if summary.abandoned:  # threads still stuck in requests to a hung server: do not wait for them at exit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    if summary.failures:
        sys.exit(1)


def _list_runs_command(mlflow_uri: str | None, experiment_name: str) -> str:
    """``align-track list-runs`` on the store and experiment just ingested, with the state column, shell-quoted."""
    import shlex

    from align_track.store.uri import DEFAULT_EXPERIMENT

    args = ["align-track", "list-runs"]
    if mlflow_uri is not None:
        args += ["--mlflow-uri", mlflow_uri]
    if experiment_name != DEFAULT_EXPERIMENT:
        args += ["--experiment-name", experiment_name]
    return printable(shlex.join([*args, "--columns", "state,folder"]))


def _watch(experiments_dir: Path, mlflow_uri: str | None, experiment_name: str, poll_interval: float,
           stall_after: float, quiet: bool, allow_network_fs: bool = False) -> None:
    """The watch loop on the command line: one line per event, Ctrl-C (or SIGTERM) stops with a summary."""
    import signal
    import threading

    stop = threading.Event()

    def on_event(event) -> None:
        if quiet and event.kind != FAILED:
            return
        if event.kind == NOTE and not event.path:  # about the store, not a folder
            click.echo(f"note: {printable(event.message)}", err=True)
            return
        detail = event.message if event.kind in (FAILED, NOTE, SETTLED) else \
            f"scenes={event.scenes}" if event.scenes else ""
        run = f" run={event.run_id}" if event.run_id and event.kind != FAILED else ""
        click.echo(printable(f"{event.kind:9} {event.path}{run} {detail}".rstrip()), err=True)

    def on_signal(signum, frame) -> None:
        if stop.is_set():  # a second Ctrl-C: stop now; every write is resumable
            raise KeyboardInterrupt
        stop.set()
        click.echo("stopping after the current folder (Ctrl-C again to stop at once)", err=True)

    # Before the slow part (importing MLflow, opening the store): a Ctrl-C from then on is a clean stop.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    from align_track.ingest.watch import FAILED, NOTE, SETTLED, Watcher

    try:
        watcher = Watcher(experiments_dir, mlflow_uri, experiment_name, poll_interval, stall_after,
                          on_event=on_event, allow_network_fs=allow_network_fs)
    except StoreError as exc:
        fail(str(exc))
    if not quiet:
        click.echo(printable(f"watching {watcher.root} every {poll_interval:g}s (Ctrl-C stops)"), err=True)
    try:
        summary = watcher.run(stop)
    except KeyboardInterrupt:
        summary = watcher.close()
    click.echo(summary.line())


@main.command("demo-data")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--experiments", default=24, show_default=True, help="How many run folders.")
@click.option("--scenes", default=8, show_default=True, help="Scenes per run folder.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same files).")
def demo_data(out_dir: Path, experiments: int, scenes: int, seed: int) -> None:
    """Write realistic align-system run folders (sweeps, quirks and all) for demos and tests."""
    from align_track.demo.generate import generate_demo

    paths = generate_demo(out_dir, run_folders=experiments, scenes=scenes, seed=seed)
    click.echo(printable(f"wrote {len(paths)} run folders x {scenes} scenes under {out_dir}"))


@main.command()
@mlflow_uri_option
@experiment_option
@click.option("--experiments-dir", type=click.Path(path_type=Path), default=None,
              help="Prefill the Ingest pane with this folder.")
@click.option("--notice", default=None, metavar="TEXT",
              help="A line to show when the TUI opens (make demo passes the ingest summary).")
@click.option("--refresh", type=click.FloatRange(min=0), default=2.0, show_default=True, metavar="SECONDS",
              help="Read the runs that changed (new, finished, still being written) this often; 0 turns it off.")
def tui(mlflow_uri: str | None, experiment_name: str, experiments_dir: Path | None, notice: str | None,
        refresh: float) -> None:
    """Open the full-screen terminal UI: runs, scenes, compare, ingest, reports, MLflow UI."""
    try:
        from align_track.tui.app import run_app

        run_app(mlflow_uri=mlflow_uri, experiment_name=experiment_name, experiments_dir=experiments_dir,
                notice=notice, refresh=refresh)
    except KeyboardInterrupt:  # Ctrl-C while the TUI loads: quit quietly, no traceback
        sys.exit(130)


for _command in cli_query.COMMANDS:
    main.add_command(_command)
main.add_command(cli_store.store)

if __name__ == "__main__":
    main()
