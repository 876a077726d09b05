"""The package tree is the architecture: imports run only downward, and no module imports itself in a cycle.

Layers, top to bottom: ``cli`` > ``demo`` > ``tui`` > ``ingest``, ``query``, ``mlflow_ui`` > ``store``, ``alignment``
> ``records``, ``schema``, ``scene_summary``. A module may import its own package or any package below it, never
one above or beside.
Lazy imports inside functions count too: they are how start-up stays light, not a way around the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "align_track"

RANK = {
    "records": 0, "schema": 0, "errors": 0, "scene_summary": 0,
    "store": 1, "alignment": 1,
    "ingest": 2, "query": 2, "mlflow_ui": 2,
    "tui": 3,
    "demo": 4,
    "cli": 5, "hydra": 5,
    "__main__": 6,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The layer unit of a module: ``align_track.ingest.mapping`` -> ``ingest``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("align_track"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("align_track"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The module an imported name refers to (``align_track.store.uri.StoreError`` -> ``align_track.store.uri``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for mod, path in MODULES.items():
        targets = {resolve(n) for n in imports_of(path)}
        graph[mod] = {t for t in targets if t and t != mod and t != "align_track"}
    return graph


def test_every_module_belongs_to_a_layer():
    assert {unit(m) for m in MODULES} - {""} <= set(RANK), "a new top-level module needs a place in RANK"


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_imports_run_only_downward(mod: str):
    here = unit(mod)
    if not here:
        return
    upward = sorted(t for t in edges()[mod] if unit(t) != here and RANK[unit(t)] >= RANK[here])
    assert not upward, f"{mod} ({here}, layer {RANK[here]}) imports up or sideways: {upward}"


def test_no_import_cycles():
    graph = edges()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, set())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert not cycles, f"import cycles: {cycles[:3]}"


def test_the_checker_sees_a_violation(tmp_path: Path):
    """The walk finds lazy imports inside functions, so an upward one cannot hide there."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from align_track.tui.app import AlignTrackApp\n")
    assert "align_track.tui.app.AlignTrackApp" in imports_of(probe)
    assert resolve("align_track.tui.app.AlignTrackApp") == "align_track.tui.app"
