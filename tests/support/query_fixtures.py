"""A run-folder tree with the awkward values queries must survive, ingested by the real ingest.

Shared by tests/query/test_select.py and tests/cli/test_runs_commands.py; folders come from tests/support/factory.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from align_track.ingest.pipeline import ingest
from tests.support.factory import config, merit_target, scene, write_run_folder

MJ_TARGET = {"id": "ADEPT-DryRun-Moral judgement-0.2", "kdma_values": [{"kdma": "Moral judgement", "value": 0.2}]}
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
QUOTED_LLM = 'acme/"quoted"-7B'


@dataclass(frozen=True)
class Expected:
    """What the tree holds, so tests assert against numbers they did not read from the store."""

    adm: str
    llm: str | None
    target: str
    folder: str
    times: tuple[float, ...]
    score: float | None

    @property
    def avg(self) -> float | None:
        return sum(self.times) / len(self.times) if self.times else None


EXPECTED = (
    Expected("pipeline_baseline", MISTRAL, "ADEPT-June2025-merit-0.5", "baseline/merit-0.5", (1.0, 2.0, 3.0), 0.9),
    Expected("pipeline_baseline", MISTRAL, "ADEPT-June2025-merit-0.2", "baseline/merit-0.2", (4.0, 6.0), 0.5),
    Expected("O'Brien", MISTRAL, "ADEPT-DryRun-Moral judgement-0.2", "obrien mj", (2.0, 2.0, 2.0), 0.8),
    Expected("pipeline_kaleido", QUOTED_LLM, "ADEPT-June2025-merit-0.5", "kaleido", (10.0, 20.0), None),
    Expected("RandomADM", None, "unaligned", "random", (), None),
)


def build_tree(root: Path) -> Path:
    """Five folders: two baselines (scored), an ADM named O'Brien on a 'Moral judgement' target,
    an LLM name with double quotes, and a random ADM with neither LLM, target, timing nor score."""
    for exp in EXPECTED:
        path = root / exp.folder
        if exp.adm == "RandomADM":
            cfg = config(adm=None, llm=None, instance={"_target_": "align_system.algorithms.RandomADM"})
            write_run_folder(path, scenes=[scene(f"R{i}") for i in range(2)], cfg=cfg, timing=False)
            continue
        target = MJ_TARGET if "Moral" in exp.target else merit_target(float(exp.target.rsplit("-", 1)[1]))
        scores = None if exp.score is None else [
            {"alignment_target_id": exp.target, "score": exp.score, "accuracy": round(1 - exp.score, 3)}
        ]
        write_run_folder(path, scenes=[scene(f"S{i}") for i in range(len(exp.times))],
                         cfg=config(adm=exp.adm, llm=exp.llm, target=target), timing=list(exp.times),
                         scores=scores)
    return root


def ingest_tree(root: Path, uri: str) -> None:
    summary = ingest(root, uri)
    assert summary.count("failed") == 0, [o.error for o in summary.failures]
    assert summary.count("ingested") == len(EXPECTED)


def make_ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(store URI, run-folder tree) for a module-scoped fixture: tests sharing it only read it."""
    base = tmp_path_factory.mktemp("query-store")
    root = build_tree(base / "exps")
    uri = f"sqlite:///{base / 'mlflow' / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        os.makedirs(base / "cwd", exist_ok=True)
        mp.chdir(base / "cwd")
        ingest_tree(root, uri)
    return uri, root
