"""Writing tables into xlsx sheets: bold frozen header, number formats, sized columns, text never a formula.

Shared by the registry's xlsx writers and the alignment-curve chart sheets; openpyxl is imported when used.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

_XLSX_MAX_CELL = 32767


def fill_sheet(ws: Any, header: Sequence[str], rows: Sequence[Sequence[Any]], first_row: int = 1,
               freeze_cols: int = 0, number_format: str = "0.000") -> None:
    """A table at ``first_row``: bold header frozen in place, numbers formatted, columns sized to fit."""
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True)
    shade = PatternFill("solid", fgColor="DDE4EE")
    widths = [len(str(h)) for h in header]
    for j, name in enumerate(header, start=1):
        cell = ws.cell(row=first_row, column=j, value=xlsx_value(name))
        cell.data_type = "s"
        cell.font, cell.fill = bold, shade
    for i, row in enumerate(rows, start=first_row + 1):
        for j, value in enumerate(row, start=1):
            value = xlsx_value(value)
            cell = ws.cell(row=i, column=j, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # a value starting with '=' stays text, never a formula
            elif isinstance(value, float):
                cell.number_format = "0" if value.is_integer() and number_format == "0" else number_format
            widths[j - 1] = max(widths[j - 1], len(_shown(value)))
    for j, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(j)].width = min(max(width + 2, 8), 60)
    ws.freeze_panes = ws.cell(row=first_row + 1, column=freeze_cols + 1).coordinate


def xlsx_value(value: Any) -> Any:
    """A value openpyxl accepts: no control characters, within Excel's cell size, NaN as empty."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        return value[:_XLSX_MAX_CELL]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return str(value)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def save_workbook(wb: Any, target: Any) -> None:
    """``wb.save(target)`` (a path or a binary stream), but a write that fails (a full disk, ``/dev/full``, a FIFO
    whose reader left) still closes the zip archive: openpyxl leaves it open, and its ``__del__`` then prints an
    "Exception ignored" traceback at exit under the command's one-line error."""
    import datetime
    from zipfile import ZIP_DEFLATED, ZipFile

    from openpyxl.writer.excel import ExcelWriter

    archive = ZipFile(target, "w", ZIP_DEFLATED, allowZip64=True)
    wb.properties.modified = datetime.datetime.now(tz=datetime.timezone.utc).replace(tzinfo=None)
    try:
        ExcelWriter(wb, archive).save()
    except BaseException:
        with contextlib.suppress(Exception):
            archive.close()  # fails again writing the directory, but lets go of the stream either way
        raise
