"""Fitting text tables to a terminal's width: values cut in the middle (the end often tells runs apart)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


SHORT_END = 4
"""A shared suffix this short is kept with the part that differs, not cut apart from it."""


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def shared_spans(values: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Each distinct value -> (p, s): the longest prefix and suffix it shares with any other value.

    What lies between is what tells it apart: ``cut_apart`` keeps it. Neighbours in sorted order share the
    longest prefix (and, reversed, suffix), so this costs a sort, not a comparison of every pair.
    """
    distinct = sorted(set(values))
    spans = dict.fromkeys(distinct, (0, 0))
    if len(distinct) < 2:
        return spans
    prefix = dict.fromkeys(distinct, 0)
    for a, b in zip(distinct, distinct[1:], strict=False):
        n = _common_prefix(a, b)
        prefix[a], prefix[b] = max(prefix[a], n), max(prefix[b], n)
    backwards = sorted(distinct, key=lambda v: v[::-1])
    suffix = dict.fromkeys(distinct, 0)
    for a, b in zip(backwards, backwards[1:], strict=False):
        n = _common_prefix(a[::-1], b[::-1])
        suffix[a], suffix[b] = max(suffix[a], n), max(suffix[b], n)
    return {v: (prefix[v], suffix[v]) for v in distinct}


def _fit(part: str, room: int, head: bool = False) -> str:
    """``part`` in ``room`` cells; ``head``: a shared prefix short of room keeps its start ('ADE…'), not two
    stubs ('A…T-')."""
    if cell_len(part) <= room:
        return part
    if room <= 0:
        return ""
    if head and room < 10:
        return set_cell_size(part, room - 1) + "…"
    return cut_middle(part, room)


def cut_apart(text: str, width: int, prefix: int = 0, suffix: int = 0) -> str:
    """``text`` in ``width`` cells, cut where it is like its neighbours (``prefix``/``suffix`` characters shared
    with other values, see ``shared_spans``), never in the part that differs.

    ``Qwen2.5-7B-Instruct`` beside ``Qwen2.5-32B-Instruct`` in 13 cells -> ``…-7B-Instruct`` (a middle cut
    gives ``Qwen2…nstruct`` for both). Nothing shared: ``cut_middle``.
    """
    if cell_len(text) <= width:
        return text
    n = len(text)
    prefix = min(prefix, n)
    suffix = min(suffix, n - prefix)
    if prefix < n and prefix + suffix >= n:
        suffix = n - prefix - 1  # at least the first character that differs
    if suffix <= SHORT_END:
        suffix = 0  # a short shared end ('-0.7', 'ADM') reads as one with what precedes it
    if prefix + suffix == 0 or width < 3:
        return cut_middle(text, width)
    pre, core, suf = text[:prefix], text[prefix:n - suffix], text[n - suffix:]
    marks = (1 if pre else 0) + (1 if suf else 0)
    room = width - cell_len(core)
    if room < marks:  # the differing part alone is too wide: its two ends, marked where the rest was
        inner = width - marks
        return ("…" if pre else "") + cut_middle(core, inner) + ("…" if suf else "") if inner > 0 else \
            cut_middle(text, width)
    if cell_len(suf) <= room - (1 if pre else 0):  # the shared end whole (a size, '-Instruct', 'ADM')
        return _fit(pre, room - cell_len(suf), head=True) + core + suf
    head = "…" if pre else ""
    return head + core + _fit(suf, room - len(head))


def tell_apart_width(values: Iterable[str], limit: int = 512) -> int:
    """The cells ``cut_apart`` needs to keep, for every value, the part it shares with no other value (plus the
    '…' marking each cut shared part): a column narrower than this shows two values the same.

    0 (no need beyond the column's minimum) for fewer than two distinct values, for values that share no end
    (a middle cut keeps both ends, which already differ), and for more than ``limit`` distinct values (a column
    of one value per row, like a folder, is not measured: it would cost a sort of every row on each reload).
    """
    distinct = set(values)
    if not 2 <= len(distinct) <= limit:
        return 0
    need = 0
    for value, (prefix, suffix) in shared_spans(distinct).items():
        n = len(value)
        prefix = min(prefix, n)
        suffix = min(suffix, n - prefix)
        if prefix < n and prefix + suffix >= n:
            suffix = n - prefix - 1
        if suffix <= SHORT_END:
            suffix = 0
        if prefix + suffix == 0:
            continue
        need = max(need, cell_len(value[prefix:n - suffix]) + (1 if prefix else 0) + (1 if suffix else 0))
    return need


def _raise(widths: list[int], goals: Sequence[int], base: Sequence[int], room: int, columns: Sequence[int],
           right_first: bool) -> int:
    """Give ``room`` cells a cell at a time to the column of ``columns`` least above its ``base`` and still short
    of its goal (ties: the rightmost first, else the leftmost); returns the cells left."""
    order = list(reversed(columns)) if right_first else list(columns)
    while room > 0:
        short = [i for i in order if widths[i] < goals[i]]
        if not short:
            break
        i = min(short, key=lambda i: widths[i] - base[i])
        widths[i] += 1
        room -= 1
    return room


def share_widths(floor: Sequence[int], keep: Sequence[int], cap: Sequence[int], want: Sequence[int],
                 whole: Sequence[bool], available: int, ahead: Sequence[bool] | None = None) -> list[int]:
    """Column widths for ``available`` cells, given out in turns so no column widens at the others' cost:

    every column its ``floor``; the ``whole`` columns (what users read, e.g. the folder) their ``want``; the others
    ``keep`` (what tells their rows apart), then their ``cap``, each as many cells above its floor as the next
    (max-min fair: a short column is whole soon, the long ones share the rest); then up to ``want`` (a column that
    may grow past its cap: its longest value), as many cells above the cap each. ``ahead`` columns (the Runs
    table's ADM and target, what runs are compared by) reach their cap before the others grow past ``keep``.
    Floors that do not fit are returned as they are (the table scrolls)."""
    widths = list(floor)
    room = available - sum(widths)
    everyone = range(len(widths))
    room = _raise(widths, want, floor, room, [i for i in everyone if whole[i]], right_first=True)
    room = _raise(widths, keep, floor, room, everyone, right_first=True)
    room = _raise(widths, cap, floor, room, [i for i in everyone if ahead and ahead[i]], right_first=True)
    room = _raise(widths, cap, floor, room, everyone, right_first=True)
    _raise(widths, want, cap, room, everyone, right_first=False)
    return widths
