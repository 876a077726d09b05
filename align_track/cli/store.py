"""``align-track store``: looking after a SQLite store itself (click only at import; the work loads inside)."""

from __future__ import annotations

from pathlib import Path

import click

from align_track.cli.options import fail
from align_track.errors import printable
from align_track.store.uri import StoreError


@click.group()
def store() -> None:
    """Look after a SQLite store: copy it consistently."""


def _path(value: str) -> Path:
    """A SQLite store named by its ``sqlite:///`` URI or by its file path."""
    if value.startswith("sqlite:"):
        from align_track.store.uri import sqlite_path

        path = sqlite_path(value)
        if path is None:
            fail(f"{value} names no file")
        return path
    if "://" in value:
        fail(f"{value} is not a SQLite store: only sqlite:/// stores are copied (a server keeps its own)")
    return Path(value).expanduser()


@store.command("copy")
@click.argument("source", metavar="SRC")
@click.argument("dest", metavar="DEST")
def copy(source: str, dest: str) -> None:
    """Copy the SQLite store SRC (a path or sqlite:/// URI) to the new file DEST (or into the folder DEST),
    consistently, with its artifacts.

    The copy is the store as of one commit, taken with SQLite's online backup API while writers may keep
    writing (they wait for it, then carry on); the artifacts of its runs go to artifacts/ beside DEST and the
    copy points at them. Use it to read a store that lives on a network filesystem from local disk.
    """
    from align_track.store.filesystems import filesystem_of
    from align_track.store.store_copy import copy_store

    if dest == "-":  # standard output to every other command: a store is a file and its artifacts folder
        fail("DEST '-': a store copy cannot go to standard output; name a new file or a folder")
    origin, target = _path(source), _path(dest)
    if dest.endswith("/"):  # a folder named as one, made if missing
        target = target / origin.name
    try:
        done = copy_store(origin, target, notice=lambda line: click.echo(f"note: {printable(line)}",
                                                                                 err=True))
    except StoreError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot copy to {target}: {exc.strerror or exc}")
    fs = filesystem_of(done.database.parent)
    if fs.network:
        click.echo(f"note: {printable(str(done.database))} is on {fs.name} too: copy to local disk to read it "
                   "safely while the source is written", err=True)
    click.echo(printable(f"copied {done.runs} runs, {done.traces} traces and {done.folders} artifact folders to "
                         f"{done.database} (artifacts in {done.artifacts}); read it with --mlflow-uri "
                         f"sqlite:///{done.database}"))
