"""End to end on the demo corpus: ingest -> alignment metrics read back through MLflow -> report, chart and image."""

from __future__ import annotations

import zipfile
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from align_track import schema as S
from align_track.cli.main import main
from align_track.demo.generate import generate_demo
from align_track.ingest.pipeline import ingest
from align_track.query.analysis import alignment_curve
from align_track.query.export import ExportError
from align_track.query.report import write_report
from align_track.query.select import load_complete_runs

EXPERIMENTS, SCENES = 24, 8


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo corpus without scores.json (as most real runs are: no scoring server), ingested into SQLite."""
    base = tmp_path_factory.mktemp("alignment-demo")
    paths = generate_demo(base / "exps", run_folders=EXPERIMENTS, scenes=SCENES, seed=0)
    for path in paths:
        (path / "scores.json").unlink(missing_ok=True)
    uri = f"sqlite:///{base / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        summary = ingest(base / "exps", uri)
    assert not summary.failures
    return uri


@pytest.fixture(scope="module")
def runs(demo: str) -> list:
    """Read back through MLflow's own client, not align-track's reader."""
    from mlflow import MlflowClient

    client = MlflowClient(demo)
    experiment = client.get_experiment_by_name("align-system-experiments")
    found = client.search_runs([experiment.experiment_id], max_results=1000)
    assert found and not any(k.startswith(S.SCORE_PREFIX) for r in found for k in r.data.metrics)
    return found


def test_every_run_accounts_for_each_scene_once(runs: list) -> None:
    for run in runs:
        m, scenes = run.data.metrics, int(run.data.params[S.PARAM_NUM_SCENES])
        left_out = {why: m[S.left_out_metric(why)] for why in S.LEFT_OUT_REASONS}
        assert m[S.METRIC_SCENES_COVERED] + sum(left_out.values()) == scenes, run.info.run_name
        target = run.data.params[S.PARAM_TARGET]
        if target == S.UNALIGNED:
            assert left_out[S.LEFT_OUT_UNALIGNED] == scenes and S.METRIC_CHOSEN_DISTANCE not in m
        elif S.KDE_VALUE in run.data.params.values():
            assert left_out[S.LEFT_OUT_KDE] == scenes and S.METRIC_ORACLE_HIT_RATE not in m
        if m[S.METRIC_SCENES_COVERED]:
            assert 0 <= m[S.METRIC_ORACLE_HIT_RATE] <= 1 and m[S.METRIC_CHOSEN_DISTANCE] >= 0


def test_metrics_differ_between_adms_that_follow_targets_differently(runs: list) -> None:
    hits: dict[str, list[float]] = defaultdict(list)
    distance: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        m = run.data.metrics
        if S.METRIC_ORACLE_HIT_RATE in m:
            hits[run.data.params[S.PARAM_ADM]].append(m[S.METRIC_ORACLE_HIT_RATE])
            distance[run.data.params[S.PARAM_ADM]].append(m[S.METRIC_CHOSEN_DISTANCE])

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    follows, kaleido, baseline = "pipeline_comparative_regression", "pipeline_kaleido", "pipeline_baseline"
    assert mean(hits[follows]) > mean(hits[kaleido]) + 0.1 > mean(hits[baseline]) + 0.2
    assert mean(distance[follows]) < mean(distance[kaleido]) and mean(distance[follows]) < mean(distance[baseline])
    # predictions were written by the regression ADMs only, and their errors are small but not zero
    maes = {run.data.params[S.PARAM_ADM]: v for run in runs for k, v in run.data.metrics.items()
            if k.endswith("." + S.KDMA_PREDICTION_MAE)}
    assert set(maes) <= {follows, kaleido, "OutlinesTransformersComparativeRegressionADM"}
    assert all(0 < v < 0.2 for v in maes.values())


def test_default_report_pivots_the_oracle_hit_rate_when_no_run_is_scored(demo: str, tmp_path: Path) -> None:
    out = tmp_path / "report.xlsx"
    result = cli("report", "--mlflow-uri", demo, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "no run has a score.* metric: pivoting alignment.oracle_hit_rate" in result.stderr
    wb = load_workbook(out)
    assert wb["report"]["A1"].value.startswith("mean of alignment.oracle_hit_rate by alignment_target_id")
    assert wb.sheetnames == ["report", "alignment curve", "curve data", "runs"]
    data = list(wb["curve data"].iter_rows(values_only=True))
    curve = alignment_curve(load_complete_runs(demo)[2])
    points = [p for pts in curve.values() for p in pts]
    assert data[0][:4] == ("adm", "kdma", "target value", "chosen mean (true KDMA value)")
    assert [(r[0], r[1], r[2]) for r in data[1:1 + len(points)]] == [(p.adm, p.kdma, p.target) for p in points]
    with zipfile.ZipFile(out) as z:
        charts = [n for n in z.namelist() if n.startswith("xl/charts/chart")]
        xml = z.read(charts[0]).decode()
    assert len(charts) == 1 and "scatterChart" in xml
    assert xml.count("<ser>") == len(curve) + 1  # one series per ADM, and the diagonal
    assert all(f"<v>{adm}</v>" in xml for adm in curve) and "<v>perfect alignment</v>" in xml


def test_alignment_metrics_work_as_values_with_spaces_in_the_kdma(demo: str) -> None:
    result = cli("report", "--mlflow-uri", demo, "--values", "kdma.Moral judgement.chosen_mean", "--agg", "max")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("max of kdma.Moral judgement.chosen_mean")
    assert "ADEPT-DryRun-Moral judgement-0.2" in result.stdout


def test_png_and_svg_images_of_the_curve(demo: str, tmp_path: Path) -> None:
    from PIL import Image

    png = tmp_path / "curve.png"
    result = cli("report", "--mlflow-uri", demo, "-o", str(png))
    assert result.exit_code == 0 and "wrote the alignment curve" in result.stdout
    curve = alignment_curve(load_complete_runs(demo)[2])
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 600 and image.height > 600
        colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20)}
    import matplotlib

    tab10 = [tuple(round(255 * v) for v in c) for c in matplotlib.colormaps["tab10"].colors]
    assert all(tab10[i] in colours for i in range(len(curve)))  # every ADM's colour is drawn
    svg = tmp_path / "curve.svg"
    assert cli("report", "--mlflow-uri", demo, "--format", "svg", "-o", str(svg)).exit_code == 0
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()[:2000]


def test_an_image_without_curve_points_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no run has an alignment curve point"):
        write_report(None, tmp_path / "x.png", "png", "", {})
    assert not (tmp_path / "x.png").exists()
