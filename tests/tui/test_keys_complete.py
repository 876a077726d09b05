"""Help, key bar and palette come from one list (``tui.keys``): every key any pane answers is in it (issue 25,
item 10). Keys are discovered, not listed here: every binding of every widget of every pane once shown (so the
plots' and dropdowns' own keys count too), and every key compared against in an ``on_key``/``_on_key``/``key_*``
handler of align_track's own classes, so keys added later are checked too."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from align_track.demo.store import settle, wait_until
from align_track.tui.app import PANES, AlignTrackApp
from tests.support.tui_fixtures import app_on

HANDLERS = ("on_key", "_on_key")


def _constants(node: ast.AST, module_globals: dict) -> set[str]:
    """String constants a comparison's other side holds: a literal, a tuple/list/set of them, or a module name."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    if isinstance(node, ast.Name) and isinstance(value := module_globals.get(node.id), (tuple, list, set,
                                                                                        frozenset, dict)):
        return {k for k in value if isinstance(k, str)}
    return set()


def _key_name(method_name: str) -> str | None:
    """The key a ``key_<name>`` handler answers (Textual calls it for that key), or None for a method that only
    starts with ``key_`` (``key_actions``)."""
    import unicodedata

    from textual.keys import Keys

    name = method_name[4:]
    names = {k.value: k.value for k in Keys} | {k.value.replace("+", "_"): k.value for k in Keys}
    if len(name) == 1 or name in names:
        return names.get(name, name)
    try:
        unicodedata.lookup(name.replace("_", " "))
    except KeyError:
        return None
    return name


def handled_keys(cls: type, own: str = "align_track") -> set[str]:
    """Keys a class of ours (or a base of it of ours) handles outside BINDINGS."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith(own):
            continue
        module_globals = vars(inspect.getmodule(klass))
        for name, func in vars(klass).items():
            if name.startswith("key_") and callable(func) and (key := _key_name(name)) is not None:
                keys.add(key)
            if name not in HANDLERS or not callable(func):
                continue
            tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
            for node in ast.walk(tree):
                if isinstance(node, ast.Compare):
                    sides = [node.left, *node.comparators]
                    if any(isinstance(s, ast.Attribute) and s.attr in ("key", "character") for s in sides):
                        for side in sides:
                            keys |= _constants(side, module_globals)
    return keys


def normalized(keys: set[str]) -> set[str]:
    """Keys as Textual names them in bindings ('!' is exclamation_mark)."""
    from textual.binding import Binding, BindingsMap

    return set(BindingsMap([Binding(k, "x") for k in keys]).key_to_bindings) if keys else set()


def documented(app: AlignTrackApp, pane_class: str) -> set[str]:
    """The keys the one list gives for this pane, anywhere, or everywhere (as Textual names them: '+' is plus)."""
    from textual.binding import Binding, BindingsMap

    items = [item for item in app.key_actions() if item.pane in ("", pane_class)]
    return set(BindingsMap([Binding(item.key, "x") for item in items]).key_to_bindings)


@pytest.mark.asyncio
async def test_every_key_of_every_pane_is_in_the_one_list(demo_store):
    missing: dict[str, set[str]] = {}
    found: dict[str, set[str]] = {}
    async with app_on(demo_store[0], (120, 40)) as (app, pilot):
        app_keys = set(app._bindings.key_to_bindings) | normalized(handled_keys(type(app)))
        missing["app"] = app_keys - documented(app, "")
        for pane_id, cls in PANES:
            app.show_pane(pane_id)
            await settle(pilot)
            pane = app.pane(pane_id)
            if pane_id == "analysis":
                await wait_until(pilot, lambda p=pane: p.ready, what="plots")
            keys: set[str] = set()
            for node in pane.walk_children(with_self=True):
                keys |= set(node._bindings.key_to_bindings)
                keys |= normalized(handled_keys(type(node)))
            found[pane_id] = keys
            gap = keys - documented(app, cls.__name__)
            if gap:
                missing[pane_id] = gap
        # the discovery sees widgets' own keys: the plots' zoom, the dropdowns', the tables' moves
        assert {"plus", "minus", "r", "left", "N"} <= found["analysis"]
        assert {"space", "ctrl+s", "e"} <= found["report"] and {"j", "G", "slash"} <= found["runs"]
        missing = {k: v for k, v in missing.items() if v}
        assert not missing, "\n".join(f"{k}: {sorted(v)}" for k, v in missing.items())


class _Handler:
    """Stands for a widget of ours that answers keys in code, not in BINDINGS."""

    KEYS = ("x", "plus")

    def on_key(self, event) -> None:
        if event.key == "N" or event.character in ("!", "?"):
            return
        if event.key in self.KEYS or event.key in KEYS_HERE:
            return

    def key_ctrl_y(self) -> None: ...

    def key_actions(self) -> None: ...


KEYS_HERE = ("ctrl+o", "f5")


def test_discovery_reads_keys_compared_in_handlers_and_key_methods() -> None:
    found = handled_keys(_Handler, own="tests.")
    assert found == {"N", "!", "?", "ctrl+o", "f5", "ctrl+y"}
    assert normalized(found) == {"N", "exclamation_mark", "question_mark", "ctrl+o", "f5", "ctrl+y"}
