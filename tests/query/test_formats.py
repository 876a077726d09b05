"""The format registry: CLI choices, the TUI report pane and both writers read it, and every format round-trips."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from align_track.cli.runs import export, report
from align_track.query.export import write_export
from align_track.query.formats import EXPORT_FORMATS, FORMATS, REPORT_FORMATS, ExportError, format_for, suffixes
from align_track.query.report import build_pivot, write_report
from align_track.tui.panes import report as report_pane


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "run_id": ["r1", "r2", "r3"],
        "run_name": ["a/x", "b/x", "a/y"],
        "status": ["FINISHED"] * 3,
        "start_time": pd.to_datetime([1_749_542_400_000, 1_749_542_460_000, 1_749_542_520_000], unit="ms", utc=True),
        "params.adm": ["a", "b", "a"],
        "params.target": ["x", "x", "y"],
        "metrics.seconds": [1.5, 2.25, 4.0],
        "tags.note": ["=1+1 stays text", "tab\tand, comma", "ünïcode"],
    })


def _read_table(fmt: str, path: Path) -> tuple[list[str], list[list[Any]]]:
    """Read an export back with a plain reader of the format (none of align-track's code)."""
    if fmt in ("csv", "tsv"):
        with open(path, newline="", encoding="utf-8") as fh:
            header, *rows = list(csv.reader(fh, delimiter="," if fmt == "csv" else "\t"))
        return header, [[float(v) if h.startswith("metrics.") else v for h, v in zip(header, r, strict=True)]
                        for r in rows]
    if fmt == "json":
        records = json.loads(path.read_text())
        return list(records[0]), [list(r.values()) for r in records]
    if fmt == "xlsx":
        from openpyxl import load_workbook

        header, *rows = list(load_workbook(path)["runs"].iter_rows(values_only=True))
        return list(header), [list(r) for r in rows]
    raise AssertionError(f"add a reader for the new format {fmt!r} to this test")


def test_cli_choices_come_from_the_registry() -> None:
    export_choices = next(p for p in export.params if p.name == "fmt").type.choices
    report_choices = next(p for p in report.params if p.name == "fmt").type.choices
    assert tuple(export_choices) == EXPORT_FORMATS == tuple(n for n, f in FORMATS.items() if f.write_table)
    assert tuple(report_choices) == REPORT_FORMATS == tuple(n for n, f in FORMATS.items() if f.write_pivot)
    assert "tsv" in set(EXPORT_FORMATS) - set(REPORT_FORMATS)  # tsv has no pivot writer
    assert {"png", "svg"} <= set(REPORT_FORMATS) - set(EXPORT_FORMATS)  # images are reports only


def test_tui_report_pane_reads_the_registry() -> None:
    assert report_pane.REPORT_FORMATS is REPORT_FORMATS and report_pane.suffixes is suffixes
    assert suffixes(REPORT_FORMATS) == [s for n in REPORT_FORMATS for s in FORMATS[n].suffixes]


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_every_format_round_trips_an_export(tmp_path: Path, fmt: str) -> None:
    frame = _frame()
    path = tmp_path / f"runs{FORMATS[fmt].suffixes[0]}"
    assert format_for(path, None) == fmt
    assert write_export(frame, path, fmt) == len(frame)
    header, rows = _read_table(fmt, path)
    assert header == ["run_id", "run_name", "status", "start_time", "params.adm", "params.target",
                      "metrics.seconds", "tags.note"]
    assert [r[0] for r in rows] == ["r1", "r2", "r3"]
    assert [r[6] for r in rows] == [1.5, 2.25, 4.0]
    notes = list(frame["tags.note"])
    if fmt in ("csv", "tsv"):  # a spreadsheet would run "=1+1": neutralised (xlsx keeps it a string cell)
        notes[0] = "'" + notes[0]
    assert [r[7] for r in rows] == notes
    assert str(rows[0][3]).startswith("2025-06-10")


@pytest.mark.parametrize("fmt", [n for n in REPORT_FORMATS if not FORMATS[n].image])
def test_every_report_format_round_trips_a_pivot(tmp_path: Path, fmt: str) -> None:
    pivot = build_pivot(_frame(), rows="target", cols="adm", values="seconds")
    path = tmp_path / f"report{FORMATS[fmt].suffixes[0]}"
    assert format_for(path, None, REPORT_FORMATS) == fmt
    write_report(pivot, path, fmt, "three runs")
    expected = {"x": {"a": 1.5, "b": 2.25}, "y": {"a": 4.0, "b": None}}
    if fmt == "csv":
        header, *rows = list(csv.reader(path.read_text().splitlines()))
        got = {r[0]: {c: float(v) if v else None for c, v in zip(header[1:], r[1:], strict=True)} for r in rows}
    elif fmt == "json":
        got = json.loads(path.read_text())["table"]
    elif fmt == "xlsx":
        from openpyxl import load_workbook

        sheet = load_workbook(path)["report"]
        header, *rows = list(sheet.iter_rows(min_row=4, values_only=True))
        got = {r[0]: dict(zip(header[1:], r[1:], strict=True)) for r in rows}
    else:
        raise AssertionError(f"add a reader for the new report format {fmt!r} to this test")
    assert got == expected


def test_a_format_without_a_pivot_writer_is_refused_for_reports(tmp_path: Path) -> None:
    pivot = build_pivot(_frame(), rows="target", cols="adm", values="seconds")
    out = tmp_path / "out"
    out.mkdir()
    table_only = [n for n in EXPORT_FORMATS if n not in REPORT_FORMATS]
    assert table_only
    with pytest.raises(ExportError, match="cannot hold a report"):
        write_report(pivot, out / "r.out", table_only[0])
    with pytest.raises(ExportError, match="from its suffix"):
        format_for(out / f"r{FORMATS[table_only[0]].suffixes[0]}", None, REPORT_FORMATS)
    assert not list(out.iterdir())  # nothing half-written


def _runs() -> list:
    """Runs with what the frame path must agree on: keys only some runs have, NaN/inf/missing metrics, a None
    tag, a start time with milliseconds and none at all, bookkeeping and run-name tags."""
    from align_track.store.runs_reader import RunRow

    return [
        RunRow("r1", "a/x", "FINISHED", 1_749_542_400_123, 1_749_542_401_000, "active", "",
               {"adm": "a", "target": "x"}, {"seconds": 1.5, "nan": float("nan"), "inf": float("inf")},
               {"note": "=1+1 stays text", "mlflow.runName": "a/x", "align_track.key": "k1"}),
        RunRow("r2", "b/x", "FAILED", 1_749_542_460_000, None, "active", "",
               {"adm": "b", "only_here": "ünïcode, \"quoted\"\nline"}, {"seconds": 2.25},
               {"note": None, "align_track.complete": "true"}),
        RunRow("r3", "a/y", "FINISHED", None, None, "active", "", {}, {}, {"mlflow.runName": "a/y"}),
    ]


@pytest.mark.parametrize("all_columns", [False, True])
@pytest.mark.parametrize("fmt", [n for n in EXPORT_FORMATS if n != "xlsx"])
def test_export_straight_from_runs_writes_the_frame_paths_bytes(tmp_path: Path, fmt: str,
                                                                all_columns: bool) -> None:
    """``align-track export`` writes from the runs without pandas, to a path or a stream: byte for byte what
    the DataFrame path (``rows_to_frame`` + ``write_export``) writes."""
    import io

    from align_track.query.export import write_run_export
    from align_track.query.select import rows_to_frame

    if fmt == "json":  # JSON has no inf: both paths refuse it alike; compare the rest
        runs = _runs()
        runs[0].metrics.pop("inf")
    else:
        runs = _runs()
    suffix = FORMATS[fmt].suffixes[0]
    assert write_export(rows_to_frame(runs), tmp_path / f"frame{suffix}", fmt, all_columns) == 3
    assert write_run_export(runs, tmp_path / f"runs{suffix}", fmt, all_columns) == 3
    stream = io.StringIO(newline="")
    assert write_run_export(runs, stream, fmt, all_columns) == 3
    expected = (tmp_path / f"frame{suffix}").read_bytes()
    assert (tmp_path / f"runs{suffix}").read_bytes() == expected
    assert stream.getvalue().encode() == expected
    assert (b"align_track.key" in expected) == all_columns and b"tags.mlflow.runName" not in expected


# --------------------------------------------------------------------------- spreadsheet formulas in csv/tsv

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TEXT = st.one_of(
    st.text(),
    st.builds(lambda t, rest: t + rest, st.sampled_from(_TRIGGERS + ("'", " =")), st.text()),
    st.sampled_from(["-0.5", "+3", "1e-3", "-.5", "-", "+", "=", "-1e", "--1", "-0x1F", "- 1"]),
)
_CELL = st.one_of(_TEXT, st.none(), st.integers(), st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.lists(_TEXT, min_size=1, max_size=4), rows=st.lists(st.lists(_CELL, min_size=1, max_size=5),
       max_size=5), sep=st.sampled_from([",", "\t"]))
def test_a_text_cell_reads_back_unchanged_or_quote_prefixed_never_as_a_formula(header: list[str], rows: list[list],
                                                                             sep: str) -> None:
    """Written by the csv/tsv writer and read back by the csv module, a text cell is what was written, or that
    with a leading ' when it started with =, +, -, @, tab or CR (and was not a plain number such as -0.5); no
    text cell reads back starting with one of those unless it is a plain number. Numbers stay numbers."""
    from align_track.query.formats import write_delimited

    out = io.StringIO(newline="")
    write_delimited(out, header, rows, sep)
    back = list(csv.reader(io.StringIO(out.getvalue(), newline=""), delimiter=sep))
    assert len(back) == 1 + len(rows)
    for written, read in zip([header, *rows], back, strict=True):
        assert len(read) == len(written)
        for cell, got in zip(written, read, strict=True):
            if isinstance(cell, str):
                formula = cell.startswith(_TRIGGERS) and not _NUMBER_TEXT.fullmatch(cell)
                assert got == ("'" + cell if formula else cell)
                assert not got.startswith(_TRIGGERS) or _NUMBER_TEXT.fullmatch(got)
            elif cell is None:
                assert got == ""
            else:
                assert got == repr(cell) if isinstance(cell, float) else got == str(cell)
    raw = io.StringIO(newline="")
    write_delimited(raw, header, rows, sep, raw_cells=True)
    assert [r for r in csv.reader(io.StringIO(raw.getvalue(), newline=""), delimiter=sep)][0] == header
