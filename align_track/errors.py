"""One-line error text: progress lines, status bars and CLI errors show one line per failure, never a traceback."""

from __future__ import annotations

import re

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
"""Bidirectional controls (Arabic letter mark, LRM/RLM, LRE..RLO embeddings and overrides, LRI..PDI isolates):
printed raw they reorder the rest of the line, so ``evil\u202eexe.txt`` reads as ``eviltxt.exe``."""
_LINE_BREAKS = "\u2028\u2029"
"""Unicode's line and paragraph separators: a line break in some terminals and most text widgets."""
_UNPRINTABLE = re.compile(f"[\x00-\x1f\x7f-\x9f\ud800-\udfff{_BIDI}{_LINE_BREAKS}]")
"""What ``printable`` rewrites: C0/C1 controls, surrogates (lone, or os.fsdecode's stand-ins for bytes),
bidirectional controls and Unicode line separators."""


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters between two words, with an ellipsis when cut (inside a word
    only when that one word is longer than the limit)."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space].rstrip() if space > 0 else head) + "…"


def one_line(exc: BaseException, with_type: bool = False, limit: int = 300) -> str:
    """The first line of an exception's message (of the DBAPI error beneath SQLAlchemy's, when there is one)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else ""
    if with_type:
        return clip(f"{type(exc).__name__}: {first}", limit)
    return clip(first or type(exc).__name__, limit)


def all_printable(texts: list[str]) -> bool:
    """Whether ``printable`` would leave every one of ``texts`` as it is (one scan in C for the lot)."""
    return _UNPRINTABLE.search(" ".join(texts)) is None


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters (ESC, CR, ...) and bytes that were
    not UTF-8 (surrogate escapes from the file system) shown as ``\\x..`` escapes, bidirectional controls
    (U+202E...) and line separators as ``\\u....``, never interpreted."""
    if _UNPRINTABLE.search(text) is None:  # nearly always: one scan in C (the runs table calls this per run)
        return text
    out = []
    for char in text:
        code = ord(char)
        if code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF or _UNPRINTABLE.match(char):  # a lone surrogate, bidi, separator
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)
