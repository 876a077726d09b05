"""Find align-system experiment folders and read them without losing any.

Real folders drift from any schema (nulls where values are expected, string
choice indices, missing timing.json while a run is still going), so parsing is
tolerant: only input that cannot be read at all (truncated JSON, not a list of
scenes, invalid YAML) makes an experiment fail, and then with the file and the
reason. No MLflow here: this layer is pure file reading.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # the C loader is ~10x faster on the 12 KB pipeline configs
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _YamlLoader = yaml.SafeLoader

MARKER = "input_output.json"
# Files whose change means the run must be re-ingested (align-system rewrites
# input_output.json after every scene and writes timing.json last).
WATCHED_FILES = ("input_output.json", "timing.json", "scores.json", ".hydra/config.yaml", ".hydra/hydra.yaml")


class ExperimentError(Exception):
    """An experiment folder that cannot be ingested; the message names the file and the reason."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def discover(root: Path) -> list[Path]:
    """Every folder below ``root`` holding input_output.json, sorted, skipping OUTDATED ones.

    Only the part of the path below ``root`` is checked for OUTDATED, so a root
    that itself lives under an OUTDATED folder still works.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"experiments directory not found: {root}")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(d for d in dirnames if "outdated" not in d.lower())
        if rel != "." and "outdated" in rel.lower():
            continue
        if MARKER in filenames:
            found.append(Path(dirpath))
    return sorted(found)


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


def read_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into an ExperimentError that names it."""
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except json.JSONDecodeError as exc:
        raise ExperimentError(path, f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    except UnicodeDecodeError as exc:
        raise ExperimentError(path, f"not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise ExperimentError(path, f"cannot read file ({exc.strerror or exc})") from exc


def read_yaml(path: Path) -> Any:
    """Parse a YAML file (Hydra's config), failures named as for JSON."""
    try:
        with open(path, "rb") as handle:
            return yaml.load(handle, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        reason = str(exc).replace("\n", " ")
        raise ExperimentError(path, f"invalid YAML ({reason})") from exc
    except OSError as exc:
        raise ExperimentError(path, f"cannot read file ({exc.strerror or exc})") from exc


def read_scenes(path: Path) -> list[dict[str, Any]]:
    """The scenes of input_output.json: must be a list of objects."""
    data = read_json(path)
    if not isinstance(data, list):
        raise ExperimentError(path, f"expected a list of scenes, found a JSON {type(data).__name__}")
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise ExperimentError(path, f"scene {index} is a JSON {type(item).__name__}, not an object")
    return data


def _optional(path: Path, reader: Any) -> Any:
    return reader(path) if path.is_file() else None


@dataclass
class ExperimentConfig:
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


def read_config(root: Path, path: Path) -> ExperimentConfig:
    """Read the Hydra config of one experiment (and, for configs without a target, the scene targets)."""
    config_path = path / ".hydra" / "config.yaml"
    config = _optional(config_path, read_yaml)
    if config is not None and not isinstance(config, dict):
        raise ExperimentError(config_path, f"expected a mapping, found {type(config).__name__}")
    hydra = _optional(path / ".hydra" / "hydra.yaml", _read_hydra_lenient)
    target_ids: list[str | None] = []
    if not isinstance((config or {}).get("alignment_target"), dict):
        seen: dict[str | None, None] = {}
        for item in read_scenes(path / MARKER):
            seen.setdefault(scene_target_id(item), None)
        target_ids = list(seen)
    marker = path / MARKER
    return ExperimentConfig(
        path=path,
        rel_path=path.relative_to(root).as_posix() if path != root else ".",
        config=config or {},
        has_config=config is not None,
        hydra=hydra if isinstance(hydra, dict) else None,
        fingerprint=fingerprint(path),
        mtime=marker.stat().st_mtime,
        target_ids=target_ids,
    )


def _read_hydra_lenient(path: Path) -> Any:
    """hydra.yaml only supplies a fallback ADM name: a damaged one must not fail the experiment."""
    try:
        return read_yaml(path)
    except ExperimentError:
        return None


def scene_target_id(item: dict[str, Any]) -> str | None:
    """The alignment_target_id a scene was run against (None when unaligned)."""
    value = (item.get("input") or {}).get("alignment_target_id")
    return None if value in (None, "") else str(value)


@dataclass
class ExperimentFiles:
    """Everything a run is built from, read once; released after the run is written."""

    scenes: list[dict[str, Any]]
    timing: Any
    scores: Any
    meta: Any


def read_files(path: Path) -> ExperimentFiles:
    """Read the scene list and the optional timing/scores/meta files of one experiment."""
    return ExperimentFiles(
        scenes=read_scenes(path / MARKER),
        timing=_optional(path / "timing.json", read_json),
        scores=_optional(path / "scores.json", read_json),
        meta=_read_meta_lenient(path / "meta.json"),
    )


def _read_meta_lenient(path: Path) -> Any:
    """meta.json only adds informational tags: a damaged one is ignored rather than failing the run."""
    try:
        return _optional(path, read_json)
    except ExperimentError:
        return None
