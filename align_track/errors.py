"""One-line error text: progress lines, status bars and CLI errors show one line per failure, never a traceback."""

from __future__ import annotations

import re

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""What ``printable`` rewrites: C0/C1 controls and surrogates (lone, or os.fsdecode's stand-ins for bytes)."""


def one_line(exc: BaseException, with_type: bool = False, limit: int = 300) -> str:
    """The first line of an exception's message (of the DBAPI error beneath SQLAlchemy's, when there is one)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else ""
    if with_type:
        return f"{type(exc).__name__}: {first}"[:limit]
    return (first or type(exc).__name__)[:limit]


def all_printable(texts: list[str]) -> bool:
    """Whether ``printable`` would leave every one of ``texts`` as it is (one scan in C for the lot)."""
    return _UNPRINTABLE.search(" ".join(texts)) is None


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters (ESC, CR, ...) and bytes that were
    not UTF-8 (surrogate escapes from the file system) shown as ``\\x..`` escapes, never interpreted."""
    if _UNPRINTABLE.search(text) is None:  # nearly always: one scan in C (the runs table calls this per run)
        return text
    out = []
    for char in text:
        code = ord(char)
        if code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)
