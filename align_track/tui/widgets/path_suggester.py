"""Directory completion for path Inputs: the first matching sub-folder is suggested, right arrow accepts it."""

from __future__ import annotations

import asyncio
import os

from textual.suggester import Suggester


def skipped_by_ingest(name: str) -> bool:
    """Ingest skips folders with OUTDATED in their name, so completion offers them last."""
    return "outdated" in name.lower()


def complete_dir(value: str) -> str | None:
    """``value`` extended to the first folder whose name starts with its last part (with a trailing '/');
    folders ingest would take come before those it skips (OUTDATED)."""
    if not value:
        return None
    expanded = os.path.expanduser(value)
    head, tail = os.path.split(expanded)
    try:
        with os.scandir(head or ".") as entries:
            names = sorted(
                (e.name for e in entries
                 if e.name.startswith(tail) and (tail.startswith(".") or not e.name.startswith("."))
                 and e.is_dir()),
                key=lambda name: (skipped_by_ingest(name), name),
            )
    except OSError:
        return None
    for name in names:
        suggestion = value + name[len(tail):] + "/"
        if suggestion != value:
            return suggestion
    return None


class PathSuggester(Suggester):
    """Suggests directories; the folder is listed in a thread so a slow network filesystem never stalls typing."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return await asyncio.to_thread(complete_dir, value)
