"""store/limits.py applies MLflow's own limits and key rules without importing mlflow: the same numbers and the same
verdict as mlflow.utils.validation on any key (generated), so truncation and refusals match MLflow's API exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from align_track.store import limits

keys = st.one_of(st.text(max_size=30), st.text(alphabet="ab./-_: \n\\é", max_size=12),
                 st.sampled_from(["../../etc/passwd", "a/../b", "./a", "/a", ".", "..", "a/", "a//b", "kdma.x y:z"]))


def test_the_limits_are_mlflows() -> None:
    from mlflow.tracing.constant import MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE
    from mlflow.utils import validation

    assert (limits.MAX_ENTITY_KEY_LENGTH, limits.MAX_PARAM_VAL_LENGTH, limits.MAX_TAG_VAL_LENGTH,
            limits.MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE) == (
        validation.MAX_ENTITY_KEY_LENGTH, validation.MAX_PARAM_VAL_LENGTH, validation.MAX_TAG_VAL_LENGTH,
        MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE)


@settings(max_examples=300, deadline=None)
@given(keys)
def test_key_rules_give_mlflows_verdict(key: str) -> None:
    from mlflow.utils import validation

    assert limits.validate_param_and_metric_name(key) == bool(validation.validate_param_and_metric_name(key))
    assert limits.path_not_unique(key) == validation.path_not_unique(key)
