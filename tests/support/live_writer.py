"""Write a run folder the way align-system does while it runs: config first, input_output.json rewritten
after each scene, timing.json last. Importable (tests drive it step by step) and runnable as a real
writer process (``python -m tests.support.live_writer DIR --scenes N --delay S``) that tests kill -9.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from tests.support.factory import config, merit_target, scene


def start(path: Path, cfg: dict | None = None) -> Path:
    """The folder and its Hydra config, before any scene."""
    (path / ".hydra").mkdir(parents=True, exist_ok=True)
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg or config(target=merit_target())))
    return path


def scenes(count: int) -> list[dict]:
    return [scene(f"S{i}", choice=i % 2) for i in range(count)]


def write_scenes(path: Path, count: int) -> None:
    """input_output.json with the first ``count`` scenes, rewritten in place as align-system does."""
    with open(path / "input_output.json", "w") as handle:
        json.dump(scenes(count), handle, indent=2)


def finish(path: Path, count: int) -> list[float]:
    """timing.json for ``count`` scenes (written last); returns the per-scene seconds."""
    times = [1.0 + 0.5 * i for i in range(count)]
    stats = {"n_actions_taken": count, "total_time_s": sum(times), "avg_time_s": sum(times) / max(count, 1),
             "max_time_s": max(times, default=0.0), "raw_times_s": times}
    (path / "timing.json").write_text(json.dumps({"scenarios": [stats], **stats}))
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--no-finish", action="store_true")
    args = parser.parse_args()
    start(args.folder)
    for n in range(1, args.scenes + 1):
        write_scenes(args.folder, n)
        print(f"scene {n}", flush=True)
        time.sleep(args.delay)
    if not args.no_finish:
        finish(args.folder, args.scenes)
        print("finished", flush=True)


if __name__ == "__main__":
    main()
