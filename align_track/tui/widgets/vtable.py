"""A table that paints only the rows on screen, so 10,000 runs filter and sort in milliseconds.

Textual's DataTable builds objects per row and takes seconds to refill with 10,000 rows.
Here rows are plain tuples of strings set once; a filter or a sort only replaces ``view``
(the row indices to show, in order) and repaints the visible lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from align_track.errors import printable
from align_track.query.textfit import cut_apart, cut_middle, share_widths, shared_spans, tell_apart_width

MARK = "●"
READABLE = 20
"""Cells an ``apart`` column keeps before a ``whole`` column may join the fitted ones (see ``fit_widths``)."""
CellStyle = Callable[[int, int], "Style | None"]
"""(row index, column index) -> extra style for that cell, or None."""


@dataclass(frozen=True)
class Column:
    """A column: ``key`` names it for sorting and haystacks, ``max_width`` caps it (longer cells get '…').

    ``middle``: cut long values in the middle (``pipeline_comp…regression``), for values whose end tells
    them apart. ``essential``/``grow``/``min_width``/``whole``/``apart``: see :meth:`VirtualTable.fit_widths`.
    ``sort_key``: the upper-case letter that sorts by this column ('' = a free letter of the label, see
    ``sort_letters``).
    """

    key: str
    label: str
    max_width: int = 40
    numeric: bool = False
    middle: bool = False
    grow: bool = False
    min_width: int = 0
    essential: bool = False
    sort_key: str = ""
    whole: bool = False
    apart: bool = False


Sorter = Callable[[int, bool], None]
"""(column index, reverse): a pane that owns its rows' order sorts them itself (and sets ``sort_column``)."""


def sort_letters(columns: Sequence[Column], reserved: set[str]) -> dict[str, int]:
    """Upper-case letter -> column, k9s style (shift+letter sorts): a column's own ``sort_key``, else the first
    letter of its label that no other column and no binding in ``reserved`` holds; unlabelled columns get none."""
    letters: dict[str, int] = {}
    for i, col in enumerate(columns):
        key = col.sort_key.upper()
        if key and key not in reserved and key not in letters:
            letters[key] = i
    taken = set(letters.values())
    # labels with fewest letters choose first: compare's run columns 'A', 'B', 'C' keep their own letter
    for i in sorted(range(len(columns)), key=lambda i: len(set(columns[i].label.upper()))):
        col = columns[i]
        if i in taken:
            continue
        for ch in col.label.upper():
            if "A" <= ch <= "Z" and ch not in reserved and ch not in letters:
                letters[ch] = i
                break
    return letters


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").rstrip("%s"))
    except ValueError:
        return None


def cell_sort_key(text: str, numeric: bool) -> tuple:
    """How a cell sorts when the table orders its rows itself: numbers as numbers, text case-blind."""
    if numeric and (value := _number(text.strip())) is not None:
        return (0, value, "")
    return (1, 0.0, text.strip().lower())


class VirtualTable(ScrollView, can_focus=True):
    """Rows of strings with a cursor, optional mark column, sort arrows and per-cell styles."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup,ctrl+u", "page_up", "Page up", show=False),
        Binding("pagedown,ctrl+d", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("left", "scroll_left", "Column left", show=False),
        Binding("right", "scroll_right", "Column right", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "vtable--header", "vtable--cursor", "vtable--marked", "vtable--empty", "vtable--key"}

    DEFAULT_CSS = """
    VirtualTable {
        height: 1fr;
        background: $surface;
        & > .vtable--header { text-style: bold; background: $panel; color: $foreground; }
        & > .vtable--cursor { background: $block-cursor-blurred-background; }
        & > .vtable--marked { color: $accent; text-style: bold; }
        & > .vtable--empty { color: $text-muted; text-style: italic; }
        & > .vtable--key { text-style: bold underline; color: $accent; }
        &:ansi > .vtable--key { text-style: bold underline; color: ansi_bright_yellow; }
        &:focus > .vtable--cursor {
            background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold;
        }
        &:ansi > .vtable--header { background: ansi_blue; color: ansi_bright_white; }
        &:ansi > .vtable--cursor { background: ansi_white; color: ansi_black; }
        &:ansi:focus > .vtable--cursor { background: ansi_bright_white; color: ansi_black; }
        &:ansi > .vtable--marked { color: ansi_bright_yellow; }
    }
    """

    cursor: reactive[int] = reactive(0, always_update=True, init=False)
    """Position of the cursor in ``view`` (not a row index)."""

    class Highlighted(Message):
        """The cursor moved; ``row`` is the row index under it (None when the view is empty)."""

        def __init__(self, table: VirtualTable, row: int | None) -> None:
            super().__init__()
            self.table = table
            self.row = row

        @property
        def control(self) -> VirtualTable:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column] = (),
        *,
        markable: bool = False,
        empty_text: str = "nothing to show",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns: list[Column] = list(columns)
        self.rows: Sequence[tuple[str, ...]] = []
        self.view: list[int] = []
        self.widths: list[int] = [len(c.label) for c in self.columns]
        self.marked: set[int] = set()
        self.markable = markable
        self.empty_text = empty_text
        self.cell_style: CellStyle | None = None
        self.sort_column: int | None = None
        self.sort_reverse = False
        self.sorter: Sorter | None = None
        """Set by a pane that orders the rows itself; None: the table sorts ``view`` by the cells."""
        self._own_sort = False
        """The table sorted ``view`` itself (a sort key without ``sorter``): new views are sorted the same way."""
        self._letters: dict[str, int] | None = None
        self._spans: tuple[tuple, dict[int, dict[str, tuple[int, int]]]] | None = None
        """(what was on screen, column -> value -> shared prefix/suffix): see ``_screen_spans``."""
        self.gap = 2
        self.spacing = 2
        """The gap between columns where they fit; ``gap`` is 1 where even their ``min_width`` does not (60 cols)."""
        self.frozen = 0
        """Leading columns that always stay in place when the table scrolls right (e.g. a row's ≠ marker)."""
        self.pin: int | None = None
        """Leading columns to keep in place when they fit in half the width (None: through the first labelled
        column, which tells the rows apart)."""
        self._frozen_width = 0
        self.natural: list[int] = list(self.widths)
        self.keep: list[int] = [0] * len(self.columns)
        """Per column, the cells that keep what tells its values apart (``textfit.tell_apart_width``; 0: none)."""
        self._styles: dict[str, Style] | None = None

    # ------------------------------------------------------------------ data

    def set_data(self, columns: Sequence[Column], rows: Sequence[tuple[str, ...]], view: list[int] | None = None,
                 natural: Sequence[int] | None = None, keep: Sequence[int] | None = None) -> None:
        """Replace columns and rows; widths are measured here once, not on every filter (or given as
        ``natural``: each column's widest cell, header included, and ``keep``, see ``self.keep``, measured where
        the rows were built)."""
        if self._own_sort and [c.key for c in columns] != [c.key for c in self.columns]:
            self._own_sort, self.sort_column = False, None
        self.columns = list(columns)
        self._letters = None
        self.rows = rows
        self.marked = set()
        if natural is not None and len(natural) == len(self.columns):
            self.natural = list(natural)
        else:
            self.natural = self._measure(rows)
        if keep is not None and len(keep) == len(self.columns):
            self.keep = list(keep)
        else:
            self.keep = self._measure_keep(rows)
        self.fit_widths()
        self.set_view(list(range(len(rows))) if view is None else view, keep_row=False)

    def update_rows(self, rows: Sequence[tuple[str, ...]]) -> None:
        """The same rows with new text (details read after the rows were shown): the widths are measured again
        (kept, a column measured on '…' placeholders stays a few cells wide), view and cursor are kept."""
        self.rows = rows
        self.natural = self._measure(rows)
        self.keep = self._measure_keep(rows)
        self.fit_widths()
        self._update_virtual_size()
        self.refresh()

    def _measure(self, rows: Sequence[tuple[str, ...]]) -> list[int]:
        return [max([cell_len(col.label) + (2 if not col.numeric else 1)] + [cell_len(r[i]) for r in rows])
                for i, col in enumerate(self.columns)]

    def _measure_keep(self, rows: Sequence[tuple[str, ...]]) -> list[int]:
        """``self.keep`` of the fitted columns cut in the middle (see ``fit_widths``); 0 for the others."""
        return [tell_apart_width(r[i] for r in rows if i < len(r)) if c.apart else 0
                for i, c in enumerate(self.columns)]

    def set_view(self, view: list[int], keep_row: bool = True) -> None:
        """Show these row indices in this order; the cursor stays on its row when that row is still shown."""
        current = self.current_row if keep_row else None
        if self._own_sort and self.sort_column is not None:
            view = self._sorted(view, self.sort_column, self.sort_reverse)
        self.view = view
        position = 0
        if current is not None:
            try:
                position = view.index(current)
            except ValueError:
                position = 0
        self._update_virtual_size()
        self.refresh()
        self.cursor = min(position, max(len(view) - 1, 0))

    def fit_widths(self) -> None:
        """Columns sized to the terminal, shared fairly (``textfit.share_widths``) among the fitted ones:

        the ``essential`` columns (the leading ones that tell rows apart) and, when the screen holds it whole
        beside every column before it at its ``min_width`` (an ``apart`` one at ``READABLE`` cells), a ``whole``
        column (the Runs pane's folder: at 200 columns, wide ADM and target values no longer push it off screen).
        Each gets its ``min_width`` (its capped width when it has none; beside a ``whole`` column, an ``apart``
        one ``READABLE``), then the ``whole`` column its longest value, then all ``keep`` (what tells their
        values apart), then the ``apart`` ones their cap, then all their cap, then the ``grow`` ones their
        longest value.
        One space between columns where two would cut them. Later columns keep their cap and scroll into view."""
        if len(self.natural) != len(self.columns):
            self.natural = [cell_len(c.label) + 2 for c in self.columns]
        if len(self.keep) != len(self.columns):
            self.keep = [0] * len(self.columns)
        capped = [min(col.max_width, n) for col, n in zip(self.columns, self.natural, strict=True)]
        widths = list(capped)
        essential = [i for i, c in enumerate(self.columns) if c.essential]
        self.gap = self.spacing
        if self.is_mounted and self.size.width > 0 and essential:
            want = [n if c.grow or c.whole else w for c, n, w in zip(self.columns, self.natural, capped, strict=True)]
            floor = [min(w, c.min_width) if c.min_width else w for c, w in zip(self.columns, want, strict=True)]
            keep = [max(f, min(w, k)) for f, w, k in zip(floor, want, self.keep, strict=True)]
            whole = [c.whole for c in self.columns]
            mark = 2 if self.markable else 0

            def room(head: range, gap: int) -> int:
                return self.size.width - mark - gap * (len(head) - 1) - 1

            head, gap = range(essential[-1] + 1), self.spacing
            wholes = [i for i, c in enumerate(self.columns) if c.whole and i > essential[-1]]
            longer = range(wholes[-1] + 1) if wholes else head
            # beside a whole column, an apart one keeps READABLE cells (ADM, target): at their 14-16 cell floors they
            # read as fragments (`…compar…ession` at 140 columns), a worse trade than the folder a scroll away
            readable = [max(f, min(c, READABLE)) if col.apart else f
                        for col, f, c in zip(self.columns, floor, capped, strict=True)]
            if wholes and sum(want[i] if whole[i] else readable[i] for i in longer) <= room(longer, 1):
                # the whole column joins when it fits whole beside the others' floors (apart ones: readable)
                roomy = sum(want[i] if whole[i] else max(keep[i], readable[i]) for i in longer) <= room(longer,
                                                                                                      self.spacing)
                head, gap, floor = longer, self.spacing if roomy else 1, readable
            elif sum(floor[i] for i in head) > room(head, gap):
                gap = 1  # one space between columns, not the last one scrolled off; what that frees goes to
                capped = list(floor)  # the grow columns (a sentence: 'chosen action'), the rest stay at floor
                want = [w if c.grow else f for c, w, f in zip(self.columns, want, floor, strict=True)]
            self.gap = gap
            apart = [c.apart for c in self.columns]
            fitted = share_widths(*([values[i] for i in head] for values in (floor, keep, capped, want, whole)),
                                  room(head, gap), [apart[i] for i in head])
            widths[: len(fitted)] = fitted
        self.widths = widths

    def on_resize(self) -> None:
        self.fit_widths()
        self._update_virtual_size()
        self._scroll_cursor_into_view()
        self.refresh()

    def append_row(self, row: tuple[str, ...]) -> None:
        """Add one row at the end (widths grow as needed): a live log without re-measuring every row."""
        if not isinstance(self.rows, list):
            self.rows = list(self.rows)
        self.rows.append(row)
        changed = False
        for i, _col in enumerate(self.columns):
            length = cell_len(row[i]) if i < len(row) else 0
            if length > self.natural[i]:
                self.natural[i] = length
                changed = True
        if changed:
            self.fit_widths()
        self.view.append(len(self.rows) - 1)
        if self._own_sort and self.sort_column is not None:  # a sorted log stays sorted as rows arrive
            current = self.current_row
            self.view = self._sorted(self.view, self.sort_column, self.sort_reverse)
            if current is not None and self.view.index(current) != self.cursor:
                self.move_to_row(current)
        self._update_virtual_size()
        self.refresh()

    @property
    def current_row(self) -> int | None:
        """Row index under the cursor (None when nothing is shown)."""
        return self.view[self.cursor] if 0 <= self.cursor < len(self.view) else None

    def move_to_row(self, row: int) -> bool:
        """Put the cursor on ``row`` if it is shown."""
        try:
            self.cursor = self.view.index(row)
        except ValueError:
            return False
        return True

    @property
    def total_width(self) -> int:
        mark = 2 if self.markable else 0
        return mark + sum(self.widths) + self.gap * max(len(self.widths) - 1, 0)

    def _update_virtual_size(self) -> None:
        """New scroll extent; a full screen layout only when a scrollbar appears or disappears.

        Assigning ``virtual_size`` relayouts the whole screen (tens of ms); while typing a filter
        the table only needs its own lines repainted.
        """
        size = Size(self.total_width, len(self.view) + 1)
        if size == self.virtual_size:
            return
        region = self.scrollable_content_region
        scrollbars = (size.height > region.height, size.width > region.width)
        if not self.is_mounted or scrollbars != (self.show_vertical_scrollbar, self.show_horizontal_scrollbar):
            self.virtual_size = size
            return
        self.set_reactive(VirtualTable.virtual_size, size)
        self._scroll_update(size)
        self.refresh()

    # ------------------------------------------------------------------ cursor

    def watch_cursor(self, old: int, new: int) -> None:
        clamped = max(0, min(new, len(self.view) - 1)) if self.view else 0
        if clamped != new:
            self.cursor = clamped
            return
        self._scroll_cursor_into_view()
        self.refresh()
        self.post_message(self.Highlighted(self, self.current_row))

    def _page_height(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)

    def _scroll_cursor_into_view(self) -> None:
        height = self._page_height()
        top = round(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self.cursor -= 1

    def action_cursor_down(self) -> None:
        self.cursor += 1

    def action_page_up(self) -> None:
        self._page(-1)

    def action_page_down(self) -> None:
        self._page(1)

    def _page(self, direction: int) -> None:
        """A page the other way right after a page undoes it exactly, as in vi: the page's height may change in
        between (the Runs pane's details strip grows for a long run), and ctrl+d then ctrl+u landed a row off."""
        last = getattr(self, "_last_page", None)
        if last is not None and last[0] == -direction and last[2] == self.cursor:
            step = last[1]
        else:
            step = self._page_height()
        before = self.cursor
        self.cursor += direction * step
        self._last_page = (direction, abs(self.cursor - before), self.cursor)

    def action_first(self) -> None:
        self.cursor = 0

    def action_last(self) -> None:
        self.cursor = len(self.view) - 1

    def column_stops(self) -> list[int]:
        """The ``scroll_x`` values that put each scrolling column first, right of the pinned ones."""
        pins = self.pinned
        mark = 2 if self.markable else 0
        base = self._pinned_width(pins)
        stops, x = [0], mark
        for i, width in enumerate(self.widths):
            if i > pins and x - base > 0:
                stops.append(x - base)
            x += width + self.gap
        return stops

    @property
    def first_scrolled_column(self) -> int:
        """The column shown first right of the pinned ones (what → and ← move by one)."""
        stops = self.column_stops()
        x = round(self.scroll_x)
        at = max((i for i, stop in enumerate(stops) if stop <= x), default=0)
        return self.pinned + at

    def action_scroll_left(self) -> None:
        """One column left (k9s/lazygit habit: a column per key, not a few characters)."""
        x = round(self.scroll_x)
        before = [stop for stop in self.column_stops() if stop < x]
        self.scroll_to(x=before[-1] if before else 0, animate=False, immediate=True)
        self.refresh()

    def action_scroll_right(self) -> None:
        """One column right, up to where the last column is in view."""
        x, end = round(self.scroll_x), round(self.max_scroll_x)
        after = [stop for stop in self.column_stops() if stop > x]
        if after and x < end:
            self.scroll_to(x=min(after[0], end), animate=False, immediate=True)
            self.refresh()

    # ------------------------------------------------------------------ sorting by a key per column

    def _reserved_keys(self) -> set[str]:
        """Keys bound by this table, the panes around it, the screen or the app: never taken for sorting."""
        keys: set[str] = set()
        for node in [*self.ancestors_with_self, self.app] if self.is_attached else [self]:
            for key in node._bindings.key_to_bindings:
                keys.update(k.strip() for k in key.split(","))
        return keys

    @property
    def sort_letters(self) -> dict[str, int]:
        """Upper-case letter -> column it sorts by (shown underlined in the header)."""
        if self._letters is None or not self.is_attached:
            letters = sort_letters(self.columns, self._reserved_keys())
            if not self.is_attached:
                return letters
            self._letters = letters
        return self._letters

    def sort_by(self, column: int, reverse: bool | None = None) -> None:
        """Sort by ``column``; the same column again reverses (k9s). The pane's ``sorter`` does it when set."""
        if reverse is None:
            reverse = column == self.sort_column and not self.sort_reverse
        if self.sorter is not None:
            self.sorter(column, reverse)
            return
        self.sort_column, self.sort_reverse, self._own_sort = column, reverse, True
        self.set_view(list(self.view))

    def clear_sort(self) -> None:
        """The pane ordered the rows its own way (its ``o``/``s``): no column's arrow, no re-sorting."""
        self.sort_column, self._own_sort = None, False
        self.refresh()

    def _sorted(self, view: list[int], column: int, reverse: bool) -> list[int]:
        """``view`` ordered by a column's cells; empty cells last either way, ties in the given order."""
        numeric = self.columns[column].numeric if column < len(self.columns) else False
        rows = self.rows

        def text(i: int) -> str:
            cells = rows[i]
            return cells[column] if column < len(cells) else ""

        present = [i for i in view if text(i).strip() not in ("", "–", "-")]
        missing = [i for i in view if text(i).strip() in ("", "–", "-")]
        present.sort(key=lambda i: cell_sort_key(text(i), numeric), reverse=reverse)
        return present + missing

    def on_key(self, event: events.Key) -> None:
        """Shift+letter sorts by the column whose header shows that letter underlined."""
        char = event.character or ""
        if len(char) == 1 and "A" <= char <= "Z" and char == event.key:
            column = self.sort_letters.get(char)
            if column is not None:
                event.stop()
                event.prevent_default()
                self.sort_by(column)

    def _on_focus(self, event: events.Focus) -> None:
        super()._on_focus(event)
        self._styles = None
        self.refresh()

    def _on_blur(self, event: events.Blur) -> None:
        super()._on_blur(event)
        self._styles = None
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None

    def _style(self, name: str) -> Style:
        """Resolved styles, computed once per CSS/focus change rather than per painted line."""
        if self._styles is None:
            base = self.rich_style
            self._styles = {"": base}
            for part in ("header", "cursor", "marked", "empty"):
                self._styles[part] = base + self.get_component_rich_style(f"vtable--{part}", partial=True)
            self._styles["key"] = self.get_component_rich_style("vtable--key", partial=True)  # over the header
        return self._styles[name]

    async def _on_click(self, event: events.Click) -> None:
        position = round(self.scroll_y) + event.y - 1
        if event.y >= 1 and position < len(self.view):
            self.cursor = position

    # ------------------------------------------------------------------ painting

    def _cell(self, text: str, width: int, numeric: bool, middle: bool = False,
              span: tuple[int, int] | None = None) -> str:
        length = cell_len(text)
        if length > width:
            if span is not None:
                return cut_apart(text, width, *span)
            return cut_middle(text, width) if middle else set_cell_size(text, width - 1) + "…"
        pad = " " * (width - length)
        return pad + text if numeric else text + pad

    def _screen_spans(self) -> dict[int, dict[str, tuple[int, int]]]:
        """For each middle-cut column too narrow for its values: what each value on screen shares with the others
        there, so a cut drops the shared part and keeps the part that tells the rows apart (issue 25)."""
        top = round(self.scroll_y)
        shown = self.view[top: top + max(self.size.height - 1, 0)]
        key = (tuple(shown), tuple(self.widths), id(self.rows), len(self.rows))
        if self._spans is not None and self._spans[0] == key:
            return self._spans[1]
        spans: dict[int, dict[str, tuple[int, int]]] = {}
        for i, col in enumerate(self.columns):
            if col.middle and i < len(self.natural) and self.natural[i] > self.widths[i]:
                values = [cells[i] for cells in (self.rows[r] for r in shown) if i < len(cells)]
                spans[i] = shared_spans(values)
        self._spans = (key, spans)
        return spans

    def _header_strip(self, style: Style) -> Strip:
        segments: list[Segment] = []
        if self.markable:
            segments.append(Segment("  ", style))
        gap = Segment(" " * self.gap, style)
        key_style = style + self._style("key")
        letters = {column: letter for letter, column in self.sort_letters.items()}
        spans = shared_spans(c.label for c in self.columns if c.label)  # two long headers alike: cut the same part
        for i, col in enumerate(self.columns):
            label = col.label
            if i == self.sort_column:
                label = f"{label}{'▼' if self.sort_reverse else '▲'}"
            if i:
                segments.append(gap)
            span = spans.get(col.label)
            text = self._cell(label, self.widths[i], col.numeric, span=span if span and any(span) else None)
            at = self._key_position(text, label, letters.get(i))
            if at is None:
                segments.append(Segment(text, style))
            else:
                segments += [Segment(text[:at], style), Segment(text[at], key_style), Segment(text[at + 1:], style)]
        return self._split(segments)

    @staticmethod
    def _key_position(text: str, label: str, letter: str | None) -> int | None:
        """Where ``letter`` (a sort key) shows in a header cell, or None (no key, or cut off)."""
        if letter is None:
            return None
        found = label.upper().find(letter)
        start = text.find(label[: found + 1]) if found >= 0 else -1
        if start < 0 or not text.isascii():
            return None
        at = start + found
        return at if at < len(text) and text[at].upper() == letter else None

    def _row_strip(self, position: int) -> tuple[Strip, Style]:
        row = self.view[position]
        cells = self.rows[row]
        marked = row in self.marked
        style = self._style("marked") if marked else self._style("")
        cursor = self._style("cursor") if position == self.cursor else None
        line = style + cursor if cursor else style
        segments: list[Segment] = []
        if self.markable:
            segments.append(Segment(f"{MARK} " if marked else "  ", line))
        gap = Segment(" " * self.gap, line)
        spans = self._screen_spans()
        for i, col in enumerate(self.columns):
            if i:
                segments.append(gap)
            extra = self.cell_style(row, i) if self.cell_style is not None else None
            value = cells[i] if i < len(cells) else ""
            span = spans[i].get(value) if i in spans else None
            text = self._cell(value, self.widths[i], col.numeric, col.middle, span)
            if extra:  # the cursor's colours still win, so its row stays readable
                cell = style + extra + cursor if cursor else style + extra
            else:
                cell = line
            segments.append(Segment(text, cell))
        return self._split(segments), line

    @property
    def pinned(self) -> int:
        """Leading columns kept in place when scrolling sideways: ``pin`` (else through the first labelled
        column), fewer when they would take more than half the width, never fewer than ``frozen``."""
        first = next((i + 1 for i, c in enumerate(self.columns) if c.label), 0)
        for pins in (self.pin, first):
            if pins is not None and (not self.size.width or self._pinned_width(pins) <= self.size.width // 2):
                return min(max(pins, self.frozen), len(self.widths))
        return min(self.frozen, len(self.widths))

    def _pinned_width(self, pins: int) -> int:
        if not pins:
            return 0
        return (2 if self.markable else 0) + sum(self.widths[:pins]) + self.gap * pins

    def _split(self, segments: list[Segment]) -> Strip:
        """Remember where the pinned columns end (their cell width) for ``render_line``."""
        self._frozen_width = self._pinned_width(self.pinned)
        return Strip(segments)

    def _crop(self, strip: Strip, scroll_x: int, width: int, style: Style) -> Strip:
        """The visible part of a line: frozen columns first, then the rest scrolled by ``scroll_x``."""
        frozen = self._frozen_width
        if not frozen or scroll_x == 0:
            return strip.crop_extend(scroll_x, scroll_x + width, style)
        head = strip.crop(0, frozen)
        tail = strip.crop_extend(frozen + scroll_x, frozen + scroll_x + max(width - frozen, 0), style)
        return Strip.join([head, tail])

    def empty_lines(self, width: int) -> list[str]:
        """``empty_text`` wrapped to the table's width: an error shown where the rows would be is read in full."""
        import textwrap

        if not self.empty_text:
            return []
        return textwrap.wrap(printable(self.empty_text), max(width - 2, 10), break_on_hyphens=False) or [""]

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self._style("")
        if y == 0:
            header = self._style("header")
            return self._crop(self._header_strip(header), scroll_x, width, header)
        position = scroll_y + y - 1
        if position >= len(self.view):
            lines = self.empty_lines(width) if not self.view else []
            if position < len(lines):
                return Strip([Segment(f" {lines[position]}", self._style("empty"))]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        strip, style = self._row_strip(position)
        return self._crop(strip, scroll_x, width, style)

