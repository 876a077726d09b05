"""Pilot tests of the Analysis pane on the demo store (real ingest, real SQLite, real textual-plot widgets)."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from align_track import schema as S
from align_track.demo.store import loaded, settle, wait_until
from align_track.query.analysis import alignment_curve, hit_rates
from align_track.tui.app import AlignTrackApp
from align_track.tui.panes.analysis import AnalysisPane

pytestmark = pytest.mark.asyncio


async def open_analysis(app: AlignTrackApp, pilot) -> AnalysisPane:
    await wait_until(pilot, lambda: loaded(app), what="runs")
    await settle(pilot)
    await pilot.press("7")
    pane = app.query_one(AnalysisPane)
    await wait_until(pilot, lambda: pane.ready, what="plots mounted")
    assert app.active_pane == "analysis"
    return pane


def title(pane: AnalysisPane) -> str:
    return str(pane.query_one("#analysis-title").render())


def screen_text(app: AlignTrackApp) -> str:
    """What the terminal shows, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_curve_view_draws_one_series_per_adm_and_the_diagonal(demo_store):
    uri, _ = demo_store
    app = AlignTrackApp(uri, ansi=True)  # 16 colours
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_analysis(app, pilot)
        curve = alignment_curve(app.snapshot.runs)
        assert len(curve) >= 3 and pane.curve == curve
        # ADMs that follow their targets to different degrees: their points sit at different heights
        means = {adm: sum(p.chosen_mean for p in pts) / len(pts) for adm, pts in curve.items()}
        assert max(means.values()) - min(means.values()) > 0.1
        plot = pane.query_one("#curve-plot")
        assert len(plot._datasets) == 1 + len(curve)  # the diagonal, then one scatter per ADM (all KDMAs pooled)
        assert f"{sum(map(len, curve.values()))} points, {len(curve)} ADMs" in title(pane)
        legend = str(pane.query_one("#curve-legend").render())
        assert all(adm in legend for adm in curve) and all(len(line) <= 80 for line in legend.splitlines())
        shown = screen_text(app)
        assert "target value" in shown and "7 Analysis" in shown
        assert any(marker in shown for marker in "ox+*")  # the markers are on screen at 80x24

        # k: one KDMA at a time; the points are that KDMA's only, joined by lines
        await pilot.press("k")
        assert pane.kdma == pane.kdmas[0] and pane.kdma in title(pane)
        assert {p.kdma for pts in pane.curve.values() for p in pts} == {pane.kdma}
        for _ in pane.kdmas:
            await pilot.press("k")
        assert pane.kdma is None and "all KDMAs" in title(pane)


async def test_hit_rate_view_pivots_target_by_adm(demo_store):
    uri, _ = demo_store
    app = AlignTrackApp(uri)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_analysis(app, pilot)
        await pilot.press("o")
        table = pane.query_one("#analysis-hits", DataTable)
        assert app.focused is table
        rates = hit_rates(app.snapshot.runs)
        # a totals row first, then a row per target; target names, an all-ADMs column, then a column per ADM
        assert table.row_count == 1 + len(rates.targets) and len(table.columns) == 2 + len(rates.adms)
        # one cell by hand: the runs of that target and ADM, hit rates weighted by covered scenes
        target, adm = next(iter(rates.cells))
        runs = [r for r in app.snapshot.runs if r.params.get(S.PARAM_TARGET) == target
                and r.params.get(S.PARAM_ADM) == adm and S.METRIC_ORACLE_HIT_RATE in r.metrics]
        scenes = sum(r.metrics[S.METRIC_SCENES_COVERED] for r in runs)
        rate = sum(r.metrics[S.METRIC_ORACLE_HIT_RATE] * r.metrics[S.METRIC_SCENES_COVERED] for r in runs) / scenes
        row = table.get_row_at(1 + rates.targets.index(target))
        assert str(row[2 + rates.adms.index(adm)]) == f"{rate:.2f} ({int(scenes)})"


async def test_hit_rate_table_reaches_every_adm_at_80x24_with_totals_in_view(demo_store):
    """Issue 25 item 8: at 80x24 every ADM column comes into view with →, the target names and the totals
    (the all-ADMs column, the all-targets row) stay in view beside it, and the line under the table names
    the cell under the cursor in full."""
    from align_track.query.analysis import hit_rate_totals
    from tests.support.tui_fixtures import static_text

    uri, _ = demo_store
    app = AlignTrackApp(uri)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_analysis(app, pilot)
        await pilot.press("o")
        table = pane.query_one("#analysis-hits", DataTable)
        rates = hit_rates(app.snapshot.runs)
        totals = hit_rate_totals(rates)
        assert len(rates.adms) >= 4 and table.size.width <= 80  # more ADMs than fit at once
        top = str(table.get_row_at(0)[1]), [str(c) for c in table.get_row_at(0)[2:]]
        assert top == (f"{totals.overall[0]:.2f} ({totals.overall[1]})",
                       [f"{totals.by_adm[a][0]:.2f} ({totals.by_adm[a][1]})" for a in rates.adms])
        first_target = str(table.get_row_at(1)[0])
        seen = set()
        for _ in range(len(rates.adms) + 1):
            await pilot.press("right")
            await pilot.pause()
            shown = screen_text(app)
            assert "all targets" in shown and "all ADMs" in shown and first_target in shown
            row, column = table.cursor_coordinate
            if column >= 2:
                adm = rates.adms[column - 2]
                total = totals.by_adm[adm]
                assert f"{total[0]:.2f} ({total[1]})" in shown.splitlines()[3], shown  # its total, on screen
                assert f"over {total[1]} scenes · {adm} · all targets" in " ".join(
                    static_text(pane.query_one("#hits-cell"), 200).split())
                seen.add(adm)
        assert seen == set(rates.adms)
        # and down to the last target, names and totals still in view
        for _ in range(len(rates.targets) + 1):
            await pilot.press("down")
        await pilot.pause()
        shown = screen_text(app)
        last = str(table.get_row_at(len(rates.targets))[0])
        assert last in shown and "all targets" in shown and table.cursor_coordinate.row == len(rates.targets)


async def test_scatter_view_reads_a_runs_scenes_and_matches_its_prediction_metrics(demo_store):
    uri, _ = demo_store
    app = AlignTrackApp(uri)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_analysis(app, pilot)
        await pilot.press("p")
        assert pane.scatter_runs
        for step in range(2):  # the first run, then the next one (n)
            await wait_until(pilot, lambda: not pane.waiting, what="scenes of the run")
            run = pane.scatter_runs[pane.scatter_index]
            assert pane.scatter_index == step and run.run_name in title(pane)
            # the pairs read back from the traces are the ones the ingest counted and averaged
            counts = {S.parse_kdma_metric(k)[0]: v for k, v in run.metrics.items()
                      if (S.parse_kdma_metric(k) or ("", ""))[1] == S.KDMA_PREDICTION_CHOICES and v}
            assert len(pane.pairs) == sum(counts.values()) > 0
            for kdma in counts:
                errors = [abs(g - t) for _, k, t, g in pane.pairs if S.metric_safe(k) == kdma]
                mae = run.metrics[S.kdma_metric(kdma, S.KDMA_PREDICTION_MAE)]
                assert sum(errors) / len(errors) == pytest.approx(mae)
            assert len(pane.query_one("#scatter-plot")._datasets) == 1 + len(counts)
            await pilot.press("n")
        await pilot.press("N", "a")
        assert pane.view == "curve" and pane.scatter_index == 1


async def test_the_plots_say_which_runs_they_leave_out_and_why(demo_store):
    """Issue 21: the curve and the hit-rate table name the runs they cannot draw (unaligned ones here) and why."""
    from align_track.query.coverage import UNALIGNED, curve_lines, missing_lines
    from tests.support.tui_fixtures import static_text

    uri, _ = demo_store
    app = AlignTrackApp(uri)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await open_analysis(app, pilot)
        runs = app.snapshot.runs
        unaligned = [r for r in runs if r.params.get(S.PARAM_TARGET) == S.UNALIGNED]
        assert unaligned
        legend = " ".join(static_text(pane.query_one("#curve-legend"), 400).split())
        expected = curve_lines(runs, names=False)
        assert any(line.startswith(f"{len(unaligned)} run") and line.endswith(UNALIGNED) for line in expected)
        assert all(f"left out: {line}" in legend for line in expected), legend
        await pilot.press("o")
        hits = " ".join(static_text(pane.query_one("#hits-legend"), 400).split())
        expected = missing_lines(runs, S.METRIC_ORACLE_HIT_RATE, names=False)
        assert any(UNALIGNED in line for line in expected)
        assert all(f"left out: {line}" in hits for line in expected), hits
