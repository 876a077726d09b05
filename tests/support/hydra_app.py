"""A small Hydra app shaped like align-system: its config names an ADM, an LLM and an alignment target; the
job writes input_output.json scene by scene into its output folder and timing.json last, or fails midway.

Run as ``python -m tests.support.hydra_app [overrides]`` (tests/hydra/test_callback.py does, with the
align-track callback enabled on the command line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig

from tests.support.factory import scene


@dataclass
class Engine:
    model_name: str = "mistralai/Mistral-7B-Instruct-v0.3"


@dataclass
class Adm:
    name: str = "pipeline_baseline"
    structured_inference_engine: Engine = field(default_factory=Engine)
    temperature: float = 0.7


@dataclass
class AppConfig:
    adm: Adm = field(default_factory=Adm)
    alignment_target: Any = field(default_factory=lambda: {
        "id": "ADEPT-June2025-merit-0.5", "kdma_values": [{"kdma": "merit", "value": 0.5}]})
    scenes: int = 3
    fail_after: int = -1
    """Raise after writing this many scenes (no timing.json): a failed job."""


ConfigStore.instance().store(name="app", node=AppConfig)


@hydra.main(version_base=None, config_name="app")
def main(cfg: Any) -> None:
    out = Path(HydraConfig.get().runtime.output_dir)
    written = []
    for i in range(cfg.scenes):
        written.append(scene(f"S{i}", choice=i % 2))
        (out / "input_output.json").write_text(json.dumps(written, indent=2))
        if cfg.fail_after >= 0 and len(written) >= cfg.fail_after:
            raise RuntimeError("the ADM crashed")
    times = [1.0 + i for i in range(cfg.scenes)]
    (out / "timing.json").write_text(json.dumps({"raw_times_s": times, "total_time_s": sum(times)}))


if __name__ == "__main__":
    main()
