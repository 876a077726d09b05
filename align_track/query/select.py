"""Which runs a command works on: an experiment's complete runs, filtered, as a DataFrame.

The runs are read in one go (``runs_reader``) and filtered here rather than by the store:
``--filter`` is parsed and matched by MLflow's own ``SearchUtils``, so it means exactly what
it means in the MLflow UI's search box, and ``--adm``/``--llm``/``--min-score`` become clauses
of that same language (quoted safely, whatever the value holds), matched here with the same
semantics. mlflow (seconds to import) is loaded only for a ``--filter``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from align_track.schema import SCORE_METRIC, counts_as_complete
from align_track.store.uri import DEFAULT_EXPERIMENT, require_existing_store, resolve_tracking_uri

if TYPE_CHECKING:
    import pandas

    from align_track.store.runs_reader import RunRow

DEFAULT_SCORE_METRIC = SCORE_METRIC
RUN_COLUMNS = ("run_id", "run_name", "status", "start_time", "end_time", "experiment_id", "artifact_uri")
_PREFIXES = ("params.", "metrics.", "tags.")
_PREFIX_ALIASES = {"param.": "params.", "parameter.": "params.", "parameters.": "params.",
                   "metric.": "metrics.", "tag.": "tags.", "attribute.": "", "attributes.": "", "attr.": "",
                   "run.": ""}
_KIND_PREFIX = {"params": "params", "param": "params", "metrics": "metrics", "metric": "metrics",
                "tags": "tags", "tag": "tags", "attributes": "attributes", "attribute": "attributes"}


class QueryError(ValueError):
    """A query the user can fix (invalid filter, unknown column, unquotable value); the CLI exits 2."""


# --------------------------------------------------------------------------- building filters


def quote_value(value: str) -> str:
    """``value`` as an MLflow filter string literal.

    MLflow strips the surrounding quotes and keeps everything between them verbatim (no
    escape sequences: ``'O''Brien'`` and ``'O\\'Brien'`` both keep the extra character), so
    a value holding ``'`` is written in double quotes. A value holding both kinds of quote
    cannot be written at all.
    """
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise QueryError(f"{value!r} holds both ' and \", which an MLflow filter string cannot express")


def quote_key(kind: str, key: str) -> str:
    """``params.`kdma.Moral judgement``` : the key in backticks, so dots and spaces stay part of it."""
    prefix = _KIND_PREFIX.get(kind)
    if prefix is None:
        raise QueryError(f"unknown key kind {kind!r}; use params, metrics, tags or attributes")
    if "`" in key:
        raise QueryError(f"key {key!r} holds a backtick, which an MLflow filter string cannot express")
    return f"{prefix}.`{key}`"


_CLAUSE_KIND = {"parameter": "params", "metric": "metrics", "tag": "tags", "attribute": "attributes"}


def clause_text(item: dict[str, Any], strict: bool = True) -> str:
    """A parsed clause (MLflow's dict shape) written back as filter text.

    With ``strict=False`` a value no filter string can hold is shown as Python would write it,
    for messages; the clause itself still filters correctly.
    """
    value = item["value"]
    if isinstance(value, str):
        try:
            literal = quote_value(value)
        except QueryError:
            if strict:
                raise
            literal = repr(value)
    else:
        literal = repr(float(value))
    return f"{quote_key(_CLAUSE_KIND[item['type']], item['key'])} {item['comparator']} {literal}"


def metric_key(name: str) -> str:
    """A metric name given with or without its ``metrics.`` prefix."""
    for prefix in ("metrics.", "metric."):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


@dataclass(frozen=True)
class RunQuery:
    """What to select: the CLI's filter options, also used by the TUI."""

    adm: str | None = None
    llm: str | None = None
    min_score: float | None = None
    score_metric: str = DEFAULT_SCORE_METRIC
    filter: str | None = None
    limit: int | None = None

    def option_clauses(self) -> list[dict[str, Any]]:
        """``--adm``, ``--llm`` and ``--min-score`` as clauses shaped like MLflow's parsed filter."""
        out: list[dict[str, Any]] = []
        if self.adm is not None:
            out.append({"type": "tag", "key": "adm", "comparator": "=", "value": self.adm})
        if self.llm is not None:
            out.append({"type": "tag", "key": "llm", "comparator": "=", "value": self.llm})
        if self.min_score is not None:
            out.append({"type": "metric", "key": metric_key(self.score_metric), "comparator": ">=",
                        "value": float(self.min_score)})
        return out

    def filter_string(self, strict: bool = True) -> str:
        """The whole selection as one MLflow filter string (paste it into the MLflow UI's search box)."""
        parts = [clause_text(c, strict) for c in self.option_clauses()]
        if self.filter and self.filter.strip():
            parts.append(self.filter.strip())
        return " AND ".join(parts)


# --------------------------------------------------------------------------- parsing and matching


def parse_filter(text: str | None, what: str = "--filter") -> list[dict[str, Any]]:
    """MLflow's parse of a filter string, checked against a run so a bad comparator fails now, not later."""
    if not text or not text.strip():
        return []
    from align_track.query.filter_check import incomplete_reason

    reason = incomplete_reason(text)
    if reason is not None:  # MLflow would drop a dangling AND and select something else
        raise QueryError(f"incomplete {what} {text!r}: {reason}")
    from mlflow.exceptions import MlflowException
    from mlflow.utils.search_utils import SearchUtils

    try:
        parsed = SearchUtils.parse_search_filter(text)
        probe = _RunView.empty()
        for item in parsed:
            SearchUtils._does_run_match_clause(probe, item)  # raises on e.g. `params.adm > 'x'`
    except MlflowException as exc:
        raise QueryError(f"invalid {what} {text!r}: {exc.message}") from None
    except (ValueError, TypeError) as exc:  # e.g. a numeric attribute compared with a non-number
        raise QueryError(f"invalid {what} {text!r}: {exc}") from None
    return parsed


class _RunView:
    """A RunRow dressed as the ``mlflow.entities.Run`` that ``SearchUtils`` matches against."""

    __slots__ = ("info", "data", "inputs")

    def __init__(self, row: RunRow):
        self.info = SimpleNamespace(
            run_id=row.run_id, run_name=row.run_name, status=row.status, start_time=row.start_time,
            end_time=row.end_time, artifact_uri=row.artifact_uri, lifecycle_stage=row.lifecycle_stage,
            experiment_id=row.experiment_id, user_id=row.tags.get("mlflow.user"),
        )
        self.data = SimpleNamespace(params=row.params, metrics=row.metrics, tags=row.tags)
        self.inputs = SimpleNamespace(dataset_inputs=[])

    @classmethod
    def empty(cls) -> _RunView:
        from align_track.store.runs_reader import RunRow

        return cls(RunRow(run_id="", run_name="", status="", start_time=None, end_time=None,
                          lifecycle_stage="active", artifact_uri=""))


def _option_matches(row: RunRow, item: dict[str, Any]) -> bool:
    """MLflow's semantics for the option clauses (tag equality, metric >=; a missing key never matches),
    evaluated without importing mlflow so ``--adm``/``--llm``/``--min-score`` stay fast."""
    if item["type"] == "tag":
        return row.tags.get(item["key"]) == item["value"]
    value = row.metrics.get(item["key"])
    return value is not None and value >= item["value"]  # NaN compares False, as in MLflow


def filter_rows(rows: Iterable[RunRow], options: Sequence[dict[str, Any]] = (),
                parsed: Sequence[dict[str, Any]] = ()) -> list[RunRow]:
    """The rows matching every option clause and every clause of a parsed ``--filter`` (AND only)."""
    selected = [r for r in rows if all(_option_matches(r, c) for c in options)]
    if not parsed:
        return selected
    from mlflow.utils.search_utils import SearchUtils

    match = SearchUtils._does_run_match_clause
    out = []
    for row in selected:
        view = _RunView(row)
        if all(match(view, c) for c in parsed):
            out.append(row)
    return out


# --------------------------------------------------------------------------- loading


def is_complete(row: RunRow) -> bool:
    """Live runs that count: align-track's once every trace was written (the ingest's commit point), and
    runs another tool wrote (``schema.counts_as_complete``)."""
    return counts_as_complete(row.tags) and row.lifecycle_stage == "active"


@dataclass
class QueryResult:
    """The selected runs, plus what a caller needs to explain an empty result."""

    tracking_uri: str
    experiment_name: str
    experiment_id: str
    rows: list[RunRow]
    complete: int
    """Complete runs in the experiment before filtering."""
    filter_string: str = ""
    metrics_seen: set[str] = field(default_factory=set)
    query: RunQuery = field(default_factory=RunQuery)
    """The query that selected ``rows`` (what ``empty_reason`` explains)."""

    @cached_property
    def frame(self) -> pandas.DataFrame:
        return rows_to_frame(self.rows)

    def empty_reason(self) -> str:
        """Why nothing was selected, in one line."""
        query = self.query
        where = f"experiment {self.experiment_name!r}"
        if self.complete == 0:
            return f"no complete runs in {where} (run `align-track ingest` first)"
        reason = f"no runs match ({self.complete} complete runs in {where}; filter: {self.filter_string})"
        metric = metric_key(query.score_metric)
        if query.min_score is not None and metric not in self.metrics_seen:
            reason += f"; no run has the metric {metric!r}"
        return reason


def load_complete_runs(tracking_uri: str | None, experiment_name: str = DEFAULT_EXPERIMENT
                       ) -> tuple[str, str, list[RunRow]]:
    """(resolved URI, experiment id, complete runs); StoreError for a missing store or experiment.

    A missing SQLite file is refused before anything opens it, so no empty store is created.
    """
    from align_track.store.runs_reader import get_experiment_id, load_runs

    uri = resolve_tracking_uri(tracking_uri)
    require_existing_store(uri)
    experiment_id = get_experiment_id(uri, experiment_name)
    return uri, experiment_id, [r for r in load_runs(uri, experiment_id) if is_complete(r)]


def run_query(tracking_uri: str | None, experiment_name: str = DEFAULT_EXPERIMENT,
              query: RunQuery | None = None) -> QueryResult:
    """The complete runs of the experiment that match ``query``, newest first, at most ``limit``."""
    query = query or RunQuery()
    parsed = parse_filter(query.filter)  # a bad filter fails before the store is touched
    uri, experiment_id, rows = load_complete_runs(tracking_uri, experiment_name)
    selected = filter_rows(rows, query.option_clauses(), parsed)
    if query.limit is not None:
        selected = selected[: max(query.limit, 0)]
    return QueryResult(uri, experiment_name, experiment_id, selected, len(rows), query.filter_string(strict=False),
                       {k for r in rows for k in r.metrics}, query)


def rows_to_frame(rows: Iterable[RunRow]) -> pandas.DataFrame:
    """``mlflow.search_runs``' DataFrame for the runs, plus a ``run_name`` column after ``run_id``."""
    from align_track.store.runs_reader import runs_to_frame

    rows = list(rows)
    frame = runs_to_frame(rows)
    frame.insert(1, "run_name", [r.run_name for r in rows])
    return frame


# --------------------------------------------------------------------------- columns


def resolve_column(columns: Iterable[str], name: str) -> str:
    """The frame column ``name`` means: exact, else ``params.X``, ``metrics.X`` or ``tags.X`` (in that order).

    Also accepts MLflow's spellings (``param.X``, ``metric.X``, ``params.`X```).
    Unknown names raise a QueryError listing what there is.
    """
    cols = list(columns)
    present = set(cols)
    wanted = _unbacktick(name.strip())
    if wanted in present:
        return wanted
    for alias, canonical in _PREFIX_ALIASES.items():
        if wanted.startswith(alias) and canonical + wanted[len(alias):] in present:
            return canonical + wanted[len(alias):]
    for prefix in _PREFIXES:
        if prefix + wanted in present:
            return prefix + wanted
    known_kind = wanted.split(".", 1)[0] in ("params", "metrics", "tags")
    note = " (no selected run has it)" if known_kind else ""
    raise QueryError(f"unknown column {name!r}{note}; available: {describe_columns(cols)}")


def _unbacktick(name: str) -> str:
    """``params.`kdma.Moral judgement``` -> ``params.kdma.Moral judgement``."""
    head, dot, rest = name.partition(".")
    if dot and len(rest) >= 2 and rest.startswith("`") and rest.endswith("`"):
        return f"{head}.{rest[1:-1]}"
    if len(name) >= 2 and name.startswith("`") and name.endswith("`"):
        return name[1:-1]
    return name


def describe_columns(columns: Iterable[str]) -> str:
    """The columns grouped as ``params: a, b; metrics: c; tags: d; run: run_id, ...`` for error messages."""
    cols = list(columns)
    groups = []
    for prefix in _PREFIXES:
        names = sorted(c[len(prefix):] for c in cols if c.startswith(prefix))
        if prefix == "tags.":
            names = [n for n in names if not n.startswith(("align_track.", "mlflow."))]
        if names:
            groups.append(f"{prefix[:-1]}: {', '.join(names)}")
    run_cols = [c for c in RUN_COLUMNS if c in cols]
    if run_cols:
        groups.append(f"run: {', '.join(run_cols)}")
    return "; ".join(groups) if groups else "none (no runs)"


def short_name(column: str) -> str:
    """``metrics.timing.avg_seconds`` -> ``timing.avg_seconds``, for headings."""
    for prefix in _PREFIXES:
        if column.startswith(prefix):
            return column[len(prefix):]
    return column
