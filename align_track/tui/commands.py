"""Command palette provider: every action of every pane, found by name from anywhere (ctrl+p)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from align_track.tui.app import AlignTrackApp
    from align_track.tui.keys import KeyAction


class ActionsProvider(Provider):
    """Hits are 'Pane: description (key)'; choosing one shows the pane and runs the action there."""

    def _entries(self) -> list[tuple[str, KeyAction]]:
        app = cast("AlignTrackApp", self.app)
        out = []
        for item in app.key_actions():
            where = item.section.split(" ", 1)[-1] if item.pane else "Global"
            out.append((f"{where}: {item.help} ({app.get_key_display_for(item.key)})", item))
        return out

    async def discover(self) -> Hits:
        app = cast("AlignTrackApp", self.app)
        for text, item in self._entries():
            yield DiscoveryHit(text, partial(app.run_key_action, item), help=item.action)

    async def search(self, query: str) -> Hits:
        app = cast("AlignTrackApp", self.app)
        matcher = self.matcher(query)
        for text, item in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(app.run_key_action, item), help=item.action)
