"""Build align-system run folders for tests (tests never read ../shared)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def scene(
    scene_id: Any = "S1",
    scenario: str = "June2025-AF-eval",
    target: str | None = None,
    choice: Any = 0,
    true_kdma: Any = None,
    predicted: Any = None,
) -> dict[str, Any]:
    """One input_output.json entry shaped like align-system's."""
    return {
        "input": {
            "scenario_id": scenario,
            "alignment_target_id": target,
            "full_state": {
                "unstructured": f"Scene {scene_id}: two casualties after an explosion.",
                "meta_info": {"scene_id": scene_id, "probe_response": None},
                "characters": [{"id": "P1", "name": "Patient A", "unstructured": "Burns on both arms"},
                               {"id": "P2", "name": "Patient B", "unstructured": "Bleeding from the leg"}],
            },
            "state": f"State text of {scene_id}",
            "choices": [
                {"action_id": "treat_a", "action_type": "APPLY_TREATMENT", "unstructured": "Treat Patient A",
                 "character_id": "P1", "kdma_association": {"merit": 0.2}},
                {"action_id": "treat_b", "action_type": "APPLY_TREATMENT", "unstructured": "Treat Patient B",
                 "character_id": "P2", "kdma_association": {"merit": 0.8}},
            ],
        },
        "label": [{"merit": 0.2}, {"merit": 0.8}],
        "choice_info": {
            "true_kdma_values": true_kdma if true_kdma is not None else
            {"Treat Patient A": {"merit": 0.2}, "Treat Patient B": {"merit": 0.8}},
            "predicted_kdma_values": predicted if predicted is not None else
            {"Treat Patient A": {"merit": [0.3]}, "Treat Patient B": {"merit": [0.7]}},
        },
        "output": {
            "choice": choice,
            "action": {"action_id": "treat_a", "action_type": "APPLY_TREATMENT",
                       "unstructured": "Treat Patient A", "justification": "Patient A is worse off."},
        },
    }


def config(adm: str | None = "pipeline_baseline", llm: str | None = "mistralai/Mistral-7B-Instruct-v0.3",
           target: dict | None = None, instance: dict | None = None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"name": "action_based", "adm": {}}
    if adm:
        cfg["adm"]["name"] = adm
    if llm:
        cfg["adm"]["structured_inference_engine"] = {"model_name": llm}
    if instance:
        cfg["adm"]["instance"] = instance
    if target:
        cfg["alignment_target"] = target
    return cfg


def merit_target(value: float = 0.5) -> dict[str, Any]:
    return {"id": f"ADEPT-June2025-merit-{value}", "kdma_values": [{"kdma": "merit", "value": value}]}


def write_run_folder(
    path: Path,
    scenes: list[dict] | None = None,
    cfg: dict | None | bool = True,
    timing: list[float] | None | bool = True,
    scores: Any = None,
    raw_io: str | None = None,
) -> Path:
    """Write a folder; ``cfg=True``/``timing=True`` mean sensible defaults, False/None mean no file."""
    path.mkdir(parents=True, exist_ok=True)
    scenes = scenes if scenes is not None else [scene(f"S{i}", choice=i % 2) for i in range(3)]
    (path / "input_output.json").write_text(raw_io if raw_io is not None else json.dumps(scenes, indent=1))
    if cfg is True:
        cfg = config(target=merit_target())
    if cfg:
        (path / ".hydra").mkdir(exist_ok=True)
        (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    if timing is True:
        timing = [1.0 + i for i in range(len(scenes))]
    if timing:
        stats = {"n_actions_taken": len(timing), "total_time_s": sum(timing),
                 "avg_time_s": sum(timing) / len(timing), "max_time_s": max(timing), "raw_times_s": timing}
        (path / "timing.json").write_text(json.dumps({"scenarios": [stats], **stats}))
    if scores is not None:
        (path / "scores.json").write_text(json.dumps(scores))
    return path
