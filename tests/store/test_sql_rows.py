"""The rows built without MLflow (store/sql_rows.py) are MLflow's own rows (store/trace_writer.py builds them
through MLflow's Span, TraceInfo, span translation and size-stats helpers), field by field.

Generated records (Hypothesis: any JSON in every field of the data model, names and times of any size, chat-shaped
choices that change the previews) and the mapping's records of the demo corpus are built both ways with the same
ids; every row of every table must be equal, the run link's random id and creation time aside.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from align_track import schema as S
from align_track.records import TraceRecord
from align_track.store import sql_rows, trace_writer

LOCATION = "file:///tmp/align-track-rows/artifacts"
EXAMPLES = int(os.environ.get("ALIGN_TRACK_ROWS_EXAMPLES", "150"))
"""Generated records per run (3,000 passed once; a longer run: ALIGN_TRACK_ROWS_EXAMPLES=3000)."""
VOLATILE = {"association_id", "created_time"}

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", "ü ✓ 日本語", '{"a": [1, 2]}', '"quoted"', "[1, 2]", "null", "1e400", "\"{\\\"x\\\": 1}\""]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]),
                                 "content": st.one_of(st.text(max_size=30), st.lists(
                                     st.one_of(st.text(max_size=10), st.fixed_dictionaries(
                                         {"type": st.sampled_from(["text", "output_text", "image"]),
                                          "text": st.one_of(st.text(max_size=10), st.none())})), max_size=3))})
choices = st.one_of(json_values, st.lists(st.fixed_dictionaries({"message": message}), min_size=1, max_size=2))
long_text = st.text(min_size=200, max_size=1500)


def _subset(keys: tuple[str, ...], values: st.SearchStrategy) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), values, max_size=len(keys))


@st.composite
def records(draw: st.DrawFn) -> TraceRecord:
    name = draw(st.one_of(st.text(min_size=1, max_size=30), st.text(min_size=300, max_size=600)))
    inputs = draw(_subset(S.TRACE_INPUTS, st.one_of(json_values, long_text)))
    if draw(st.booleans()):
        inputs[S.IN_CHOICES] = draw(choices)
    outputs = draw(_subset(S.TRACE_OUTPUTS, st.one_of(json_values, choices)))
    attributes = draw(_subset(S.TRACE_ATTRIBUTES, st.one_of(json_values, long_text)))
    start = draw(st.integers(min_value=0, max_value=2**62))
    end = start + draw(st.sampled_from([0, 1, 999_999, 1_000_000, draw(st.integers(min_value=0, max_value=10**17))]))
    return TraceRecord(name=name, inputs=inputs, outputs=outputs, attributes=attributes,
                       tags={S.TRACE_TAG_SCENE_ID: name}, start_ns=start, end_ns=end)


def comparable(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Each table's rows, less the volatile columns, in one order (a table's rows have none)."""
    return {table: sorted(repr(sorted((k, v) for k, v in row.items() if k not in VOLATILE)) for row in table_rows)
            for table, table_rows in rows.items() if table_rows}


def assert_same_rows(traces: list[TraceRecord], experiment_id: str = "7", run_id: str = "r" * 32) -> None:
    ids = [(index * 7919 + 1, index * 104729 + 3) for index in range(1, len(traces) + 1)]
    ours = sql_rows.trace_rows(experiment_id, run_id, traces, LOCATION, ids)
    theirs = trace_writer.trace_rows(experiment_id, run_id, traces, LOCATION, ids)
    assert comparable(ours) == comparable(theirs)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=3))
def test_generated_records_make_mlflows_rows(traces: list[TraceRecord]) -> None:
    assert_same_rows(traces)


def test_the_mapped_demo_corpus_makes_mlflows_rows(tmp_path: Path) -> None:
    from align_track.demo.generate import generate_demo
    from align_track.ingest.folders import discover, read_config
    from align_track.ingest.mapping import identities, map_run

    root = tmp_path / "exps"
    generate_demo(root, run_folders=12, scenes=4, seed=3)
    written = 0
    for folder in discover(root):
        for identity in identities(read_config(root, folder)):
            traces = map_run(identity, "default").run.traces
            assert_same_rows(traces, experiment_id="12")
            written += len(traces)
    assert written >= 40


@pytest.mark.parametrize("location", ["file:///srv/a b/artifacts", "file:///srv/x/", "mlflow-artifacts:/3",
                                      "s3://bucket/base/path?param=value", "relative/posix", "file:rel/x"])
def test_artifact_location_tags_match(location: str) -> None:
    from mlflow.utils.uri import append_to_uri_path

    assert sql_rows.append_to_uri_path(location, "traces", "tr-1", "artifacts") == \
        append_to_uri_path(location, "traces", "tr-1", "artifacts")


def test_what_is_not_reproduced_says_so() -> None:
    base = TraceRecord("S", {}, {}, {}, {"scene_id": "S"}, 10, 20)
    from dataclasses import replace

    for odd in (replace(base, attributes={"gen_ai.usage.input_tokens": 3}),  # MLflow derives token usage
                replace(base, inputs={"model": "gpt"}),  # ... or a model name
                replace(base, outputs={S.OUT_ACTION: {1, 2}}),  # not JSON
                replace(base, inputs={S.IN_STATE: "\ud800"}),  # not valid Unicode
                replace(base, start_ns=-(10**20), end_ns=0)):  # before the year 1
        with pytest.raises(sql_rows.NotReproduced):
            sql_rows.trace_rows("1", "r", [odd], LOCATION)
    with pytest.raises(ValueError, match="before start_ns"):
        sql_rows.trace_rows("1", "r", [replace(base, end_ns=5)], LOCATION)


def test_mlflows_names_are_the_ones_used() -> None:
    from mlflow.entities.entity_type import EntityAssociationType
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracing import constant as C
    from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION

    assert (sql_rows.REQUEST_ID_ATTRIBUTE, sql_rows.EXPERIMENT_ID_ATTRIBUTE, sql_rows.SPAN_TYPE_ATTRIBUTE,
            sql_rows.INPUTS_ATTRIBUTE, sql_rows.OUTPUTS_ATTRIBUTE, sql_rows.TRACE_TAG_PREFIX) == (
        C.SpanAttributeKey.REQUEST_ID, C.SpanAttributeKey.EXPERIMENT_ID, C.SpanAttributeKey.SPAN_TYPE,
        C.SpanAttributeKey.INPUTS, C.SpanAttributeKey.OUTPUTS, C.SpanAttributeKey.TRACE_TAG_PREFIX)
    assert (sql_rows.TRACE_NAME_TAG, sql_rows.SPANS_LOCATION_TAG, sql_rows.TRACKING_STORE) == (
        C.TraceTagKey.TRACE_NAME, C.TraceTagKey.SPANS_LOCATION, C.SpansLocation.TRACKING_STORE.value)
    assert sql_rows.ARTIFACT_LOCATION_TAG == MLFLOW_ARTIFACT_LOCATION
    assert (sql_rows.TRACES_FOLDER, sql_rows.ARTIFACTS_FOLDER) == (SqlAlchemyStore.TRACE_FOLDER_NAME,
                                                                   SqlAlchemyStore.ARTIFACTS_FOLDER_NAME)
    assert sql_rows.TRACE_SCHEMA_VERSION == C.TRACE_SCHEMA_VERSION
    assert (sql_rows.MAX_METADATA_CHARS, sql_rows.MAX_TAG_KEY_CHARS, sql_rows.MAX_TAG_VALUE_CHARS,
            sql_rows.PREVIEW_MAX_CHARS, sql_rows.TRUNCATION_SUFFIX) == (
        C.MAX_CHARS_IN_TRACE_INFO_METADATA, C.MAX_CHARS_IN_TRACE_INFO_TAGS_KEY, C.MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE,
        C.TRACE_REQUEST_RESPONSE_PREVIEW_MAX_LENGTH_OSS, C.TRUNCATION_SUFFIX)
    assert (sql_rows.TRACE_ENTITY, sql_rows.RUN_ENTITY) == (EntityAssociationType.TRACE, EntityAssociationType.RUN)
    import mlflow

    assert mlflow.__version__ in sql_rows.ROWS_MLFLOW_VERSIONS
