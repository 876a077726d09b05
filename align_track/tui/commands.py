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
    """Hits say what an action does in words ('Show the Runs pane (1)'), and where it works; choosing one
    shows the pane and runs the action there."""

    @property
    def host(self) -> KeyActionHost:
        return cast(KeyActionHost, self.app)

    def _entries(self) -> list[tuple[str, KeyAction, str]]:
        """(what it does, in words, with its key; the action; where it works)."""
        host = self.host
        out = []
        for item in host.key_actions():
            if not item.action:  # a key a widget answers where it has focus: help lists it, nothing to run
                continue
            where = f"in the {item.section.split(' ', 1)[-1]} pane" if item.pane else "in any pane"
            out.append((f"{item.help} ({host.get_key_display_for(item.key)})", item, where))
        return out

    async def discover(self) -> Hits:
        for text, item, where in self._entries():
            yield DiscoveryHit(text, partial(self.host.run_key_action, item), help=where)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, item, where in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self.host.run_key_action, item), help=where)
