"""The key bar: every binding active where the focus is, wrapped onto a second line when 80 columns are too few.

Textual's Footer is one line and cuts off what does not fit (at 80 columns the global keys
would never be seen); here a key and its label are never split across lines.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

MAX_LINES = 3
KEPT = ("?", "q", "^p")
"""Keys always shown: the help screen (which lists every key), quit, and the command palette."""


class KeyBar(Widget):
    """Shows ``key label`` for each shown binding of the focused widget's chain, then the command palette."""

    DEFAULT_CSS = """
    KeyBar { height: auto; max-height: 3; background: $footer-background; color: $footer-foreground; }
    KeyBar:ansi { background: ansi_default; }
    """
    COMPONENT_CLASSES = {"keybar--key"}
    DEFAULT_CSS += """
    KeyBar > .keybar--key { color: $footer-key-foreground; text-style: bold; }
    KeyBar:ansi > .keybar--key { color: ansi_bright_yellow; }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, lambda _screen: self.refresh(layout=True))

    def items(self) -> list[tuple[str, str]]:
        """(key as displayed, label) in the order Textual's Footer would show them."""
        seen: set[str] = set()
        out = []
        group = None
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            key = self.app.get_key_display(binding)
            if binding.group is not None and binding.group is group:  # 's/c/w/t Section': one item, as Footer does
                out[-1] = (f"{out[-1][0]}/{key}", binding.group.description)
                continue
            group = binding.group
            out.append((key, binding.description))
        out.append(("^p", "Commands"))
        return out

    def lines(self, width: int) -> list[list[tuple[str, str]]]:
        """At most MAX_LINES: where the keys need more (the Sweep pane at 60 columns), the ones before Help, Quit
        and the palette are dropped from the end (the help screen lists them all), rather than the last line,
        with Quit and the palette, being cut off unseen."""
        items = self.items()
        lines = self._wrap(items, width)
        droppable = [n for n, (key, _) in enumerate(items) if key not in KEPT]
        while len(lines) > MAX_LINES and droppable:
            del items[droppable.pop()]
            lines = self._wrap(items, width)
        return lines

    @staticmethod
    def _wrap(items: list[tuple[str, str]], width: int) -> list[list[tuple[str, str]]]:
        lines: list[list[tuple[str, str]]] = [[]]
        used = 0
        for key, label in items:
            size = len(key) + len(label) + 3
            if lines[-1] and used + size > width:
                lines.append([])
                used = 0
            lines[-1].append((key, label))
            used += size
        return lines

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.lines(width))

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        text = Text(no_wrap=True, overflow="crop")
        for n, line in enumerate(self.lines(self.size.width)):
            if n:
                text.append("\n")
            for key, label in line:
                text.append(f" {key}", key_style)
                text.append(f" {label} ")
        return text
