"""Read a growing input_output.json at the cost of its new scenes.

align-system rewrites the whole file after each scene, the earlier scenes byte for byte the same. So
we keep the text up to the end of the last scene parsed and, when the new file starts with it, parse
only what follows. Anything else (a changed earlier scene, a reformat) falls back to a full parse; a
file caught mid-write (truncated JSON) is an RunFolderError, as for a plain ingest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from align_track.ingest.folders import RunFolderError, read_scenes, scene_problem

_DECODER = json.JSONDecoder()
_WS = " \t\n\r"


class SceneLog:
    """The scenes of one input_output.json, re-read incrementally."""

    def __init__(self, path: Path):
        self.path = path
        self.scenes: list[dict[str, Any]] = []
        self._prefix = ""  # the text up to the end of the last scene parsed
        self.full_parses = 0

    def read(self) -> list[dict[str, Any]]:
        """Every scene now in the file (the same list object, grown); RunFolderError if unreadable."""
        try:
            text = self.path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return self._full()
        if self._prefix and text.startswith(self._prefix):
            tail = self._parse_from(text, len(self._prefix), first=False)
            if tail is not None:
                self.scenes.extend(tail[0])
                self._prefix = text[: tail[1]]
                return self.scenes
        whole = self._parse_from(text, _skip(text, 0) + 1, first=True) if text.lstrip().startswith("[") else None
        if whole is None:
            return self._full()
        self.scenes[:] = whole[0]
        self._prefix = text[: whole[1]]
        self.full_parses += 1
        return self.scenes

    def _full(self) -> list[dict[str, Any]]:
        """The plain reader, for its error messages (and whatever our scanner declined)."""
        self.scenes[:] = read_scenes(self.path, self.path.parent)
        self._prefix = ""
        self.full_parses += 1
        return self.scenes

    @staticmethod
    def _parse_from(text: str, index: int, first: bool) -> tuple[list[dict[str, Any]], int] | None:
        """Scenes from ``index`` (just after '[' or after the last scene) to the closing ']'; with the
        offset where the last one ends. None when the text is not a well-formed list of objects."""
        out: list[dict[str, Any]] = []
        end = index
        i = _skip(text, index)
        expect_value = first
        while i < len(text):
            ch = text[i]
            if ch == "]":
                if expect_value and out:  # a trailing comma
                    return None
                return (out, end) if not text[i + 1:].strip() else None
            if not expect_value:
                if ch != ",":
                    return None
                i = _skip(text, i + 1)
                expect_value = True
                continue
            try:
                item, i = _DECODER.raw_decode(text, i)
            except json.JSONDecodeError:
                return None
            if scene_problem(0, item):  # the plain reader names the scene and the reason
                return None
            out.append(item)
            end = i
            i = _skip(text, i)
            expect_value = False
        return None


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


__all__ = ["SceneLog", "RunFolderError"]
