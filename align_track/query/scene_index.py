"""Scenes across runs: every (scenario, scene) of an experiment, what each run decided on it, and where runs split.

A scene is identified across runs by (scenario id, scene id), read from each trace as the data model writes them
(the root span's ``scenario_id`` attribute or input, its ``scene_id`` input, else the trace's ``scene_id`` tag or
name), so scenes with the same id in different scenarios are different scenes. A run that meets one scene twice
has the second as ``<scene>#2`` (as the Compare pane numbers them). Decisions are compared by the chosen action's
text (the ``chosen_action`` attribute, else the output action's text), not by the choice's index, since choice
order may differ between runs; a decision with no text is ``choice <index>``.

The oracle hit and chosen distance of a run's decision are :func:`align_track.alignment.scene_alignment` against
that run's alignment target: the very values ingest averages into the run's ``alignment.oracle_hit_rate`` and
``alignment.chosen_distance``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from align_track import alignment
from align_track.schema import (
    DEFAULT_VARIANT,
    IN_CHOICES,
    PARAM_KDMA_PREFIX,
    PARAM_TARGET,
    TAG_TARGET,
    RunSummary,
)

if TYPE_CHECKING:
    from align_track.store.runs_reader import RunRow
    from align_track.store.scenes_reader import TraceFields

SceneKey = tuple[str, str]
"""(scenario id, scene id)."""

SORTS = ("scene", "runs", "choices", "agreement", "oracle", "distance")
"""What the scene list sorts by: scene order, runs that met it, distinct choices, agreement (share of the most
common choice), oracle hit rate, mean chosen distance."""


# --------------------------------------------------------------------------- one trace


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def scene_identity(scenario_attr: Any, scenario_input: Any, scene_input: Any, scene_tag: Any,
                   trace_name: Any) -> SceneKey:
    """(scenario, scene id) as every view reads them: the attribute, else the input, for the scenario; the
    input, else the ``scene_id`` tag, else the trace's name, for the scene."""
    return (str(scenario_attr or scenario_input or ""), str(scene_input or scene_tag or trace_name or ""))


def decision_text(chosen_action: Any, choice_index: int | None) -> str:
    """What is compared across runs: the chosen action's text, else ``choice <index>`` ('' when neither)."""
    if chosen_action:
        return str(chosen_action)
    return "" if choice_index is None else f"choice {choice_index}"


@dataclass(slots=True)
class Decision:
    """One run's decision on one scene."""

    trace_id: str
    run_id: str
    key: SceneKey
    index: int | None
    """The scene's position in the run (``scene_index``)."""
    choice_index: int | None
    action: str
    """The chosen action's text ('' when none)."""
    decision: str
    """What is compared across runs (:func:`decision_text`)."""
    chosen_true: dict[str, float]
    """The chosen choice's true KDMA values (empty when unknown)."""
    distance: float | None
    """Distance of the chosen choice's true KDMA values to the run's target (None: left out, see ``left_out``)."""
    hit: bool | None
    left_out: str | None
    timestamp_ms: int | None = None


@dataclass(frozen=True, eq=False)
class RunTarget:
    """What a run's decisions are measured against, from its params (as ingest took them from its config)."""

    target: dict[str, float] | None
    reason: str | None
    key: tuple = ()
    """Equal for equal targets (a cache key)."""

    @classmethod
    def of(cls, run: RunRow) -> RunTarget:
        kdmas = [(k[len(PARAM_KDMA_PREFIX):], v) for k, v in run.params.items() if k.startswith(PARAM_KDMA_PREFIX)]
        target_id = run.params.get(PARAM_TARGET) or run.tags.get(TAG_TARGET) or ""
        reason = alignment.target_reason(kdmas, target_id)
        target = None if reason else alignment.scalar_target(kdmas)
        return cls(target, reason, (reason, tuple(sorted(target.items())) if target else None))


class DecisionMaker:
    """TraceFields -> Decision, with the alignment of each distinct (choices, KDMA values, choice, target) computed
    once: 10,000 runs repeat a few hundred scenes' texts."""

    def __init__(self, targets: dict[str, RunTarget]) -> None:
        self.targets = targets
        self._aligned: dict[tuple[int, int, int | None, tuple], tuple[Any, Any, alignment.SceneAlignment]] = {}

    def decision(self, f: TraceFields) -> Decision | None:
        """None for a trace of a run the index does not cover."""
        from align_track.store.scenes_reader import MISSING

        run_target = self.targets.get(f.run_id or "")
        if run_target is None:
            return None
        scenario_attr, scene_index, choice_attr, chosen_action, truth = f.attributes
        scenario_in, scene_in, choices = f.inputs
        choice = _int(f.output_choice if choice_attr is MISSING else choice_attr)
        action = str(chosen_action or f.output_action or "")
        truth = None if truth is MISSING else truth
        cache_key = (id(choices), id(truth), choice, run_target.key)
        found = self._aligned.get(cache_key)
        if found is None:
            listed = None if choices is None else [None if t is None else {"unstructured": t} for t in choices]
            item = {"input": {IN_CHOICES: listed}, "choice_info": {"true_kdma_values": truth}}
            found = (choices, truth, alignment.scene_alignment(item, choice, run_target.target, run_target.reason))
            self._aligned[cache_key] = found  # the texts kept alive with it: their ids stay theirs
        aligned = found[2]
        return Decision(f.trace_id, f.run_id or "", scene_identity(scenario_attr, scenario_in, scene_in, f.scene_tag,
                                                                  f.name),
                        _int(scene_index), choice, action, decision_text(action, choice), aligned.chosen_true,
                        aligned.distance, aligned.hit, aligned.left_out, f.timestamp_ms)


# --------------------------------------------------------------------------- the scenes


@dataclass(frozen=True)
class SceneRow:
    """One scene over the runs considered: who met it, what they chose, how much they agree, how well aligned."""

    key: SceneKey
    runs: int
    choices: tuple[tuple[str, int], ...]
    """(decision, runs that made it), most common first (ties: by text)."""
    agreement: float | None
    """Share of the runs that made the most common decision."""
    hit_rate: float | None
    """Share of oracle hits among the runs that had a scalar target (and a measurable decision)."""
    distance: float | None
    """Mean chosen distance over those runs."""
    covered: int
    """The runs behind hit_rate and distance."""
    position: int | None
    """The scene's place in its scenario (the smallest scene_index of its runs): the natural order."""

    @property
    def split(self) -> bool:
        return len(self.choices) > 1

    def choices_text(self, sep: str = " · ") -> str:
        """``7 Treat Patient B · 3 Treat Patient A``."""
        return sep.join(f"{n} {text or '(none)'}" for text, n in self.choices)

    def sort_key(self, by: str) -> tuple:
        natural = (self.key[0], self.position if self.position is not None else math.inf, self.key[1])
        value: Any = {"scene": None, "runs": self.runs, "choices": len(self.choices), "agreement": self.agreement,
                      "oracle": self.hit_rate, "distance": self.distance}[by]
        return (value is None, value if value is not None else 0, natural)


@dataclass
class SceneIndex:
    """Every decision of the runs read so far, by scene; rows and decision lists for any subset of the runs."""

    runs: dict[str, RunRow] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    by_key: dict[SceneKey, list[int]] = field(default_factory=dict)
    texts: dict[SceneKey, str] = field(default_factory=dict)
    """Each scene's state text (one run's), for the text filter; filled by :func:`attach_state_texts`."""
    _trace_ids: set[str] = field(default_factory=set)
    _by_run_key: dict[tuple[str, SceneKey], list[int]] = field(default_factory=dict)
    _maker: DecisionMaker | None = None

    @classmethod
    def for_runs(cls, runs: Iterable[RunRow]) -> SceneIndex:
        index = cls()
        index.set_runs(runs)
        return index

    def set_runs(self, runs: Iterable[RunRow]) -> None:
        """The runs whose traces count (a reload or live refresh: new runs, replaced ones, live ones)."""
        self.runs = {r.run_id: r for r in runs}
        targets = {rid: RunTarget.of(r) for rid, r in self.runs.items()}
        if self._maker is None:
            self._maker = DecisionMaker(targets)
        else:
            self._maker.targets.update(targets)

    def __len__(self) -> int:
        return len(self.decisions)

    def known(self, trace_id: str) -> bool:
        return trace_id in self._trace_ids

    def add(self, batch: Iterable[TraceFields]) -> int:
        """Add the decisions of ``batch`` (traces already indexed and traces of other runs are skipped);
        returns how many were added."""
        maker = self._maker or DecisionMaker({})
        added = 0
        for f in batch:
            if f.trace_id in self._trace_ids:
                continue
            d = maker.decision(f)
            if d is None:
                continue
            self._trace_ids.add(f.trace_id)
            self._place(d)
            added += 1
        return added

    def _place(self, d: Decision) -> None:
        """File ``d`` under its scene; a run's repeats of one scene become ``#2``, ``#3`` in scene order."""
        base = d.key
        group = self._by_run_key.setdefault((d.run_id, base), [])
        position = len(self.decisions)
        self.decisions.append(d)
        group.append(position)
        if len(group) == 1:
            self.by_key.setdefault(base, []).append(position)
            return
        for i in group[:-1]:  # renumber the run's repeats of this scene in scene order
            self.by_key[self.decisions[i].key].remove(i)
        group.sort(key=lambda i: (self.decisions[i].index is None, self.decisions[i].index or 0,
                                  self.decisions[i].trace_id))
        for n, i in enumerate(group, start=1):
            self.decisions[i].key = base if n == 1 else (base[0], f"{base[1]}#{n}")
            self.by_key.setdefault(self.decisions[i].key, []).append(i)

    # ------------------------------------------------------------------ reading it

    def rows(self, run_ids: set[str] | None = None) -> list[SceneRow]:
        """A row per scene met by at least one of ``run_ids`` (None: every run of the index; runs replaced or
        deleted since they were indexed never count), in scene order."""
        out = []
        decisions = self.decisions
        allowed = self.runs if run_ids is None else run_ids
        for key, positions in self.by_key.items():
            chosen = [decisions[i] for i in positions if decisions[i].run_id in allowed]
            if chosen:
                out.append(scene_row(key, chosen))
        out.sort(key=lambda r: r.sort_key("scene"))
        return out

    def decisions_of(self, key: SceneKey, run_ids: set[str] | None = None) -> list[Decision]:
        """Every run's decision on ``key``, grouped by ADM, then LLM, then target (then variant and run name)."""
        allowed = self.runs if run_ids is None else run_ids
        chosen = [self.decisions[i] for i in self.by_key.get(key, ()) if self.decisions[i].run_id in allowed]
        return sorted(chosen, key=lambda d: group_key(self.runs.get(d.run_id)))

    def newest_ms(self, run_id: str) -> int | None:
        """When the run's newest indexed trace was written (a live run's refresh reads from there)."""
        times = [self.decisions[i].timestamp_ms for (rid, _), group in self._by_run_key.items() if rid == run_id
                 for i in group if self.decisions[i].timestamp_ms is not None]
        return max(times, default=None)

    def indexed_runs(self) -> set[str]:
        return {rid for rid, _ in self._by_run_key}


def scene_row(key: SceneKey, decisions: Sequence[Decision]) -> SceneRow:
    """Aggregate one scene's decisions (one per run)."""
    counts = Counter(d.decision for d in decisions)
    choices = tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    runs = len(decisions)
    covered = [d for d in decisions if d.hit is not None]
    distances = [d.distance for d in covered if d.distance is not None]
    positions = [d.index for d in decisions if d.index is not None]
    return SceneRow(
        key=key, runs=runs, choices=choices, agreement=choices[0][1] / runs if runs else None,
        hit_rate=sum(1 for d in covered if d.hit) / len(covered) if covered else None,
        distance=sum(distances) / len(distances) if distances else None, covered=len(covered),
        position=min(positions) if positions else None)


def group_key(run: RunRow | None) -> tuple:
    """ADM, then LLM, then target, then variant and run name (what the decisions list is grouped by)."""
    if run is None:
        return ("", "", "", "", "")
    s = RunSummary.of(run)
    return (s.adm.lower(), s.llm.lower(), s.target.lower(), "" if s.variant == DEFAULT_VARIANT else s.variant,
            s.run_name)


def sort_rows(rows: list[SceneRow], by: str = "scene", reverse: bool = False) -> list[SceneRow]:
    """Rows ordered by one of SORTS (missing values last either way; ties in scene order)."""
    if by not in SORTS:
        raise ValueError(f"unknown sort {by!r}; choose one of {', '.join(SORTS)}")
    present = [r for r in rows if by == "scene" or r.sort_key(by)[0] is False]
    missing = [r for r in rows if r not in present] if len(present) != len(rows) else []
    present.sort(key=lambda r: r.sort_key(by)[1:], reverse=reverse)
    return present + sorted(missing, key=lambda r: r.sort_key("scene"))


def haystack(row: SceneRow, state: str = "") -> str:
    """What the text filter searches: scenario, scene id, the state's text and the choices taken (lowercased)."""
    return "\t".join((row.key[0], row.key[1], state, *(text for text, _ in row.choices))).lower()


def matches(hay: str, text: str) -> bool:
    """Every whitespace-separated term of ``text`` appears in ``hay`` (as the runs filter)."""
    return all(term in hay for term in text.lower().split())


# --------------------------------------------------------------------------- reading a store


def read_fields(uri: str, experiment_id: str, run_ids: Iterable[str] | None = None, since_ms: int | None = None,
                names: Iterable[str] | None = None) -> Iterator[list[TraceFields]]:
    """The traces' decision fields straight from SQL, else (a tracking server) from its trace infos' scene
    summaries, else (another MLflow, another tool's server store) through MLflow's spans."""
    from align_track.store import scenes_over_http, scenes_reader
    from align_track.store.spans_reader import Unreadable

    run_ids = None if run_ids is None else list(run_ids)
    for read in (scenes_reader.read_trace_fields, scenes_over_http.read_trace_fields_http):
        try:
            yield from read(uri, experiment_id, run_ids, since_ms, names)
            return
        except Unreadable:
            pass
    yield from scenes_reader.read_trace_fields_mlflow(uri, experiment_id, run_ids, since_ms, names)


WHOLE_OVER = 50
"""Runs above which build_index reads the whole experiment's traces rather than a run's at a time."""


def build_index(uri: str, experiment_id: str, runs: Sequence[RunRow], names: Iterable[str] | None = None,
                on_batch: Callable[[SceneIndex, int], Any] | None = None,
                cancelled: Callable[[], bool] = lambda: False) -> SceneIndex | None:
    """The index of ``runs``' traces (only those named one of ``names``, if given: a scene id); ``on_batch(index,
    traces read so far)`` after each batch, so a view can show the first scenes while the rest are read. None when
    ``cancelled()`` turned true part way."""
    index = SceneIndex.for_runs(runs)
    # a big selection: the whole experiment's traces (of those names), in one scan (a server: a few searches, not
    # one a run); the index keeps the selection's
    whole = len(runs) > WHOLE_OVER
    read = 0
    for batch in read_fields(uri, experiment_id, None if whole else [r.run_id for r in runs], names=names):
        if cancelled():
            return None
        index.add(batch)
        read += len(batch)
        if on_batch is not None:
            on_batch(index, read)
    return index


def refresh_index(index: SceneIndex, uri: str, experiment_id: str, runs: Sequence[RunRow],
                  live: Iterable[str] = ()) -> int:
    """Bring ``index`` up to ``runs``: read the traces of runs it has not indexed yet, and the new traces of
    ``live`` runs (still being written: from their newest indexed trace on). Returns the decisions added."""
    index.set_runs(runs)
    have = index.indexed_runs()
    new = [r.run_id for r in runs if r.run_id not in have]
    added = 0
    if new:
        for batch in read_fields(uri, experiment_id, new):
            added += index.add(batch)
    for run_id in live:
        if run_id in have:
            for batch in read_fields(uri, experiment_id, [run_id], since_ms=index.newest_ms(run_id)):
                added += index.add(batch)
    return added


def attach_state_texts(index: SceneIndex, uri: str, experiment_id: str, keys: Iterable[SceneKey] | None = None
                       ) -> None:
    """Each scene's state text (``state`` and ``unstructured`` inputs of one run's trace), for the text filter."""
    from align_track.schema import IN_STATE, IN_UNSTRUCTURED

    wanted = [k for k in (index.by_key if keys is None else keys) if k not in index.texts and index.by_key.get(k)]
    if not wanted:
        return
    first = {index.decisions[index.by_key[k][0]].trace_id: k for k in wanted}
    for trace_id, inputs in read_inputs(uri, experiment_id, list(first)).items():
        parts = [inputs.get(IN_STATE), inputs.get(IN_UNSTRUCTURED)] if isinstance(inputs, dict) else []
        texts = list(dict.fromkeys(str(p) for p in parts if p))
        index.texts[first[trace_id]] = "\n".join(texts)
    for key in wanted:
        index.texts.setdefault(key, "")


def read_inputs(uri: str, experiment_id: str, trace_ids: list[str]) -> dict[str, Any]:
    """The root span inputs of these traces (SQL, else a tracking server's batches of traces, else MLflow)."""
    from align_track.store import scenes_reader
    from align_track.store.spans_reader import Unreadable

    try:
        return {t: row["inputs"] for t, row in scenes_reader.read_root_spans(uri, experiment_id, trace_ids).items()}
    except Unreadable:
        from align_track.store.traces_over_http import root_spans

        return {t: row["inputs"] for t, row in root_spans(uri, experiment_id, trace_ids).items()}


# --------------------------------------------------------------------------- showing it


def percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f}%"


def number_text(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def first_line(text: Any, limit: int = 200) -> str:
    """The first non-empty line of a justification, at most ``limit`` characters."""
    if not text:
        return ""
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def kdma_pairs(true_values: dict[str, float], predicted: Any, action: str) -> str:
    """The chosen choice's KDMAs as ``merit 0.80→0.61`` (true → mean predicted; ``–`` where not recorded)."""
    chosen_pred = predicted.get(action) if isinstance(predicted, dict) else None
    means = {}
    if isinstance(chosen_pred, dict):
        for kdma, samples in chosen_pred.items():
            m = alignment.mean_prediction(samples)
            if m is not None:
                means[str(kdma)] = m
    names = list(dict.fromkeys([*true_values, *means]))
    return " · ".join(f"{n} {number_text(true_values.get(n))or '–'}→{number_text(means.get(n)) or '–'}"
                      for n in names)


# --------------------------------------------------------------------------- tables (the CLI's rows)

SCENE_HEADER = ("scenario_id", "scene_id", "runs", "agreement", "oracle_hit_rate", "chosen_distance",
                "covered_runs", "distinct_choices", "top_choice", "choices")
DECISION_HEADER = ("adm", "llm", "alignment_target_id", "run_variant", "choice", "choice_index", "oracle_hit",
                   "chosen_distance", "true_kdma", "predicted_kdma", "justification", "run_id", "run_name",
                   "trace_id", "experiment_path")


def scene_records(rows: Sequence[SceneRow], structured: bool = False) -> list[list[Any]]:
    """One row per scene under SCENE_HEADER; ``choices`` as ``text (n); ...`` or, ``structured``, a list of
    ``{"choice", "runs"}`` (JSON)."""
    out = []
    for r in rows:
        choices: Any = ([{"choice": text, "runs": n} for text, n in r.choices] if structured
                        else "; ".join(f"{text} ({n})" for text, n in r.choices))
        out.append([r.key[0], r.key[1], r.runs, r.agreement, r.hit_rate, r.distance, r.covered, len(r.choices),
                    r.choices[0][0] if r.choices else None, choices])
    return out


def decision_records(index: SceneIndex, decisions: Sequence[Decision], details: dict[str, Any],
                     structured: bool = False) -> list[list[Any]]:
    """One row per run's decision under DECISION_HEADER (``details``: scenes_reader.read_details' answer);
    KDMA values as ``merit 0.80`` text, or, ``structured``, as mappings."""
    from align_track.schema import TAG_PATH

    out = []
    for d in decisions:
        run = index.runs.get(d.run_id)
        s = RunSummary.of(run) if run is not None else None
        detail = details.get(d.trace_id)
        predicted = getattr(detail, "predicted", None)
        chosen_pred = predicted.get(d.action) if isinstance(predicted, dict) else None
        means = {str(k): m for k, v in (chosen_pred or {}).items()
                 if (m := alignment.mean_prediction(v)) is not None} if isinstance(chosen_pred, dict) else {}
        action = getattr(detail, "action", None)
        why = action.get("justification") if isinstance(action, dict) else None
        out.append([
            s.adm if s else None, s.llm if s else None, s.target if s else None, s.variant if s else None,
            d.decision, d.choice_index, d.hit, d.distance,
            d.chosen_true if structured else kdma_values_text(d.chosen_true),
            means if structured else kdma_values_text(means),
            None if why is None else str(why), d.run_id, s.run_name if s else None, d.trace_id,
            run.tags.get(TAG_PATH) if run is not None else None,
        ])
    return out


def kdma_values_text(values: dict[str, float]) -> str:
    """``{'merit': 0.8}`` -> ``merit 0.80``."""
    return " · ".join(f"{k} {v:.2f}" for k, v in values.items())
