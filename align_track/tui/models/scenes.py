"""Scenes as the inspector and the compare view need them, read from a trace's root span.

Pure functions of the trace's inputs/outputs/attributes (the README's data model), so the
formatting and the agreement count are tested without a terminal.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from align_track.query.scene_index import scene_identity
from align_track.schema import ATTR_CHOSEN_ACTION, ATTR_PREDICTED_KDMA, ATTR_TIMING, ATTR_TRUE_KDMA
from align_track.tui.widgets.vtable import Column

SCENE_COLUMNS: tuple[Column, ...] = (
    Column("index", "#", 5, numeric=True, essential=True),
    Column("scene", "scene", 20, middle=True, min_width=6, essential=True),
    Column("scenario", "scenario", 24, middle=True, min_width=8, essential=True),  # one value per run, often
    Column("seconds", "s", 7, numeric=True, essential=True),
    # the decision is what is read: fitted to the pane (cut with '…'), never scrolled out of view
    Column("action", "chosen action", 40, grow=True, min_width=12, essential=True),
)


@dataclass
class Scene:
    """One trace of a run, reduced to what is shown; ``trace`` keeps the MLflow object for the raw view (or None)."""

    trace_id: str
    scene_id: str
    scenario_id: str
    index: int | None
    seconds: float | None
    choice_index: int | None
    chosen_action: str
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    trace: Any = None
    load_trace: Callable[[], Any] | None = None
    """Fetches the full MLflow trace for the raw view when ``trace`` is None (scenes read without mlflow)."""
    timestamp_ms: int | None = None
    """When the trace was written (MLflow's ``timestamp_ms``): a live run's refresh asks for what came after."""

    @property
    def key(self) -> tuple[str, str]:
        """What matches a scene across runs: scenario and scene id."""
        return (self.scenario_id, self.scene_id)

    @property
    def decision(self) -> str:
        """The choice compared across runs: the chosen action's text, else its index."""
        if self.chosen_action:
            return self.chosen_action
        return "" if self.choice_index is None else f"choice {self.choice_index}"

    def cells(self) -> tuple[str, ...]:
        return (
            "" if self.index is None else str(self.index + 1),
            self.scene_id,
            self.scenario_id,
            "" if self.seconds is None else f"{self.seconds:.1f}",
            self.chosen_action,
        )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def root_span(trace: Any) -> Any:
    spans = list(getattr(getattr(trace, "data", None), "spans", None) or [])
    return next((s for s in spans if s.parent_id is None), spans[0] if spans else None)


def scene_from_trace(trace: Any) -> Scene:
    """A Scene from an MLflow Trace (root span inputs/outputs/attributes; MLflow's own keys dropped)."""
    span = root_span(trace)
    return _scene(trace.info.trace_id, span.inputs if span is not None else None,
                  span.outputs if span is not None else None,
                  dict(span.attributes or {}) if span is not None else {}, trace.info.tags or {}, trace=trace,
                  timestamp_ms=getattr(trace.info, "request_time", None))


def scene_from_row(row: dict[str, Any], load_trace: Callable[[], Any] | None = None) -> Scene:
    """A Scene from a trace read by :mod:`align_track.store.spans_reader` (the same fields as an MLflow Trace)."""
    return _scene(row["trace_id"], row["inputs"], row["outputs"], dict(row["attributes"] or {}), row["tags"] or {},
                  load_trace=load_trace, timestamp_ms=row.get("request_time"))


def _scene(trace_id: str, span_inputs: Any, span_outputs: Any, raw_attrs: dict[str, Any], tags: dict[str, str],
           trace: Any = None, load_trace: Callable[[], Any] | None = None, timestamp_ms: int | None = None) -> Scene:
    inputs = dict(span_inputs) if isinstance(span_inputs, dict) else {}
    outputs = dict(span_outputs) if isinstance(span_outputs, dict) else {}
    attrs = {k: v for k, v in raw_attrs.items() if not k.startswith("mlflow.")}
    # the (scenario, scene) every view matches scenes by: the Sweep pane's scene index reads it the same way
    scenario_id, scene_id = scene_identity(attrs.get("scenario_id"), inputs.get("scenario_id"),
                                           inputs.get("scene_id"), tags.get("scene_id"), tags.get("mlflow.traceName"))
    seconds = _float(attrs.get(ATTR_TIMING))
    choice = _int(attrs.get("choice_index", outputs.get("choice_index")))
    action = outputs.get("action") if isinstance(outputs.get("action"), dict) else {}
    chosen = attrs.get(ATTR_CHOSEN_ACTION) or action.get("unstructured") or ""
    return Scene(
        trace_id=trace_id,
        scene_id=scene_id,
        scenario_id=scenario_id,
        index=_int(attrs.get("scene_index")),
        seconds=seconds,
        choice_index=choice,
        chosen_action=str(chosen),
        inputs=inputs,
        outputs=outputs,
        attributes=attrs,
        trace=trace,
        load_trace=load_trace,
        timestamp_ms=timestamp_ms,
    )


def sort_scenes(scenes: list[Scene]) -> list[Scene]:
    """input_output.json order (scene_index); scenes without one keep their place at the end."""
    return sorted(scenes, key=lambda s: (s.index is None, s.index if s.index is not None else 0))


def raw_json(scene: Scene) -> str:
    """The whole trace as MLflow serialises it (info + spans), pretty-printed; fetched on first ask."""
    if scene.trace is None and scene.load_trace is not None:
        scene.trace = scene.load_trace()
    if scene.trace is not None and hasattr(scene.trace, "to_dict"):
        return json.dumps(scene.trace.to_dict(), indent=2, default=str)
    return json.dumps({"inputs": scene.inputs, "outputs": scene.outputs, "attributes": scene.attributes},
                      indent=2, default=str)


# --------------------------------------------------------------------------- KDMA values


def format_kdma_value(value: Any) -> str:
    """0.25 -> '0.25'; predicted lists ([0.3] or [0.2, 0.4]) -> their values joined; None -> '–'."""
    if value is None:
        return "–"
    if isinstance(value, (list, tuple)):
        parts = [format_kdma_value(v) for v in value]
        return ", ".join(parts) if parts else "–"
    number = _float(value)
    if number is None:
        return str(value)
    return f"{number:.2f}"


def kdma_text(values: Any) -> str:
    """``{'merit': 0.2, 'affiliation': [0.3]}`` -> 'merit 0.20 · affiliation 0.30'."""
    if not isinstance(values, dict) or not values:
        return "–" if values is None or values == {} else str(values)
    return " · ".join(f"{k} {format_kdma_value(v)}" for k, v in values.items())


def kdma_rows(true_values: Any, predicted: Any, choices: Sequence[str]) -> list[tuple[str, str, str]]:
    """(choice, true, predicted) per choice named in either mapping, in the scene's choice order."""
    true_map = true_values if isinstance(true_values, dict) else {}
    pred_map = predicted if isinstance(predicted, dict) else {}
    names = [c for c in choices if c in true_map or c in pred_map]
    names += [c for c in list(true_map) + list(pred_map) if c not in names]
    seen: list[str] = []
    for name in names:
        if name not in seen:
            seen.append(name)
    return [(name, kdma_text(true_map.get(name)), kdma_text(pred_map.get(name))) for name in seen]


def choice_texts(scene: Scene) -> list[str]:
    choices = scene.inputs.get("choices")
    if not isinstance(choices, list):
        return []
    return [str(c.get("unstructured") or c.get("action_id") or "") if isinstance(c, dict) else str(c)
            for c in choices]


# --------------------------------------------------------------------------- compare


@dataclass
class Comparison:
    """Scenes of several runs lined up by (scenario, scene id)."""

    keys: list[tuple[str, str]]
    decisions: list[list[str | None]]
    """decisions[i][r]: what run r chose in scene keys[i] (None: the run has no such scene)."""
    agree: list[bool]
    scenes: list[list[Scene | None]] = field(default_factory=list)
    """scenes[i][r]: run r's scene keys[i], for the side-by-side view."""

    def odd_ones(self, i: int) -> set[int]:
        """Runs that chose differently from a strict majority of the runs that have scene i (none when
        there is no majority: then every run is as odd as the others)."""
        present = [(r, d) for r, d in enumerate(self.decisions[i]) if d is not None]
        counts = Counter(d for _, d in present)
        if len(counts) < 2:
            return set()
        (top, n), (_, second) = counts.most_common(2)
        if n == second:
            return set()
        return {r for r, d in present if d != top}

    def kdma_error(self, i: int) -> float | None:
        """The largest KDMA prediction error among the runs' scene i (None when none recorded)."""
        errors = [e for sc in self.scenes[i] if sc is not None and (e := kdma_error(sc)) is not None] \
            if self.scenes else []
        return max(errors) if errors else None

    def missing(self, i: int) -> bool:
        """Some run never met scene i: it neither agrees nor disagrees."""
        return any(d is None for d in self.decisions[i])

    def differs(self, i: int) -> bool:
        """Every run met scene i and they chose differently."""
        return not self.agree[i] and not self.missing(i)

    @property
    def comparable(self) -> int:
        """Scenes every run has."""
        return sum(1 for row in self.decisions if all(d is not None for d in row))

    @property
    def agreeing(self) -> int:
        return sum(self.agree)

    def summary(self) -> str:
        """Agreement over the scenes every run met, and how many some run is missing (shown as —)."""
        missing = len(self.keys) - self.comparable
        scenes = f"{missing} scene{'s' if missing != 1 else ''}"
        if not self.comparable:
            return f"no scene in common · {scenes} missing from some run (—)" if missing else "no scenes"
        text = f"{self.agreeing} of {self.comparable} scenes agree"
        if missing:
            text += f" · {scenes} missing from some run (—)"
        return text


def _keyed(scenes: Sequence[Scene]) -> dict[tuple[str, str], Scene]:
    """Scenes by key; a key repeated within one run gets '#2', '#3' so no scene is lost."""
    out: dict[tuple[str, str], Scene] = {}
    seen: Counter[tuple[str, str]] = Counter()
    for scene in sort_scenes(list(scenes)):
        seen[scene.key] += 1
        key = scene.key if seen[scene.key] == 1 else (scene.key[0], f"{scene.key[1]}#{seen[scene.key]}")
        out[key] = scene
    return out


def compare(runs: Sequence[Sequence[Scene]]) -> Comparison:
    """Line scenes up across runs; a scene agrees when every run has it and all made the same choice."""
    keyed = [_keyed(scenes) for scenes in runs]
    order: list[tuple[str, str]] = []
    known: set[tuple[str, str]] = set()
    for mapping in keyed:
        for key in mapping:
            if key not in known:
                known.add(key)
                order.append(key)
    decisions: list[list[str | None]] = []
    agree: list[bool] = []
    scenes: list[list[Scene | None]] = []
    for key in order:
        found = [m.get(key) for m in keyed]
        row = [sc.decision if sc is not None else None for sc in found]
        decisions.append(row)
        scenes.append(found)
        agree.append(all(d is not None for d in row) and len(set(row)) == 1)
    return Comparison(order, decisions, agree, scenes)


def kdma_error(scene: Scene) -> float | None:
    """Mean absolute difference between true and predicted KDMA values over the scene's choices and KDMAs
    (a predicted list counts by its mean); None when the scene records no pair of them."""
    true_map = scene.attributes.get(ATTR_TRUE_KDMA)
    pred_map = scene.attributes.get(ATTR_PREDICTED_KDMA)
    if not isinstance(true_map, dict) or not isinstance(pred_map, dict):
        return None
    diffs: list[float] = []
    for choice, true_values in true_map.items():
        predicted = pred_map.get(choice)
        if not isinstance(true_values, dict) or not isinstance(predicted, dict):
            continue
        for kdma, value in true_values.items():
            t, p = _mean(value), _mean(predicted.get(kdma))
            if t is not None and p is not None:
                diffs.append(abs(t - p))
    return sum(diffs) / len(diffs) if diffs else None


def _mean(value: Any) -> float | None:
    if isinstance(value, (list, tuple)):
        numbers = [n for v in value if (n := _float(v)) is not None]
        return sum(numbers) / len(numbers) if numbers else None
    return _float(value)
