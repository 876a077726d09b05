"""Options and error handling shared by every command (click only: imported at start-up)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

import click

from align_track.store.http import configure_mlflow_http
from align_track.store.uri import DEFAULT_EXPERIMENT

URI_HELP = "MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else sqlite:///data/mlflow/mlflow.db]"

# MLflow logs "Creating initial MLflow database tables..." at INFO: noise on a command line.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
# MLflow reports usage to its developers from every process (a request at start-up) unless told not to; a tool
# run on shared clusters, often offline, should not do that on a user's behalf. MLFLOW_DISABLE_TELEMETRY=false
# (or any DO_NOT_TRACK setting) is respected as given.
if "DO_NOT_TRACK" not in os.environ:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Every command (the TUI's background loads too) fails fast on a dead server instead of ~4 minutes of retries.
configure_mlflow_http()


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr and exit: no traceback for problems the user can fix."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def sqlite_uri_for_path(value: str) -> str | None:
    """The ``sqlite:///`` URI a bare file path given as --mlflow-uri probably meant, else None.

    A path without a scheme is MLflow's file store, a *directory*; a file (or a name ending in .db) there
    is a SQLite store the user forgot to prefix, which MLflow would otherwise reject with a traceback.
    """
    if "://" in value or not value.strip():
        return None
    path = os.path.abspath(os.path.expanduser(value))
    if os.path.isfile(path) or (not os.path.isdir(path) and value.lower().endswith(SQLITE_SUFFIXES)):
        return f"sqlite:///{path}"
    return None


def _check_uri(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and (suggestion := sqlite_uri_for_path(value)) is not None:
        fail(f"--mlflow-uri takes a URI, not a file path: did you mean --mlflow-uri {suggestion} ?")
    return value


def mlflow_uri_option(func: Callable) -> Callable:
    """``--mlflow-uri``; a bare SQLite file path is answered with the URI it probably meant (exit 2)."""
    return click.option("--mlflow-uri", "mlflow_uri", default=None, metavar="URI", help=URI_HELP,
                        callback=_check_uri)(func)


def experiment_option(func: Callable) -> Callable:
    return click.option("--experiment-name", default=DEFAULT_EXPERIMENT, show_default=True,
                        help="MLflow experiment name.")(func)
