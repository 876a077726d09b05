"""The pure mapping from a run folder's contents to MLflow runs and traces.

Follows the data model in the README exactly; everything here is a pure function
of parsed files, so it is tested without MLflow and shared by every writer.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from align_track import scene_summary
from align_track import schema as S
from align_track.alignment import alignment_metrics
from align_track.errors import one_line
from align_track.ingest.folders import (
    VANISHED,
    RunFolderConfig,
    RunFolderError,
    RunFolderFiles,
    inside_folder,
    read_files,
    scene_target_id,
    vanished,
)
from align_track.ingest.run_times import run_times
from align_track.records import Artifact, RunRecord, TraceRecord
from align_track.schema import TAG_FINGERPRINT, TAG_KEY, TAG_SOURCE, UNALIGNED, UNKNOWN_ADM

NO_SCENES = "input_output.json holds no scenes yet: ingested as a run with 0 traces"
"""The note for a folder whose scene list is empty: ingested (the job exists, crashed or not started yet) and said,
not failed (a sweep still starting is not an error) nor silent (0 traces would look like data lost)."""

MAPPING_VERSION = "6"
"""Part of every run's fingerprint: a new version rewrites stores written by an older one on the next ingest.
2: alignment.* and kdma.<name>.* metrics (alignment.py); traces carry ``scene_id``/``mlflow.runId`` tags and
MLflow's metadata, and ``timing_seconds`` always. 3: the alignment distance is align-system's (sum of absolute
differences over the target KDMAs, not Euclidean). 4: trace inputs start with ``scene_id`` (the web UI's
request preview shows it). 5: runs start and end at the experiment's times, traces at their scenes' times
(run_times.py), not the ingest's. 6: traces carry the ``mlflow.align_track.scene_summary`` tag (scene_summary.py: the
scenes-across-runs index reads it instead of the span)."""


@dataclass(frozen=True)
class Target:
    """One alignment target a run is evaluated against."""

    id: str
    kdma_values: tuple[tuple[str, str], ...]
    from_scenes: bool
    """True for a mixed-target folder split by the scenes' alignment_target_id."""


@dataclass(frozen=True)
class RunIdentity:
    """Who a run is: one folder, or one target of a mixed-target folder."""

    config: RunFolderConfig
    target: Target
    adm: str
    llm: str | None

    @property
    def key(self) -> str:
        """Stable identity of the run across re-ingests: absolute folder plus target."""
        return identity_key(self.config.path.resolve(), self.target.id if self.target.from_scenes else "")

    @property
    def group(self) -> tuple[str, str | None, str]:
        """Runs sharing ADM, LLM and target need a run_variant to tell them apart."""
        return (self.adm, self.llm, self.target.id)


def identity_key(folder: Path, target_id: str = "") -> str:
    """A run's identity: its absolute (resolved) folder, plus the target for one of a mixed-target folder's runs
    (``target_id`` empty: the folder's only run)."""
    # surrogatepass: a target id from JSON may hold an unpaired surrogate ("\ud800"); valid text hashes as before
    return hashlib.sha1(f"{folder}\0{target_id}".encode("utf-8", "surrogatepass")).hexdigest()[:20]


def adm_name(config: dict[str, Any], hydra: dict[str, Any] | None) -> str:
    """``adm.name``, else Hydra's ``runtime.choices.adm``, else the class in ``adm.instance._target_``."""
    adm = config.get("adm") if isinstance(config.get("adm"), dict) else {}
    if isinstance(adm.get("name"), str) and adm["name"]:
        return adm["name"]
    section = _dict((hydra or {}).get("hydra")) or _dict(hydra)
    runtime = _dict(section.get("runtime"))
    choice = _dict(runtime.get("choices")).get("adm")
    if isinstance(choice, str) and choice:
        return choice
    instance = adm.get("instance") if isinstance(adm.get("instance"), dict) else {}
    target = instance.get("_target_")
    if isinstance(target, str) and target:
        return target.rsplit(".", 1)[-1]
    return UNKNOWN_ADM


def _dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a mapping, else an empty one: real files put strings and lists anywhere."""
    return value if isinstance(value, dict) else {}


def llm_name(config: dict[str, Any]) -> str | None:
    """``adm.structured_inference_engine.model_name``, else ``adm.instance.model_name``."""
    adm = config.get("adm") if isinstance(config.get("adm"), dict) else {}
    for section in ("structured_inference_engine", "instance"):
        block = adm.get(section)
        if isinstance(block, dict) and isinstance(block.get("model_name"), str) and block["model_name"]:
            return block["model_name"]
    return None


def _format_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def config_target(config: dict[str, Any]) -> Target | None:
    """The config's alignment_target; KDE targets without a ``value`` keep their KDMA as 'kde'."""
    at = config.get("alignment_target")
    if not isinstance(at, dict):
        return None
    kdmas: list[tuple[str, str]] = []
    entries = at.get("kdma_values") or []
    if isinstance(entries, dict):  # {kdma: value} written by hand instead of a list of {kdma, value}
        entries = [{"kdma": k, "value": v} for k, v in entries.items()]
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not entry.get("kdma"):
            continue
        value = entry.get("value")
        kdmas.append((str(entry["kdma"]), S.KDE_VALUE if value is None else _format_value(value)))
    return Target(id=str(at.get("id") or "unknown_target"), kdma_values=tuple(kdmas), from_scenes=False)


def scene_target(target_id: str | None) -> Target:
    """A target named only by a scene's alignment_target_id; KDMAs parsed from the id by align-utils."""
    if target_id is None:
        return Target(id=UNALIGNED, kdma_values=(), from_scenes=True)
    from align_utils.models import parse_alignment_target_id

    kdmas = tuple((kv.kdma, _format_value(kv.value)) for kv in parse_alignment_target_id(target_id))
    return Target(id=target_id, kdma_values=kdmas, from_scenes=True)


def identities(config: RunFolderConfig) -> list[RunIdentity]:
    """One identity per run the folder yields: its configured target, else one per scene target."""
    adm, llm = adm_name(config.config, config.hydra), llm_name(config.config)
    target = config_target(config.config)
    if target is not None:
        targets = [target]
    elif config.target_ids:
        targets = [scene_target(t) for t in config.target_ids]
        if len(targets) == 1:  # unaligned or single-target: one run for the folder, as configured
            targets = [Target(targets[0].id, targets[0].kdma_values, from_scenes=False)]
    else:
        targets = [Target(UNALIGNED, (), from_scenes=False)]
    return [RunIdentity(config, t, adm, llm) for t in targets]


def scene_id(item: dict[str, Any], index: int) -> str:
    """The scene's id (int or missing ids tolerated): meta_info.scene_id, else ``scene_<index>``."""
    state = _dict(_dict(item.get("input")).get("full_state"))
    meta = state.get("meta_info")
    value = meta.get("scene_id") if isinstance(meta, dict) else None
    return f"scene_{index}" if value in (None, "") else str(value)


def choice_index(output: Any) -> int | None:
    """output.choice as an int: align-system writes it as an int or a numeric string; null stays None."""
    value = output.get("choice") if isinstance(output, dict) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def chosen_action_text(item: dict[str, Any], index: int | None) -> str | None:
    """Readable text of the chosen action: the output action's text, else the chosen choice's."""
    action = _dict(item.get("output")).get("action")
    if isinstance(action, dict) and action.get("unstructured"):
        return str(action["unstructured"])
    choices = _dict(item.get("input")).get("choices") or []
    if not isinstance(choices, list):
        return None
    if index is not None and 0 <= index < len(choices) and isinstance(choices[index], dict):
        text = choices[index].get("unstructured")
        return None if text is None else str(text)
    return None


MAX_SCENE_SECONDS = 1e8
"""About three years: a larger 'seconds per scene' is corrupt data, and would push span times past int64."""


class TimingError(ValueError):
    """timing.json holds a value that cannot be a scene's duration."""


def scene_times(timing: Any, count: int) -> list[float | None]:
    """Per-scene seconds from timing.json's raw_times_s, padded with None where timing is short or missing."""
    raw: Any = None
    if isinstance(timing, dict):
        raw = timing.get("raw_times_s")
        if raw is None:
            scenarios = timing.get("scenarios")
            if isinstance(scenarios, list):
                raw = [t for s in scenarios if isinstance(s, dict) for t in (s.get("raw_times_s") or [])]
    elif isinstance(timing, list):
        raw = timing
    times: list[float | None] = []
    for value in raw if isinstance(raw, list) else []:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok and not 0 <= value <= MAX_SCENE_SECONDS:
            raise TimingError(f"raw_times_s holds {value!r}, not a duration in seconds (0 to {MAX_SCENE_SECONDS:g})")
        times.append(float(value) if ok else None)
    return (times + [None] * count)[:count]


def timing_metrics(times: list[float | None]) -> dict[str, float]:
    """timing.* metrics over the scenes that have a time (none when no scene does)."""
    known = [t for t in times if t is not None]
    if not known:
        return {}
    return {
        S.METRIC_TOTAL_SECONDS: sum(known),
        S.METRIC_AVG_SECONDS: sum(known) / len(known),
        S.METRIC_MIN_SECONDS: min(known),
        S.METRIC_MAX_SECONDS: max(known),
    }


def score_metrics(scores: Any, target_id: str) -> dict[str, float]:
    """score.* metrics from scores.json's session objects; ``score`` becomes ``score.alignment_score``.

    Entries naming another alignment target are ignored (mixed-target runs); several
    matching sessions are averaged.
    """
    entries = scores if isinstance(scores, list) else [scores] if isinstance(scores, dict) else []
    entries = [e for e in entries if isinstance(e, dict)]
    matching = [e for e in entries if e.get("alignment_target_id") in (None, target_id)]
    if not matching and len(entries) == 1:  # one session scored under another id: still this run's score
        matching = entries
    sums: dict[str, list[float]] = {}
    for entry in matching:
        for key, value in entry.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                name = S.SCORE_METRIC if key == S.SCORES_FIELD else f"{S.SCORE_PREFIX}{key}"
                sums.setdefault(name, []).append(float(value))
    return {name: sum(values) / len(values) for name, values in sums.items()}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def build_run(identity: RunIdentity, variant: str, files: RunFolderFiles) -> RunRecord:
    """The run (params, metrics, tags, artifacts) and its traces for one identity."""
    cfg, target = identity.config, identity.target
    indices = [
        i for i, item in enumerate(files.scenes)
        if not target.from_scenes or (scene_target_id(item) or UNALIGNED) == target.id
    ]
    try:
        all_times = scene_times(files.timing, len(files.scenes))
    except TimingError as exc:
        raise RunFolderError(cfg.path / S.TIMING, str(exc)) from None
    times = [all_times[i] for i in indices]
    first = files.scenes[indices[0]] if indices else {}

    params: dict[str, str] = {S.PARAM_ADM: identity.adm}
    if identity.llm:
        params[S.PARAM_LLM] = identity.llm
    params[S.PARAM_TARGET] = target.id
    for kdma, value in target.kdma_values:
        params[f"{S.PARAM_KDMA_PREFIX}{kdma}"] = value
    params[S.PARAM_VARIANT] = variant
    params[S.PARAM_NUM_SCENES] = str(len(indices))
    first_scenario = _dict(first.get("input")).get("scenario_id")
    if first_scenario is not None:
        params[S.PARAM_FIRST_SCENARIO] = str(first_scenario)

    metrics = timing_metrics(times)
    metrics.update(score_metrics(files.scores, target.id))
    scenes = [files.scenes[i] for i in indices]
    metrics.update(alignment_metrics(scenes, [choice_index(s.get("output")) for s in scenes],
                                     target.kdma_values, target.id))

    when = run_times(cfg.path, cfg.file_times, files.timing, all_times)
    tags: dict[str, str] = {S.TAG_ADM: identity.adm}
    if identity.llm:
        tags[S.TAG_LLM] = identity.llm
    tags.update({
        S.TAG_TARGET: target.id,
        S.TAG_PATH: cfg.rel_path,
        S.TAG_TIMESTAMP: _iso(when[0] / 1000 if when else cfg.path.stat().st_mtime),  # the run's start time
        S.TAG_HAS_HYDRA: str(cfg.has_config),
        TAG_KEY: identity.key,
        TAG_FINGERPRINT: run_fingerprint(identity, variant),
        TAG_SOURCE: str(cfg.path.resolve()),
    })

    artifacts = [Artifact(str(cfg.path / S.INPUT_OUTPUT))]
    for name in (S.TIMING, S.SCORES):
        if (cfg.path / name).is_file():
            artifacts.append(Artifact(str(cfg.path / name)))
    if cfg.has_config:
        artifacts.append(Artifact(str(cfg.path / S.HYDRA_DIR / S.HYDRA_CONFIG), S.HYDRA_DIR))

    # The same rule as reading: nothing a symlink leads to outside the run folder is published.
    artifacts = [a for a in artifacts if inside_folder(cfg.path, Path(a.path))]
    traces = build_traces(identity, files, indices, all_times, when[0] if when else None)
    run_name = f"{identity.adm}/{target.id}" + ("" if variant == S.DEFAULT_VARIANT else f"/{variant}")
    return RunRecord(run_name=run_name, params=params, metrics=metrics, tags=tags,
                     artifacts=artifacts, traces=traces, start_ms=when[0] if when else None,
                     end_ms=when[1] if when else None)


@dataclass
class MappedRun:
    """What a writer writes for one identity: the run fitted to MLflow's limits, the files it came from, and a
    warning per value that was truncated."""

    run: RunRecord
    files: RunFolderFiles
    warnings: list[str]


def map_run(identity: RunIdentity, variant: str, files: RunFolderFiles | None = None) -> MappedRun:
    """Read the folder (unless ``files`` were read already), build the run and fit it to MLflow's limits.

    The one way from a folder to a record for every writer (ingest, the watcher), so a value MLflow limits is
    truncated or refused the same on every path and backend. Whatever goes wrong here is the folder's data
    (a :class:`RunFolderError` naming it), never the store's.
    """
    from align_track.store.limits import LimitError, fit_to_limits

    path = identity.config.path
    try:
        if files is None:
            files = read_files(path, scenes=identity.config.scenes)
        record, warnings = fit_to_limits(build_run(identity, variant, files))
    except RunFolderError:
        if vanished(path):
            raise RunFolderError(path, VANISHED) from None
        raise
    except LimitError as exc:
        raise RunFolderError(path, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a shape no rule foresaw: this folder fails, with the reason
        if vanished(path):
            raise RunFolderError(path, VANISHED) from None
        raise RunFolderError(path, f"cannot map ({one_line(exc, with_type=True)})") from None
    if not files.scenes:  # a job that wrote no scene (crashed, or not started): shown, and said why it is empty
        warnings = [*warnings, NO_SCENES]
    return MappedRun(record, files, warnings)


def run_fingerprint(identity: RunIdentity, variant: str) -> str:
    """Changes when the files, the derived variant or this mapping change: then the run is rewritten."""
    return fingerprint_of(identity.config.fingerprint, variant)


def fingerprint_of(files: str, variant: str) -> str:
    """The run fingerprint of a folder whose files have fingerprint ``files`` (``folders.fingerprint``: sizes and
    times), under ``variant`` and this mapping version."""
    return hashlib.sha1(f"{files}|{variant}|{MAPPING_VERSION}".encode()).hexdigest()[:16]


def build_traces(
    identity: RunIdentity, files: RunFolderFiles, indices: list[int], times: list[float | None],
    start_ms: int | None = None,
) -> list[TraceRecord]:
    """One trace per scene, each at its scene's own time: the experiment's start (``start_ms``; else the folder's
    last write less its recorded time) plus the seconds of the folder's scenes before it."""
    if start_ms is None:
        start_ms = round((identity.config.mtime - sum(t for t in times if t is not None)) * 1000)
    offsets, clock_ns = [], start_ms * 1_000_000
    for seconds in times:  # every scene of the folder: a mixed-target folder's runs interleave in time
        offsets.append(clock_ns)
        clock_ns += max(int((seconds or 0.0) * 1e9), MIN_SCENE_STEP_NS)
    traces = []
    for index in indices:
        item = files.scenes[index]
        inp = item.get("input") if isinstance(item.get("input"), dict) else {}
        state = inp.get("full_state") if isinstance(inp.get("full_state"), dict) else {}
        output = item.get("output") if isinstance(item.get("output"), dict) else {}
        info = item.get("choice_info") if isinstance(item.get("choice_info"), dict) else {}
        sid = scene_id(item, index)
        chosen = choice_index(output)
        seconds = times[index]
        attributes: dict[str, Any] = {
            S.ATTR_SCENE_INDEX: index,
            S.ATTR_SCENARIO_ID: inp.get("scenario_id"),
            S.ATTR_ADM: identity.adm,
            S.ATTR_TARGET: identity.target.id,
        }
        attributes[S.ATTR_TIMING] = seconds  # None (null) where timing.json has no time: every attribute is there
        attributes[S.ATTR_TRUE_KDMA] = info.get("true_kdma_values")
        attributes[S.ATTR_PREDICTED_KDMA] = info.get("predicted_kdma_values")
        attributes[S.ATTR_CHOICE_INDEX] = chosen
        attributes[S.ATTR_CHOSEN_ACTION] = chosen_action_text(item, chosen)
        duration_ns = int((seconds or 0.0) * 1e9)
        inputs = {  # schema.TRACE_INPUTS' order: the scene id first, so the web UI's cut preview shows it
            S.IN_SCENE_ID: sid,
            S.IN_SCENARIO_ID: inp.get("scenario_id"),
            S.IN_STATE: inp.get("state"),
            S.IN_UNSTRUCTURED: state.get("unstructured"),
            S.IN_CHARACTERS: state.get("characters"),
            S.IN_CHOICES: inp.get("choices"),
        }
        outputs = {S.OUT_CHOICE_INDEX: chosen, S.OUT_ACTION: output.get("action")}
        tags = {S.TRACE_TAG_SCENE_ID: sid}  # the writer adds mlflow.runId (the run id is known only then)
        summary = trace_summary(inputs, outputs, attributes)
        if summary is not None:
            tags[S.TRACE_TAG_SCENE_SUMMARY] = summary
        traces.append(TraceRecord(
            name=sid,
            inputs=inputs,
            outputs=outputs,
            attributes=attributes,
            tags=tags,
            start_ns=offsets[index],
            end_ns=offsets[index] + duration_ns,
        ))
    return traces


def trace_summary(inputs: dict[str, Any], outputs: dict[str, Any], attributes: dict[str, Any]) -> str | None:
    """The ``mlflow.align_track.scene_summary`` tag of a trace with this root span (None: the span is read instead)."""
    return scene_summary.encode(inputs, outputs, attributes, S.ATTR_SCENARIO_ID, S.IN_SCENE_ID, S.IN_CHOICES,
                                S.OUT_ACTION, S.ATTR_SCENE_INDEX, S.ATTR_CHOICE_INDEX, S.ATTR_CHOSEN_ACTION,
                                S.ATTR_TRUE_KDMA)


MIN_SCENE_STEP_NS = 1_000_000
"""Scenes with no time (no timing.json yet, or 0 s) still start 1 ms apart: MLflow orders a run's traces by
their millisecond timestamp, so the Traces tab and a scene list paged by time show them in scene order."""

