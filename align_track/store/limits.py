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

from align_track.records import RunRecord, TraceRecord

# MLflow 3.17's limits and name rules (mlflow.utils.validation, mlflow.tracing.constant), here so that applying
# them needs no ``import mlflow`` (seconds); tests/store/test_limits_backends.py checks them against MLflow's.
MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE = 4096
MAX_RUN_NAME_LENGTH = 250
"""``runs.name`` is ``varchar(250)`` in MLflow's schema; ``mlflow.runName`` (a tag) holds the same name."""
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

    params = fit("param", record.params, MAX_PARAM_VAL_LENGTH)
    tags = fit("tag", record.tags, MAX_TAG_VAL_LENGTH)
    for key in record.metrics:
        check_key("metric", key)
    check_trace_names(record.traces)
    run_name = record.run_name
    if len(run_name) > MAX_RUN_NAME_LENGTH:  # ADM/target[/variant]: a long ADM name or target id
        warnings.append(f"run name: {len(run_name)} characters truncated to {MAX_RUN_NAME_LENGTH} (MLflow's limit)")
        run_name = run_name[:MAX_RUN_NAME_LENGTH]
    if params == record.params and tags == record.tags and run_name == record.run_name:
        return record, warnings
    return replace(record, run_name=run_name, params=params, tags=tags), warnings


def check_trace_names(traces: Sequence[TraceRecord]) -> None:
    """LimitError for a trace whose name (the scene id) is over MLflow's 4,096 characters; for traces written
    without a run record (a live run's appended scenes)."""
    for trace in traces:
        if len(trace.name) > MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE:
            raise LimitError(f"scene id {trace.name[:60]!r}... is {len(trace.name)} characters (MLflow's trace "
                             f"name limit is {MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE})")
