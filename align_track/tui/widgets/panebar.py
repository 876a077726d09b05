"""The pane bar: '1 Runs  2 Scenes …' with the shown pane highlighted.

Textual's TabbedContent switches through messages, so two switches in a row (escape then c,
typed fast) can land on the first one; a ContentSwitcher plus this bar switches at once.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class PaneBar(Widget):
    """Not focusable: panes are switched by their number keys from anywhere."""

    DEFAULT_CSS = """
    PaneBar { height: 1; background: $panel; }
    PaneBar > .panebar--active { background: $primary; color: $text; text-style: bold; }
    PaneBar > .panebar--key { color: $accent; text-style: bold; }
    PaneBar:ansi > .panebar--active { background: ansi_blue; color: ansi_bright_white; }
    PaneBar:ansi > .panebar--key { color: ansi_bright_yellow; }
    """
    COMPONENT_CLASSES = {"panebar--active", "panebar--key"}

    active: reactive[str] = reactive("")

    def __init__(self, panes: list[tuple[str, str, str, str]], id: str | None = None) -> None:
        """``panes``: (pane id, key, title, short title) in order."""
        super().__init__(id=id)
        self.panes = panes

    def render(self) -> Text:
        """Every pane's key and a name for it stay in view: where the titles do not fit (60 columns), the spacing
        tightens, then the other panes' titles give way to their short forms (``7 Ana``) from the last one back,
        and only where even those do not fit are they dropped, rather than the bar cropping '7 Analysis  8 Sweep'
        out of sight."""
        width = self.size.width
        labels: dict[str, str | None] = {pane_id: title for pane_id, _, title, _ in self.panes}
        text = self._text(labels, compact=False)
        if not width or text.cell_len <= width:
            return text
        others = [p for p in reversed(self.panes) if p[0] != self.active]
        for step in ("compact", *(("short", p[0], p[3]) for p in others), *(("drop", p[0], None) for p in others)):
            if step != "compact":
                labels[step[1]] = step[2]
            text = self._text(labels, compact=True)
            if text.cell_len <= width:
                return text
        return text

    def _text(self, labels: dict[str, str | None], compact: bool) -> Text:
        active_style = self.get_component_rich_style("panebar--active")
        key_style = self.get_component_rich_style("panebar--key")
        text = Text(no_wrap=True, overflow="crop")
        for pane_id, key, title, _ in self.panes:
            if pane_id == self.active:
                text.append(f" {key} {title} ", active_style)
                continue
            text.append(f" {key}", key_style)
            if labels[pane_id]:
                text.append(f" {labels[pane_id]}" if compact else f" {labels[pane_id]} ")
        return text
