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

    def __init__(self, panes: list[tuple[str, str, str]], id: str | None = None) -> None:
        """``panes``: (pane id, key, title) in order."""
        super().__init__(id=id)
        self.panes = panes

    def render(self) -> Text:
        """Every pane's key stays in view: where the titles do not fit (60 columns), the other panes' titles are
        dropped from the last one back, rather than the bar cropping '7 Analysis  8 Sweep' out of sight."""
        width = self.size.width
        titled = {pane_id for pane_id, _, _ in self.panes}
        for pane_id, _, _ in reversed(self.panes):
            text = self._text(titled)
            if not width or text.cell_len <= width:
                return text
            if pane_id != self.active:
                titled.discard(pane_id)
        return self._text(titled)

    def _text(self, titled: set[str]) -> Text:
        active_style = self.get_component_rich_style("panebar--active")
        key_style = self.get_component_rich_style("panebar--key")
        text = Text(no_wrap=True, overflow="crop")
        for pane_id, key, title in self.panes:
            if pane_id == self.active:
                text.append(f" {key} {title} ", active_style)
            elif pane_id in titled:
                text.append(f" {key}", key_style)
                text.append(f" {title} ")
            else:
                text.append(f" {key}", key_style)
        return text
