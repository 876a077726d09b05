"""Readable run_variant values for runs that share ADM, LLM and alignment target.

A sweep puts such runs in folders that differ somewhere in their path
(``sweep/temperature-0.7/2025-06-12_10-31-02`` vs ``sweep/temperature-0.9/...``);
the variant is made of exactly the path components where they differ, so it is
stable across re-ingests of the same tree and readable at a glance.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable

DEFAULT = "default"


def differing_parts(paths: list[str]) -> list[str]:
    """For each path, the '/'-joined components (aligned from the left) where the paths are not all equal."""
    split = [p.split("/") for p in paths]
    width = max(len(parts) for parts in split)
    padded = [parts + [""] * (width - len(parts)) for parts in split]
    columns = [i for i in range(width) if len({parts[i] for parts in padded}) > 1]
    return ["/".join(parts[i] for i in columns if parts[i]) or DEFAULT for parts in padded]


def assign_variants(members: Iterable[tuple[Hashable, Hashable, str]]) -> dict[Hashable, str]:
    """Map each member ``(key, group, rel_path)`` to its run_variant.

    A group with one member gets ``default``; in larger groups each member gets the
    differing path components. Members of one folder (mixed targets) never share a
    group, since the target is part of the group.
    """
    groups: dict[Hashable, list[tuple[Hashable, str]]] = defaultdict(list)
    for key, group, rel_path in members:
        groups[group].append((key, rel_path))
    variants: dict[Hashable, str] = {}
    for entries in groups.values():
        if len(entries) == 1:
            variants[entries[0][0]] = DEFAULT
            continue
        names = differing_parts([path for _, path in entries])
        for (key, _), name in zip(entries, names, strict=True):
            variants[key] = name
    return variants
