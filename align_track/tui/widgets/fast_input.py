"""An Input whose keystrokes repaint only itself, and whose enter can act at once.

Textual's Input assigns its ``virtual_size`` on every change of value, and that assignment
relayouts the whole screen (about 15 ms at 120x40, more with a 10,000-row table behind it).
A one-line input's scroll extent needs no layout: the size is set quietly first, so the
stock assignment that follows changes nothing.

``Changed`` and ``Submitted`` are messages, handled a turn later: keys typed right behind
(down, enter) would be routed by the old focus, and a filter applied after the cursor
moved would reset it. ``on_change`` and ``on_submit`` run in the key's own turn.

The Input's own key bindings (ctrl+u, ctrl+w, backspace, enter, ...) also run in the key's own
turn: Textual runs a binding only once the key has bubbled up to the app, a turn per widget,
while the printable keys typed right behind it are inserted at once; ``ctrl+u``, a path and
enter sent in one burst (a paste, tmux send-keys, a fast typist) then cleared the path just
typed and submitted an empty box.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import events
from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import Input


class FastInput(Input):
    def __init__(self, *args: Any, on_change: Callable[[str], None] | None = None,
                 on_submit: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        self.on_change = on_change
        self.on_submit = on_submit
        super().__init__(*args, **kwargs)

    def _watch_value(self, value: str) -> None:
        self.set_reactive(Widget.virtual_size, Size(self.content_width, 1))
        super()._watch_value(value)
        if self.on_change is not None:
            self.on_change(value)

    async def action_submit(self) -> None:
        if self.on_submit is None:
            await super().action_submit()
        else:
            self.on_submit(self.value)

    async def _on_key(self, event: events.Key) -> None:
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority and await self.app.run_action(binding.action, self):
                event.stop()
                event.prevent_default()
                return
        await super()._on_key(event)
