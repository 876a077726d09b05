"""``align-track ingest --watch``: keep ingesting a tree of run folders while align-system writes them.

Each poll is a stat walk (no inotify: cluster filesystems deliver none for other nodes' writes):

* every directory is stat'ed and re-listed only when its mtime moved, so new run folders (and a new
  ``timing.json``, which changes its folder's mtime) are found at the cost of one stat per directory;
* the watched files of folders still being written are stat'ed every poll; those of settled folders
  (complete in the store) only when their directory moved, or every ``rescan_every`` seconds.

A folder still being written (no ``timing.json``) becomes a RUNNING run (``align_track.state=running``)
that this watcher claims; each new scene is appended as one trace (store/run_appender.py). When
``timing.json`` appears the run is finished in place: timed traces, the last params, metrics, artifacts,
then ``align_track.complete=true`` and FINISHED. A live folder that stops changing for ``stall_after``
seconds is tagged ``stalled`` (never complete); a later change resumes it. Folders found finished are
written whole, as a plain ingest does. Exactly-once across watchers and plain ingests comes from the
same claim protocol (reconcile.plan_live / lost_claim), and every write is idempotent, so a watcher
killed at any moment and restarted converges.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from align_track.errors import one_line
from align_track.ingest.batched import with_history
from align_track.ingest.folders import (
    MARKER,
    STORE_DB,
    WATCHED_FILES,
    RunFolderConfig,
    RunFolderError,
    RunFolderFiles,
    fingerprint,
    own_store_dirs,
    read_config,
    read_files,
    store_folder,
)
from align_track.ingest.mapping import NO_SCENES, RunIdentity, build_traces, identities, map_run, run_fingerprint
from align_track.ingest.plan import Unchanged, run_gone
from align_track.ingest.reconcile import (
    adopted_history,
    after_complete,
    complete,
    foreign,
    foreign_runs_for,
    lost_claim,
    plan_live,
    settle_tags,
    settles_at,
    superseded,
)
from align_track.ingest.scene_log import SceneLog
from align_track.records import RunRecord
from align_track.schema import (
    HYDRA_DIR,
    NO_TIMING,
    STALL_SECONDS,
    STATE_RUNNING,
    STATE_STALLED,
    TAG_FINGERPRINT,
    TAG_KEY,
    TAG_LAST_SCENE,
    TAG_PATH,
    TAG_SCENES,
    TAG_STATE,
    TIMING,
    UNALIGNED,
)
from align_track.store.uri import DEFAULT_EXPERIMENT, resolve_tracking_uri

log = logging.getLogger(__name__)

DEFAULT_POLL = 1.0
DEFAULT_STALL = STALL_SECONDS
DEFAULT_RESCAN = 60.0
HEARTBEAT_EVERY = 300.0
"""Seconds between heartbeats of an idle live run: a third of the 15-minute lease other hosts grant."""

# What happened, as reported per event and counted in the summary.
CREATED, APPENDED, FINISHED, INGESTED, STALLED, RESUMED, BUSY, FAILED, REPLACED = (
    "created", "appended", "finished", "ingested", "stalled", "resumed", "busy", "failed", "replaced")
SETTLED = "settled"
"""A complete run ingested while its folder may still have been written, found quiet since: now 'no timing'."""
NOTE = "note"
"""A value truncated to MLflow's limits (as ``ingest`` notes it); not counted in the summary."""


@dataclass
class WatchEvent:
    kind: str
    path: str
    run_id: str | None = None
    scenes: int = 0
    """Scenes the run holds after this event (for appended/finished), or written (ingested)."""
    message: str = ""


@dataclass
class WatchSummary:
    counts: Counter = field(default_factory=Counter)
    traces: int = 0
    polls: int = 0
    seconds: float = 0.0
    live: int = 0
    """Runs still live (running or stalled) when the watcher stopped: left for the next watcher."""

    def line(self) -> str:
        c = self.counts
        return (f"watched polls={self.polls} seconds={self.seconds:.0f} created={c[CREATED]} appended={c[APPENDED]} "
                f"finished={c[FINISHED]} ingested={c[INGESTED]} stalled={c[STALLED]} resumed={c[RESUMED]} "
                f"busy={c[BUSY]} failed={c[FAILED]} traces={self.traces} live_left={self.live}")


@dataclass
class _Live:
    """A run this watcher holds for one identity while its folder is being written."""

    run_id: str
    known: dict[int, str]
    """Scene index -> trace id written (and present in the store)."""
    seen: int = 0
    """Scenes of the folder already turned into traces (indices below this are known or not ours)."""
    state: str = STATE_RUNNING
    last_beat: float = 0.0


@dataclass
class _Folder:
    path: Path
    signature: tuple = ()
    config: RunFolderConfig | None = None
    config_sig: tuple = ()
    ids: list[RunIdentity] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    scenes: SceneLog | None = None
    settled: bool = False
    """Every identity has a complete run with the current fingerprint: only re-check when the dir moves."""
    error: str | None = None
    unread: str | None = None
    """Why the folder, still being written, did not read at the last look (a file caught mid-rewrite): not yet
    reported; reported as failed only if it still reads so once it stalls (``_unread_stalls``)."""
    busy: bool = False
    """Another live writer held one of its runs at the last look: look again every poll."""
    last_change: float = 0.0
    """Newest mtime among the watched files: when the folder last changed."""
    known: Unchanged | None = None
    """Found unchanged at start-up (its store run written from its current files): not parsed until it changes;
    its run says its identity (for run variants)."""
    settles: dict[str, int] = field(default_factory=dict)
    """Run id -> epoch ms, for a skipped folder's run that may still be running: from then on, the folder still
    unchanged, the run is settled (``reconcile.settles_at``)."""


def _stat_sig(path: Path) -> tuple:
    out = []
    for name in WATCHED_FILES:
        try:
            st = os.stat(path / name)
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


class TreeScanner:
    """Find run folders below ``root`` with one stat per directory, re-listing only directories that moved."""

    def __init__(self, root: Path, exclude: tuple[str, ...] = ()):
        self.root = root
        self.exclude = set(exclude)
        """Directories never entered (the store's own artifacts, when they live inside the tree)."""
        self._dirs: dict[str, tuple[int, tuple[str, ...], bool, frozenset[str], bool]] = {}
        self.moved: set[str] = set()
        """Directories whose listing changed in the last scan (new files or subfolders)."""

    def scan(self) -> list[str]:
        found: list[str] = []
        seen: set[str] = set()
        self.moved = set()
        stack: list[tuple[str, frozenset[str]]] = [(str(self.root), frozenset())]
        while stack:
            d, parent_names = stack.pop()
            try:
                mtime = os.stat(d).st_mtime_ns
            except OSError:
                continue
            seen.add(d)
            cached = self._dirs.get(d)
            beside_db = STORE_DB in parent_names
            if cached is None or cached[0] != mtime or cached[4] != beside_db:
                subdirs, marker = [], False
                try:
                    with os.scandir(d) as entries:
                        listing = list(entries)
                except OSError:
                    continue
                names = frozenset(entry.name for entry in listing)
                if d != str(self.root) and store_folder(os.path.basename(d), names, parent_names):
                    listing = []  # an MLflow store's folder: its copies of run files are not run folders
                for entry in listing:
                    if entry.name == MARKER:
                        marker = True
                    # Hydra's own folder never holds a run; OUTDATED ones are skipped as by discover()
                    elif entry.name != HYDRA_DIR and "outdated" not in entry.name.lower() and \
                            entry.is_dir(follow_symlinks=False) and entry.path not in self.exclude:
                        subdirs.append(entry.path)
                cached = (mtime, tuple(sorted(subdirs)), marker, names, beside_db)
                self._dirs[d] = cached
                self.moved.add(d)
            if cached[2]:
                found.append(d)
            stack.extend((sub, cached[3]) for sub in cached[1])
        if len(seen) != len(self._dirs):
            for gone in set(self._dirs) - seen:
                del self._dirs[gone]
        found.sort()
        return found


class Watcher:
    """One watcher over one tree and one store; ``poll()`` is one pass, ``run()`` loops until stopped."""

    def __init__(self, experiments_dir: str | Path, tracking_uri: str | None = None,
                 experiment_name: str = DEFAULT_EXPERIMENT, poll_interval: float = DEFAULT_POLL,
                 stall_after: float = DEFAULT_STALL, rescan_every: float = DEFAULT_RESCAN,
                 on_event: Callable[[WatchEvent], None] | None = None,
                 clock: Callable[[], float] = time.time, allow_network_fs: bool = False):
        from align_track.store import http

        self.root = Path(experiments_dir).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"experiments directory not found: {self.root}")
        self.uri = resolve_tracking_uri(tracking_uri)
        http.prepare(self.uri)
        from align_track.store.claims import claim_is_alive, claim_token
        from align_track.store.open_store import open_run_store
        from align_track.store.retries import with_retries
        from align_track.store.run_appender import LiveRunWriter

        self._retry = with_retries
        def note(message: str) -> None:
            if on_event is not None:
                on_event(WatchEvent(NOTE, "", message=message))

        self.store = with_retries(lambda: open_run_store(self.uri, experiment_name, notice=note,
                                                         allow_network_fs=allow_network_fs))
        self.writer = LiveRunWriter(self.store)
        me = claim_token()
        self.alive = lambda token, ms: token != me and claim_is_alive(token, ms)
        self.poll_interval = poll_interval
        self.stall_after = stall_after
        self.rescan_every = rescan_every
        self.emit = on_event or (lambda event: None)
        self.clock = clock
        self.scanner = TreeScanner(self.root, own_store_dirs(self.uri, self.store.artifact_location))
        self.folders: dict[str, _Folder] = {}
        self.live: dict[str, _Live] = {}
        self.variants: dict[str, str] = {}
        self.summary = WatchSummary()
        self._last_rescan = 0.0
        self._preloaded: dict[str, list] | None = None
        self._foreign: dict[str, list] = {}
        """Runs another tool wrote, by ``experiment_path`` (read at the first poll): each is replaced by this
        watcher's run of its folder, as ``ingest`` replaces it, never left beside it."""
        self._noted: set[tuple[str, str]] = set()
        self._started = time.monotonic()

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event | None = None) -> WatchSummary:
        """Poll until ``stop`` is set (Ctrl-C in the CLI sets it); live runs are released for the next watcher."""
        stop = stop or threading.Event()
        try:
            while not stop.is_set():
                began = time.monotonic()
                self.poll(stop)
                stop.wait(max(0.0, self.poll_interval - (time.monotonic() - began)))
        finally:
            self.close()
        return self.summary

    def close(self) -> WatchSummary:
        """Release every live run this watcher holds (another watcher may resume it at once)."""
        for live in list(self.live.values()):
            try:
                self.writer.release(live.run_id)
            except Exception as exc:  # the store is gone: the claim dies with this process anyway
                log.warning("could not release run %s: %s", live.run_id, one_line(exc))
        self.summary.live = len(self.live)
        self.summary.seconds = time.monotonic() - self._started
        self.store.close()
        return self.summary

    def poll(self, stop: threading.Event | None = None) -> None:
        """One pass: find folders, sync the changed ones, mark stalls, renew heartbeats."""
        self.summary.polls += 1
        now = self.clock()
        full = now - self._last_rescan >= self.rescan_every
        if full:
            self._last_rescan = now
        paths = self.scanner.scan()
        moved = self.scanner.moved
        folders = self.folders
        if moved or len(paths) != len(folders):
            for path in paths:
                if path not in folders:
                    folders[path] = _Folder(Path(path))
            for gone in set(folders) - set(paths):
                del folders[gone]
        dirty: list[_Folder] = []
        for path in paths:
            folder = folders[path]
            if folder.settled and not full and path not in moved:
                continue
            sig = _stat_sig(folder.path)
            if sig != folder.signature:
                folder.signature, folder.settles = sig, {}  # changed: synced as it now is, never settled
                dirty.append(folder)
            elif folder.busy:
                dirty.append(folder)  # another writer held it last time: look again
        if self.summary.polls == 1:  # the first pass: one read instead of one per folder
            rows = self._call(self.store.live_runs)
            for row in rows:
                if TAG_KEY not in row.tags and foreign(row):
                    self._foreign.setdefault(row.tags.get(TAG_PATH, ""), []).append(row)
            if len(dirty) > 1:
                self._preloaded = {}
                for row in rows:
                    if TAG_KEY in row.tags:
                        self._preloaded.setdefault(row.tags[TAG_KEY], []).append(row)
                dirty = self._settle_unchanged(dirty)
        if dirty:
            self._refresh_configs(dirty)
        elif not self.variants and self.folders:
            self._revariant()
        try:
            for folder in dirty:
                if stop is not None and stop.is_set():
                    return
                self._sync(folder)
        finally:
            self._preloaded = None
        self._stalls_and_beats(now)

    # ------------------------------------------------------------------ configs, identities, variants

    def _settle_unchanged(self, dirty: list[_Folder]) -> list[_Folder]:
        """At start-up: the folders whose store run was written from their current files are settled without
        parsing their configs (``plan.unchanged_folders``, as ``ingest`` decides them); the others are returned."""
        from align_track.ingest.plan import unchanged_folders

        assert self._preloaded is not None
        unchanged = unchanged_folders(self.root, [f.path for f in dirty], self._preloaded, self._foreign, self.alive)
        if not unchanged:
            return dirty
        for folder in dirty:
            folder.known = unchanged.get(folder.path)
            folder.settled = folder.known is not None
            if folder.known is not None and folder.known.settles_at is not None:
                folder.settles = {folder.known.run_id: folder.known.settles_at}
        return [f for f in dirty if f.known is None]

    def _refresh_configs(self, dirty: list[_Folder]) -> None:
        changed_groups = False
        for folder in dirty:
            cfg_sig = folder.signature[3:5]
            try:
                # A config without alignment_target takes its targets from the scenes: read it again.
                reuse = folder.config is not None and cfg_sig == folder.config_sig and \
                    isinstance(folder.config.config.get("alignment_target"), dict)
                if reuse:  # same config: only the fingerprint and mtime moved
                    config = replace(folder.config, fingerprint=fingerprint(folder.path),
                                     mtime=(folder.path / MARKER).stat().st_mtime)
                else:  # a config without a target takes the scene targets from the incremental log: no re-parse
                    if folder.scenes is None:
                        folder.scenes = SceneLog(folder.path / MARKER)
                    config = read_config(self.root, folder.path, scenes=folder.scenes.read())
            except (RunFolderError, OSError) as exc:
                self._unreadable(folder, str(exc))
                continue
            folder.config, folder.config_sig, folder.known = config, cfg_sig, None
            ids = identities(config)
            if [(i.key, i.group) for i in ids] != [(i.key, i.group) for i in folder.ids]:
                changed_groups = True
            folder.ids = ids
            folder.keys = [i.key for i in ids]
        if changed_groups or not self.variants:
            self._revariant()

    def _revariant(self) -> None:
        """run_variant depends on every folder of a group; a changed variant makes a complete run stale."""
        from align_track.ingest.variants import assign_variants

        members = [(i.key, i.group, i.config.rel_path) for f in self.folders.values() for i in f.ids]
        members += [(f.known.key, f.known.group, f.known.rel) for f in self.folders.values() if f.known is not None]
        new = assign_variants(members)  # type: ignore[assignment]
        for folder in self.folders.values():
            if any(self.variants.get(i.key, new.get(i.key)) != new.get(i.key) for i in folder.ids) or (
                    folder.known is not None and new.get(folder.known.key) != folder.known.variant):
                folder.settled = False
                folder.signature = ()  # re-sync on the next poll
        self.variants = new  # type: ignore[assignment]

    # ------------------------------------------------------------------ one folder

    def _fail(self, folder: _Folder, message: str) -> None:
        """A folder that cannot be read: report once per distinct error; a later change retries it."""
        if folder.error != message:
            folder.error = message
            self.summary.counts[FAILED] += 1
            self.emit(WatchEvent(FAILED, self._rel(folder.path), message=message))

    def _unreadable(self, folder: _Folder, message: str) -> None:
        """A folder whose files do not read. Finished (timing.json is written last): what does not read now will
        not, a failure. Still being written: most often a file caught mid-rewrite (align-system truncates, then
        writes), so the next change retries it quietly; it fails only if it still reads so once it stalls."""
        if (folder.path / TIMING).is_file():
            folder.unread = None
            self._fail(folder, message)
        else:
            folder.unread = message

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path != self.root else "."

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._retry(lambda: fn(*args))

    def _sync(self, folder: _Folder) -> None:
        if folder.config is None:
            return
        rel = self._rel(folder.path)
        finished = (folder.path / TIMING).is_file()
        try:
            if folder.scenes is None:
                folder.scenes = SceneLog(folder.path / MARKER)
            scenes = folder.scenes.read()
            files = read_files(folder.path, scenes=scenes, with_timing=finished)
        except RunFolderError as exc:
            self._unreadable(folder, str(exc))
            return
        folder.error = folder.unread = None
        folder.last_change = max((s[1] for s in folder.signature if s), default=0) / 1e9
        settled = True
        was_busy, folder.busy = folder.busy, False
        for identity in folder.ids:
            try:
                settled &= self._sync_identity(folder, identity, files, finished, rel)
            except RunFolderError as exc:
                self._fail(folder, str(exc))
                settled = False
            except Exception as exc:  # the store failed: report, retry on the next change/poll
                folder.signature = ()
                settled = False
                self.summary.counts[FAILED] += 1
                self.emit(WatchEvent(FAILED, rel, message=f"{rel}: store error: {one_line(exc, with_type=True)}"))
        folder.settled = settled and finished  # a folder still being written is stat'ed every poll
        if folder.busy and not was_busy:
            self._event(BUSY, rel)

    def _sync_identity(self, folder: _Folder, identity: RunIdentity, files: RunFolderFiles, finished: bool,
                       rel: str) -> bool:
        """Bring one identity's run up to date; True when it is complete (nothing left to watch)."""
        variant = self.variants.get(identity.key, "default")
        live = self.live.get(identity.key)
        theirs = foreign_runs_for(self._foreign.get(rel, []), rel, identity.target.id, len(folder.ids) > 1)
        if live is None:
            fingerprint_now = run_fingerprint(identity, variant)
            if self._preloaded is not None and not theirs:  # settled at start-up (the common case): no query
                preloaded = self._preloaded.get(identity.key, [])
                cached = plan_live(fingerprint_now, preloaded, self.alive)
                if cached.action == "skip" and not cached.cleanup:
                    self._settle_later(folder, preloaded, fingerprint_now, finished)
                    return True
            runs = self._call(self.store.runs_for_key, identity.key)  # fresh for every decision that writes
            decision = plan_live(fingerprint_now, runs, self.alive)
            for doomed in decision.cleanup:
                self._call(self.store.delete_run, doomed)
            if decision.action == "skip":
                kept = [r for r in runs if complete(r) and r.run_id not in decision.cleanup]
                if theirs and kept:  # replaced earlier, the delete interrupted
                    self._drop_foreign(rel, superseded(theirs, max(kept, key=lambda r: r.end_time or 0)))
                self._settle_later(folder, kept, fingerprint_now, finished)
                return True
            if decision.action == "busy":
                self._busy(folder, rel)
                return False
            if decision.action == "adopt":
                assert decision.run_id is not None
                self._call(self.writer.claim, decision.run_id)
                if not self._call(self.writer.claimed_by_me, decision.run_id):
                    self._busy(folder, rel)
                    return False
                known = self._call(self.writer.trace_ids, decision.run_id)
                live = _Live(decision.run_id, {}, last_beat=self.clock())
                live.known = {-1 - n: tid for n, tid in enumerate(known)}  # ids only; indices found below
                self.live[identity.key] = live
                self._event(RESUMED, rel, decision.run_id, len(known))
            elif finished:
                return self._write_whole(folder, identity, variant, files, rel, replacing=bool(runs or theirs),
                                         history=adopted_history(theirs, runs))
            else:
                record = with_history(self._map(identity, variant, files, rel, live=True),
                                      adopted_history(theirs, runs))
                run_id = self._call(self.writer.create, record, {TAG_SCENES: "0"})
                if lost_claim(run_id, self._call(self.store.runs_for_key, identity.key), self.alive):
                    self._call(self.store.delete_run, run_id)
                    self._busy(folder, rel)
                    return False
                live = _Live(run_id, {}, last_beat=self.clock())
                self.live[identity.key] = live
                self._event(CREATED, rel, run_id)
        if finished:
            self._finish(identity, variant, files, live, rel)
            return True
        self._append(identity, files, live, rel)
        return False

    def _settle_later(self, folder: _Folder, runs: list, fingerprint_now: str, finished: bool) -> None:
        """A skipped identity whose kept run may still be running: settled by ``_settle_quiet`` once its window
        has passed. A folder with timing.json never is (its runs read here may lack their metrics: a store's
        per-key read carries tags only)."""
        if finished:
            return
        for run in runs:
            if complete(run) and run.tags.get(TAG_FINGERPRINT) == fingerprint_now:
                if (at := settles_at(run)) is not None:
                    folder.settles[run.run_id] = at

    def _map(self, identity: RunIdentity, variant: str, files: RunFolderFiles, rel: str,
             live: bool = False) -> RunRecord:
        """The record ``ingest`` would write (pipeline and watcher share ``map_run``: MLflow's limits applied);
        each truncation noted once per run. A live run with no scene yet is no news (it is starting)."""
        mapped = map_run(identity, variant, files)
        for warning in mapped.warnings:
            if not (live and warning == NO_SCENES):
                self._note(identity, rel, warning)
        return mapped.run

    def _note(self, identity: RunIdentity, rel: str, warning: str) -> None:
        if (identity.key, warning) not in self._noted:
            self._noted.add((identity.key, warning))
            self.emit(WatchEvent(NOTE, rel, message=f"{rel}: {warning}"))

    def _indices(self, identity: RunIdentity, scenes: list[dict], start: int) -> list[int]:
        from align_track.ingest.folders import scene_target_id

        if not identity.target.from_scenes:
            return list(range(start, len(scenes)))
        return [i for i in range(start, len(scenes))
                if (scene_target_id(scenes[i]) or UNALIGNED) == identity.target.id]

    def _append(self, identity: RunIdentity, files: RunFolderFiles, live: _Live, rel: str) -> None:
        """Append the scenes not yet in the run (all of them, checked by id, after an adoption)."""
        from align_track.store.run_appender import AppendConflict, mlflow_trace_id, scene_ids

        indices = self._indices(identity, files.scenes, live.seen)
        records = _fit_traces(identity, build_traces(identity, files, indices, [None] * len(files.scenes)),
                              lambda warning: self._note(identity, rel, warning))
        landed = int(max(self.folders[str(identity.config.path)].last_change, 0) * 1e9) or time.time_ns()
        present = set(live.known.values())
        todo, ids = [], []
        for index, record in zip(indices, records, strict=True):
            record = replace(record, start_ns=landed, end_ns=landed)
            pair = scene_ids(live.run_id, index, record)
            if mlflow_trace_id(pair) in present:
                live.known[index] = mlflow_trace_id(pair)
                continue
            todo.append((index, record))
            ids.append(pair)
        # An adopted run's traces were known by stored id only (negative keys): the ones found by index above are
        # one scene each, not two (else the events after a resume count them twice).
        found = {v for k, v in live.known.items() if k >= 0}
        live.known = {k: v for k, v in live.known.items() if k >= 0 or v not in found}
        tags = {TAG_SCENES: str(len([k for k in live.known if k >= 0]) + len(todo)),
                TAG_LAST_SCENE: str(landed // 1_000_000)}
        if live.state == STATE_STALLED:
            tags[TAG_STATE] = STATE_RUNNING
        if not todo and live.state != STATE_STALLED:
            live.seen = len(files.scenes)
            return
        try:
            self._call(self.writer.append, live.run_id, [r for _, r in todo], ids, tags)
        except AppendConflict:  # another writer got there: re-read what exists, next poll writes the rest
            live.known = {-1 - n: tid for n, tid in enumerate(self._call(self.writer.trace_ids, live.run_id))}
            live.seen = 0
            self.folders[str(identity.config.path)].signature = ()
            return
        for (index, _), pair in zip(todo, ids, strict=True):
            live.known[index] = mlflow_trace_id(pair)
        live.known = {k: v for k, v in live.known.items() if k >= 0}
        live.seen = len(files.scenes)
        live.last_beat = self.clock()
        if live.state == STATE_STALLED:
            live.state = STATE_RUNNING
            self._event(RESUMED, rel, live.run_id, len(live.known))
        if todo:
            self.summary.traces += len(todo)
            self._event(APPENDED, rel, live.run_id, len(live.known), message=f"+{len(todo)}")

    def _finish(self, identity: RunIdentity, variant: str, files: RunFolderFiles, live: _Live, rel: str) -> None:
        """timing.json is there: complete the run in place. Each scene's timed trace has its live trace's id (the
        time is not part of it) and replaces it where it is; a scene whose content changed since it was appended
        is a new id, its old trace stale. So readers see each scene once throughout (one transaction on SQL
        stores; through a server each trace is updated in place)."""
        from align_track.store.run_appender import mlflow_trace_id, scene_ids

        theirs = foreign_runs_for(self._foreign.get(rel, []), rel, identity.target.id,
                                  len(self.folders[str(identity.config.path)].ids) > 1)
        history = adopted_history(theirs, self._call(self.store.runs_for_key, identity.key)) if theirs else {}
        record = with_history(self._map(identity, variant, files, rel), history)
        indices = self._indices(identity, files.scenes, 0)
        existing = self._call(self.writer.trace_ids, live.run_id)
        ids = [scene_ids(live.run_id, index, trace) for index, trace in zip(indices, record.traces, strict=True)]
        stale = sorted(existing - {mlflow_trace_id(pair) for pair in ids})
        added = sum(mlflow_trace_id(pair) not in existing for pair in ids)
        self._call(self.writer.finish, live.run_id, record, record.traces, ids, stale,
                   {TAG_SCENES: str(len(indices))})
        del self.live[identity.key]
        self.summary.traces += added
        self._event(FINISHED, rel, live.run_id, len(indices))
        self._cleanup_after(identity, live.run_id)
        self._drop_foreign(rel, [r.run_id for r in theirs])

    def _write_whole(self, folder: _Folder, identity: RunIdentity, variant: str, files: RunFolderFiles,
                     rel: str, replacing: bool, history: dict[str, str] | None = None) -> bool:
        """A folder first seen finished: one complete run at once, as a plain ingest writes it (replacing another
        tool's run of it, whose history ``history`` carries)."""
        record = with_history(self._map(identity, variant, files, rel), history or {})
        written = self.store.write(record, identity.key, False,
                                   claim_lost=lambda mine, runs: lost_claim(mine, runs, self.alive),
                                   superseded=lambda mine, runs: [])  # _cleanup_after below, as for live runs
        if written.run_id is None:
            if written.busy:
                self._busy(folder, rel)
                return False
            return True
        run_id = written.run_id
        self.summary.traces += len(record.traces)
        self._event(REPLACED if replacing else INGESTED, rel, run_id, len(record.traces))
        self._cleanup_after(identity, run_id)
        if history:  # our run is complete: the foreign one it replaces goes
            theirs = foreign_runs_for(self._foreign.get(rel, []), rel, identity.target.id, len(folder.ids) > 1)
            self._drop_foreign(rel, [r.run_id for r in theirs])
        return True

    def _drop_foreign(self, rel: str, run_ids: list[str]) -> None:
        """Delete these runs another tool wrote for ``rel``: a complete run of ours replaced them."""
        for run_id in run_ids:
            self._call(self.store.delete_run, run_id)
        if run_ids and rel in self._foreign:
            self._foreign[rel] = [r for r in self._foreign[rel] if r.run_id not in run_ids]

    def _cleanup_after(self, identity: RunIdentity, run_id: str) -> None:
        for doomed in after_complete(run_id, self._call(self.store.runs_for_key, identity.key), self.alive):
            self._call(self.store.delete_run, doomed)

    # ------------------------------------------------------------------ stalls and heartbeats

    def _unread_stalls(self, now: float) -> None:
        """A running folder that did not read and has not changed for ``stall_after`` seconds: now it fails."""
        for folder in self.folders.values():
            if folder.unread is not None:
                changed = max((s[1] for s in folder.signature if s), default=0) / 1e9
                if now - changed >= self.stall_after:
                    self._fail(folder, folder.unread)
                    folder.unread = None

    def _settle_quiet(self, now: float) -> None:
        """A complete run ingested while its folder may still have been written ('may still be running'): once its
        folder, unchanged since, has been quiet for the stall window, one tag settles it to 'no timing'
        (``reconcile.settle_tags``), as a plain ingest's skip does. The folder is stat'ed once more first: a
        settled folder is otherwise looked at only when its directory moves or at a full rescan."""
        now_ms = round(now * 1000)
        for folder in self.folders.values():
            due = [run_id for run_id, at in folder.settles.items() if at <= now_ms]
            if not due:
                continue
            if _stat_sig(folder.path) != folder.signature:
                folder.signature, folder.settles = (), {}  # changed after all: the next poll syncs it
                continue
            rel = self._rel(folder.path)
            for run_id in due:
                del folder.settles[run_id]
                try:
                    self._call(self.store.set_tags, run_id, settle_tags(now_ms))
                except Exception as exc:
                    if not run_gone(exc):  # else another writer replaced it meanwhile: nothing left to settle
                        self.emit(WatchEvent(FAILED, rel, run_id, message=f"{rel}: store error: {one_line(exc)}"))
                    continue
                self._event(SETTLED, rel, run_id, message=NO_TIMING)

    def _stalls_and_beats(self, now: float) -> None:
        self._unread_stalls(now)
        self._settle_quiet(now)
        if not self.live:
            return
        by_key = {k: f for f in self.folders.values() if not f.settled for k in f.keys}
        for key, live in list(self.live.items()):
            folder = by_key.get(key)
            if folder is None:  # the folder went away (or lost this identity): leave the run for cleanup
                continue
            rel = self._rel(folder.path)
            try:
                if live.state == STATE_RUNNING and now - folder.last_change >= self.stall_after:
                    self._call(self.writer.set_tags, live.run_id, {TAG_STATE: STATE_STALLED})
                    live.state = STATE_STALLED
                    live.last_beat = now
                    self._event(STALLED, rel, live.run_id, len(live.known))
                elif now - live.last_beat >= HEARTBEAT_EVERY:
                    from align_track.schema import TAG_HEARTBEAT
                    from align_track.store.run_appender import now_ms

                    self._call(self.writer.set_tags, live.run_id, {TAG_HEARTBEAT: str(now_ms())})
                    live.last_beat = now
            except Exception as exc:
                self.emit(WatchEvent(FAILED, rel, live.run_id, message=f"{rel}: store error: {one_line(exc)}"))

    def _busy(self, folder: _Folder, rel: str) -> None:
        """Another live writer has it: reported once (by _sync), looked at again every poll."""
        folder.busy = True

    def _event(self, kind: str, rel: str, run_id: str | None = None, scenes: int = 0, message: str = "") -> None:
        self.summary.counts[kind] += 1
        self.emit(WatchEvent(kind, rel, run_id, scenes, message))


def _fit_traces(identity: RunIdentity, traces: list, note: Callable[[str], None]) -> list:
    """Appended scenes made storable as ``map_run`` makes a whole run's (so the finished run's traces are the same);
    a scene id over MLflow's trace name limit fails the folder."""
    from align_track.store.limits import LimitError, fit_traces, replaced_note

    try:
        fitted, scenes, notes = fit_traces(traces)
    except LimitError as exc:
        raise RunFolderError(identity.config.path, str(exc)) from None
    for text in ([replaced_note(scenes)] if scenes else []) + notes:
        note(text)
    return list(fitted)


def watch(experiments_dir: str | Path, tracking_uri: str | None = None,
          experiment_name: str = DEFAULT_EXPERIMENT, poll_interval: float = DEFAULT_POLL,
          stall_after: float = DEFAULT_STALL, on_event: Callable[[WatchEvent], None] | None = None,
          stop: threading.Event | None = None) -> WatchSummary:
    """Watch until ``stop`` is set; returns what happened. StoreError if the store cannot be opened."""
    watcher = Watcher(experiments_dir, tracking_uri, experiment_name, poll_interval, stall_after,
                      on_event=on_event)
    return watcher.run(stop)
