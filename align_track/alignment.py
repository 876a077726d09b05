"""Alignment metrics from the scenes' own KDMA values, for runs that have no scoring server.

Every align-system scene carries, per choice, its true KDMA values (``choice_info.true_kdma_values``,
keyed by the choice's text), often the ADM's predicted values (``choice_info.predicted_kdma_values``,
lists of samples), and the chosen index. Against the run's alignment target these give how far the
chosen choices sit from the target and how often the ADM made the choice an oracle would make. Pure
functions of parsed files (no MLflow); the README's data model gives each formula. Nothing is guessed:
a scene or choice that lacks what a metric needs is left out of it and counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from align_track import schema as S

TIE_TOLERANCE = 1e-9
"""Distances this close count as equal: a tie for the minimum is a hit for every choice in it."""


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def scalar_target(kdma_values: Iterable[tuple[str, str]]) -> dict[str, float] | None:
    """KDMA -> target value of a scalar target; None when any KDMA has no number (a KDE target)."""
    out: dict[str, float] = {}
    for kdma, text in kdma_values:
        try:
            value = float(text)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(value):
            return None
        out[kdma] = value
    return out


def true_values(info: Any) -> dict[str, dict[str, float]]:
    """Choice text -> {KDMA: value} from ``true_kdma_values``; null choices and null/non-numeric values dropped."""
    raw = info.get("true_kdma_values") if isinstance(info, dict) else None
    out: dict[str, dict[str, float]] = {}
    for text, kdmas in (raw.items() if isinstance(raw, dict) else ()):
        if isinstance(kdmas, dict):
            values = {str(k): v for k, v in ((k, _finite(v)) for k, v in kdmas.items()) if v is not None}
            if values:
                out[str(text)] = values
    return out


def mean_prediction(samples: Any) -> float | None:
    """The mean of a prediction's samples (a list, or a bare number); None when there is no finite sample."""
    values = samples if isinstance(samples, list) else [samples]
    finite = [v for v in map(_finite, values) if v is not None]
    return sum(finite) / len(finite) if finite else None


def predicted_values(info: Any) -> dict[str, dict[str, float]]:
    """Choice text -> {KDMA: mean predicted value} from ``predicted_kdma_values``."""
    raw = info.get("predicted_kdma_values") if isinstance(info, dict) else None
    out: dict[str, dict[str, float]] = {}
    for text, kdmas in (raw.items() if isinstance(raw, dict) else ()):
        if isinstance(kdmas, dict):
            values = {str(k): m for k, m in ((k, mean_prediction(v)) for k, v in kdmas.items()) if m is not None}
            if values:
                out[str(text)] = values
    return out


def prediction_pairs(true_kdma: Any, predicted_kdma: Any) -> list[tuple[str, str, float, float]]:
    """(choice text, KDMA, true value, mean predicted value) for every choice and KDMA that has both.

    Takes the raw ``true_kdma_values`` / ``predicted_kdma_values`` mappings (as stored on a trace too).
    """
    truth = true_values({"true_kdma_values": true_kdma})
    guess = predicted_values({"predicted_kdma_values": predicted_kdma})
    return [(text, kdma, value, guess[text][kdma])
            for text, kdmas in truth.items() if text in guess
            for kdma, value in kdmas.items() if kdma in guess[text]]


def _choice_texts(item: Mapping[str, Any]) -> list[str | None]:
    inp = item.get("input") if isinstance(item.get("input"), dict) else {}
    choices = inp.get("choices") if isinstance(inp.get("choices"), list) else []
    return [str(c["unstructured"]) if isinstance(c, dict) and c.get("unstructured") is not None else None
            for c in choices]


def distance(values: Mapping[str, float], target: Mapping[str, float]) -> float | None:
    """Sum over the target's KDMAs of ``|value - target|``; None when the choice lacks one of them.

    align-system's own scalar distance (``AvgDistScalarAlignment`` in align_system/utils/alignment_utils.py adds,
    per target KDMA, ``sqrt((target - score)**2)``), so the oracle is the choice align-system would pick given
    the true values; not Euclidean across KDMAs (the two agree only for one-KDMA targets).
    """
    if any(k not in values for k in target):
        return None
    return sum(abs(values[k] - v) for k, v in target.items())


@dataclass(frozen=True)
class SceneAlignment:
    """What one scene contributes: its chosen choice's true values, distance and hit, or why it is left out."""

    chosen_true: dict[str, float]
    """The chosen choice's true KDMA values (empty when unknown)."""
    distance: float | None
    hit: bool | None
    left_out: str | None
    """One of ``schema.LEFT_OUT_REASONS`` when the scene is left out of the distance metrics."""


def scene_alignment(item: Mapping[str, Any], chosen: int | None, target: Mapping[str, float] | None,
                    target_reason: str | None) -> SceneAlignment:
    """One scene against a scalar target (``target``), or with the run's reason it has none (``target_reason``)."""
    texts = _choice_texts(item)
    truth = true_values(item.get("choice_info"))
    text = texts[chosen] if chosen is not None and 0 <= chosen < len(texts) else None
    chosen_true = truth.get(text, {}) if text is not None else {}
    if target_reason is not None or target is None:
        return SceneAlignment(chosen_true, None, None, target_reason or S.LEFT_OUT_UNALIGNED)
    if text is None:
        return SceneAlignment(chosen_true, None, None, S.LEFT_OUT_NO_CHOICE)
    if not truth:
        return SceneAlignment(chosen_true, None, None, S.LEFT_OUT_NO_TRUE_VALUES)
    chosen_distance = distance(chosen_true, target)
    if chosen_distance is None:
        return SceneAlignment(chosen_true, None, None, S.LEFT_OUT_CHOSEN_UNKNOWN)
    options = [d for t in dict.fromkeys(texts) if t is not None and t in truth
               for d in [distance(truth[t], target)] if d is not None]
    best = min(options, default=chosen_distance)
    return SceneAlignment(chosen_true, chosen_distance, chosen_distance <= best + TIE_TOLERANCE, None)


def target_reason(kdma_values: Sequence[tuple[str, str]], target_id: str) -> str | None:
    """Why a run's scenes cannot be measured against its target: unaligned, a KDE target, or None (they can)."""
    if target_id == S.UNALIGNED or not kdma_values:
        return S.LEFT_OUT_UNALIGNED
    return S.LEFT_OUT_KDE if scalar_target(kdma_values) is None else None


def alignment_metrics(scenes: Sequence[Mapping[str, Any]], chosen: Sequence[int | None],
                      kdma_values: Sequence[tuple[str, str]], target_id: str) -> dict[str, float]:
    """The run's alignment.* and kdma.<name>.* metrics over its scenes (``chosen[i]`` is scene i's choice).

    - ``alignment.chosen_distance``: mean distance over the covered scenes; ``alignment.oracle_hit_rate``:
      share of covered scenes that hit; ``alignment.scenes_covered`` and one
      ``alignment.scenes_left_out.<reason>`` count per reason (they sum to the run's scenes).
    - ``kdma.<name>.chosen_mean`` / ``chosen_scenes``: mean true value of the chosen choices, over scenes
      whose chosen choice has a value for that KDMA (no target needed).
    - ``kdma.<name>.prediction_mae`` / ``prediction_choices``: mean |mean prediction - true value| over the
      choices (all scenes) that have both.
    """
    reason = target_reason(kdma_values, target_id)
    target = None if reason else scalar_target(kdma_values)
    results = [scene_alignment(item, c, target, reason) for item, c in zip(scenes, chosen, strict=True)]

    metrics: dict[str, float] = {}
    covered = [r for r in results if r.left_out is None]
    if covered:
        metrics[S.METRIC_CHOSEN_DISTANCE] = sum(r.distance or 0.0 for r in covered) / len(covered)
        metrics[S.METRIC_ORACLE_HIT_RATE] = sum(1 for r in covered if r.hit) / len(covered)
    metrics[S.METRIC_SCENES_COVERED] = float(len(covered))
    for why in S.LEFT_OUT_REASONS:
        metrics[S.left_out_metric(why)] = float(sum(1 for r in results if r.left_out == why))

    kdmas = dict.fromkeys(k for k, _ in kdma_values)
    chosen_sums: dict[str, list[float]] = {}
    for r in results:
        for kdma, value in r.chosen_true.items():
            chosen_sums.setdefault(kdma, []).append(value)
    errors: dict[str, list[float]] = {}
    for item in scenes:
        info = item.get("choice_info") if isinstance(item.get("choice_info"), dict) else {}
        for _, kdma, true, guess in prediction_pairs(info.get("true_kdma_values"), info.get("predicted_kdma_values")):
            errors.setdefault(kdma, []).append(abs(guess - true))
    for kdma in [*kdmas, *chosen_sums, *errors]:
        values, errs = chosen_sums.get(kdma, []), errors.get(kdma, [])
        if values:
            metrics[S.kdma_metric(kdma, S.KDMA_CHOSEN_MEAN)] = sum(values) / len(values)
        metrics[S.kdma_metric(kdma, S.KDMA_CHOSEN_SCENES)] = float(len(values))
        if errs:
            metrics[S.kdma_metric(kdma, S.KDMA_PREDICTION_MAE)] = sum(errs) / len(errs)
        metrics[S.kdma_metric(kdma, S.KDMA_PREDICTION_CHOICES)] = float(len(errs))
    return metrics
