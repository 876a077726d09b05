"""Long values cut where they are alike, never in the part that tells them apart, and every field of the details
in view (issue 25, item 6): Pilot at 80x24 reading what is painted, against real SQLite stores."""

from __future__ import annotations

import pytest

from align_track.demo.store import loaded, settle, wait_until
from align_track.query.textfit import cut_apart, shared_spans
from align_track.tui.app import AlignTrackApp
from tests.support.tui_fixtures import table_text, write_choices

SIZE = (80, 24)
ADMS = ("baseline", "kaleido", "comparative_regression")


def test_a_cut_keeps_what_differs_among_values_alike():
    values = ["Qwen2.5-7B-Instruct", "Qwen2.5-32B-Instruct", "Mistral-7B-Instruct-v0.3"]
    spans = shared_spans(values)
    cut = {v: cut_apart(v, 13, *spans[v]) for v in values}
    assert "7B" in cut["Qwen2.5-7B-Instruct"] and "32B" in cut["Qwen2.5-32B-Instruct"]
    assert all(len(c) == 13 for c in cut.values())
    assert cut_apart("short", 13, 0, 0) == "short"


@pytest.mark.asyncio
async def test_ingest_log_gives_the_folder_the_room_and_keeps_what_tells_folders_apart(tmp_path, store_uri):
    exps = tmp_path / "exps"
    names = [f"phase1_integration_{adm}_adept_2025-06-01__10-00-00" for adm in ADMS]
    for adm, name in zip(ADMS, names, strict=True):
        write_choices(exps / name, adm, [0, 1])
    app = AlignTrackApp(store_uri, experiments_dir=exps)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status.state in ("no store yet", "0 runs") or loaded(app),
                         what="start")
        await pilot.press("4", "e", "enter")  # e: edit the path (4 alone focuses the log)
        await wait_until(pilot, lambda: app.ingest_pane.summary is not None, timeout=120, what="ingest")
        await settle(pilot)
        log = app.ingest_pane.query_one("#ingest-log")
        assert not any(r[3] for r in log.rows)  # no reasons: the folder takes the room
        lines = table_text(log).splitlines()
        shown = [line for line in lines[1:] if "2025" in line or "…" in line]
        assert len(shown) == 3
        for adm in ADMS:  # each row shows the part of its folder that differs from the others
            assert sum(adm in line for line in shown) == 1, (adm, shown)
        longest = max(len(n) for n in names)
        folder = [c.key for c in log.columns].index("path")
        assert log.widths[folder] >= min(longest, 80 - 1 - 8 - 6 - 6 - 8)


@pytest.mark.asyncio
async def test_compare_legend_keeps_what_tells_the_runs_apart(tmp_path, store_uri):
    from align_track.demo.store import compared
    from align_track.ingest.pipeline import ingest
    from tests.support.factory import config, write_run_folder
    from tests.support.tui_fixtures import app_on, choosing_scene, static_text

    adm = "pipeline_comparative_regression_with_in_context_learning"
    target = {"id": "ADEPT-June2025-affiliation_merit-0.5", "kdma_values": [{"kdma": "merit", "value": 0.5}]}
    for name, llm in (("small", "Qwen/Qwen2.5-7B-Instruct"), ("large", "Qwen/Qwen2.5-32B-Instruct")):
        write_run_folder(tmp_path / "exps" / name, scenes=[choosing_scene("S0", 0), choosing_scene("S1", 1)],
                         cfg=config(adm=adm, llm=llm, target=target))
    assert not ingest(tmp_path / "exps", store_uri).failures
    async with app_on(store_uri, SIZE) as (app, pilot):
        await pilot.press("space", "space", "c")
        await wait_until(pilot, lambda: compared(app), what="compare")
        await settle(pilot)
        legend = static_text(app.compare_pane.query_one("#compare-legend"), 80).splitlines()
        runs = [line for line in legend if line.startswith(("A ", "B "))]
        assert len(runs) == 2
        assert sorted("32B" in line for line in runs) == [False, True]  # each run's model, not 'Qw…B-Instruct'
        assert sum("-7B-" in line for line in runs) == 1
        shared = next(line for line in legend if "all:" in line)
        assert adm[:20] in shared and "affiliation_merit-0.5" in shared  # said once, not cut from each run


def screen_text(app) -> str:
    """Every line the screen paints (what tmux would show)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.mark.asyncio
async def test_report_selects_show_whole_names_each_once_with_their_source_when_two_share_one(demo_store):
    from textual.widgets import Select

    from tests.support.tui_fixtures import app_on

    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("5")
        pane = app.report_pane
        rows = pane.query_one("#report-rows", Select)
        await wait_until(pilot, lambda: len(rows._options) > 3, what="report options")
        await settle(pilot)
        options = [(str(label), value) for label, value in rows._options if value is not Select.NULL]
        labels = [label for label, _ in options]
        assert len(labels) == len(set(labels)), labels  # 'adm' and 'alignment_target_id' once each
        values = [value for _, value in options]
        assert "params.adm" in values and "tags.adm" not in values  # the tag repeats the param: left out
        screen = screen_text(app)
        assert "alignment_target_id " in screen and "timing.avg_seconds " in screen  # whole, not 'alignment_target_'
        await pilot.resize_terminal(60, 20)  # a tmux split
        await settle(pilot)
        screen = screen_text(app)
        assert "alignment_target_id " in screen and "timing.avg_seconds " in screen


def test_two_sources_of_one_name_are_told_apart_by_their_prefix():
    from align_track.tui.panes.report import option_labels

    assert option_labels(["params.adm", "tags.adm", "params.llm_backbone"]) == {
        "params.adm": "params.adm", "tags.adm": "tags.adm", "params.llm_backbone": "llm_backbone"}


@pytest.mark.asyncio
async def test_runs_details_keep_every_field_in_view_for_a_long_variant(tmp_path, store_uri):
    from align_track.ingest.pipeline import ingest
    from align_track.schema import RunSummary
    from tests.support.factory import config, write_run_folder
    from tests.support.tui_fixtures import app_on, choosing_scene

    target = {"id": "ADEPT-June2025-affiliation_merit-0.0_1.0", "kdma_values": [{"kdma": "merit", "value": 0.5}]}
    for temperature in ("0.0", "0.7"):  # alike but for the folder: ingest derives a variant from it
        write_run_folder(tmp_path / "exps" / "sweep" / f"temperature-{temperature}_top_p-0.95" / "2025-06-11_02-01-04",
                         scenes=[choosing_scene("S0", 0)], cfg=config(adm="pipeline_comparative_regression",
                                                                     target=target))
    assert not ingest(tmp_path / "exps", store_uri).failures
    async with app_on(store_uri, SIZE) as (app, pilot):
        pane = app.runs_pane
        s = RunSummary.of(app.selection.run(pane.current_run_id))
        assert len(f"target {s.target}  variant {s.variant}") > 78 and s.variant in s.path
        screen = screen_text(app)
        details = " ".join(screen[screen.index("ADM " + s.adm[:10]):].split())
        for value in (s.adm, s.target, s.path, "state done", "started"):
            assert value in details, value  # every field painted, none pushed off
        assert screen.count(s.variant) == 1  # the folder's part, not printed twice
