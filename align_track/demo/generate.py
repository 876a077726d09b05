"""Generate realistic align-system run folders for demos, tests and benchmarks.

Real run-folder trees are large and private, so this writes a deterministic stand-in
that keeps the exact file layout of align-system output (``input_output.json``,
``timing.json``, ``scores.json``, ``.hydra/config.yaml`` ...) and, on purpose, every
quirk seen in real data (null KDMA values, configs without ``adm.name``, mixed-target
runs, short timing files ...), so whatever ingests the demo also survives real runs.

Only stdlib + pyyaml, so the CLI can import it without pulling in MLflow or pandas.
"""

from __future__ import annotations

from pathlib import Path

from align_track.demo.folders import write_run_folder

__all__ = ["generate_demo"]


def generate_demo(out_dir: Path, run_folders: int = 24, scenes: int = 8, seed: int = 0) -> list[Path]:
    """Write `run_folders` run folders under out_dir; return their paths (sorted). Deterministic for a seed.

    Run folder i follows slot ``i % 24`` of a fixed plan, so any corpus of 24 or more holds every
    layout and quirk; each run folder has its own RNG, so a smaller corpus is a prefix of a bigger one.
    """
    if run_folders < 0 or scenes < 1:
        raise ValueError("run_folders must be >= 0 and scenes >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return sorted(write_run_folder(out_dir, i, scenes, seed) for i in range(run_folders))
