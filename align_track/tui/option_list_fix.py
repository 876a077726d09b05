"""Page keys in an option list that is not laid out yet do nothing, instead of crashing the app.

Textual's ``OptionList`` maps options to lines only once it has a size; ``pageup``/``pagedown`` before that (the
command palette's list in the turn its results arrive, a dropdown's list while collapsed) raised ``KeyError`` from
``_move_page`` and ended the whole app. Found by the monkey test (ctrl+p, typing and pageup in one burst). Textual's
own ``scroll_to_highlight`` skips the same case; this does so for the page moves of every option list (the palette's
``CommandList``, a ``Select``'s overlay).
"""

from __future__ import annotations

from textual.widgets import OptionList

_move_page = OptionList._move_page


def _move_page_when_laid_out(self: OptionList, direction: int) -> None:
    if self.option_count and (self.highlighted or 0) not in self._index_to_line:
        return  # no lines yet: nothing on screen to page through
    _move_page(self, direction)


def apply() -> None:
    """Install the guard (idempotent)."""
    if OptionList._move_page is not _move_page_when_laid_out:
        OptionList._move_page = _move_page_when_laid_out  # type: ignore[method-assign]
