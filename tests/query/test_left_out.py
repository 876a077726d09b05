"""Every aggregate says what it leaves out and why (issue 21 items 1 and 4): the text report, its json/xlsx, the
alignment-curve image, export, on a store like the real folders (two ADMs at one curve point, an unaligned run, a
run whose folder has no KDMA values) and on a store another tool wrote."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from align_track.cli.main import main
from align_track.ingest.pipeline import ingest
from align_track.store.uri import DEFAULT_EXPERIMENT
from tests.support.factory import config, merit_target, scene, write_run_folder
from tests.support.upstream import write_legacy_store


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def build(root: Path) -> Path:
    """adm_a and adm_b choose alike at one target (one curve point), adm_c is unaligned, adm_d's folder has no
    true KDMA values."""
    aligned = [scene(f"S{i}", target="ADEPT-June2025-merit-0.5", choice=0) for i in range(3)]
    for adm in ("adm_a", "adm_b"):
        write_run_folder(root / adm, aligned, cfg=config(adm=adm, target=merit_target(0.5)))
    write_run_folder(root / "adm_c", [scene(f"S{i}") for i in range(3)], cfg=config(adm="adm_c"))
    write_run_folder(root / "adm_d", [scene(f"S{i}", target="ADEPT-June2025-merit-0.5", true_kdma={})
                                      for i in range(3)], cfg=config(adm="adm_d", target=merit_target(0.5)))
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    base = tmp_path_factory.mktemp("left-out")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        assert not ingest(build(base / "exps"), uri).failures
    return uri


def test_the_text_report_drops_empty_rows_and_says_why(store: str) -> None:
    result = cli("report", "--mlflow-uri", store)
    assert result.exit_code == 0, result.output
    table = [line for line in result.stdout.splitlines() if not line.startswith("note:")]
    assert not any(re.fullmatch(r"\S+(\s+-)+", line) for line in table), result.stdout  # no row of '-' only
    assert not any(line.startswith("unaligned") for line in table)
    notes = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    assert "note: 1 row with no alignment.oracle_hit_rate not shown: unaligned" in notes
    assert "note: 2 columns with no alignment.oracle_hit_rate not shown: adm_c, adm_d" in notes
    assert "note: 1 run without alignment.oracle_hit_rate: no alignment target (unaligned) (adm_c/unaligned)" in notes
    assert any("no KDMA values in the folder (adm_d/" in line for line in notes)


def test_json_and_xlsx_reports_carry_what_they_left_out(store: str, tmp_path: Path) -> None:
    assert cli("report", "--mlflow-uri", store, "-o", str(tmp_path / "r.json")).exit_code == 0
    payload = json.loads((tmp_path / "r.json").read_text())
    assert "unaligned" not in payload["table"]
    assert any("no alignment target (unaligned)" in line for line in payload["left_out"])
    assert cli("report", "--mlflow-uri", store, "-o", str(tmp_path / "r.xlsx")).exit_code == 0
    cells = [c for row in load_workbook(tmp_path / "r.xlsx")["report"].iter_rows(values_only=True) for c in row if c]
    assert any(isinstance(c, str) and "no KDMA values in the folder" in c for c in cells)


def test_the_curve_image_counts_its_runs_names_the_rest_and_sets_coinciding_points_apart(store: str,
                                                                                         tmp_path: Path) -> None:
    svg = tmp_path / "curve.svg"
    result = cli("report", "--mlflow-uri", store, "-o", str(svg))
    assert result.exit_code == 0, result.output
    text = svg.read_text()
    assert "2 of 4 runs plotted" in text and "2 of 4 runs plotted" in result.stdout  # not "4 runs"
    assert "left out: 1 run without a curve point: no alignment target (unaligned) (adm_c/unaligned)" in text
    assert "no KDMA values in the folder (adm_d/" in text
    assert "2 points" in text  # adm_a and adm_b share their point: said on the chart
    from align_track.query.analysis import CurvePoint, coincident, dodged

    curve = {a: [CurvePoint(a, "merit", 0.5, 0.2, 3, 1)] for a in ("adm_a", "adm_b")}
    xs = dodged(curve)
    assert xs[("adm_a", "merit", 0.5)] != xs[("adm_b", "merit", 0.5)]  # drawn side by side, not on top
    assert sum(xs.values()) / 2 == pytest.approx(0.5)
    assert coincident(curve) == [(0.5, 0.2, 2)]


def test_export_says_which_runs_have_no_alignment_metrics(store: str, tmp_path: Path) -> None:
    result = cli("export", "--mlflow-uri", store, "-o", str(tmp_path / "runs.csv"))
    assert result.exit_code == 0, result.output
    assert "note: 1 run without alignment metrics: no alignment target (unaligned) (adm_c/unaligned)" \
        in result.stderr
    assert "no KDMA values in the folder" in result.stderr and "note:" not in result.stdout


def test_runs_another_tool_wrote_are_named_with_the_fix(tmp_path: Path) -> None:
    """A store the upstream align-track wrote: every aggregate says its runs lack alignment metrics because
    another tool wrote them, and that an ingest brings them up to date; after one, the notes are gone."""
    tree = build(tmp_path / "exps")
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    write_legacy_store(uri, DEFAULT_EXPERIMENT, tree)
    alone = cli("report", "--mlflow-uri", uri, "--values", "alignment.oracle_hit_rate")
    assert alone.exit_code == 2  # no run has the metric at all: the error says why
    assert "4 runs without alignment metrics: written by another tool, run ingest" in alone.stderr
    assert not ingest(tree / "adm_a", uri).failures  # one run of align-track's own beside them
    report = cli("report", "--mlflow-uri", uri, "--values", "alignment.oracle_hit_rate")
    assert report.exit_code == 0, report.output
    assert "note: 4 runs without alignment.oracle_hit_rate: written by another tool, run ingest" in report.stdout
    export = cli("export", "--mlflow-uri", uri, "-o", str(tmp_path / "runs.csv"))
    assert "note: 4 runs without alignment metrics: written by another tool, run ingest" in export.stderr
    assert not ingest(tree, uri).failures
    report = cli("report", "--mlflow-uri", uri, "--values", "alignment.oracle_hit_rate")
    assert "another tool" not in report.stdout and "adm_c/unaligned" in report.stdout
