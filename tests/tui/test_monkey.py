"""Monkey test: seeded random bursts of keys across every pane at every size, against the real demo store.

Each step is one burst: keys typed one by one (Pilot), keys sent at once as a fast typist, a paste or tmux
send-keys deliver them (typeahead), a bracketed paste, or a resize to 60x20, 80x24, 120x40 or 200x50. The keys come
from every binding the app, its panes, screens and widgets declare (read from their ``BINDINGS``, so a new binding
is exercised without touching this file), plus number keys, escape, enter, arrows and text. After every step:

* the app is still running and recorded no exception;
* nothing was started: no ingest, no report export (no file appeared in the working folder), no web UI (no
  ``mlflow server`` child process). The keys that start them, and quit, are *explicit*: the monkey does not let
  them act. Which key is explicit depends on focus (``m`` starts the web UI but is text in a filter box) and, in
  a burst, on keys not yet routed, so :class:`MonkeyApp` stops the explicit *actions* where they would run, and
  counts them (a command palette's enter too: it may choose any command). Anything started all the same was
  started by some other key: the failure the monkey reports;
* every few steps and at the end: escape a few times, then each pane's number key shows that pane.

A failure names the seed and the steps to reproduce it
(``ALIGN_TRACK_MONKEY_SEED=<seed> pytest tests/tui/test_monkey.py``).
``make monkey`` runs the long profile (``ALIGN_TRACK_MONKEY=long``: more steps, fresh random seeds, printed).
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import random
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.actions import parse as parse_action
from textual.binding import Binding
from textual.command import CommandPalette
from textual.keys import _character_to_key, _get_unicode_name_from_key

import align_track.tui
from align_track.demo.store import settle
from align_track.tui.app import PANES, AlignTrackApp
from tests.support.tui_fixtures import opened

SIZES = [(60, 20), (80, 24), (120, 40), (200, 50)]
LONG = os.environ.get("ALIGN_TRACK_MONKEY", "") == "long"
STEPS = int(os.environ.get("ALIGN_TRACK_MONKEY_STEPS", 400 if LONG else 100))
SEEDS = ([int(s) for s in os.environ["ALIGN_TRACK_MONKEY_SEED"].split(",")] if os.environ.get("ALIGN_TRACK_MONKEY_SEED")
         else [random.SystemRandom().randrange(10**6) for _ in range(4)] if LONG else [25, 2025])
SECONDS = float(os.environ.get("ALIGN_TRACK_MONKEY_SECONDS", 0 if LONG else 20))
"""Time budget of one seed's steps (0: none); the steps done are in the report, so a failure replays exactly."""
REACH_EVERY = 20
"""Steps between two reachability checks (and one at the end)."""

EXPLICIT_ACTIONS = {("IngestPane", "start"), ("ReportPane", "export"), ("AlignTrackApp", "toggle_ui"),
                    ("AlignTrackApp", "quit")}
"""Actions that start an ingest, an export or the web UI (or quit): only their own key may run them."""
SUBMIT_STARTS = {"ingest-path", "report-path"}
"""Text boxes whose enter starts the ingest or writes the report (an explicit key too)."""

TEXTS = ["merit", "pipeline baseline", "0.5", "params.adm = 'x'", "and", "/tmp/nowhere", "exps", "ü ß 漢字",
         "q", "m", "12345678", "~/", "x" * 300, "\x1b[31m", "a'b\"c", "*?[", ". ..", "report.csv"]
SPECIAL = ["escape", "enter", "tab", "shift+tab", "backspace", "delete", "up", "down", "left", "right", "home",
           "end", "pageup", "pagedown", "ctrl+u", "ctrl+w", "ctrl+a", "ctrl+e", "ctrl+p", "space"]


# --------------------------------------------------------------------------- the keys there are


def _classes_with_bindings() -> list[type]:
    """The app, its panes and every class in align_track.tui declaring BINDINGS (screens, widgets)."""
    found: list[type] = [AlignTrackApp, *(cls for _, cls in PANES)]
    for info in pkgutil.walk_packages(align_track.tui.__path__, "align_track.tui."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and "BINDINGS" in vars(cls) and cls not in found:
                found.append(cls)
    return found


def _keys_of(bindings: list) -> set[str]:
    keys: set[str] = set()
    for b in bindings:
        key = b.key if isinstance(b, Binding) else b[0]
        keys.update(k.strip() for k in key.split(",") if k.strip())
    return keys


def binding_keys(app: AlignTrackApp | None = None) -> list[str]:
    """Every key bound anywhere: declared in align_track.tui, and (with ``app``) on any widget mounted."""
    keys: set[str] = set()
    for cls in _classes_with_bindings():
        keys |= _keys_of(cls.BINDINGS)
    if app is not None:
        for node in [app, app.screen, *app.screen.query("*")]:
            keys |= set(node._bindings.key_to_bindings)
    return sorted(keys)


PANE_KEYS = [cls.KEY for _, cls in PANES]


def key_event(key: str) -> events.Key:
    """The Key event a terminal sends for ``key`` (as Pilot builds it)."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(key))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


def text_keys(text: str) -> list[str]:
    return [c if c.isalnum() else _character_to_key(c) for c in text]


# --------------------------------------------------------------------------- the app under the monkey


class MonkeyApp(AlignTrackApp):
    """The app with a filter in front of its actions: an explicit action (starting an ingest, an export or the
    web UI, quitting) is dropped and counted, as if its key had never been pressed. Filtering the action rather
    than the key is exact whatever the focus is when a burst's key is finally routed; every key still reaches the
    app's own routing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dropped: list[str] = []

    def explicit(self, action: str, namespace: Any) -> str | None:
        """``pane.action`` if running ``action`` in ``namespace`` would start something (or quit)."""
        destination, name, _ = parse_action(action)
        target = self if destination == "app" or namespace is None else namespace
        owner = "AlignTrackApp" if target is self else type(target).__name__
        if (owner, name) in EXPLICIT_ACTIONS or (name == "submit" and getattr(target, "id", None) in SUBMIT_STARTS):
            return f"{owner}{'#' + target.id if name == 'submit' else ''}.{name}"
        return None

    async def run_action(self, action: Any, default_namespace: Any = None) -> bool:
        if isinstance(action, str):
            explicit = self.explicit(action, default_namespace)
            if explicit is not None:
                self.dropped.append(explicit)
                return True  # handled: the key goes no further, as when the action runs
        return await super().run_action(action, default_namespace)

    async def on_event(self, event: events.Event) -> None:
        """A command palette's enter may run any command, Textual's own (quit, save a screenshot) included."""
        if isinstance(event, events.Key) and not event.is_forwarded and event.key == "enter" \
                and isinstance(self.screen, CommandPalette):
            self.dropped.append("CommandPalette.enter")
            return
        await super().on_event(event)


def started(app: AlignTrackApp, cwd: Path, files_before: set[str], children_before: frozenset[int] = frozenset()
            ) -> list[str]:
    """What was started that only an explicit key may start (child processes not in ``children_before``)."""
    out = []
    ingest = app.ingest_pane
    if ingest.running or ingest.started or not ingest.finished.is_set():
        out.append("an ingest")
    new_files = {p.name for p in cwd.iterdir()} - files_before
    if new_files:
        out.append(f"files in the working folder (an export?): {sorted(new_files)}")
    if app.report_pane.query_one("#report-status").render().plain.startswith(("writing", "✔", "✖ cannot")):
        out.append("a report export")
    if app.web_ui.server is not None or app.web_ui.busy or app.status.ui:
        out.append("the web UI")
    mlflow_children = [pid for pid, cmd in _children(os.getpid())
                       if "mlflow" in cmd and "server" in cmd and pid not in children_before]
    if mlflow_children:
        out.append(f"mlflow server processes {mlflow_children}")
    return out


def _children(ppid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live children of ``ppid``, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == ppid and fields[0] not in ("Z", "X"):
            out.append((int(entry.name), cmd))
    return out


# --------------------------------------------------------------------------- steps


class Monkey:
    """Draws steps from a seeded random; each step is kept (as text) for the failure message."""

    def __init__(self, seed: int, keys: list[str]) -> None:
        self.rng = random.Random(seed)
        self.keys = keys
        self.log: list[str] = []

    def burst(self) -> list[str]:
        rng = self.rng
        out: list[str] = []
        for _ in range(rng.randint(1, 12)):
            kind = rng.random()
            if kind < 0.35:
                out.append(rng.choice(self.keys))
            elif kind < 0.55:
                out.append(rng.choice(SPECIAL))
            elif kind < 0.7:
                out.append(rng.choice(PANE_KEYS))
            else:
                out += text_keys(rng.choice(TEXTS)[: rng.randint(1, 12)])
        return out

    def step(self, index: int) -> tuple[str, Any]:
        rng = self.rng
        kind = rng.random()
        if index % 8 == 0:  # every pane and every size in turn, whatever the draws
            pane = PANE_KEYS[(index // 8) % len(PANE_KEYS)]
            return "typed", ["escape", "escape", pane, *self.burst()]
        if index % 8 == 4:
            return "resize", SIZES[(index // 8) % len(SIZES)]
        if kind < 0.1:
            return "resize", rng.choice(SIZES)
        if kind < 0.18:
            return "paste", rng.choice(TEXTS + ["line one\nline two", "exps\n", "\t\t", ""])
        if kind < 0.75:
            return "burst", self.burst()
        return "typed", self.burst()


async def run_step(app: MonkeyApp, pilot: Any, kind: str, arg: Any) -> None:
    if kind == "resize":
        await pilot.resize_terminal(*arg)
    elif kind == "paste":
        app._driver.send_message(events.Paste(arg))
    elif kind == "burst":  # all at once: typeahead, a paste without bracketed paste, tmux send-keys
        for key in arg:
            app._driver.send_message(key_event(key))
    else:
        await pilot.press(*arg)
    await pilot.pause()


async def check_reachable(app: MonkeyApp, pilot: Any) -> str | None:
    """Escape a few times, then each pane's key shows that pane, with focus inside it; None if so."""
    for pane_id, cls in [*PANES[1:], PANES[0]]:
        await pilot.press("escape", "escape", "escape", cls.KEY)
        await pilot.pause()
        if app.screen is not app.screen_stack[0]:
            return f"{cls.KEY} for {pane_id}: a {type(app.screen).__name__} is still open after escape x3"
        if app.active_pane != pane_id:
            return f"{cls.KEY} showed {app.active_pane!r}, not {pane_id!r}"
        focused = app.screen.focused
        if focused is not None and app.pane(pane_id) not in focused.ancestors_with_self:
            return f"{cls.KEY}: {pane_id} shown but focus is on {focused!r} outside it"
    return None


def _repro(seed: int, log: list[str]) -> str:
    steps = "\n".join(log[-25:])
    return (f"monkey seed {seed}, step {len(log) - 1} (reproduce: ALIGN_TRACK_MONKEY_SEED={seed} "
            f"ALIGN_TRACK_MONKEY_STEPS={len(log)} ALIGN_TRACK_MONKEY_SECONDS=0 .venv/bin/python -m pytest -q "
            f"tests/tui/test_monkey.py -k test_monkey); last steps:\n{steps}")


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", SEEDS)
async def test_monkey(seed: int, demo_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri, exps = demo_store
    monkeypatch.chdir(tmp_path)  # an export would land here (report.xlsx is relative)
    files_before = {p.name for p in tmp_path.iterdir()}
    children_before = frozenset(pid for pid, _ in _children(os.getpid()))
    app = MonkeyApp(uri, experiments_dir=str(exps))
    monkey = Monkey(seed, [])
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await opened(app, pilot)
            monkey.keys = binding_keys(app)
            deadline = time.monotonic() + SECONDS if SECONDS else float("inf")
            for index in range(STEPS):
                if time.monotonic() > deadline:
                    break
                kind, arg = monkey.step(index)
                monkey.log.append(f"{index:3d} {kind:6} {arg!r}  [pane {app.active_pane}, {app.size.width}x"
                                  f"{app.size.height}]")
                await run_step(app, pilot, kind, arg)
                assert app.is_running and app._exception is None, _repro(seed, monkey.log)
                unasked = started(app, tmp_path, files_before, children_before)
                assert not unasked, f"{unasked} without its key\n{_repro(seed, monkey.log)}"
                if (index + 1) % REACH_EVERY == 0:
                    await settle(pilot)
                    problem = await check_reachable(app, pilot)
                    assert problem is None, f"{problem}\n{_repro(seed, monkey.log)}"
            await settle(pilot)
            problem = await check_reachable(app, pilot)
            assert problem is None, f"{problem}\n{_repro(seed, monkey.log)}"
            assert not started(app, tmp_path, files_before, children_before), _repro(seed, monkey.log)
    except Exception as exc:
        if "monkey seed" not in str(exc):
            exc.add_note(_repro(seed, monkey.log))
        raise
    assert app._exception is None, _repro(seed, monkey.log)
    print(f"monkey seed {seed}: {len(monkey.log)} steps, {len(app.dropped)} explicit actions stopped")


# --------------------------------------------------------------------------- the explicit keys are the way


def test_the_monkey_knows_every_binding_and_every_explicit_key() -> None:
    """The key list grows with the panes' BINDINGS; every explicit action the panes bind is one the monkey
    recognises (a new way to start something must be added to EXPLICIT_ACTIONS, or the monkey would press it)."""
    keys = binding_keys()
    for _, cls in PANES:
        assert cls.KEY in keys
        assert _keys_of(cls.BINDINGS) <= set(keys)
    bound = set()
    for cls in _classes_with_bindings():
        for b in cls.BINDINGS:
            if isinstance(b, Binding):
                destination, name, _ = parse_action(b.action)
                bound.add(("AlignTrackApp" if destination == "app" or cls is AlignTrackApp else cls.__name__, name))
    assert EXPLICIT_ACTIONS <= bound


@pytest.mark.asyncio
async def test_the_monkey_drops_exactly_the_explicit_actions(demo_store) -> None:
    """The filter stops what ``m``, ctrl+s, enter in a path box and q start wherever they start it, and nothing
    else: ``m`` in the filter box is text, number keys still switch panes."""
    uri, exps = demo_store
    # servers an earlier test file left running in this worker process (xdist) are not this test's
    children_before = frozenset(pid for pid, _ in _children(os.getpid()))
    app = MonkeyApp(uri, experiments_dir=str(exps))
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(app, pilot)
        await pilot.press("m", "slash", "m", "q", "ctrl+q", "escape", "escape")
        assert app.runs_pane.query_one("#runs-filter").value == "" and app.active_pane == "runs"
        await pilot.press("4", "ctrl+s", "e", "enter", "escape", "5", "ctrl+s", "e", "enter", "escape", "6", "m", "q")
        await pilot.pause()
        assert app.dropped == ["AlignTrackApp.toggle_ui", "AlignTrackApp.quit", "IngestPane.start",
                               "FastInput#ingest-path.submit", "ReportPane.export", "FastInput#report-path.submit",
                               "AlignTrackApp.toggle_ui", "AlignTrackApp.quit"]
        assert app.is_running and app.active_pane == "mlflow"
        assert not started(app, Path.cwd(), {p.name for p in Path.cwd().iterdir()}, children_before)


# --------------------------------------------------------------------------- defects the monkey found


@pytest.mark.asyncio
async def test_a_pane_key_typed_behind_opening_a_dropdown_leaves_no_focus_in_the_hidden_pane(demo_store) -> None:
    """Seed 25: ``5``, then ``down`` (opens the rows dropdown) and ``3`` in one burst showed Compare, but the
    dropdown took focus a turn later, inside the hidden Report pane: keys went to it unseen, and ``pageup`` there
    crashed the app (KeyError in OptionList._move_page)."""
    uri, exps = demo_store
    app = AlignTrackApp(uri, experiments_dir=str(exps))
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(app, pilot)
        await pilot.press("5")
        await settle(pilot)
        for key in ("down", "3"):  # one burst, as a fast typist or tmux send-keys sends it
            app._driver.send_message(key_event(key))
        await pilot.pause(0.3)
        assert app.active_pane == "compare"
        assert app.compare_pane in app.focused.ancestors_with_self, app.focused
        await pilot.resize_terminal(100, 30)
        await pilot.press("pageup", "j", "escape")
        await pilot.pause()
        assert app.is_running and app._exception is None
        assert app.active_pane == "runs"  # escape reached the Compare pane: back to the runs


@pytest.mark.asyncio
@pytest.mark.parametrize("key", ["pageup", "pagedown"])
async def test_page_keys_in_an_option_list_not_laid_out_yet_do_not_end_the_app(key: str) -> None:
    """Seed 1 (long profile): the command palette's list got ``pageup`` in the turn its results arrived, before it
    had lines, and Textual's OptionList raised KeyError, ending the app. Any option list without lines yet (here
    one not displayed, as a collapsed dropdown's) must take page keys quietly."""
    from textual.app import App, ComposeResult
    from textual.widgets import OptionList

    import align_track.tui.app  # noqa: F401 - the app installs the guard on import

    class ListApp(App[None]):
        def compose(self) -> ComposeResult:
            yield OptionList("a", "b", "c", id="options")

        def on_mount(self) -> None:
            options = self.query_one(OptionList)
            options.display = False
            options.highlighted = 1

    app = ListApp()
    async with app.run_test(size=(40, 10)) as pilot:
        options = app.query_one(OptionList)
        app.screen.set_focus(options)
        await pilot.press(key)
        await pilot.pause()
        assert app.is_running and app._exception is None and options.highlighted == 1
        options.display = True
        await pilot.pause()
        await pilot.press(key)
        assert options.highlighted == (0 if key == "pageup" else 2)  # laid out, the keys page again
