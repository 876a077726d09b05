"""A demo store one of whose scenes has a justification of about 12 MB (issue 25: `f` on it froze the TUI for
four minutes): demo run folders written by ``generate_demo``, one scene's justification replaced, then ingested."""

from __future__ import annotations

import json
from pathlib import Path

from align_track.demo.generate import generate_demo
from align_track.ingest.pipeline import ingest

HUGE_SCENE = "P3"
HUGE_CHARS = 12_000_000
SENTENCE = ("Because others may be dying unseen, searching serves the principle of search or stay better than "
            "treating the patient in front of me, whose wound is stable for now. ")


def huge_justification(chars: int = HUGE_CHARS) -> str:
    """A runaway LLM answer: one sentence over and over, a paragraph break every 40 sentences, numbered so each
    part of the text can be told from the others."""
    parts, size, n = [], 0, 0
    while size < chars:
        part = f"[{n}] {SENTENCE}" + ("\n\n" if n % 40 == 39 else "")
        parts.append(part)
        size += len(part)
        n += 1
    return "".join(parts)[:chars]


def build_huge_store(root: Path, chars: int = HUGE_CHARS, scenes: int = 6) -> tuple[str, str]:
    """(store uri, the justification) of one demo run folder whose scene HUGE_SCENE says ``chars`` characters."""
    (folder,) = generate_demo(root / "exps", run_folders=1, scenes=scenes, seed=0)
    path = folder / "input_output.json"
    entries = json.loads(path.read_text())
    text = huge_justification(chars)
    for entry in entries:
        if entry["input"]["full_state"]["meta_info"]["scene_id"] == HUGE_SCENE:
            entry["output"]["action"]["justification"] = text
    path.write_text(json.dumps(entries))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    summary = ingest(root / "exps", uri)
    if summary.failures:
        raise RuntimeError(f"ingest failed: {summary.failures[0].error}")
    return uri, text
