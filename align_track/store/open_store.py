"""Open the store an ingest, a watcher or the Hydra callback writes to: the writer without MLflow where the store
allows it, else MLflow's.

* a SQLite/PostgreSQL store at the schema revision the pinned MLflow has: ``sql_direct.DirectStore`` (no mlflow);
* a tracking server: ``server_writer.ServerStore`` (its REST and OTLP protocols, no mlflow);
* anything else (a new store or experiment, another revision or MLflow version, MySQL, ``ALIGN_TRACK_DIRECT=0``):
  ``run_writer.RunStore`` through MLflow, which also creates what is missing (after which the writes go without
  it again).

They have the same methods; what they write reads back the same (tests/store/test_bulk_equivalence.py,
tests/store/test_server.py, tests/ingest/test_watch.py).

A SQLite store on a network filesystem is claimed for this host first (store/writer_hosts.py): a writer there
says the risk once, and refuses while another host writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from align_track.store import writer_hosts
from align_track.store.filesystems import filesystem_of
from align_track.store.run_writer import RunStore
from align_track.store.runs_reader import ExperimentNotFound
from align_track.store.server_writer import ServerStore
from align_track.store.sql_direct import NEW_EXPERIMENT, NEW_STORE, DirectStore
from align_track.store.uri import StoreError, check_writable, sqlite_path, store_kind


def open_run_store(tracking_uri: str, experiment_name: str, create: bool = True,
                   stage: Callable[[str], None] | None = None, notice: Callable[[str], None] | None = None,
                   allow_network_fs: bool = False) -> RunStore | DirectStore | ServerStore:
    """The experiment's writer: without MLflow where the store allows it (see the module), else through MLflow,
    which also creates a missing store or experiment (``create``), after which the writes go without it again.

    ``stage`` hears what takes a while: creating a store (MLflow's import and migrations, a few seconds, once);
    ``notice`` the risk of a SQLite store on a network filesystem (once per process). OtherHostWriting (a
    StoreError) when another host writes that store, unless ``allow_network_fs``.
    """
    claim = claim_sqlite_store(tracking_uri, notice, allow_network_fs)
    try:
        store = _open(tracking_uri, experiment_name, create, stage)
    except BaseException:
        writer_hosts.release(claim)
        raise
    if claim is not None:
        close = store.close

        def close_and_release() -> None:  # the claim lasts as long as this writer
            try:
                close()
            finally:
                writer_hosts.release(claim)

        store.close = close_and_release  # type: ignore[method-assign]
    return store


def claim_sqlite_store(tracking_uri: str, notice: Callable[[str], None] | None = None,
                       allow: bool = False) -> Path | None:
    """On a SQLite store on a network filesystem: the risk said once, this host's claim taken (see
    store/writer_hosts.py); None elsewhere."""
    path = sqlite_path(tracking_uri) if store_kind(tracking_uri) == "sqlite" else None
    if path is None:
        return None
    fs = filesystem_of(path.parent)
    if not fs.network:
        return None
    note = writer_hosts.note_once(path, fs)
    if note is not None and notice is not None and not allow:
        notice(note)
    return writer_hosts.claim_store(path, fs, allow)


def _open(tracking_uri: str, experiment_name: str, create: bool,
          stage: Callable[[str], None] | None) -> RunStore | DirectStore | ServerStore:
    from align_track.store import dbapi

    if store_kind(tracking_uri) == "http" and dbapi.enabled():
        try:
            return ServerStore.open(tracking_uri, experiment_name)
        except ExperimentNotFound:
            if not create:
                raise
        if stage is not None:
            stage(f"creating experiment {experiment_name!r}")
        RunStore(tracking_uri, experiment_name, create)  # MLflow creates the experiment (as a user's client would)
        return ServerStore.open(tracking_uri, experiment_name)
    if not dbapi.supported(tracking_uri):
        return RunStore(tracking_uri, experiment_name, create)
    direct, why = DirectStore.probe(tracking_uri, experiment_name)
    if direct is not None:
        return direct
    if stage is not None and create and why in (NEW_STORE, NEW_EXPERIMENT) and _can_create(tracking_uri):
        where = sqlite_path(tracking_uri) or tracking_uri.rsplit("/", 1)[-1]
        stage(f"creating the MLflow store {where} (first use: a few seconds)" if why == NEW_STORE else
              f"creating experiment {experiment_name!r}")
    store = RunStore(tracking_uri, experiment_name, create)  # creates the store or experiment, or knows why not
    return DirectStore.open(tracking_uri, experiment_name) or store


def _can_create(tracking_uri: str) -> bool:
    """Whether a new SQLite store could be made there (else MLflow's path says why, and nothing is announced)."""
    path = sqlite_path(tracking_uri)
    if path is None:
        return True
    try:
        if path.parent.exists():
            check_writable(path)
    except StoreError:
        return False
    return True


