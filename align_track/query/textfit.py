"""Fitting text tables to a terminal's width: values cut in the middle (the end often tells runs apart)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len, set_cell_size


def cut_middle(text: str, width: int) -> str:
    """``pipeline_comparative_regression`` in 20 cells -> ``pipeline_…regression``: both ends kept."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return "…"[:max(width, 0)]
    head = (width - 1) // 2
    tail = width - 1 - head
    end = ""
    for ch in reversed(text):
        if cell_len(ch + end) > tail:
            break
        end = ch + end
    return set_cell_size(text, head) + "…" + end


def fit_widths(natural: Sequence[int], minimum: Sequence[int], available: int) -> list[int]:
    """Column widths summing to at most ``available``: the widest column gives up a cell at a time,
    none below its ``minimum`` (so short columns like numbers are never cut)."""
    widths = list(natural)
    excess = sum(widths) - available
    while excess > 0:
        shrinkable = [i for i, w in enumerate(widths) if w > minimum[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i] - minimum[i])
        widths[widest] -= 1
        excess -= 1
    return widths
