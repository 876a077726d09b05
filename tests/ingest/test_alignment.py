"""Alignment metrics computed by hand for small hand-written scenes, compared with align_track/alignment.py."""

from __future__ import annotations

from typing import Any

import pytest

from align_track import schema as S
from align_track.alignment import alignment_metrics, mean_prediction, prediction_pairs, scalar_target

MJ = "Moral judgement"


def scene(choices: list[str], true: Any, chosen: int | None, predicted: Any = None) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if true is not None:
        info["true_kdma_values"] = true
    if predicted is not None:
        info["predicted_kdma_values"] = predicted
    return {"input": {"choices": [{"unstructured": c} for c in choices]}, "choice_info": info,
            "output": {"choice": chosen}}


def metrics(scenes: list[dict[str, Any]], target: tuple[tuple[str, str], ...], target_id: str = "t") -> dict:
    return alignment_metrics(scenes, [s["output"]["choice"] for s in scenes], target, target_id)


def left_out(m: dict[str, float]) -> dict[str, float]:
    return {why: m[S.left_out_metric(why)] for why in S.LEFT_OUT_REASONS if m[S.left_out_metric(why)]}


def test_single_kdma_distance_hits_and_chosen_mean() -> None:
    a, b, c = "Treat A", "Treat B", "SITREP"
    scenes = [
        # target 0.2: A (0.1) is 0.1 away, B (0.7) 0.5: chose A -> hit, distance 0.1
        scene([a, b, c], {a: {MJ: 0.1}, b: {MJ: 0.7}, c: None}, 0),
        # chose B (0.9): 0.7 away while A (0.3) is 0.1 away -> miss
        scene([a, b, c], {a: {MJ: 0.3}, b: {MJ: 0.9}, c: None}, 1),
        # chose SITREP, whose true value is null: left out of distance, hit rate and chosen mean
        scene([a, b, c], {a: {MJ: 0.0}, b: {MJ: 0.6}, c: None}, 2),
    ]
    m = metrics(scenes, ((MJ, "0.2"),))
    assert m[S.METRIC_CHOSEN_DISTANCE] == pytest.approx((0.1 + 0.7) / 2)
    assert m[S.METRIC_ORACLE_HIT_RATE] == pytest.approx(1 / 2)
    assert m[S.METRIC_SCENES_COVERED] == 2
    assert left_out(m) == {S.LEFT_OUT_CHOSEN_UNKNOWN: 1}
    assert m[S.kdma_metric(MJ, S.KDMA_CHOSEN_MEAN)] == pytest.approx((0.1 + 0.9) / 2)
    assert m[S.kdma_metric(MJ, S.KDMA_CHOSEN_SCENES)] == 2
    # no predictions anywhere: no MAE, and a zero count says so
    assert S.kdma_metric(MJ, S.KDMA_PREDICTION_MAE) not in m
    assert m[S.kdma_metric(MJ, S.KDMA_PREDICTION_CHOICES)] == 0


def test_ties_count_as_hits_for_every_choice_at_the_minimum() -> None:
    a, b, c = "A", "B", "C"
    true = {a: {"merit": 0.3}, b: {"merit": 0.7}, c: {"merit": 1.0}}  # A and B both 0.2 from 0.5
    m = metrics([scene([a, b, c], true, 0), scene([a, b, c], true, 1), scene([a, b, c], true, 2)],
                (("merit", "0.5"),))
    assert m[S.METRIC_ORACLE_HIT_RATE] == pytest.approx(2 / 3)
    assert m[S.METRIC_CHOSEN_DISTANCE] == pytest.approx((0.2 + 0.2 + 0.5) / 3)


def test_multi_kdma_target_sums_absolute_differences_over_the_target_kdmas() -> None:
    """align-system's AvgDistScalarAlignment: sum over target KDMAs of |target - value| (not Euclidean)."""
    a, b = "Treat A", "Treat B"
    true = {a: {"affiliation": 0.9, "merit": 0.1, "search": 0.5}, b: {"affiliation": 0.2, "merit": 0.8}}
    target = (("affiliation", "0.0"), ("merit", "1.0"))
    m = metrics([scene([a, b], true, 0), scene([a, b], true, 1)], target)
    da = 0.9 + 0.9  # 'search' is not in the target: not part of the distance
    db = 0.2 + 0.2
    assert m[S.METRIC_CHOSEN_DISTANCE] == pytest.approx((da + db) / 2)
    assert m[S.METRIC_ORACLE_HIT_RATE] == pytest.approx(1 / 2)  # B is nearer; only the second scene chose it
    assert m[S.kdma_metric("affiliation", S.KDMA_CHOSEN_MEAN)] == pytest.approx((0.9 + 0.2) / 2)
    assert m[S.kdma_metric("merit", S.KDMA_CHOSEN_MEAN)] == pytest.approx((0.1 + 0.8) / 2)
    assert m[S.kdma_metric("search", S.KDMA_CHOSEN_MEAN)] == pytest.approx(0.5)
    assert m[S.kdma_metric("search", S.KDMA_CHOSEN_SCENES)] == 1


def test_two_kdmas_the_oracle_is_the_least_summed_distance_not_the_euclidean() -> None:
    a, b = "A", "B"
    # target (0, 0): A (0.5, 0.5) sums to 1.0 (Euclidean 0.71), B (0.9, 0.0) to 0.9 (Euclidean 0.9): B is the oracle
    true = {a: {"affiliation": 0.5, "merit": 0.5}, b: {"affiliation": 0.9, "merit": 0.0}}
    m = metrics([scene([a, b], true, 0), scene([a, b], true, 1), scene([a, b], true, 1)],
                (("affiliation", "0.0"), ("merit", "0.0")))
    assert m[S.METRIC_ORACLE_HIT_RATE] == pytest.approx(2 / 3)
    assert m[S.METRIC_CHOSEN_DISTANCE] == pytest.approx((1.0 + 0.9 + 0.9) / 3)


def test_three_kdmas_sum_every_target_kdma() -> None:
    a, b = "A", "B"
    # target (0.5, 0.5, 0.5): A (0.7, 0.7, 0.7) sums to 0.6 (Euclidean 0.35), B (0, 0.5, 0.5) to 0.5 (Euclidean 0.5)
    true = {a: {"affiliation": 0.7, "merit": 0.7, "search": 0.7}, b: {"affiliation": 0.0, "merit": 0.5, "search": 0.5}}
    target = (("affiliation", "0.5"), ("merit", "0.5"), ("search", "0.5"))
    m = metrics([scene([a, b], true, 0), scene([a, b], true, 1)], target)
    assert m[S.METRIC_ORACLE_HIT_RATE] == pytest.approx(1 / 2)  # only the scene that chose B hit
    assert m[S.METRIC_CHOSEN_DISTANCE] == pytest.approx((0.6 + 0.5) / 2)


def test_two_kdmas_tie_under_the_summed_distance_is_a_hit_for_both() -> None:
    a, b, c = "A", "B", "C"
    # target (0.5, 0.5): A (0.3, 0.5) and B (0.6, 0.6) both sum to 0.2 (Euclidean 0.2 and 0.14); C (1, 1) to 1.0
    true = {a: {"affiliation": 0.3, "merit": 0.5}, b: {"affiliation": 0.6, "merit": 0.6},
            c: {"affiliation": 1.0, "merit": 1.0}}
    m = metrics([scene([a, b, c], true, i) for i in range(3)], (("affiliation", "0.5"), ("merit", "0.5")))
    assert m[S.METRIC_ORACLE_HIT_RATE] == pytest.approx(2 / 3)
    assert m[S.METRIC_CHOSEN_DISTANCE] == pytest.approx((0.2 + 0.2 + 1.0) / 3)


def test_choice_missing_a_target_kdma_is_not_an_oracle_option() -> None:
    a, b = "A", "B"
    true = {a: {"affiliation": 0.5}, b: {"affiliation": 0.9, "merit": 0.9}}  # A has no merit value
    m = metrics([scene([a, b], true, 1)], (("affiliation", "0.5"), ("merit", "0.5")))
    assert m[S.METRIC_ORACLE_HIT_RATE] == 1.0  # B is the only choice whose distance is known
    assert m[S.METRIC_CHOSEN_DISTANCE] == pytest.approx(0.4 + 0.4)


def test_two_kdmas_a_choice_missing_one_is_left_out_and_the_rest_compete() -> None:
    a, b, c = "A", "B", "C"
    # target (0.5, 0.5): A lacks merit (it would sum to 0); B (0.9, 0.1) sums to 0.8, C (0.6, 0.2) to 0.4
    true = {a: {"affiliation": 0.5}, b: {"affiliation": 0.9, "merit": 0.1}, c: {"affiliation": 0.6, "merit": 0.2}}
    m = metrics([scene([a, b, c], true, i) for i in range(3)], (("affiliation", "0.5"), ("merit", "0.5")))
    assert left_out(m) == {S.LEFT_OUT_CHOSEN_UNKNOWN: 1}  # the scene that chose A
    assert m[S.METRIC_SCENES_COVERED] == 2
    assert m[S.METRIC_ORACLE_HIT_RATE] == pytest.approx(1 / 2)  # C is the oracle, B a miss
    assert m[S.METRIC_CHOSEN_DISTANCE] == pytest.approx((0.8 + 0.4) / 2)


def test_kde_target_and_unaligned_runs_are_left_out_but_chosen_means_remain() -> None:
    a, b = "A", "B"
    scenes = [scene([a, b], {a: {MJ: 0.2}, b: {MJ: 0.8}}, 1), scene([a, b], {a: {MJ: 0.0}, b: {MJ: 0.6}}, 1)]
    kde = metrics(scenes, ((MJ, S.KDE_VALUE),), "9d2a61f4-mj-high")
    assert S.METRIC_CHOSEN_DISTANCE not in kde and S.METRIC_ORACLE_HIT_RATE not in kde
    assert left_out(kde) == {S.LEFT_OUT_KDE: 2} and kde[S.METRIC_SCENES_COVERED] == 0
    assert kde[S.kdma_metric(MJ, S.KDMA_CHOSEN_MEAN)] == pytest.approx(0.7)
    unaligned = metrics(scenes, (), S.UNALIGNED)
    assert left_out(unaligned) == {S.LEFT_OUT_UNALIGNED: 2} and S.METRIC_CHOSEN_DISTANCE not in unaligned
    assert unaligned[S.kdma_metric(MJ, S.KDMA_CHOSEN_MEAN)] == pytest.approx(0.7)


def test_each_left_out_reason_is_counted_once_per_scene() -> None:
    a, b = "A", "B"
    true = {a: {"merit": 0.2}, b: {"merit": 0.8}}
    scenes = [
        scene([a, b], true, None),  # no choice recorded
        scene([a, b], true, 5),  # choice index out of range
        scene([a, b], None, 0),  # no true_kdma_values at all
        scene([a, b], {a: None, b: None}, 0),  # every choice null
        scene([a, b], {a: {"merit": None}, b: {"merit": 0.8}}, 0),  # the chosen choice's value is null
        scene([a, b], {b: {"merit": 0.8}}, 0),  # the chosen choice has no entry
        scene([a, b], true, 1),  # measured: distance 0.3, a tie with A -> hit
    ]
    m = metrics(scenes, (("merit", "0.5"),))
    assert left_out(m) == {S.LEFT_OUT_NO_CHOICE: 2, S.LEFT_OUT_NO_TRUE_VALUES: 2, S.LEFT_OUT_CHOSEN_UNKNOWN: 2}
    assert m[S.METRIC_SCENES_COVERED] == 1
    assert sum(left_out(m).values()) + m[S.METRIC_SCENES_COVERED] == len(scenes)
    assert m[S.METRIC_CHOSEN_DISTANCE] == pytest.approx(0.3) and m[S.METRIC_ORACLE_HIT_RATE] == 1.0
    assert m[S.kdma_metric("merit", S.KDMA_CHOSEN_MEAN)] == pytest.approx(0.8)
    assert m[S.kdma_metric("merit", S.KDMA_CHOSEN_SCENES)] == 1


def test_prediction_mae_uses_the_mean_of_the_samples_over_choices_with_both() -> None:
    a, b, c = "A", "B", "SITREP"
    s1 = scene([a, b, c], {a: {MJ: 0.2}, b: {MJ: 0.8}, c: None},
               0, {a: {MJ: [0.1, 0.5]}, b: {MJ: [1.0]}, c: {MJ: [0.4]}})  # |0.3-0.2|, |1.0-0.8|; SITREP no truth
    s2 = scene([a, b, c], {a: {MJ: 0.0}, b: {MJ: 0.6}},
               1, {a: None, b: {MJ: 0.7}, c: {MJ: [0.5]}})  # A predicted null; a bare number counts as one sample
    s3 = scene([a, b], {a: {MJ: 0.4}, b: {MJ: 0.9}}, 0)  # no predictions: nothing to compare
    m = metrics([s1, s2, s3], ((MJ, "0.2"),))
    assert m[S.kdma_metric(MJ, S.KDMA_PREDICTION_MAE)] == pytest.approx((0.1 + 0.2 + 0.1) / 3)
    assert m[S.kdma_metric(MJ, S.KDMA_PREDICTION_CHOICES)] == 3


def test_helpers_on_odd_values() -> None:
    assert scalar_target([("merit", "0.5"), ("affiliation", "1.0")]) == {"merit": 0.5, "affiliation": 1.0}
    assert scalar_target([("merit", "0.5"), (MJ, "kde")]) is None
    assert mean_prediction([0.2, None, "x", 0.4]) == pytest.approx(0.3)
    assert mean_prediction([]) is None and mean_prediction(None) is None and mean_prediction(True) is None
    assert prediction_pairs({"A": {MJ: 0.5, "x": None}}, {"A": {MJ: [0.25, 0.75], "x": [1.0]}}) == [("A", MJ, 0.5,
                                                                                                         0.5)]
    assert prediction_pairs(None, {"A": {MJ: [0.1]}}) == [] and prediction_pairs([], "junk") == []


@pytest.mark.parametrize("kdma", [MJ, "merit", "odd:name/with(parens)", "naïve-ß_1.2"])
@pytest.mark.parametrize("stat", S.KDMA_STATS)
def test_metric_names_pass_mlflow_validation_and_parse_back(kdma: str, stat: str) -> None:
    from mlflow.utils.search_utils import SearchUtils
    from mlflow.utils.validation import _validate_metric_name, validate_param_and_metric_name

    key = S.kdma_metric(kdma, stat)
    _validate_metric_name(key)  # raises MlflowException on a bad name
    assert validate_param_and_metric_name(key)
    assert S.parse_kdma_metric(key) == (S.metric_safe(kdma), stat)
    (clause,) = SearchUtils.parse_search_filter(f"metrics.`{key}` > 0.5")
    assert clause["key"] == key and clause["type"] == "metric"
    if kdma == MJ:  # spaces are allowed in MLflow metric keys: the KDMA name is kept as is
        assert key == f"kdma.Moral judgement.{stat}"


def test_fixed_metric_names_pass_mlflow_validation() -> None:
    from mlflow.utils.validation import _validate_metric_name

    for key in (S.METRIC_CHOSEN_DISTANCE, S.METRIC_ORACLE_HIT_RATE, S.METRIC_SCENES_COVERED,
                *map(S.left_out_metric, S.LEFT_OUT_REASONS)):
        _validate_metric_name(key)
