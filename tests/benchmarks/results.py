"""One shape for every benchmark's results: each figure is align-track against a baseline measured in the same
run, with the same repeats on both sides; printed as it is measured and written to bench-results/<bench>.json,
so a later run can be compared with it and tests.benchmarks.speed_table can rebuild the README's table.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO / "bench-results"


@dataclass
class Figure:
    """One measured figure; lower is better for both values, so ratio > 1 means align-track is faster."""

    figure: str
    unit: str
    align_track: float
    baseline: float
    baseline_name: str
    repeats: int
    corpus: str

    @property
    def ratio(self) -> float:
        return self.baseline / self.align_track if self.align_track > 0 else float("inf")

    def line(self) -> str:
        return (f"RATIO {self.figure}: {self.ratio:.2f}x  (align-track {self.align_track:.3g} {self.unit}, "
                f"{self.baseline_name} {self.baseline:.3g} {self.unit}; best of {self.repeats} each; {self.corpus})")


@dataclass
class Results:
    """The figures of one benchmark run, printed as they are added and saved as JSON at the end."""

    bench: str
    figures: list[Figure] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        print(figure.line(), flush=True)
        return figure

    def save(self, out_dir: Path = RESULTS_DIR) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{self.bench}.json"
        data = {"bench": self.bench, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"cpus": _cpus(), "python": platform.python_version()},
                "figures": [{**asdict(f), "ratio": round(f.ratio, 3)} for f in self.figures], "notes": self.notes}
        path.write_text(json.dumps(data, indent=2) + "\n")
        print(f"results -> {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
        return path


def best_of(repeats: int, measure: Callable[[], float]) -> float:
    """The smallest of ``repeats`` measurements: the least disturbed one on a shared machine."""
    return min(measure() for _ in range(repeats))


def seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _cpus() -> int | None:
    import os

    return os.cpu_count()
