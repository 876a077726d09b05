"""What ingest says about odd but readable folders (issue 20, item 17): an empty scene list, a folder deleted
while the ingest runs, a reason too long to print whole. Real SQLite stores; the wording is the mapping's, the
same on every backend (SQLite and a server here: it is decided before any store is written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from align_track.errors import clip
from align_track.ingest.pipeline import ingest
from tests.support.factory import scene, write_run_folder


def _run(root: Path, uri: str, on_planned=None) -> tuple[dict, list[str]]:
    notes: list[str] = []

    def on_event(event) -> None:
        if event.kind == "message":
            notes.append(event.message)
        elif event.kind == "planned" and on_planned is not None:
            on_planned()

    summary = ingest(root, uri, on_event=on_event)
    return {o.path: o for o in summary.outcomes}, notes


def test_an_empty_scene_list_is_ingested_with_a_note(tmp_path: Path, uri: str) -> None:
    """A researcher sees the job that wrote no scene (crashed, or not started yet) and is told why it is empty."""
    root = tmp_path / "tree"
    write_run_folder(root / "empty", scenes=[], timing=False)
    write_run_folder(root / "full")
    outcomes, notes = _run(root, uri)
    assert (outcomes["empty"].status, outcomes["empty"].traces) == ("ingested", 0)
    assert [n for n in notes if n.startswith("empty: ")] == [
        "empty: input_output.json holds no scenes yet: ingested as a run with 0 traces"], notes
    assert not [n for n in notes if n.startswith("full: ")]


def test_a_folder_deleted_mid_ingest_is_said_to_have_vanished(tmp_path: Path, uri: str) -> None:
    root = tmp_path / "tree"
    write_run_folder(root / "a_gone")
    write_run_folder(root / "b_kept")
    outcomes, _ = _run(root, uri, on_planned=lambda: shutil.rmtree(root / "a_gone"))
    assert outcomes["a_gone"].status == "failed"
    assert outcomes["a_gone"].error.endswith("a_gone: folder vanished during the ingest (deleted or moved); "
                                             "nothing written"), outcomes["a_gone"].error
    assert outcomes["b_kept"].status == "ingested"


def test_a_long_reason_is_cut_at_a_word_with_an_ellipsis(tmp_path: Path, uri: str) -> None:
    root = tmp_path / "tree"
    digits = json.dumps([scene("S1")]).replace('"choice": 0', '"choice": ' + "7" * 5000)
    write_run_folder(root / "huge_int", raw_io=digits)
    outcomes, _ = _run(root, uri)
    error = outcomes["huge_int"].error
    try:
        int("7" * 5000)
        full = ""
    except ValueError as exc:
        full = str(exc)
    shown = error.split("unreadable JSON value (", 1)[1].removesuffix(")")
    assert shown.endswith("…") and len(shown) < len(full), error
    kept = shown.removesuffix("…").rstrip()
    assert full.startswith(kept) and full[len(kept)] == " ", (kept, full)  # cut between words


def test_clip_cuts_between_words() -> None:
    assert clip("short", 10) == "short"
    assert clip("alpha beta gamma", 12) == "alpha beta…"
    assert clip("x" * 30, 10) == "x" * 9 + "…"  # one word longer than the limit: cut inside it


def test_the_watcher_notes_an_empty_scene_list_only_once_the_run_is_finished(tmp_path: Path, store_uri: str) -> None:
    """A live run with no scene yet is starting (no note); finished with none, it is said once, as ingest says it."""
    from align_track.ingest.watch import NOTE, Watcher
    from tests.support import live_writer as lw

    folder = lw.start(tmp_path / "tree" / "job0")
    events: list = []
    watcher = Watcher(tmp_path / "tree", store_uri, stall_after=3600, on_event=events.append)
    lw.write_scenes(folder, 0)
    watcher.poll()
    watcher.poll()
    assert not [e for e in events if e.kind == NOTE], [e.message for e in events]
    lw.finish(folder, 0)
    watcher.poll()
    watcher.poll()
    assert [e.message for e in events if e.kind == NOTE] == [
        "job0: input_output.json holds no scenes yet: ingested as a run with 0 traces"]
