"""What an ingest reports: each folder's outcome, progress events and the closing summary (read by the CLI's
progress bar, the TUI's ingest pane and the Hydra callback alike)."""

from __future__ import annotations

from dataclasses import dataclass, field

from align_track import schema as S
from align_track.errors import printable

# Folder outcomes, in the order they are reported.
INGESTED, UPDATED, SKIPPED, BUSY, FAILED = "ingested", "updated", "skipped", "busy", "failed"

# What is known about a run folder without timing.json (align-system writes it last): see the schema.
NO_TIMING, MAYBE_RUNNING = S.NO_TIMING, S.MAYBE_RUNNING
NOTE_WHY = {
    NO_TIMING: "no timing.json (the run recorded none, or stopped; counted as complete)",
    MAYBE_RUNNING: f"no timing.json, its files changed within {round(S.STALL_SECONDS / 60)} min before the ingest",
}
"""Why a folder has its note, in the words every surface uses (the TUI's ingest log, the CLI's summary)."""


def note_text(note: str) -> str:
    """What a log says of a folder in the store without timing.json (``Outcome.note``): the note first."""
    return f"{note}: {NOTE_WHY[note]}" if note in NOTE_WHY else note


@dataclass
class Outcome:
    """What happened to one run folder."""

    path: str
    status: str
    runs: int = 0
    traces: int = 0
    error: str | None = None
    run_ids: list[str] = field(default_factory=list)
    note: str = ""
    """For a folder written without timing.json: NO_TIMING, or MAYBE_RUNNING when its files changed within
    ``schema.STALL_SECONDS`` of the ingest (``folders.timing_note``); '' otherwise."""


@dataclass
class Event:
    """A progress report: 'stage' for what takes a while before the folders are known (creating a store),
    'activity' for what the ingest is doing right now before then (repeated as it moves on, e.g. how many
    folders the scan has seen: a live display shows the last one, a log may ignore them), 'planned' once,
    'run_folder' per folder done, 'message' for notices, 'done' at the end."""

    kind: str
    total: int = 0
    done: int = 0
    scenes: int = 0
    """Scenes written so far (one trace each); skipped run folders add none."""
    to_write: int = 0
    """Run folders with runs to write (the others are decided by the plan: unchanged, busy or unreadable)."""
    written: int = 0
    """Of those, the ones done so far: what a rate, and so an ETA, is measured on (skips take no time)."""
    outcome: Outcome | None = None
    message: str = ""
    elapsed: float = 0.0


@dataclass
class Summary:
    """The result of one ingest; ``failed`` non-empty means the command exits 1."""

    outcomes: list[Outcome]
    seconds: float
    cancelled: bool = False
    abandoned: bool = False
    """Writes were still hanging on an unresponsive server when the ingest gave up on them."""

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def noted(self, note: str) -> int:
        """Folders with this ``Outcome.note`` (each has one: NO_TIMING and MAYBE_RUNNING never overlap)."""
        return sum(1 for o in self.outcomes if o.note == note)

    @property
    def traces(self) -> int:
        return sum(o.traces for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    @property
    def scenes_per_second(self) -> float:
        return self.traces / self.seconds if self.seconds > 0 else 0.0


class Cancelled(Exception):
    """Raised inside the loop when the caller's cancel event is set."""


def folder_status(statuses: list[str]) -> str:
    """A folder's status from its runs': the most telling one wins."""
    return next((s for s in (UPDATED, INGESTED, BUSY) if s in statuses), SKIPPED)


def summary_lines(summary: Summary) -> list[str]:
    """The closing report: counts (folders without timing.json by note), traces, time and rate, then every
    failure with its reason."""
    lines = [
        f"ingested={summary.count('ingested')} updated={summary.count('updated')} "
        f"skipped={summary.count('skipped')} busy={summary.count('busy')} failed={summary.count('failed')} "
        f"no_timing={summary.noted(NO_TIMING)} maybe_running={summary.noted(MAYBE_RUNNING)} "
        f"traces={summary.traces} seconds={summary.seconds:.2f} scenes_per_s={summary.scenes_per_second:.1f}"
    ]
    if summary.cancelled:
        lines.append("cancelled: folders not reached are left for the next ingest")
    if summary.abandoned:
        lines.append("the tracking server stopped answering: rerun once it is back to finish the folders below")
    for failure in summary.failures:
        lines.append(f"FAILED {printable(failure.error or '')}")
    return lines
