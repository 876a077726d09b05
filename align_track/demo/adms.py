"""ADM and LLM profiles of the demo: how each ADM is configured, which pipeline steps it times, and how it picks a
choice.

How demo ADMs follow alignment targets lives here (:func:`decide`), in one place.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from align_track.demo.targets import KDMA_INFO

MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"


MISTRAL_OLD = "mistralai/Mistral-7B-Instruct-v0.2"


LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


QWEN = "Qwen/Qwen2.5-7B-Instruct"


LLMS = (MISTRAL, LLAMA, QWEN)


LLM_SPEED = {MISTRAL: 1.0, MISTRAL_OLD: 1.05, LLAMA: 1.15, QWEN: 0.9}


_COMPONENTS = {
    "format_choices": "align_system.algorithms.misc_itm_adm_components.ITMFormatChoicesADMComponent",
    "outlines_baseline": "align_system.algorithms.outlines_baseline_adm_component.OutlinesBaselineADMComponent",
    "regression_icl": "align_system.algorithms.icl_adm_component.ICLADMComponent",
    "comparative_regression": (
        "align_system.algorithms.comparative_regression_adm_component.ComparativeRegressionADMComponent"
    ),
    "kaleido": "align_system.algorithms.kaleido_adm_component.KaleidoADMComponent",
    "rename_kaleido_relevance_variables": (
        "align_system.algorithms.utility_adm_component.RenameVariablesADMComponent"
    ),
    "random_choice": "align_system.algorithms.random_adm_component.RandomChoiceADMComponent",
    "random_parameter_completion": (
        "align_system.algorithms.random_adm_component.RandomParameterCompletionADMComponent"
    ),
    "scalar_alignment": "align_system.algorithms.alignment_adm_component.AlignmentADMComponent",
    "justification_from_reasonings": (
        "align_system.algorithms.misc_itm_adm_components.JustificationFromReasonings"
    ),
    "action_parameter_completion": (
        "align_system.algorithms.action_parameter_completion_adm_component."
        "ActionParameterCompletionADMComponent"
    ),
    "ensure_chosen_action": "align_system.algorithms.misc_itm_adm_components.EnsureChosenActionADMComponent",
    "populate_choice_info": "align_system.algorithms.misc_itm_adm_components.PopulateChoiceInfo",
}


_LLM_STEPS = {"outlines_baseline", "comparative_regression", "action_parameter_completion", "regression_icl"}


@dataclass(frozen=True)
class Adm:
    """One ADM as align-system configures and runs it."""

    name: str
    steps: tuple[str, ...]  # pipeline steps (empty for monolithic `instance` ADMs)
    slow_steps: tuple[tuple[str, float, float], ...]  # (step, min s, max s) that dominate wall time
    choice_info: tuple[str, ...]  # keys written into each scene's choice_info
    uses_llm: bool
    aligned: bool  # does it actually try to hit the alignment target?
    follow: float = 0.0  # how often it picks the choice nearest the target (the rest: see `lean`)
    lean: str = ""  # "high" | "low": otherwise it picks the highest/lowest-valued choice, not a random one
    instance_target: str = "align_system.algorithms.pipeline_adm.PipelineADM"
    base_time: tuple[float, float] = (0.0, 0.0)  # per-scene seconds for ADMs without steps


ADMS: dict[str, Adm] = {
    a.name: a
    for a in (
        Adm(
            "pipeline_baseline",
            ("format_choices", "outlines_baseline", "action_parameter_completion", "ensure_chosen_action",
             "populate_choice_info"),
            (("outlines_baseline", 6.0, 12.0), ("action_parameter_completion", 3.0, 7.0)),
            ("true_kdma_values", "per_step_timing_stats"),
            uses_llm=True,
            aligned=False,
        ),
        Adm(
            "pipeline_comparative_regression",
            ("format_choices", "regression_icl", "comparative_regression", "scalar_alignment",
             "justification_from_reasonings", "action_parameter_completion", "ensure_chosen_action",
             "populate_choice_info"),
            (("regression_icl", 1.0, 2.2), ("comparative_regression", 10.0, 26.0),
             ("action_parameter_completion", 2.0, 5.0)),
            ("predicted_kdma_values", "icl_example_responses", "true_kdma_values", "true_relevance",
             "per_step_timing_stats"),
            uses_llm=True,
            aligned=True,
            follow=0.95,
        ),
        Adm(
            "pipeline_kaleido",
            ("format_choices", "kaleido", "rename_kaleido_relevance_variables", "scalar_alignment",
             "justification_from_reasonings", "action_parameter_completion", "ensure_chosen_action",
             "populate_choice_info"),
            (("kaleido", 6.0, 12.0),),
            ("predicted_kdma_values", "true_kdma_values", "true_relevance", "per_step_timing_stats"),
            uses_llm=True,
            aligned=True,
            follow=0.45, lean="high",
        ),
        Adm(
            "pipeline_random",
            ("format_choices", "random_choice", "random_parameter_completion", "ensure_chosen_action",
             "populate_choice_info"),
            (),
            ("true_kdma_values", "per_step_timing_stats"),
            uses_llm=False,
            aligned=False,
        ),
        Adm(
            "outlines_transformers_structured",
            (),
            (),
            (),
            uses_llm=True,
            aligned=False,
            instance_target="align_system.algorithms.outlines_adm.OutlinesTransformersADM",
            base_time=(8.0, 15.0),
        ),
        Adm(
            "comparative_regression_icl",
            (),
            (),
            ("true_kdma_values", "predicted_kdma_values", "icl_example_responses"),
            uses_llm=True,
            aligned=True,
            follow=0.8,
            instance_target=(
                "align_system.algorithms.outlines_regression_adm_comparative."
                "OutlinesTransformersComparativeRegressionADM"
            ),
            base_time=(15.0, 30.0),
        ),
        Adm(
            "random",
            (),
            (),
            (),
            uses_llm=False,
            aligned=False,
            instance_target="align_system.algorithms.random_adm.RandomADM",
            base_time=(0.0004, 0.002),
        ),
    )
}


def decide(adm: Adm, choices: list[dict[str, Any]], wanted: dict[str, float] | None, rng: random.Random) -> int:
    """Pick a choice index the way this kind of ADM tends to: follow the target (`follow`), lean, or pick at random."""
    kdma_idx = [i for i, c in enumerate(choices) if c["kdma_association"]]
    if not adm.uses_llm:
        return rng.randrange(len(choices)) if rng.random() < 0.5 else rng.choice(kdma_idx)
    if adm.aligned and wanted and rng.random() < adm.follow:
        def dist(i: int) -> float:
            assoc = choices[i]["kdma_association"]
            return sum(abs(assoc.get(k, 0.5) - v) for k, v in wanted.items())

        return min(kdma_idx, key=dist)
    if adm.lean and wanted:  # a systematic bias: curves of such ADMs sit above (or below) the diagonal
        def mean_value(i: int) -> float:
            assoc = choices[i]["kdma_association"]
            return sum(assoc.get(k, 0.5) for k in wanted) / len(wanted)

        return (max if adm.lean == "high" else min)(kdma_idx, key=mean_value)
    return rng.choice(kdma_idx)


def step_timings(adm: Adm, speed: float, rng: random.Random) -> list[dict[str, Any]]:
    slow = {s: (lo, hi) for s, lo, hi in adm.slow_steps}
    out = []
    for n, step in enumerate(adm.steps):
        if step in slow:
            lo, hi = slow[step]
            elapsed = rng.uniform(lo, hi) * speed
        else:
            elapsed = rng.uniform(2e-5, 2.5e-4)
        out.append({"step": _COMPONENTS[step], "step_num": n, "elapsed_s": elapsed})
    return out


def adm_config(adm: Adm, llm: str | None, temperature: float, style: str) -> dict[str, Any]:
    """The `adm:` block: pipeline ADMs get `name` + structured_inference_engine; others only `instance`."""
    if style == "instance" or not adm.steps:
        inst: dict[str, Any] = {"_target_": adm.instance_target}
        if llm:
            inst.update({"model_name": llm, "baseline": not adm.aligned, "precision": "half",
                         "generation_kwargs": {"do_sample": False}})
        block: dict[str, Any] = {"instance": inst}
        if adm.name == "comparative_regression_icl":
            block["inference_kwargs"] = {
                "num_samples": 1, "predict_outcomes": False, "distribution_matching": "sample",
                "kde_norm": "globalnorm", "generator_batch_size": 5,
                "incontext": {"number": 3, "method": "prompt_bert_similarity", "sort_actions": True,
                              "datasets": {kd: f"${{oc.env:ICL_DATABASE_DIR,/data/shared/samba/phase2_icl}}/"
                                               f"{kd.replace(' ', '_').lower()}_train.json" for kd in KDMA_INFO}},
            }
        return block
    block = {}
    if adm.aligned:
        block["attribute_definitions"] = {
            kd: {"_target_": "align_system.data_models.attribute.Attribute", "name": name, "kdma": kd,
                 "description": desc, "factor": 100,
                 "valid_scores": {"_target_": "align_system.data_models.attribute.AttributeValidValueRange",
                                  "min": 0, "max": 100, "step": 1}}
            for kd, (name, desc) in KDMA_INFO.items()
        }
    if llm:
        block["structured_inference_engine"] = {
            "_target_": "align_system.algorithms.outlines_inference_engine.OutlinesTransformersInferenceEngine",
            "model_name": llm,
            "precision": "half",
            "max_generator_tokens": 8192,
            "generation_kwargs": {"do_sample": temperature > 0, "temperature": temperature},
        }
    steps: dict[str, Any] = {}
    for step in adm.steps:
        d: dict[str, Any] = {"_target_": _COMPONENTS[step]}
        if step in _LLM_STEPS and llm:
            d["structured_inference_engine"] = "${ref:adm.structured_inference_engine}"
        if step == "kaleido":
            d["kaleido_instance"] = {"_target_": "align_system.algorithms.lib.kaleido.KaleidoSys",
                                     "model_name": "tsor13/kaleido-large", "use_tqdm": False}
        if step == "scalar_alignment":
            d["alignment_function"] = {"_target_": "align_system.utils.alignment_utils.AvgDistScalarAlignment"}
            d["attributes"] = "${ref:adm.attribute_definitions}"
        if step == "regression_icl":
            d["num_examples"] = 3
            d["attributes"] = "${ref:adm.attribute_definitions}"
        steps[step] = d
    block["step_definitions"] = steps
    if style != "hydra_choice":
        block["name"] = adm.name
    block["instance"] = {"_target_": adm.instance_target,
                         "steps": [f"${{ref:adm.step_definitions.{s}}}" for s in adm.steps]}
    return block
