"""Command palette provider: every action of every pane, found by name from anywhere (ctrl+p)."""

from __future__ import annotations

from functools import partial
from typing import Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from align_track.tui.keys import KeyAction


class KeyActionHost(Protocol):
    """What the palette needs of the app: its key actions, how keys display, and a way to run one."""

    def key_actions(self) -> list[KeyAction]: ...

    def get_key_display_for(self, keys: str) -> str: ...

    def run_key_action(self, item: KeyAction) -> None: ...


class ActionsProvider(Provider):
    """Hits are 'Pane: description (key)'; choosing one shows the pane and runs the action there."""

    @property
    def host(self) -> KeyActionHost:
        return cast(KeyActionHost, self.app)

    def _entries(self) -> list[tuple[str, KeyAction]]:
        host = self.host
        out = []
        for item in host.key_actions():
            where = item.section.split(" ", 1)[-1] if item.pane else "Global"
            out.append((f"{where}: {item.help} ({host.get_key_display_for(item.key)})", item))
        return out

    async def discover(self) -> Hits:
        for text, item in self._entries():
            yield DiscoveryHit(text, partial(self.host.run_key_action, item), help=item.action)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, item in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self.host.run_key_action, item), help=item.action)
