"""MLflow's size and name limits, applied before any write so every backend stores the same thing.

MLflow's public API truncates long param and tag values (``MLFLOW_TRUNCATE_LONG_VALUES``, on by
default) and refuses bad keys (over 250 characters, characters outside ``[/\\w.\\- :]``, paths such
as ``../x``) and trace names over 4,096 characters. Its schema holds a run name in ``varchar(250)``
(PostgreSQL refuses more, SQLite stores anything), and PostgreSQL cannot store NUL in any text, nor can
any UTF-8 store hold an unpaired surrogate (JSON's ``"\\ud800"``). The bulk SQL path and a PostgreSQL
database would otherwise store (or choke on) what another backend refuses, so the writers all get a
record that has already been through these rules: values truncated or made storable with a warning,
refusals raised as :class:`LimitError` naming the field (a data error of that run folder, not a store error).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from align_track.records import RunRecord, TraceRecord

# MLflow 3.17's limits and name rules (mlflow.utils.validation, mlflow.tracing.constant), here so that applying
# them needs no ``import mlflow`` (seconds); tests/store/test_limits_backends.py checks them against MLflow's.
MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE = 4096
MAX_RUN_NAME_LENGTH = 250
"""``runs.name`` is ``varchar(250)`` in MLflow's schema; ``mlflow.runName`` (a tag) holds the same name."""
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""NUL (PostgreSQL refuses it in any text: 'A string literal cannot contain NUL') and unpaired surrogates (JSON's
``"\\ud800"``: no UTF-8 store or protocol can encode them); SQLite stored both, PostgreSQL failed the folder."""
REPLACEMENT = "\ufffd"
"""What an unstorable character becomes on every backend: U+FFFD, Unicode's replacement character."""
_NAME = re.compile(r"^[/\w.\- ]*$" if os.name == "nt" else r"^[/\w.\- :]*$")


def validate_param_and_metric_name(name: str) -> bool:
    """MLflow's rule for param, metric and tag keys: slashes, word characters, ``.``, ``-``, spaces (and ``:``
    off Windows)."""
    return _NAME.match(name) is not None


def path_not_unique(name: str) -> bool:
    """MLflow refuses a key that, as a path, resolves to another name (``a/../b``, ``./a``, ``/a``, ``..``)."""
    norm = posixpath.normpath(name)
    return norm != str(name) or norm == "." or norm.startswith("..") or norm.startswith("/")


class LimitError(ValueError):
    """A field MLflow's public API refuses (bad key, trace name too long)."""


def fit_to_limits(record: RunRecord) -> tuple[RunRecord, list[str]]:
    """``record`` with long values truncated as MLflow's API truncates them, and a warning per field."""
    warnings: list[str] = []

    def check_key(kind: str, key: str) -> None:
        if len(key) > MAX_ENTITY_KEY_LENGTH:
            raise LimitError(f"{kind} name {key[:60]!r}... is {len(key)} characters (MLflow allows "
                             f"{MAX_ENTITY_KEY_LENGTH})")
        if not validate_param_and_metric_name(key) or path_not_unique(key):
            raise LimitError(f"{kind} name {key!r} is refused by MLflow (letters, digits, _ - . / : and "
                             "spaces only, no '..' or leading '/')")

    def fit(kind: str, values: dict[str, str], limit: int) -> dict[str, str]:
        out = {}
        for key, value in values.items():
            check_key(kind, key)
            if len(value) > limit:
                warnings.append(f"{kind} {key!r}: {len(value)} characters truncated to {limit} (MLflow's limit)")
                value = value[:limit]
            out[key] = value
        return out

    cleaned: list[str] = []  # fields whose NUL/surrogates became U+FFFD (keys are checked, and refused, as they are)

    def clean(kind: str, values: dict[str, str]) -> dict[str, str]:
        out = {}
        for key, value in values.items():
            out[key], count = storable(value)
            if count:
                cleaned.append(f"{kind} {key!r}")
        return out

    params = fit("param", clean("param", record.params), MAX_PARAM_VAL_LENGTH)
    tags = fit("tag", clean("tag", record.tags), MAX_TAG_VAL_LENGTH)
    for key in record.metrics:
        check_key("metric", key)
    run_name, count = storable(record.run_name)
    if count:
        cleaned.append("run name")
    traces, scenes, trace_notes = fit_traces(record.traces)
    if cleaned or scenes:
        warnings.append(replaced_note(cleaned + scenes))
    warnings += trace_notes
    if len(run_name) > MAX_RUN_NAME_LENGTH:  # ADM/target[/variant]: a long ADM name or target id
        warnings.append(f"run name: {len(run_name)} characters truncated to {MAX_RUN_NAME_LENGTH} (MLflow's limit)")
        run_name = run_name[:MAX_RUN_NAME_LENGTH]
    if params == record.params and tags == record.tags and run_name == record.run_name and traces is record.traces:
        return record, warnings
    return replace(record, run_name=run_name, params=params, tags=tags, traces=traces), warnings


def storable(value: Any) -> tuple[Any, int]:
    """``value`` (a string, or JSON-like lists and dicts of them, keys included) with every NUL and unpaired
    surrogate replaced by U+FFFD, and how many were; ``value`` itself when there were none."""
    if isinstance(value, str):
        found = UNSTORABLE.findall(value)
        return (UNSTORABLE.sub(REPLACEMENT, value), len(found)) if found else (value, 0)
    if isinstance(value, dict):
        total, out = 0, {}
        for key, item in value.items():
            new_key, n_key = storable(key) if isinstance(key, str) else (key, 0)
            out[new_key], n_item = storable(item)
            total += n_key + n_item
        return (out, total) if total else (value, 0)
    if isinstance(value, (list, tuple)):
        pairs = [storable(item) for item in value]
        total = sum(n for _, n in pairs)
        return ([item for item, _ in pairs], total) if total else (value, 0)
    return value, 0


def replaced_note(fields: list[str]) -> str:
    """The note for values whose NUL or unpaired surrogates were replaced."""
    shown = ", ".join(fields[:6]) + (f" and {len(fields) - 6} more" if len(fields) > 6 else "")
    return f"NUL or unpaired surrogate characters replaced by U+FFFD (no store can hold them alike) in {shown}"


INT64 = (-(2**63), 2**63 - 1)
"""The integers a span attribute holds over OTLP (``int_value``, what a tracking server receives); SQLite's JSON
text held any, so a scene with a 20-digit number failed only through a server (``Value out of range``)."""


def wide_ints(value: Any) -> tuple[Any, int]:
    """``value`` (JSON-like) with integers beyond 64 bits as floats (as JSON readers in other languages take them),
    or as their digits where even a float overflows; and how many; ``value`` itself when there were none."""
    if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        try:
            return float(value), 1
        except OverflowError:
            return str(value), 1
    if isinstance(value, dict):
        pairs = {key: wide_ints(item) for key, item in value.items()}
        total = sum(n for _, n in pairs.values())
        return ({key: item for key, (item, _) in pairs.items()}, total) if total else (value, 0)
    if isinstance(value, (list, tuple)):
        items = [wide_ints(item) for item in value]
        total = sum(n for _, n in items)
        return ([item for item, _ in items], total) if total else (value, 0)
    return value, 0


def _scenes(names: list[str]) -> str:
    return f"{len(names)} scene{'s' if len(names) > 1 else ''} ({names[0]!r}" + (", ...)" if len(names) > 1 else ")")


def fit_traces(traces: Sequence[TraceRecord]) -> tuple[Sequence[TraceRecord], list[str], list[str]]:
    """``traces`` storable on every backend: LimitError for a scene id over MLflow's trace name limit; NUL and
    unpaired surrogates in names, inputs, outputs, attributes and tags replaced (the scenes that had them: one
    field for :func:`replaced_note`, or none), integers beyond 64 bits made floats (and a note for them). For a
    whole run (:func:`fit_to_limits`) and for the scenes appended to a live run, so both write the same trace."""
    check_trace_names(traces)
    out: list[TraceRecord] = []
    changed: list[str] = []
    widened: list[str] = []
    for trace in traces:
        name, n_name = storable(trace.name)
        (inputs, outputs, attributes, tags), n_rest = storable(
            (trace.inputs, trace.outputs, trace.attributes, trace.tags))
        (inputs, outputs, attributes), n_wide = wide_ints((inputs, outputs, attributes))
        if n_name + n_rest:
            changed.append(name)
        if n_wide:
            widened.append(name)
        if n_name + n_rest + n_wide:
            trace = replace(trace, name=name, inputs=inputs, outputs=outputs, attributes=attributes, tags=tags)
        out.append(trace)
    if not changed and not widened:
        return traces, [], []
    notes = [f"integers beyond 64 bits stored as floats (a tracking server's span protocol holds 64) in "
             f"{_scenes(widened)}"] if widened else []
    return out, [_scenes(changed)] if changed else [], notes


def check_trace_names(traces: Sequence[TraceRecord]) -> None:
    """LimitError for a trace whose name (the scene id) is over MLflow's 4,096 characters; for traces written
    without a run record (a live run's appended scenes)."""
    for trace in traces:
        if len(trace.name) > MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE:
            raise LimitError(f"scene id {trace.name[:60]!r}... is {len(trace.name)} characters (MLflow's trace "
                             f"name limit is {MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE})")
