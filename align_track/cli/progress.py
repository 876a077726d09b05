"""Render ingest progress events for a terminal: a rich bar on a TTY, plain lines in a pipe, nothing when quiet."""

from __future__ import annotations

import sys
from typing import Any

from align_track.errors import printable
from align_track.ingest.outcomes import MAYBE_RUNNING, NO_TIMING, NOTE_WHY, Summary
from align_track.ingest.pipeline import FAILED, Event

FIRST_FEW = 5
"""Folders the summary names per note; the rest are counted, with the command that lists them all."""


class PlainProgress:
    """One line per finished folder, for logs and CI: greppable, no control characters."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stderr

    def __call__(self, event: Event) -> None:
        if event.kind == "planned":
            print(f"found {event.total} run folders", file=self.stream, flush=True)
        elif event.kind == "message":
            print(f"note: {printable(event.message)}", file=self.stream, flush=True)
        elif event.kind == "stage":
            print(printable(event.message), file=self.stream, flush=True)
        elif event.kind == "run_folder" and event.outcome is not None:
            o = event.outcome
            rate = event.scenes / event.elapsed if event.elapsed > 0 else 0.0
            traces = f" traces={o.traces}" if o.traces else ""
            note = f" ({o.note})" if o.note else ""  # no timing.json: what the TUI's state column says
            extra = f" ({printable(o.error or '')})" if o.status == FAILED else traces + note
            print(f"[{event.done}/{event.total}] {o.status:8} {printable(o.path)}{extra}  scenes/s={rate:.0f}",
                  file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichProgress:
    """A live bar: run folders and scenes done, scenes/s and ETA; failures printed above it as they happen."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("run folders"),
            TextColumn("{task.fields[scenes]} scenes"),
            TextColumn("{task.fields[rate]} scenes/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = None

    def __call__(self, event: Event) -> None:
        from rich.markup import escape

        if event.kind == "planned":
            self.progress.start()
            self.task = self.progress.add_task("ingest", total=event.total, scenes=0, rate="-")
        elif event.kind == "message":
            self.console.print(f"[yellow]note:[/] {escape(printable(event.message))}")
        elif event.kind == "stage":
            self.console.print(escape(printable(event.message)))
        elif event.kind == "run_folder" and self.task is not None:
            rate = f"{event.scenes / event.elapsed:.0f}" if event.elapsed > 0 else "-"
            self.progress.update(self.task, completed=event.done, scenes=event.scenes, rate=rate)
            if event.outcome is not None and event.outcome.status == FAILED:
                self.progress.console.print(f"[red]failed[/] {escape(printable(event.outcome.error or ''))}")

    def close(self) -> None:
        self.progress.stop()


def timing_lines(summary: Summary, list_runs: str) -> list[str]:
    """The summary's notes on folders without timing.json, in the TUI's words: how many have 'no timing' and
    which 'may still be running', the first ``FIRST_FEW`` named as the progress lines name them (relative to
    the ingested folder), then how many more and ``list_runs`` piped to a grep that shows them all."""
    lines = []
    for note in (NO_TIMING, MAYBE_RUNNING):
        paths = [o.path for o in summary.outcomes if o.note == note]
        if not paths:
            continue
        named = ", ".join(printable(p) or "." for p in paths[:FIRST_FEW])
        if len(paths) > FIRST_FEW:
            named += f" and {len(paths) - FIRST_FEW} more (all: {list_runs} | grep -F '{note}')"
        folders = "run folder" if len(paths) == 1 else "run folders"
        lines.append(f"note: {note} ({len(paths)} {folders}): {named} · {NOTE_WHY[note]}")
    return lines


def make_reporter(quiet: bool) -> Any:
    """The renderer for this terminal (None when quiet)."""
    if quiet:
        return None
    return RichProgress() if sys.stderr.isatty() else PlainProgress()
