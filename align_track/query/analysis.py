"""The data behind the alignment plots: the alignment curve and the oracle hit rate per ADM x target.

Read from run params and metrics only (``kdma.<name>`` target values and the ``alignment.*`` /
``kdma.<name>.*`` metrics written at ingest), so every surface (report, image, TUI) draws the same
numbers the MLflow UI charts. No plotting library here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from align_track import schema as S


@dataclass(frozen=True)
class CurvePoint:
    """One ADM's chosen mean of one KDMA at one target value, pooled over its runs (weighted by scenes)."""

    adm: str
    kdma: str
    target: float
    chosen_mean: float
    scenes: int
    runs: int


def _adm(run: S.RunLike) -> str:
    return run.params.get(S.PARAM_ADM) or run.tags.get(S.TAG_ADM) or S.UNKNOWN_ADM


def target_values(run: S.RunLike) -> dict[str, float]:
    """KDMA -> the run's scalar target value (KDE and unaligned runs have none)."""
    out = {}
    for key, value in run.params.items():
        number = S.number(value) if key.startswith(S.PARAM_KDMA_PREFIX) else None
        if number is not None:
            out[key[len(S.PARAM_KDMA_PREFIX):]] = number
    return out


def curve_kdmas(runs: Iterable[S.RunLike]) -> list[str]:
    """The KDMAs some run has a curve point for, sorted."""
    found = {k for run in runs for k in target_values(run)
             if S.number(run.metrics.get(S.kdma_metric(k, S.KDMA_CHOSEN_MEAN))) is not None}
    return sorted(found)


def alignment_curve(runs: Iterable[S.RunLike], kdma: str | None = None) -> dict[str, list[CurvePoint]]:
    """ADM -> points (x: target value, y: mean true value of the chosen choices), sorted by target value.

    ``kdma`` restricts to one KDMA; without it every KDMA is pooled (all share the 0..1 scale, and the
    diagonal is perfect alignment for each). Runs at the same ADM, KDMA and target value are pooled,
    each weighted by the scenes behind its chosen mean.
    """
    sums: dict[tuple[str, str, float], list[float]] = {}
    for run in runs:
        for name, target in target_values(run).items():
            if kdma is not None and name != kdma:
                continue
            mean = S.number(run.metrics.get(S.kdma_metric(name, S.KDMA_CHOSEN_MEAN)))
            scenes = S.number(run.metrics.get(S.kdma_metric(name, S.KDMA_CHOSEN_SCENES))) or 0.0
            if mean is None or scenes <= 0:
                continue
            acc = sums.setdefault((_adm(run), name, target), [0.0, 0.0, 0.0])
            acc[0] += mean * scenes
            acc[1] += scenes
            acc[2] += 1
    curves: dict[str, list[CurvePoint]] = {}
    for (adm, name, target), (weighted, scenes, count) in sorted(sums.items()):
        curves.setdefault(adm, []).append(CurvePoint(adm, name, target, weighted / scenes, int(scenes), int(count)))
    for points in curves.values():
        points.sort(key=lambda p: (p.target, p.kdma))
    return curves


def dodged(curve: dict[str, list[CurvePoint]], step: float = 0.02) -> dict[tuple[str, str, float], float]:
    """x of each point (by ADM, KDMA, target): points that share a place are set side by side ``step`` apart,
    centred on their true x, so none hides another (an image draws them there); a point alone keeps its x."""
    places: dict[tuple[float, float], list[tuple[str, str, float]]] = {}
    for adm, points in curve.items():
        for p in points:
            places.setdefault((round(p.target, 3), round(p.chosen_mean, 3)), []).append((adm, p.kdma, p.target))
    out = {}
    for members in places.values():
        for i, key in enumerate(members):
            out[key] = key[2] + (i - (len(members) - 1) / 2) * step
    return out


def coincident(curve: dict[str, list[CurvePoint]]) -> list[tuple[float, float, int]]:
    """(x, y, how many) of the places several points share."""
    places: dict[tuple[float, float], int] = {}
    for points in curve.values():
        for p in points:
            key = (round(p.target, 3), round(p.chosen_mean, 3))
            places[key] = places.get(key, 0) + 1
    return [(x, y, n) for (x, y), n in sorted(places.items()) if n > 1]


@dataclass(frozen=True)
class HitRates:
    """Oracle hit rate per target (rows) x ADM (columns), pooled over runs weighted by covered scenes."""

    targets: list[str]
    adms: list[str]
    cells: dict[tuple[str, str], tuple[float, int]]
    """(target, adm) -> (hit rate, scenes covered)."""


def hit_rates(runs: Iterable[S.RunLike]) -> HitRates:
    sums: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        rate = S.number(run.metrics.get(S.METRIC_ORACLE_HIT_RATE))
        scenes = S.number(run.metrics.get(S.METRIC_SCENES_COVERED)) or 0.0
        if rate is None or scenes <= 0:
            continue
        target = run.params.get(S.PARAM_TARGET) or run.tags.get(S.TAG_TARGET) or ""
        acc = sums.setdefault((target, _adm(run)), [0.0, 0.0])
        acc[0] += rate * scenes
        acc[1] += scenes
    cells = {key: (hits / scenes, int(scenes)) for key, (hits, scenes) in sums.items()}
    return HitRates(sorted({t for t, _ in cells}), sorted({a for _, a in cells}), cells)


@dataclass(frozen=True)
class HitTotals:
    """What a reader of the hit-rate table wants first: each ADM over all its targets, each target over all
    ADMs, and everything pooled; each as (hit rate, scenes covered), weighted by scenes as the cells are."""

    by_adm: dict[str, tuple[float, int]]
    by_target: dict[str, tuple[float, int]]
    overall: tuple[float, int] | None


def hit_rate_totals(rates: HitRates) -> HitTotals:
    """Pool the cells of ``rates``: a total's hits are the sum of its cells' hits (rate x scenes), over the sum
    of their scenes, so a target met in 16 scenes weighs twice one met in 8 (a mean of rates would not)."""
    def pooled(cells: Iterable[tuple[float, int]]) -> tuple[float, int] | None:
        hits = scenes = 0.0
        for rate, count in cells:
            hits += rate * count
            scenes += count
        return (hits / scenes, int(scenes)) if scenes else None

    by_adm = {a: pooled(c for (_, adm), c in rates.cells.items() if adm == a) for a in rates.adms}
    by_target = {t: pooled(c for (target, _), c in rates.cells.items() if target == t) for t in rates.targets}
    return HitTotals({k: v for k, v in by_adm.items() if v is not None},
                     {k: v for k, v in by_target.items() if v is not None}, pooled(rates.cells.values()))
