"""Find align-system run folders and read them without losing any.

Real folders drift from any schema (nulls where values are expected, string
choice indices, missing timing.json while a run is still going), so parsing is
tolerant of values: only input that cannot be read (truncated JSON, invalid YAML)
or whose structure is not the data model's (not a list of scenes, a scene whose
``input``/``output`` is a string or a list, a config or hydra.yaml that is not a
mapping) makes a run folder fail, and then with the file and the reason. No MLflow
here: this layer is pure file reading.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from align_track.errors import clip, printable
from align_track.ingest.outcomes import MAYBE_RUNNING, NO_TIMING
from align_track.schema import HYDRA_DIR, INPUT_OUTPUT, SCORES, STALL_SECONDS, TIMING

try:  # the C loader is ~10x faster on the 12 KB pipeline configs
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _YamlLoader = yaml.SafeLoader

MARKER = INPUT_OUTPUT
# Files whose change means the run must be re-ingested (align-system rewrites
# input_output.json after every scene and writes timing.json last).
WATCHED_FILES = ("input_output.json", "timing.json", "scores.json", ".hydra/config.yaml", ".hydra/hydra.yaml")


MAX_FILE_BYTES = int(os.environ.get("ALIGN_TRACK_MAX_FILE_MB", "1024")) * 1024 * 1024
"""Largest file read (1 GiB unless ``ALIGN_TRACK_MAX_FILE_MB`` says otherwise): a bigger one is refused, not loaded."""


VANISHED = "folder vanished during the ingest (deleted or moved); nothing written"


def vanished(path: Path) -> bool:
    """Whether the run folder ``path`` is gone (deleted or moved after it was found): said as such, not as the
    first file that could not be opened."""
    return not os.path.isdir(path)


class RunFolderError(Exception):
    """A run folder that cannot be ingested; the message names the file and the reason."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{printable(str(path))}: {reason}")
        self.path = path
        self.reason = reason


RUN_ID_CHARS = frozenset("0123456789abcdef")
STORE_DB = "mlflow.db"
STORE_ARTIFACT_DIRS = frozenset({"artifacts", "mlartifacts", "mlruns"})
STORE_NOTE = "MLflow store folder not walked into (its copies of run files are not run folders)"


def store_folder(name: str, names: Collection[str], parent_names: Collection[str] = ()) -> bool:
    """True for a folder that belongs to an MLflow store, whose copies of ``input_output.json`` and ``.hydra/``
    (a run's artifacts) must never be ingested as run folders. ``names``: the folder's entries; ``parent_names``:
    its parent's. The markers, each a layout MLflow itself writes:

    * a run's folder: named by a run id (32 lowercase hex digits) and holding ``artifacts/`` or ``meta.yaml``
      (``mlruns/<experiment>/<run>/``, a server's ``mlartifacts/<experiment>/<run>/``, the SQL stores'
      ``<artifact root>/<run>/artifacts/``);
    * a file store's experiment: named by an experiment id (digits) and holding ``meta.yaml``;
    * ``artifacts/``, ``mlartifacts/`` or ``mlruns/`` beside an ``mlflow.db`` (the embedded store's layout).

    A run folder of align-system never matches: it is not named by a run id and holds input_output.json.
    """
    if MARKER in names:
        return False
    if len(name) == 32 and RUN_ID_CHARS.issuperset(name) and ("artifacts" in names or "meta.yaml" in names):
        return True
    if name.isdigit() and "meta.yaml" in names:
        return True
    return name in STORE_ARTIFACT_DIRS and STORE_DB in parent_names


def own_store_dirs(tracking_uri: str, artifact_location: str | None) -> tuple[str, ...]:
    """The folders of the store being written (its artifact location if local, the SQLite file's folder): never
    entered, whatever they hold, even when the experiments tree contains them (the embedded default
    ``data/mlflow/`` under an experiments directory used as the current directory)."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    from align_track.store.uri import sqlite_path

    out = []
    if artifact_location and urlparse(artifact_location).scheme == "file":
        out.append(os.path.realpath(url2pathname(urlparse(artifact_location).path)))
    db = sqlite_path(tracking_uri)
    if db is not None:
        out.append(os.path.realpath(db.parent))
    return tuple(out)


def discover(root: Path, on_problem: Callable[[Path, str, bool], None] | None = None,
             exclude: Collection[str] = (), stores: list[Path] | None = None,
             on_folder: Callable[[int, int, str], None] | None = None) -> list[Path]:
    """Every folder below ``root`` holding input_output.json, sorted, skipping OUTDATED ones and MLflow stores.

    Only the part of the path below ``root`` is checked for OUTDATED, so a root
    that itself lives under an OUTDATED folder still works. Walks with an explicit stack (a tree
    thousands of levels deep is fine), never follows a symlinked directory (the same run folder
    reached twice would be two runs), and reports what it cannot enter: ``on_problem(path, reason,
    is_error)`` with ``is_error`` True for an unreadable directory, False for a skipped symlink.
    Never enters a store's folders (``exclude``: the store being written, see :func:`own_store_dirs`; any
    folder :func:`store_folder` recognises): each is appended to ``stores`` when given, else reported as a note.
    ``on_folder(folders seen, run folders found, folder)`` hears each folder as it is entered (a big tree takes
    tens of seconds to walk: a display says how far it got).
    """
    root = Path(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"experiments directory not found: {root}")
    report = on_problem or (lambda path, reason, is_error: None)
    real_root = os.path.realpath(root).rstrip(os.sep) + os.sep
    excluded = {str(root).rstrip(os.sep) + os.sep + real[len(real_root):]  # as the walk spells them
                for real in map(os.path.realpath, exclude) if real.startswith(real_root)}
    found: list[Path] = []
    stack: list[tuple[str, frozenset[str]]] = [(str(root), frozenset())]

    def store(path: str) -> None:
        if stores is not None:
            stores.append(Path(path))
        else:
            report(Path(path), STORE_NOTE, False)

    seen = 0
    while stack:
        dirpath, parent_names = stack.pop()
        seen += 1
        if on_folder is not None:
            on_folder(seen, len(found), dirpath)
        if dirpath in excluded:
            store(dirpath)
            continue
        try:
            with os.scandir(dirpath) as entries:
                listing = list(entries)
        except OSError as exc:
            report(Path(dirpath), f"cannot read directory ({exc.strerror or exc})", True)
            continue
        names = frozenset(entry.name for entry in listing)
        if dirpath != str(root) and store_folder(os.path.basename(dirpath), names, parent_names):
            store(dirpath)
            continue
        for entry in listing:
            try:
                if entry.is_dir(follow_symlinks=False):
                    # Hydra's own folder never holds a run (an unreadable one is its run folder's failure, once)
                    if "outdated" not in entry.name.lower() and entry.name != HYDRA_DIR:
                        stack.append((entry.path, names))
                elif entry.is_symlink() and entry.is_dir():
                    if "outdated" not in entry.name.lower():
                        report(Path(entry.path), "symlinked directory not followed (ingest its target directly)",
                               False)
                elif entry.name == MARKER:
                    found.append(Path(dirpath))
            except OSError as exc:
                report(Path(entry.path), f"cannot read ({exc.strerror or exc})", True)
    return sorted(found)


def inside_folder(folder: Path, path: Path) -> bool:
    """True when ``path`` (after following every symlink) is inside the run folder ``folder``."""
    base = os.path.realpath(folder)
    return os.path.realpath(path).startswith(base.rstrip(os.sep) + os.sep)


def read_bytes(path: Path, folder: Path | None = None) -> bytes:
    """A file's bytes, refusing what would leak, hang or exhaust memory.

    A symlink leaving the run folder ``folder`` is not followed (its target is not the run's to
    publish); a FIFO, device or socket is refused before a read could block forever; a file over
    :data:`MAX_FILE_BYTES` is refused before it is loaded.
    """
    if folder is not None and not inside_folder(folder, path):
        raise RunFolderError(path, "symlink to a file outside the run folder (not followed, not published)")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting for a writer
    except OSError as exc:
        raise RunFolderError(path, f"cannot read file ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RunFolderError(path, "not a regular file (a FIFO, device or socket); refused")
        # Sized by fstat, not by the limit: read(limit) would allocate the whole limit up front.
        data = handle.read(st.st_size + 1) if st.st_size <= MAX_FILE_BYTES else b""
        if len(data) > st.st_size:  # still growing (align-system rewrites it): read the rest, up to the limit
            data += handle.read(MAX_FILE_BYTES + 1 - len(data))
    if st.st_size > MAX_FILE_BYTES or len(data) > MAX_FILE_BYTES:
        raise RunFolderError(path, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; refused "
                                    "(ALIGN_TRACK_MAX_FILE_MB raises the limit)")
    return data


def fingerprint(path: Path) -> str:
    """Size and mtime of every watched file: cheap to compute, changes whenever align-system rewrites one."""
    parts = []
    for name in WATCHED_FILES:
        try:
            st = (path / name).stat()
        except OSError:
            parts.append(f"{name}:-")
            continue
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def read_json(path: Path, folder: Path | None = None) -> Any:
    """Parse a JSON file, turning every failure into a RunFolderError that names it."""
    data = read_bytes(path, folder)
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise RunFolderError(path, f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise RunFolderError(path, f"not UTF-8 text ({exc.reason})") from None
    except RecursionError:
        raise RunFolderError(path, "JSON nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer over Python's 4,300-digit conversion limit
        raise RunFolderError(path, f"unreadable JSON value ({clip(str(exc).splitlines()[0], 120)})") from None


def read_yaml(path: Path, folder: Path | None = None) -> Any:
    """Parse a YAML file (Hydra's config), failures named as for JSON."""
    data = read_bytes(path, folder)
    try:
        return yaml.load(data, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        reason = str(exc).replace("\n", " ")
        raise RunFolderError(path, f"invalid YAML ({reason})") from None
    except RecursionError:
        raise RunFolderError(path, "YAML nested too deeply to read") from None
    except ValueError as exc:
        raise RunFolderError(path, f"unreadable YAML value ({clip(str(exc).splitlines()[0], 120)})") from None


def read_scenes(path: Path, folder: Path | None = None) -> list[dict[str, Any]]:
    """The scenes of input_output.json: must be a list of objects whose ``input``/``output`` are objects."""
    data = read_json(path, folder)
    if not isinstance(data, list):
        raise RunFolderError(path, f"expected a list of scenes, found {json_kind(data)}")
    for index, item in enumerate(data):
        problem = scene_problem(index, item)
        if problem:
            raise RunFolderError(path, problem)
    return data


def json_kind(value: Any) -> str:
    """A parsed JSON value's type in JSON's words ('a list', 'a string'), for error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), "null" if value is None else
                                                                     type(value).__name__)


SCENE_OBJECTS = ("input", "output")
"""Scene fields every reader takes apart: one that is a string or a list is not the data model (null is tolerated)."""


def scene_problem(index: int, item: Any) -> str | None:
    """Why scene ``index`` cannot be read (``scene 3: input is a list, expected an object``), else None."""
    if not isinstance(item, dict):
        return f"scene {index} is {json_kind(item)}, expected an object"
    for key in SCENE_OBJECTS:
        value = item.get(key)
        if value is not None and not isinstance(value, dict):
            return f"scene {index}: {key} is {json_kind(value)}, expected an object"
    return None


def read_optional(path: Path, reader: Callable[[Path, Path], Any], folder: Path) -> Any:
    """``reader(path, folder)`` when the file is there, else None (anything there that is not a readable file fails)."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:  # an unreadable .hydra directory, a name too long, ...
        raise RunFolderError(path, f"cannot read ({exc.strerror or exc})") from None
    if os.path.isdir(path):
        raise RunFolderError(path, "is a directory, expected a file")
    return reader(path, folder)


@dataclass
class RunFolderConfig:
    """What ingest needs before reading the scenes: enough to name the run(s) and detect change."""

    path: Path
    rel_path: str
    config: dict[str, Any]
    has_config: bool
    hydra: dict[str, Any] | None
    fingerprint: str
    mtime: float
    target_ids: list[str | None] = field(default_factory=list)
    """Distinct scene alignment_target_ids, in order, when the config has no alignment_target."""
    file_times: tuple[float, float] | None = None
    """(earliest, latest) modification time of the folder's files and ``.hydra/``'s (epoch seconds)."""
    scenes: list[dict[str, Any]] | None = field(default=None, repr=False, compare=False)
    """The scenes parsed to find ``target_ids``, when the caller asked to keep them (``keep_scenes``):
    handed to :func:`read_files` so input_output.json is parsed once; the caller drops them after use."""


def read_config(root: Path, path: Path, keep_scenes: bool = False,
                scenes: list[dict[str, Any]] | None = None) -> RunFolderConfig:
    """Read the Hydra config of one run folder (and, for configs without a target, the scene targets).

    ``scenes``: the folder's scenes already parsed (the watcher's incremental log), used instead of
    parsing input_output.json; ``keep_scenes``: keep the scenes parsed here on the result for
    :func:`read_files`. The fingerprint is taken before any file is read, so a file rewritten while
    it is read shows as changed on the next ingest.
    """
    rel_path = path.relative_to(root).as_posix() if path != root else "."
    try:
        rel_path.encode("utf-8")
    except UnicodeEncodeError:
        raise RunFolderError(path, "folder name is not valid UTF-8 (rename it)") from None
    marker = path / MARKER
    folder_fingerprint, mtime = fingerprint(path), marker.stat().st_mtime
    config_path = path / HYDRA_DIR / "config.yaml"
    config = read_optional(config_path, read_yaml, path)
    if config is not None and not isinstance(config, dict):
        raise RunFolderError(config_path, f"expected a mapping, found {json_kind(config)}")
    target = (config or {}).get("alignment_target")
    if isinstance(target, dict) and not isinstance(target.get("kdma_values"), (list, dict, type(None))):
        raise RunFolderError(config_path, "alignment_target.kdma_values is a "
                                           f"{type(target['kdma_values']).__name__}, expected a list or mapping")
    hydra = read_optional(path / HYDRA_DIR / "hydra.yaml", read_hydra, path)
    target_ids: list[str | None] = []
    kept = None
    if not isinstance(target, dict):
        if scenes is None:
            scenes = read_scenes(marker, path)
            kept = scenes if keep_scenes else None
        target_ids = scene_target_ids(scenes)
    return RunFolderConfig(
        path=path,
        rel_path=rel_path,
        config=config or {},
        has_config=config is not None,
        hydra=hydra,
        fingerprint=folder_fingerprint,
        mtime=mtime,
        target_ids=target_ids,
        scenes=kept,
        file_times=file_times(path),
    )


def timing_note(path: Path, now: float | None = None) -> tuple[str, float | None]:
    """(note, seconds since its files last changed) for a run folder: ('', None) with timing.json; without it
    MAYBE_RUNNING when a file changed within ``schema.STALL_SECONDS`` of ``now`` (align-system may still be
    writing it), else NO_TIMING (the run recorded none, or stopped long ago: the absence alone tells neither)."""
    if os.path.lexists(path / TIMING):
        return "", None
    times = file_times(path)
    age = None if times is None else max((time.time() if now is None else now) - times[1], 0.0)
    return (MAYBE_RUNNING if age is not None and age < STALL_SECONDS else NO_TIMING), age


def file_times(path: Path) -> tuple[float, float] | None:
    """(earliest, latest) mtime of the regular files in the folder and in its ``.hydra/`` (symlinks not followed):
    when the experiment started (Hydra writes ``.hydra/`` first) and last wrote; None when there is none."""
    times: list[float] = []
    for folder in (path, path / HYDRA_DIR):
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        if entry.is_file(follow_symlinks=False):
                            times.append(entry.stat(follow_symlinks=False).st_mtime)
                    except OSError:
                        continue
        except OSError:
            continue
    return (min(times), max(times)) if times else None


def read_hydra(path: Path, folder: Path) -> dict[str, Any]:
    """Hydra's own record of the job (``hydra.yaml``): a mapping whose ``hydra`` section, if any, is one too.

    It only names the ADM when the config does not, but a file of another shape is not Hydra's:
    the folder fails, named, rather than being ingested with a guess.
    """
    data = read_yaml(path, folder)
    if not isinstance(data, dict):
        raise RunFolderError(path, f"expected a mapping, found {json_kind(data)}")
    section = data.get("hydra")
    if section is not None and not isinstance(section, dict):
        raise RunFolderError(path, f"hydra is {json_kind(section)}, expected a mapping")
    return data


def scene_target_id(item: dict[str, Any]) -> str | None:
    """The alignment_target_id a scene was run against (None when unaligned)."""
    inp = item.get("input")
    value = inp.get("alignment_target_id") if isinstance(inp, dict) else None
    return None if value in (None, "") else str(value)


def scene_target_ids(scenes: list[dict[str, Any]]) -> list[str | None]:
    """The distinct alignment_target_ids of ``scenes``, in order of first appearance."""
    return list(dict.fromkeys(scene_target_id(item) for item in scenes))


@dataclass
class RunFolderFiles:
    """Everything a run is built from, read once; released after the run is written."""

    scenes: list[dict[str, Any]]
    timing: Any
    scores: Any
    meta: Any


def read_files(path: Path, scenes: list[dict[str, Any]] | None = None, with_timing: bool = True) -> RunFolderFiles:
    """Read the scene list and the optional timing/scores/meta files of one run folder.

    ``scenes``: already parsed (kept by :func:`read_config`, or the watcher's incremental log), so
    input_output.json is not parsed again; ``with_timing=False`` leaves timing.json unread (a live
    run is not finished until the watcher has seen it).
    """
    return RunFolderFiles(
        scenes=read_scenes(path / MARKER, path) if scenes is None else scenes,
        timing=read_optional(path / TIMING, read_json, path) if with_timing else None,
        scores=read_optional(path / SCORES, read_json, path),
        meta=read_meta(path),
    )


def read_meta(path: Path) -> Any:
    """meta.json only adds informational tags: a damaged one is ignored rather than failing the run."""
    try:
        return read_optional(path / "meta.json", read_json, path)
    except RunFolderError:
        return None


def run_file_sizes(path: Path) -> dict[str, int]:
    """Sizes of the folder's top-level run files, which every writer of the data model uploads as artifacts."""
    return {name: (path / name).stat().st_size for name in (INPUT_OUTPUT, TIMING, SCORES) if (path / name).is_file()}
