"""The plan: 24 slots that together hold every layout and quirk seen in real run folders; bigger corpora repeat it with
new targets/LLMs/timestamps, smaller ones take a prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from align_track.demo.adms import LLAMA, MISTRAL, MISTRAL_OLD, QWEN

_Targets = tuple[tuple[str, tuple[float, ...]], ...]


@dataclass(frozen=True)
class _Slot:
    """One run folder of the plan: what ran, where it was written, which files and quirks it has."""

    adm: str
    llm: str | None
    targets: _Targets  # () = unaligned; more than one = mixed-target evaluation run
    layout: tuple[str, ...]  # ("sweep", collection, variant) | ("hydra",) | ("multirun", job)
    config: str = "name"  # name | instance | hydra_choice | none
    timing: str = "full"  # full | none | short
    scores: bool = False
    meta: bool = False
    quirk: str = ""  # null_kdma | choice_null | choice_str | scene_ids
    temperature: float = 0.0
    family: str = "MF"  # scenario family for unaligned runs


_MIXED3: _Targets = (("merit", (0.3,)), ("merit", (0.8,)), ("affiliation", (0.5,)))


_MIXED2: _Targets = (("search", (0.2,)), ("personal_safety", (0.6,)))


PLAN: tuple[_Slot, ...] = (
    _Slot("pipeline_baseline", MISTRAL, (("merit", (0.5,)),), ("sweep", "june2025-sweep", "temperature-0.7"),
          scores=True, meta=True, temperature=0.7),
    _Slot("pipeline_baseline", MISTRAL, (("merit", (0.5,)),), ("sweep", "june2025-sweep", "temperature-0.0"),
          scores=True),
    _Slot("pipeline_comparative_regression", LLAMA, (("affiliation_merit", (0.0, 1.0)),), ("hydra",),
          scores=True, meta=True),
    _Slot("pipeline_kaleido", MISTRAL, (("Moral judgement", (0.2,)),), ("sweep", "dryrun-mj", "pipeline_kaleido"),
          quirk="null_kdma"),
    _Slot("pipeline_random", None, (("personal_safety", (0.3,)),), ("sweep", "june2025-sweep", "random"),
          scores=True),
    _Slot("outlines_transformers_structured", MISTRAL_OLD, (), ("hydra",), config="instance", timing="none",
          family="MJ"),
    _Slot("comparative_regression_icl", MISTRAL, (("Moral judgement", (0.2,)),),
          ("sweep", "dryrun-mj", "comp_reg_icl"), config="instance", timing="none", quirk="null_kdma"),
    _Slot("random", None, (), ("sweep", "june2025-sweep", "random-adm"), config="instance", timing="none",
          family="AF"),
    _Slot("pipeline_baseline", QWEN, (), ("hydra",), config="hydra_choice", meta=True, family="MF"),
    _Slot("pipeline_comparative_regression", QWEN, _MIXED3, ("sweep", "june2025-eval", "mixed-targets"),
          scores=True, meta=True),
    _Slot("pipeline_comparative_regression", MISTRAL, (("kde", ()),), ("hydra",)),
    _Slot("pipeline_baseline", LLAMA, (("search", (0.7,)),), ("sweep", "june2025-sweep", "temperature-0.7"),
          timing="short", scores=True, temperature=0.7),
    _Slot("pipeline_kaleido", LLAMA, (("affiliation", (1.0,)),), ("multirun", "0"), quirk="choice_str"),
    _Slot("pipeline_comparative_regression", LLAMA, (("affiliation_merit", (0.0, 1.0)),), ("hydra",),
          scores=True),
    _Slot("pipeline_baseline", MISTRAL, (("merit", (0.8,)),), ("hydra",), config="none"),
    _Slot("pipeline_baseline", MISTRAL, (("Moral judgement", (0.7,)),), ("sweep", "dryrun-mj", "pipeline_baseline"),
          quirk="scene_ids"),
    _Slot("comparative_regression_icl", LLAMA, (("merit", (0.0,)),), ("sweep", "june2025-sweep", "icl-5"),
          config="instance", scores=True, meta=True),
    _Slot("outlines_transformers_structured", QWEN, (), ("sweep", "june2025-sweep", "unaligned"),
          config="instance", family="PS"),
    _Slot("pipeline_kaleido", QWEN, (("personal_safety", (0.8,)),), ("multirun", "1"), scores=True),
    _Slot("pipeline_comparative_regression", MISTRAL, _MIXED2, ("sweep", "june2025-eval", "mixed-targets"),
          meta=True),
    _Slot("pipeline_baseline", QWEN, (("affiliation", (0.0,)),), ("hydra",), config="hydra_choice"),
    _Slot("pipeline_random", None, (("merit", (1.0,)),), ("sweep", "june2025-sweep", "random"), scores=True),
    _Slot("pipeline_comparative_regression", LLAMA, (("search", (0.7,)),),
          ("sweep", "june2025-sweep", "temperature-0.7"), scores=True, quirk="choice_null", temperature=0.7),
    _Slot("pipeline_comparative_regression", LLAMA, (("search", (0.7,)),),
          ("sweep", "june2025-sweep", "temperature-0.0"), meta=True),
)
