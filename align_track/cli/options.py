"""Options and error handling shared by every command (click only: imported at start-up)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

import click

from align_track.errors import printable
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
    """One line on stderr and exit: no traceback for problems the user can fix. The message often holds user
    data (a path, a filter, a name from a folder), so control and bidi characters in it are shown escaped."""
    click.echo(f"error: {printable(message)}", err=True)
    sys.exit(code)


SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def sqlite_uri_for_path(value: str) -> str | None:
    """The ``sqlite:///`` URI a bare file path given as --mlflow-uri probably meant, else None.

    A path without a scheme is MLflow's file store, a *directory*; a file (or a name ending in .db) there
    is a SQLite store the user forgot to prefix, which MLflow would otherwise reject with a traceback. So is a
    path that does not exist yet (``./store``, ``data/runs``): MLflow would make a file store there.
    """
    if "://" in value or not value.strip():
        return None
    path = os.path.abspath(os.path.expanduser(value))
    if os.path.isfile(path) or (not os.path.isdir(path) and value.lower().endswith(SQLITE_SUFFIXES)):
        return f"sqlite:///{path}"
    if not os.path.lexists(path) and (os.sep in value or value.startswith(("~", "."))):  # "databricks" is a URI
        return f"sqlite:///{path}"
    return None


def file_store_problem(value: str, source: str) -> str | None:
    """The one-line error for a file store given as the tracking URI (a directory such as ``./mlruns``, or a
    ``file:`` URI), else None. ``source`` names where the value came from (``--mlflow-uri ./mlruns``).

    MLflow opens a bare directory as its file store, which MLflow 3.17 deprecates and refuses (a traceback-sized
    exception) unless ``MLFLOW_ALLOW_FILE_STORE=true``. align-track needs a database: its readers and bulk
    writer are SQL, and its runs' traces and claims need what only the database stores keep. So the error names
    the database URI to use, or how to convert a file store that holds runs. A user who opted into MLflow's
    file store (``MLFLOW_ALLOW_FILE_STORE=true``) gets MLflow's own behaviour: reads go through MLflow.
    """
    if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("true", "1"):
        return None
    if value.lower().startswith("file:"):
        from urllib.parse import unquote, urlparse

        path = os.path.abspath(unquote(urlparse(value).path) or ".")
        what, kind = f"{source} is MLflow's file store", "deprecated"
    elif "://" in value or not value.strip() or not os.path.isdir(os.path.expanduser(value)):
        return None  # a URI, or a file or new path: sqlite_uri_for_path answers those
    else:
        path = os.path.abspath(os.path.expanduser(value))
        what, kind = f"{source} is a directory", "which MLflow would open as its deprecated file store"
    inside = os.path.join(path, "mlflow.db")
    if os.path.isfile(inside):
        return f"{what}; align-track needs a database: did you mean --mlflow-uri sqlite:///{inside} ?"
    if _is_file_store(path):
        beside = path if os.path.isdir(os.path.join(path, "mlruns")) else os.path.dirname(path)
        target = os.path.join(beside, "mlflow.db")
        return (f"{what} holding an MLflow file store (deprecated; MLflow 3.17 opens it only with "
                f"MLFLOW_ALLOW_FILE_STORE=true); align-track needs a database: convert it with "
                f"`mlflow migrate-filestore --source {path} --target sqlite:///{target}`")
    return f"{what}, {kind}; align-track needs a database: e.g. --mlflow-uri sqlite:///{inside}"


def _is_file_store(path: str) -> bool:
    """Whether ``path`` looks like MLflow's file store (what ``mlflow migrate-filestore --source`` accepts)."""
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return "mlruns" in names or any(
        (name.isdigit() or name == ".trash") and os.path.isdir(os.path.join(path, name)) for name in names)


def _check_uri(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        given, source = value, f"--mlflow-uri {value}"
        if (suggestion := sqlite_uri_for_path(value)) is not None:
            fail(f"--mlflow-uri takes a URI, not a file path: did you mean --mlflow-uri {suggestion} ?")
    else:  # the default comes from the environment: a directory there gets the same answer
        given = os.environ.get("MLFLOW_TRACKING_URI") or ""
        source = f"$MLFLOW_TRACKING_URI ({given})"
    if given and (problem := file_store_problem(given, source)) is not None:
        fail(problem)
    return value


def mlflow_uri_option(func: Callable) -> Callable:
    """``--mlflow-uri``; a bare SQLite file path is answered with the URI it probably meant (exit 2)."""
    return click.option("--mlflow-uri", "mlflow_uri", default=None, metavar="URI", help=URI_HELP,
                        callback=_check_uri)(func)


def experiment_option(func: Callable) -> Callable:
    return click.option("--experiment-name", default=DEFAULT_EXPERIMENT, show_default=True,
                        help="MLflow experiment name.")(func)
