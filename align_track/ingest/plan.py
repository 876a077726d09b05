"""Plan an ingest: what to do with each run folder, decided from the folders' file sizes and times and one read of
the store, before any config is parsed where nothing changed.

A folder's run fingerprint is made of its files' sizes and times (``folders.fingerprint``), its run variant and
the mapping version. A folder whose store run carries the fingerprint of its files as they are now, under the
variant that run was written with, is unchanged, and that run already says what parsing its config would (its
ADM, LLM and target: the group its variant is named in). So only new and changed folders are parsed; the run
variants are named from every folder, unchanged ones by their runs' groups; and an unchanged folder whose variant
moves (a new sibling in its group) is parsed and rewritten after all. An unchanged rerun of a 1,000-folder tree
parses nothing (it parsed 1,000 Hydra configs, several seconds, before).

Then each folder gets its decision (``reconcile.plan``: skip, busy, create, update; replacing another tool's
run of it): a :class:`Prepared` folder, decided (``outcome``) or with runs pending for the map and write stages.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from align_track.errors import one_line, printable
from align_track.ingest.folders import (
    VANISHED,
    RunFolderConfig,
    RunFolderError,
    discover,
    fingerprint,
    own_store_dirs,
    read_config,
    vanished,
)
from align_track.ingest.mapping import RunIdentity, fingerprint_of, identities, identity_key, run_fingerprint
from align_track.ingest.outcomes import BUSY, FAILED, NO_TIMING, SKIPPED, Outcome, folder_status
from align_track.ingest.reconcile import (
    AliveFn,
    adopted_history,
    complete,
    foreign,
    foreign_runs_for,
    plan,
    settle_tags,
    settles_at,
    superseded,
)
from align_track.schema import (
    INPUT_OUTPUT,
    PARAM_VARIANT,
    TAG_ADM,
    TAG_FINGERPRINT,
    TAG_KEY,
    TAG_LLM,
    TAG_PATH,
    TAG_TARGET,
)
from align_track.store.retries import retry_call, with_retries

KEEP_SCENES_BYTES = 128 * 1024 * 1024
"""input_output.json bytes whose scenes, parsed at plan time for their targets, are kept until the folder is
written (so it is parsed once). Past this budget a folder's scenes are dropped and parsed again at write time:
memory stays bounded on a tree of thousands of target-less folders."""

LONGEST_GROUP_VALUE = 6000
"""An ADM, LLM or target name this long may have been cut to MLflow's limits in the run's tags: such a folder is
parsed (its group read from its config), not taken from its run."""


@dataclass
class Pending:
    """One run of a folder to write: its identity, the mapped record and the foreign runs it replaces."""

    identity: RunIdentity
    variant: str
    action: str
    theirs: list
    bulk: object = None
    """The store's BulkRun once mapped: the record, its run id and trace rows."""
    history: dict[str, str] = field(default_factory=dict)
    """Adoption tags the new run carries (``reconcile.adopted_history``): the foreign run it replaces."""


@dataclass
class Prepared:
    """A folder planned, waiting to be mapped and written; or already decided (``outcome``)."""

    rel: str
    outcome: Outcome | None = None
    statuses: list[str] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    config: RunFolderConfig | None = None
    mapping: object = None
    """The mapping of ``pending`` under way (``.get()`` gives ``batched.map_folder``'s answer)."""

    @property
    def scenes(self) -> int:
        return sum(p.bulk.scenes for p in self.pending)  # type: ignore[attr-defined]


@dataclass
class Plan:
    folders: list[Prepared]
    """Every run folder to report, in order (unreadable directories included, as failures)."""
    notes: list[str]
    """Symlinked directories not followed."""
    parsed: int = 0
    """Configs parsed (the others were unchanged: decided from their runs)."""
    cut: bool = False
    """Cancelled while deciding: the folders after the last one listed were not reached."""


SCAN_REPORT_EVERY = 0.2
"""Seconds between two reports of a scan's progress."""

Activity = Callable[..., None]
"""``activity(message, force=True)``: what the plan is doing now (see :func:`plan_ingest`)."""


def scan_text(seen: int, found: int, where: str) -> str:
    """``scanning: 1,234 folders seen, 56 run folders, now in multirun/2026-01-05``: the scan's progress, the
    folder it is in last (a display cuts the end first)."""
    return (f"scanning: {seen:,} folder{'s' * (seen != 1)} seen, {found:,} run folder{'s' * (found != 1)}, "
            f"now in {printable(where)}")


@dataclass(frozen=True)
class Unchanged:
    """A folder whose files are those its run was written from: its identity, as that run records it."""

    key: str
    group: tuple[str, str | None, str]
    rel: str
    variant: str
    run_id: str = ""
    settles_at: int | None = None
    """Its run may still be running: epoch ms from which a skip settles it (``reconcile.settles_at``)."""


def plan_ingest(root: Path, store, force: bool, alive: AliveFn, notice: Callable[[str], None],
                wanted: set[Path] | None = None, cancel: threading.Event | None = None,
                skip_unchanged: bool = True, activity: Activity | None = None,
                clock: Callable[[], float] = time.time) -> Plan:
    """Find the run folders below ``root``, read the store's runs once, and decide each folder (see the module).

    ``wanted``: decide only these folders (the Hydra callback's job), variants still from the whole tree.
    ``skip_unchanged`` False parses every config (the path before this plan, kept for comparison).
    ``activity(message, force)`` hears what the plan is doing (a scan of a big tree takes tens of seconds);
    ``force`` False for the frequent ones, which it may drop.
    ``clock``: now, in epoch seconds, for settling an unchanged folder's run (``settle_skipped``).
    """
    doing: Activity = activity or (lambda message, force=True: None)
    problems: dict[Path, str] = {}
    notes: list[str] = []

    def problem(path: Path, reason: str, is_error: bool) -> None:
        if is_error:
            problems[path] = f"{printable(str(path))}: {reason}"
        else:
            notes.append(f"{printable(str(path))}: {reason}")

    stores: list[Path] = []

    last = [0.0]

    def scanned(seen: int, found: int, where: str) -> None:  # per directory: the clock first, the text seldom
        if (now := time.monotonic()) - last[0] >= SCAN_REPORT_EVERY:
            last[0] = now
            doing(scan_text(seen, found, os.path.relpath(where, root)))

    doing(f"scanning {printable(str(root))}")
    folders = discover(root, problem, own_store_dirs(store.tracking_uri, store.artifact_location), stores, scanned)
    if stores:
        notes.append(store_note(root, stores))
    doing(f"reading the store's runs ({len(folders):,} run folders found)")
    existing: dict[str, list] = defaultdict(list)
    others: dict[str, list] = defaultdict(list)  # runs other tools wrote, by experiment_path
    for row in with_retries(store.live_runs, notice):
        if TAG_KEY in row.tags:
            existing[row.tags[TAG_KEY]].append(row)
        elif foreign(row):
            others[row.tags.get(TAG_PATH, "")].append(row)

    if not force and skip_unchanged:
        doing(f"checking {len(folders):,} run folders for changes")
    unchanged = {} if force or not skip_unchanged else unchanged_folders(root, folders, existing, others, alive)
    configs, errors = read_configs(root, [f for f in folders if f not in unchanged], wanted, doing)
    ids = {folder: identities(cfg) for folder, cfg in configs.items()}
    variants = _variants(ids, unchanged)
    moved = [f for f, known in unchanged.items() if variants[known.key] != known.variant]
    if moved:  # a new sibling renamed their variant: parsed and rewritten after all
        for folder in moved:
            del unchanged[folder]
        more, more_errors = read_configs(root, moved, wanted)
        configs.update(more)
        errors.update(more_errors)
        ids.update({folder: identities(cfg) for folder, cfg in more.items()})
        variants = _variants(ids, unchanged)
    errors.update(problems)  # unreadable directories: reported as failures, never silently skipped
    folders = folders + sorted(problems)
    if wanted is not None:
        folders = [f for f in folders if f in wanted]

    planned: list[Prepared] = []
    cut = False
    for folder in folders:
        if cancel is not None and cancel.is_set():
            cut = True
            break
        rel = printable(configs[folder].rel_path if folder in configs else os.path.relpath(folder, root))
        if folder in errors:
            planned.append(Prepared(rel, Outcome(rel, FAILED, error=errors[folder])))
        elif folder in unchanged:
            planned.append(Prepared(rel, settle_skipped(store, unchanged[folder], rel, clock, notice)))
        else:
            planned.append(_decide(store, configs[folder], ids[folder], variants, existing, others, force, alive,
                                   notice, clock))
    return Plan(planned, notes, parsed=len(configs), cut=cut)


def store_note(root: Path, stores: list[Path]) -> str:
    """One note for every store folder left out of the walk (a store's artifact root may hold thousands of runs)."""
    shown = [printable(os.path.relpath(p, root)) for p in sorted(stores)[:3]]
    more = f" and {len(stores) - 3} more" if len(stores) > 3 else ""
    return f"{', '.join(shown)}{more}: MLflow store folder{'s' if len(stores) > 1 else ''} not walked into " \
           "(a store's copies of run files are not run folders)"


def unchanged_folders(root: Path, folders: list[Path], existing: dict[str, list], others: dict[str, list],
                      alive: AliveFn) -> dict[Path, Unchanged]:
    """The folders with one run of their own written from their current files, nothing to clean up and no other
    tool's run of them: ``reconcile.plan`` would skip them (under their variant, checked once all are known)."""
    out: dict[Path, Unchanged] = {}
    for folder in folders:
        try:  # a folder name that is not UTF-8 fails when parsed, with its reason
            rel = folder.relative_to(root).as_posix() if folder != root else "."
            rel.encode("utf-8")
            key = identity_key(folder)  # a folder with one run (mixed-target folders have a key per target: parsed)
        except (ValueError, UnicodeEncodeError):
            continue
        runs = existing.get(key)
        if not runs:
            continue
        if others.get(rel):
            continue
        files = fingerprint(folder)
        current = [r for r in runs if complete(r) and PARAM_VARIANT in r.params
                   and r.tags.get(TAG_FINGERPRINT) == fingerprint_of(files, r.params[PARAM_VARIANT])]
        if not current:
            continue
        variant = current[0].params[PARAM_VARIANT]
        decision = plan(fingerprint_of(files, variant), runs, False, alive)
        if decision.action != "skip" or decision.cleanup:
            continue
        tags = current[0].tags
        group = (tags.get(TAG_ADM), tags.get(TAG_LLM), tags.get(TAG_TARGET))
        if group[0] is None or group[2] is None or any(v and len(v) >= LONGEST_GROUP_VALUE for v in group):
            continue
        out[folder] = Unchanged(key, group, rel, variant, current[0].run_id,  # type: ignore[arg-type]
                                settles_at(current[0]))
    return out


def settle_skipped(store, known: Unchanged, rel: str, clock: Callable[[], float],
                   notice: Callable[[str], None]) -> Outcome:
    """A skipped unchanged folder's outcome, its run settled first when it may still be running and its folder
    has been quiet for the stall window by now (one tag written: ``reconcile.settle_tags``); any other skip
    writes nothing. A store failure fails that folder alone."""
    if known.settles_at is None:
        return Outcome(rel, SKIPPED)
    now = round(clock() * 1000)
    if now < known.settles_at:  # still within the window: it may still be running, as it says
        return Outcome(rel, SKIPPED)
    try:
        settled = settle_run(store, known.run_id, now, notice)
    except Exception as exc:  # noqa: BLE001 - the store failed: this folder fails, a rerun settles it
        return Outcome(rel, FAILED, error=f"{rel}: store error: {one_line(exc, with_type=True)}")
    return Outcome(rel, SKIPPED, note=NO_TIMING if settled else "")


def settle_run(store, run_id: str, now_ms: int, notice: Callable[[str], None]) -> bool:
    """Write the one tag that settles a run that may still be running (``reconcile.settle_tags``); False when
    another ingest replaced the run since the plan read it (nothing left to settle). Other store errors raise."""
    try:
        retry_call(store.set_tags, run_id, settle_tags(now_ms), notice=notice)
    except Exception as exc:
        if run_gone(exc):
            return False
        raise
    return True


def run_gone(exc: BaseException) -> bool:
    """The run written to no longer exists or was deleted (every backend's words for it: the direct stores',
    MLflow's and a tracking server's)."""
    text = str(exc)
    return "RESOURCE_DOES_NOT_EXIST" in text or "not found" in text.lower() or "Current state is deleted" in text


def read_configs(root: Path, folders: list[Path], wanted: set[Path] | None, activity: Activity | None = None
                 ) -> tuple[dict[Path, RunFolderConfig], dict[Path, str]]:
    """Each folder's config (and, for a config without a target, its scenes' targets: those scenes are kept for
    the write, within :data:`KEEP_SCENES_BYTES`); a folder that cannot be read fails alone, with the reason."""
    configs: dict[Path, RunFolderConfig] = {}
    errors: dict[Path, str] = {}
    kept_bytes = 0
    for index, folder in enumerate(folders):
        if activity is not None:
            activity(f"reading configs: {index:,}/{len(folders):,} run folders", index == 0)
        try:
            size = _size(folder / INPUT_OUTPUT)
            keep = (wanted is None or folder in wanted) and kept_bytes + size <= KEEP_SCENES_BYTES
            configs[folder] = read_config(root, folder, keep_scenes=keep)
            if configs[folder].scenes is not None:
                kept_bytes += size
        except Exception as exc:  # noqa: BLE001 - whatever a hostile folder does, it fails alone
            if vanished(folder):
                errors[folder] = str(RunFolderError(folder, VANISHED))
            elif isinstance(exc, RunFolderError):
                errors[folder] = str(exc)
            else:
                errors[folder] = f"{printable(str(folder))}: cannot read ({one_line(exc, with_type=True)})"
    return configs, errors


def _variants(ids: dict[Path, list[RunIdentity]], unchanged: dict[Path, Unchanged]) -> dict[str, str]:
    from align_track.ingest.variants import assign_variants

    members = [(i.key, i.group, i.config.rel_path) for group in ids.values() for i in group]
    members += [(u.key, u.group, u.rel) for u in unchanged.values()]
    return assign_variants(members)  # type: ignore[return-value]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _decide(store, config, folder_ids, variants, existing, others, force, alive, notice, clock=time.time
            ) -> Prepared:
    """:func:`decide_folder`, with a store failure while deciding failing that folder alone."""
    rel = printable(config.rel_path)
    try:
        return decide_folder(store, config, folder_ids, variants, existing, others, force, alive, notice, clock)
    except RunFolderError as exc:
        return Prepared(rel, Outcome(rel, FAILED, error=str(exc)))
    except Exception as exc:  # noqa: BLE001 - the store failed while planning: that folder fails
        return Prepared(rel, Outcome(rel, FAILED, error=f"{rel}: store error: {one_line(exc, with_type=True)}"))


def decide_folder(store, config, folder_ids, variants, existing, others, force, alive, notice, clock=time.time
                  ) -> Prepared:
    """Plan each identity of one folder from the store's single read and do the cleanups a skip needs (settling
    a run that may still be running, as ``settle_skipped`` does); the runs to write are left pending, for the
    map stage.

    A run another tool wrote for the same folder (same ``experiment_path``; for a folder with several targets,
    the same target, and any foreign run matching none of them goes with the first) is never at today's
    mapping (the upstream align-track could not read every config and wrote no alignment metrics): the folder is
    mapped anew, the new run carries the foreign run's history (``reconcile.adopted_history``) and the foreign
    run is deleted once the new one is complete, as align-track's own runs are replaced (``updated``).
    """
    prepared = Prepared(config.rel_path, config=config)
    several_targets = len(folder_ids) > 1
    everyone = others.get(config.rel_path, [])
    matched = {r.run_id for identity in folder_ids
               for r in foreign_runs_for(everyone, config.rel_path, identity.target.id, several_targets)}
    unmatched = [r for r in everyone if foreign(r) and r.run_id not in matched]
    settled = False
    for index, identity in enumerate(folder_ids):
        variant = variants[identity.key]
        own = existing.get(identity.key, [])
        theirs = foreign_runs_for(everyone, config.rel_path, identity.target.id, several_targets)
        if index == 0:
            theirs += unmatched
        decision = plan(run_fingerprint(identity, variant), own, force, alive)
        if decision.action in ("skip", "busy"):
            cleanup = list(decision.cleanup)
            kept = [r for r in own if complete(r) and r.run_id not in cleanup]
            if decision.action == "skip" and theirs and kept:  # replaced earlier, the delete interrupted
                cleanup += superseded(theirs, kept[0])
            for run_id in cleanup:
                retry_call(store.delete_run, run_id, notice=notice)
            if decision.action == "skip" and kept and (at := settles_at(kept[0])) is not None and \
                    (now := round(clock() * 1000)) >= at:
                settled = settle_run(store, kept[0].run_id, now, notice) or settled
            prepared.statuses.append(SKIPPED if decision.action == "skip" else BUSY)
            continue
        prepared.pending.append(Pending(identity, variant, "update" if theirs else decision.action, theirs,
                                        history=adopted_history(theirs, own)))
    if not prepared.pending:
        status = folder_status(prepared.statuses)
        prepared.outcome = Outcome(config.rel_path, status, note=NO_TIMING if settled and status == SKIPPED else "")
    return prepared
