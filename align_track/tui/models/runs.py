"""The runs table as plain data: display cells, a lowercased haystack and sort keys per run, all built once.

Typing in the filter then only scans precomputed strings (a few ms for 10,000 runs) and a
sort only reorders row indices, so the UI thread never waits on pandas or the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.cells import cell_len

from align_track.errors import all_printable, printable
from align_track.query.textfit import tell_apart_width
from align_track.schema import (
    DONE,
    MAYBE_RUNNING,
    METRIC_AVG_SECONDS,
    NO_TIMING,
    PARAM_ADM,
    PARAM_LLM,
    PARAM_NUM_SCENES,
    PARAM_TARGET,
    PARAM_VARIANT,
    SCORE_METRIC,
    TAG_ADM,
    TAG_LLM,
    TAG_PATH,
    TAG_SCENES,
    TAG_TARGET,
    RunLike,
    RunSummary,
    number,
)
from align_track.tui.widgets.vtable import Column

FINISHED, RUNNING, STALLED = "finished", "running", "stalled"
STATE_MARKER = {FINISHED: " ", RUNNING: "▶", STALLED: "!", NO_TIMING: " ", MAYBE_RUNNING: "▷"}
STATE_WORD = {FINISHED: DONE, RUNNING: "running", STALLED: "stalled", NO_TIMING: NO_TIMING,
              MAYBE_RUNNING: MAYBE_RUNNING}
"""Complete runs are 'done', or what their missing timing.json tells (``query.live.timing_state``)."""

RUN_COLUMNS: tuple[Column, ...] = (
    # Who and against what first, then how it did: what tells runs apart fits in 80 columns. Values whose
    # end tells runs apart are cut in the middle; wider terminals widen the text columns. Shift+``sort_key``
    # sorts by the column (S stays the pane's reverse, so every letter is one the header can underline).
    Column("marker", "", 1, essential=True),
    Column("adm", "ADM", 34, middle=True, grow=True, min_width=14, essential=True, sort_key="A", apart=True),
    Column("target", "target", 34, middle=True, grow=True, min_width=16, essential=True, sort_key="T", apart=True),
    Column("score", "score", 6, numeric=True, essential=True, sort_key="O"),
    Column("avg_s", "avg s", 6, numeric=True, essential=True, sort_key="V"),
    Column("scenes", "scenes", 6, numeric=True, essential=True, sort_key="C"),
    Column("state", "state", 20, sort_key="E"),
    Column("llm", "LLM", 24, middle=True, min_width=10, sort_key="L"),
    Column("variant", "variant", 26, middle=True, min_width=10, sort_key="R"),
    # What users search and read to tell runs apart: whole on a wide screen, ADM and target giving up for it.
    Column("folder", "folder", 48, middle=True, min_width=24, whole=True, sort_key="F"),
    Column("started", "started", 16, sort_key="D"),
    Column("name", "name", 70, middle=True, sort_key="N"),
)
NUMERIC = {c.key for c in RUN_COLUMNS if c.numeric}
_AS_IS = {"folder", "name", "adm", "target", "variant", "marker", "state"}
"""Columns ``_display`` shows as they are (when printable)."""
_MEMO_SIZE = 32


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def short_llm(name: str) -> str:
    """``mistralai/Mistral-7B-Instruct-v0.3`` -> ``Mistral-7B-Instruct-v0.3``: the org rarely tells runs apart."""
    return name.rsplit("/", 1)[-1]


def when(ms: int | None) -> str:
    """Local time, to the minute (a run's start: when its experiment started)."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def run_values(run: RunLike, state: str = FINISHED) -> dict[str, Any]:
    """The table's values for one run: full strings for searching, numbers for sorting."""
    s = RunSummary.of(run)
    return {
        "marker": STATE_MARKER.get(state, "?"),
        "state": STATE_WORD.get(state, state),
        "folder": s.path,
        "adm": s.adm,
        "llm": s.llm,
        "target": s.target,
        "variant": s.variant,
        "scenes": s.scenes,
        "avg_s": s.avg_seconds,
        "score": s.score,
        "started": s.start_time,
        "name": s.run_name,
    }


def _display(key: str, value: Any) -> str:
    if key == "scenes":
        return _fmt(value, 0)
    if key == "avg_s":
        return _fmt(value, 1)
    if key == "score":
        return _fmt(value, 3)
    if key == "started":
        return when(value)
    if key == "llm":
        return printable(short_llm(value))
    return printable(str(value))


def _mapped(values: list[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """``[convert(v) for v in values]`` with ``convert`` called once per distinct value and one result object
    shared by equal values: a column of 100,000 runs holds a few ADMs, LLMs and targets."""
    distinct = dict.fromkeys(values)
    for value in distinct:
        distinct[value] = convert(value)
    return list(map(distinct.__getitem__, values))


def _metric(value: Any) -> float | None:
    """``schema.number`` with the usual case (a float, not NaN) inline."""
    if type(value) is float:
        return value if value == value else None
    return None if value is None else number(value)


def _raw_columns(runs: list[RunLike], states: dict[str, str]) -> dict[str, list[Any]]:
    """``run_values`` of every run, as one list per column (what ``RunSummary.of`` reads, read the same way)."""
    params = [run.params for run in runs]
    tags = [run.tags for run in runs]
    metrics = [run.metrics for run in runs]
    state = [states.get(run.run_id, FINISHED) for run in runs] if states else [FINISHED] * len(runs)
    return {
        "marker": [STATE_MARKER.get(x, "?") for x in state],
        "state": [STATE_WORD.get(x, x) for x in state],
        "folder": [t.get(TAG_PATH) or "" for t in tags],
        "adm": [p.get(PARAM_ADM) or t.get(TAG_ADM) or "" for p, t in zip(params, tags, strict=True)],
        "llm": [p.get(PARAM_LLM) or t.get(TAG_LLM) or "" for p, t in zip(params, tags, strict=True)],
        "target": [p.get(PARAM_TARGET) or t.get(TAG_TARGET) or "" for p, t in zip(params, tags, strict=True)],
        "variant": [p.get(PARAM_VARIANT) or "" for p in params],
        "scenes": _mapped([p.get(PARAM_NUM_SCENES) or t.get(TAG_SCENES)  # a live run: scenes so far
                             for p, t in zip(params, tags, strict=True)], number),
        "avg_s": [_metric(m.get(METRIC_AVG_SECONDS)) for m in metrics],
        "score": [_metric(m.get(SCORE_METRIC)) for m in metrics],
        "started": [run.start_time for run in runs],
        "name": [run.run_name for run in runs],
    }


def _widest(texts: list[str]) -> int:
    """The widest of ``texts`` in terminal cells (printable ASCII: one per character, measured in C)."""
    if not texts:
        return 0
    if "".join(texts).isascii():
        return max(map(len, texts))
    return max(map(cell_len, set(texts)))


class _Rows(Sequence[tuple[str, ...]]):
    """The table's rows, kept as one list per column: a row's tuple is made when it is painted, so
    100,000 runs cost no 100,000 tuples."""

    __slots__ = ("_columns", "_length")

    def __init__(self, columns: list[list[str]], length: int) -> None:
        self._columns, self._length = columns, length

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if not -self._length <= index < self._length:
            raise IndexError(index)
        return tuple(column[index] for column in self._columns)


@dataclass
class RunsModel:
    """Runs in store order plus what filtering and sorting need; ``view()`` gives the rows to show."""

    run_ids: list[str]
    cells: Sequence[tuple[str, ...]]
    haystacks: list[str]
    sort_keys: list[list[Any] | None]
    """Per column (None: made from the column's values on its first sort)."""
    columns: tuple[Column, ...] = RUN_COLUMNS
    text: str = ""
    allowed: set[int] | None = None
    """Rows the MLflow filter string selected (None: no such filter)."""
    sort_column: int | None = None
    sort_reverse: bool = False
    _order: list[int] = field(default_factory=list)
    _memo: dict[tuple[str, ...], list[int]] = field(default_factory=dict, repr=False)
    """Filter terms -> rows, for the current order and ``allowed`` (see ``view``)."""
    _memo_for: tuple[Any, Any] | None = field(default=None, repr=False)

    natural: list[int] | None = None
    """Each column's widest cell (header included), measured once here rather than by the table."""
    keep: list[int] | None = None
    """Each column's ``textfit.tell_apart_width`` (the table's ``keep``), measured here too."""
    _raw: dict[str, list[Any]] | None = field(default=None, repr=False)
    """Each column's values (what sort keys are made of, when a column is first sorted)."""

    @classmethod
    def from_runs(cls, runs: Iterable[RunLike], columns: Sequence[Column] = RUN_COLUMNS,
                  states: dict[str, str] | None = None) -> RunsModel:
        """``states``: run id -> RUNNING/STALLED for runs still being written, NO_TIMING/MAYBE_RUNNING for
        complete runs without timing.json (others are finished).

        Built column by column: at 100,000 runs a column holds a few distinct values (ADMs, LLMs, targets),
        so each distinct value is formatted, lowercased and measured once and its string shared by every row.
        """
        states = states or {}
        runs = list(runs)
        raw = _raw_columns(runs, states)
        run_ids = [run.run_id for run in runs]
        shown, natural, keep = [], [], []
        for col in columns:
            values = raw[col.key]
            if col.key == "started":  # to the minute: one strftime per minute, not per run
                cell = _mapped([None if v is None else v // 60_000 * 60_000 for v in values], when)
            elif col.key in _AS_IS and all(type(v) is str for v in values) and all_printable(values):
                cell = values  # folders and names: one string per run, shown as it is
            else:
                cell = _mapped(values, lambda v, key=col.key: _display(key, v))
            shown.append(cell)
            natural.append(max(cell_len(col.label) + (2 if not col.numeric else 1), _widest(cell)))
            keep.append(tell_apart_width(cell) if col.apart else 0)
        cells = _Rows(shown, len(runs))
        # Search what is shown, plus the full LLM name the column shortens.
        hay = ["\t".join(row).lower() for row in zip(*shown, raw["llm"], strict=True)]
        model = cls(run_ids, cells, hay, [None] * len(columns), tuple(columns))
        model._raw = raw
        model.natural = natural
        model.keep = keep
        model._order = list(range(len(run_ids)))
        return model

    def _sort_keys(self, column: int) -> list[Any]:
        """A column's sort keys, made on its first sort: numbers and times as they are, text lowercased."""
        keys = self.sort_keys[column]
        if keys is None:
            col = self.columns[column]
            values = self._raw[col.key] if self._raw is not None else []
            keys = values if col.numeric or col.key == "started" else _mapped(
                values, lambda v: str(v).strip().lower())
            self.sort_keys[column] = keys
        return keys

    def __len__(self) -> int:
        return len(self.run_ids)

    def sort(self, column: int | None, reverse: bool = False) -> None:
        """Order by a column (missing values last either way); None restores the store's order (newest first)."""
        self.sort_column, self.sort_reverse = column, reverse
        rows = range(len(self.run_ids))
        if column is None:
            self._order = list(reversed(rows)) if reverse else list(rows)
            return
        keys = self._sort_keys(column)
        present = [i for i in rows if keys[i] is not None and keys[i] != ""]
        missing = [i for i in rows if keys[i] is None or keys[i] == ""]
        present.sort(key=keys.__getitem__, reverse=reverse)
        self._order = present + missing

    def view(self) -> list[int]:
        """Rows to show, in sort order: every whitespace-separated term of the text filter must appear.

        Typing narrows: the rows a previous filter kept are scanned instead of every run whenever each of
        its terms lies inside one of the new terms (so they are a superset); deleting finds the earlier
        answer remembered. At 100,000 runs that keeps a keystroke from rescanning every haystack.
        """
        terms = tuple(self.text.lower().split())
        order = self._order
        memo_for = self._memo_for  # answers hold for one order and one `allowed` set (both replaced, never edited)
        if memo_for is None or memo_for[0] is not order or memo_for[1] is not self.allowed:
            self._memo, self._memo_for = {}, (order, self.allowed)
        if not terms:
            if self.allowed is None:
                return list(order)
            allowed = self.allowed
            return [i for i in order if i in allowed]
        if (hit := self._memo.get(terms)) is not None:
            return list(hit)
        base = self._narrowest(terms)
        if base is None:
            base = order
            if self.allowed is not None:
                allowed = self.allowed
                base = [i for i in order if i in allowed]
        hay = self.haystacks
        if len(terms) == 1:
            term = terms[0]
            rows = [i for i in base if term in hay[i]]
        else:
            rows = [i for i in base if all(t in hay[i] for t in terms)]
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.pop(next(iter(self._memo)))
        self._memo[terms] = rows
        return list(rows)

    def _narrowest(self, terms: tuple[str, ...]) -> list[int] | None:
        """The smallest remembered answer that contains every row ``terms`` can match."""
        best = None
        for old, rows in self._memo.items():
            if all(any(o in t for t in terms) for o in old) and (best is None or len(rows) < len(best)):
                best = rows
        return best

    def rows_for(self, run_ids: Iterable[str]) -> set[int]:
        index = {rid: i for i, rid in enumerate(self.run_ids)}
        return {index[r] for r in run_ids if r in index}
