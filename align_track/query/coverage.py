"""Which runs an aggregate leaves out, and why: every report, chart, pane and export says so.

A run lacks a metric for a reason a reader can act on: another tool (or an older align-track) wrote it, so an
``ingest`` brings it up to date; it has no alignment target; its folder has no KDMA values, timing.json or
scores.json. Pure functions of run params, metrics and tags (``schema.RunLike``), so the CLI, the TUI and the
writers word it the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from align_track import schema as S

FOREIGN = "written by another tool, run ingest"
OLD_MAPPING = "written by an older align-track, run ingest"
UNALIGNED = "no alignment target (unaligned)"
KDE_TARGET = "KDE target (no scalar target value)"
NO_TRUE_VALUES = "no KDMA values in the folder"
CHOSEN_UNKNOWN = "the chosen choices have no true KDMA value"
NO_CHOICE = "no choice recorded"
NO_TIMING = "no timing.json in the folder (unfinished, or not recorded)"
NO_SCORES = "no scores.json in the folder"
NOT_RECORDED = "not recorded for these runs"

LEFT_OUT_REASONS = {
    S.LEFT_OUT_UNALIGNED: UNALIGNED,
    S.LEFT_OUT_KDE: KDE_TARGET,
    S.LEFT_OUT_NO_CHOICE: NO_CHOICE,
    S.LEFT_OUT_NO_TRUE_VALUES: NO_TRUE_VALUES,
    S.LEFT_OUT_CHOSEN_UNKNOWN: CHOSEN_UNKNOWN,
}
"""The ``alignment.scenes_left_out.<reason>`` metrics, as a reader is told them."""

NAMES_SHOWN = 3
"""Runs named on a line before '…': enough to find them, short enough for a footnote."""


def _metric_name(metric: str) -> str:
    return metric.removeprefix("metrics.")


def _alignment_metric(metric: str) -> bool:
    return metric.startswith((S.ALIGNMENT_PREFIX, S.KDMA_METRIC_PREFIX))


def _target(run: S.RunLike) -> str:
    return run.params.get(S.PARAM_TARGET) or run.tags.get(S.TAG_TARGET) or ""


def stale(run: S.RunLike) -> str:
    """FOREIGN or OLD_MAPPING when the run predates the alignment metrics (an ingest rewrites it), else ''."""
    if not S.written_by_align_track(run.tags):
        return FOREIGN if S.METRIC_SCENES_COVERED not in run.metrics else ""
    return "" if S.METRIC_SCENES_COVERED in run.metrics else OLD_MAPPING


def alignment_reason(run: S.RunLike) -> str:
    """Why the run has no chosen distance or oracle hit rate: stale, unaligned, or why its scenes were left out
    (the reason most of them share)."""
    if why := stale(run):
        return why
    if _target(run) in ("", S.UNALIGNED):
        return UNALIGNED
    counts = {reason: S.number(run.metrics.get(S.left_out_metric(reason))) or 0.0 for reason in LEFT_OUT_REASONS}
    top = max(counts, key=lambda r: counts[r])
    return LEFT_OUT_REASONS[top] if counts[top] > 0 else NOT_RECORDED


def why_missing(run: S.RunLike, metric: str) -> str:
    """Why ``run`` has no value of ``metric`` (``metrics.`` prefix optional)."""
    name = _metric_name(metric)
    if _alignment_metric(name):
        if why := stale(run):
            return why
        parsed = S.parse_kdma_metric(name)
        if parsed is None:
            return alignment_reason(run)
        kdmas = [k for k in run.metrics if (S.parse_kdma_metric(k) or ("", ""))[1] == S.KDMA_CHOSEN_SCENES]
        if not kdmas:
            return NO_TRUE_VALUES
        scenes = S.number(run.metrics.get(S.kdma_metric(parsed[0], S.KDMA_CHOSEN_SCENES)))
        return CHOSEN_UNKNOWN if scenes == 0 else NO_TRUE_VALUES
    if name.startswith("timing."):
        return NO_TIMING
    if name.startswith(S.SCORE_PREFIX):
        return NO_SCORES
    return NOT_RECORDED


def curve_reason(run: S.RunLike) -> str:
    """Why the run has no point on the alignment curve (a scalar target value and a chosen mean)."""
    if why := stale(run):
        return why
    targets = {k: v for k, v in run.params.items() if k.startswith(S.PARAM_KDMA_PREFIX)}
    if not targets or _target(run) == S.UNALIGNED:
        return UNALIGNED
    if all(S.number(v) is None for v in targets.values()):
        return KDE_TARGET
    reason = alignment_reason(run)
    return reason if reason != NOT_RECORDED else CHOSEN_UNKNOWN


def has_curve_point(run: S.RunLike) -> bool:
    from align_track.query.analysis import target_values

    return any(S.number(run.metrics.get(S.kdma_metric(k, S.KDMA_CHOSEN_MEAN))) is not None
               and (S.number(run.metrics.get(S.kdma_metric(k, S.KDMA_CHOSEN_SCENES))) or 0) > 0
               for k in target_values(run))


def group(runs: Iterable[S.RunLike], left_out: Callable[[S.RunLike], bool], reason: Callable[[S.RunLike], str]
          ) -> list[tuple[str, list[S.RunLike]]]:
    """The runs ``left_out`` keeps, grouped by ``reason``, most runs first."""
    groups: dict[str, list[S.RunLike]] = {}
    for run in runs:
        if left_out(run):
            groups.setdefault(reason(run), []).append(run)
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))


def lines(groups: Sequence[tuple[str, list[S.RunLike]]], what: str, names: bool = True) -> list[str]:
    """'3 runs without <what>: <reason> (name, name, name)' per group."""
    out = []
    for reason, runs in groups:
        text = f"{len(runs)} run{'s' if len(runs) != 1 else ''} without {what}: {reason}"
        if names:
            shown = sorted({r.run_name for r in runs})
            text += f" ({', '.join(shown[:NAMES_SHOWN])}{', …' if len(shown) > NAMES_SHOWN else ''})"
        out.append(text)
    return out


def missing_lines(runs: Iterable[S.RunLike], metric: str, names: bool = True) -> list[str]:
    """Why the runs without ``metric`` have none: what a pivot of it leaves out."""
    name = _metric_name(metric)
    return lines(group(runs, lambda r: S.number(r.metrics.get(name)) is None, lambda r: why_missing(r, name)),
                 name, names)


def curve_lines(runs: Iterable[S.RunLike], names: bool = True) -> list[str]:
    """Why the runs without a point on the alignment curve have none."""
    return lines(group(runs, lambda r: not has_curve_point(r), curve_reason), "a curve point", names)


def alignment_lines(runs: Iterable[S.RunLike], names: bool = True) -> list[str]:
    """Why the runs without alignment metrics (chosen distance, oracle hit rate) have none: what an export says."""
    return lines(group(runs, lambda r: S.number(r.metrics.get(S.METRIC_ORACLE_HIT_RATE)) is None, alignment_reason),
                 "alignment metrics", names)
