"""What MLflow's filter parser lets through but a user did not mean: a filter cut short.

``params.adm = 'x' and`` parses as ``params.adm = 'x'`` (the dangling AND is dropped), so a half-typed filter
silently selects something else; an unclosed quote or parenthesis gets a message naming a stray token. Checked
before MLflow parses, so the message says what is missing."""

from __future__ import annotations

import re

_QUOTES = {"'": "single quote (')", '"': 'double quote (")', "`": "backtick (`)"}
_JOINERS = ("and", "or")


def _scan(text: str) -> tuple[list[tuple[str, int]], str | None]:
    """Words outside quotes (with their offsets), and a problem with quotes or parentheses, if any."""
    words: list[tuple[str, int]] = []
    opened: list[int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _QUOTES:
            start, i = i, i + 1
            while i < n:
                if text[i] == "\\" and c != "`":
                    i += 2
                    continue
                if text[i] == c:
                    if i + 1 < n and text[i + 1] == c:  # '' inside a string is one quote
                        i += 2
                        continue
                    break
                i += 1
            if i >= n:
                return words, f"the {_QUOTES[c]} at character {start + 1} is never closed"
            words.append((text[start:i + 1], start))
            i += 1
        elif c == "(":
            opened.append(i)
            i += 1
        elif c == ")":
            if not opened:
                return words, f"the ')' at character {i + 1} closes nothing"
            opened.pop()
            i += 1
        elif c.isspace():
            i += 1
        else:
            m = re.compile(r"[^\s()'\"`]+").match(text, i)
            assert m is not None
            words.append((m.group(), i))
            i = m.end()
    if opened:
        return words, f"the '(' at character {opened[-1] + 1} is never closed"
    return words, None


def incomplete_reason(text: str) -> str | None:
    """Why ``text`` is not a whole filter (an unclosed quote or parenthesis, AND/OR with nothing on one side),
    or None."""
    words, problem = _scan(text)
    if problem:
        return problem
    joiners = [(w.lower(), at) for w, at in words]
    if joiners and joiners[-1][0] in _JOINERS:
        return f"it ends with {words[-1][0]!r}: add a condition after it, or remove it"
    if joiners and joiners[0][0] in _JOINERS:
        return f"it starts with {words[0][0]!r}: add a condition before it, or remove it"
    for (a, _), (b, at) in zip(joiners, joiners[1:], strict=False):
        if a in _JOINERS and b in _JOINERS:
            return f"{a.upper()} then {b.upper()} at character {at + 1}: a condition is missing between them"
    return None
