"""One-line error text: progress lines, status bars and CLI errors show one line per failure, never a traceback."""

from __future__ import annotations


def one_line(exc: BaseException, with_type: bool = False, limit: int = 300) -> str:
    """The first line of an exception's message (of the DBAPI error beneath SQLAlchemy's, when there is one)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else ""
    if with_type:
        return f"{type(exc).__name__}: {first}"[:limit]
    return (first or type(exc).__name__)[:limit]
