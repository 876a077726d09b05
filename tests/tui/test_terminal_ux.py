"""The TUI at 80x24 as a terminal user expects it (issue 12): Pilot tests against real SQLite stores."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from align_track.demo.store import compared, loaded, scenes_loaded, settle, wait_until
from align_track.ingest.pipeline import ingest
from align_track.schema import TAG_CLAIM, TAG_KEY, TAG_PATH
from align_track.tui.app import AlignTrackApp
from align_track.tui.commands import ActionsProvider
from align_track.tui.screens.compare_scene import CompareSceneScreen
from align_track.tui.screens.copy import CopyScreen
from align_track.tui.screens.help import HelpScreen
from align_track.tui.screens.message import MessageScreen
from tests.support.factory import write_run_folder
from tests.support.tui_fixtures import app_on, opened, static_text, table_text, write_choices

pytestmark = pytest.mark.asyncio
SIZE = (80, 24)


def render_wide(renderable) -> str:
    """A renderable as text on a console wide enough that no cell wraps."""
    from rich.console import Console

    console = Console(width=400, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


# --------------------------------------------------------------------------- runs table


async def test_runs_table_fits_80_columns_with_folder_filter_and_a_details_strip(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        table = app.runs_pane.table
        header = table_text(table).splitlines()[0]
        assert header.split()[:5] == ["ADM", "target", "score", "avg", "s"]  # what tells runs apart, in view
        run = app.selection.run(app.runs_pane.current_run_id)
        folder = run.tags[TAG_PATH]
        details = static_text(app.runs_pane.query_one("#runs-details"))
        for value in (run.params["adm"], run.params["alignment_target_id"], folder, run.params["llm_backbone"]):
            assert value in details  # in full, whatever the column widths cut
        await pilot.press("slash", *folder[-8:])  # the folder's end (a time of day): matched by /
        await settle(pilot)
        shown = [app.runs_pane.model.run_ids[i] for i in table.view]
        assert run.run_id in shown and len(shown) < len(app.snapshot.runs)
        await pilot.press("escape")
        await pilot.resize_terminal(140, 24)
        await settle(pilot)
        assert sum(table.widths[:3]) > sum((1, 14, 16))  # a wider terminal widens the text columns


async def test_running_and_stalled_runs_are_told_apart_from_finished(demo_store, tmp_path):
    import shutil

    from mlflow import MlflowClient

    from align_track.store.run_writer import claim_token

    src = demo_store[0].removeprefix("sqlite:///")
    shutil.copy(src, tmp_path / "m.db")
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("align-system-experiments").experiment_id
    live = client.create_run(exp, tags={TAG_KEY: "k1", TAG_CLAIM: claim_token(), TAG_PATH: "live/run"},
                             run_name="live").info.run_id
    dead = client.create_run(exp, tags={TAG_KEY: "k2", TAG_CLAIM: f"{socket.gethostname()}:999999999:1",
                                        TAG_PATH: "dead/run"}, run_name="dead").info.run_id
    app = AlignTrackApp(uri)
    async with app.run_test(size=SIZE) as pilot:
        await opened(app, pilot)
        model = app.runs_pane.model
        cells = {rid: model.cells[i] for i, rid in enumerate(model.run_ids)}
        keys = [c.key for c in model.columns]
        assert cells[live][keys.index("marker")] == "▶" and cells[live][keys.index("state")] == "running"
        assert cells[dead][keys.index("marker")] == "!" and cells[dead][keys.index("state")] == "stalled"
        finished = {rid: c[keys.index("state")] for rid, c in cells.items() if rid not in (live, dead)}
        timed = {r.run_id for r in app.snapshot.runs if "timing.total_seconds" in r.metrics}
        assert {state for rid, state in finished.items() if rid in timed} == {"done"}
        # the demo's folders without timing.json (issue 25 item 7): complete, but not said to be done
        assert {state for rid, state in finished.items() if rid not in timed} == {"no timing"}  # finished long ago
        assert len(finished) > len(timed)
        assert "+ 2 unfinished: 1 running, 1 stalled" in app.status.state
        # a report never counts a run still being written
        await pilot.press("5")
        assert live not in {r.run_id for r in app.selection.report_runs()[0]}


async def test_fresh_store_says_how_to_start(tmp_path):
    app = AlignTrackApp(f"sqlite:///{tmp_path / 'none.db'}")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status.state == "no store yet", what="empty store")
        assert "no runs yet: press 4 to ingest a folder" in table_text(app.runs_pane.table)
        assert app.status.error == ""


# --------------------------------------------------------------------------- keys


async def test_vi_keys_move_like_arrows_home_end_and_pages(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        table = app.runs_pane.table
        await pilot.press("j", "j")
        assert table.cursor == 2
        await pilot.press("k")
        assert table.cursor == 1
        await pilot.press("G")
        assert table.cursor == len(table.view) - 1
        await pilot.press("g")
        assert table.cursor == 0
        await pilot.press("ctrl+d")
        page = table.cursor
        assert page > 1
        await pilot.press("ctrl+u")
        assert table.cursor == 0
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        box = app.screen.query_one("VerticalScroll")
        await pilot.press("j", "j", "j")
        assert box.scroll_y > 0
        await pilot.press("g")
        assert box.scroll_y == 0


async def test_a_page_back_undoes_a_page_even_when_the_page_height_changed_between(demo_store):
    """ctrl+d then ctrl+u lands where it started although the details strip grew in between (a long run's fields
    take more lines: the table's page is a row shorter), as in vi; CI saw it land a row off."""
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        table = app.runs_pane.table
        await pilot.press("j", "ctrl+d")
        down = table.cursor
        before = table._page_height()
        app.runs_pane.query_one("#runs-details").styles.min_height = 7
        await settle(pilot)
        assert table._page_height() < before and table.cursor == down
        await pilot.press("ctrl+u")
        assert table.cursor == 1
        await pilot.press("ctrl+u")  # no page down to undo: a page of today's height (stops at the top)
        assert table.cursor == 0


async def test_z_zooms_the_scene_detail_to_the_whole_screen(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("enter")
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        box = app.scenes_pane.query_one("#scene-detail-box")
        before = box.size.height
        await pilot.press("z")
        await settle(pilot)
        assert box.size.height >= 20 > before  # nearly all 24 lines, not 10
        assert not app.scenes_pane.table.display or app.scenes_pane.table.size.height == 0
        await pilot.press("n")  # still moves between scenes while zoomed
        assert app.scenes_pane.table.cursor == 1
        await pilot.press("j", "j")  # and j/k scroll the scene's text, as arrows do
        await settle(pilot)
        assert box.scroll_y > 0
        await pilot.press("z")
        await settle(pilot)
        assert box.size.height == before


async def test_y_copies_run_id_folder_and_urls_by_osc52(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        run_id = app.runs_pane.current_run_id
        await pilot.press("y")
        assert isinstance(app.screen, CopyScreen)
        await pilot.press("1")
        assert app.clipboard == run_id
        await pilot.press("y", "3")
        assert app.clipboard.endswith(f"/#/experiments/{app.snapshot.experiment_id}/runs/{run_id}")
        await pilot.press("enter")
        await wait_until(pilot, lambda: scenes_loaded(app), what="scenes")
        await pilot.press("y")
        labels = [item.label for item in app.screen.items]
        assert "MLflow URL of the scene's trace" in labels and "align-app command" in labels
        await pilot.press(str(labels.index("align-app command") + 1))
        assert app.clipboard.startswith("align-app --experiment ")


async def test_palette_speaks_words_and_closing_it_never_strands_focus(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        entries = ActionsProvider(app.screen)._entries()
        texts = [text for text, _, _ in entries]
        assert "Show the Runs pane (1)" in texts
        assert not [t for t in texts if "show_pane" in t or "(" in t.split(" (")[0]]
        assert {where for _, _, where in entries} >= {"in any pane", "in the Runs pane"}
        await pilot.press("6", "ctrl+p")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert app.focused is not app.runs_pane.filter_input
        await pilot.press("1")
        assert app.active_pane == "runs" and app.runs_pane.filter_input.value == ""


async def test_help_lists_every_key_the_readme_lists(demo_store):
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## The terminal UI", 1)[1].split("\n## ", 1)[0]
    key_cells = [line.split("|")[2] for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    keys = {k for key in re.findall(r"`([^`]+)`", "\n".join(key_cells[1:])) for k in key.split("/")}
    assert {"j", "z", "y", "→", "ctrl+d"} <= keys
    uri, _ = demo_store
    app = AlignTrackApp(uri)
    async with app.run_test(size=(120, 60)) as pilot:
        await opened(app, pilot)
        await pilot.press("question_mark")
        text = static_text(app.screen.query_one("#help-keys"))
        missing = [k for k in keys if k not in text and k.replace("ctrl+", "^") not in text]
        assert not missing, missing


async def test_invalid_filter_message_wraps_instead_of_being_cut(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("f", *"params.adm = 'x' AND nonsense", "enter")
        await wait_until(pilot, lambda: app.status.error != "", what="filter error")
        await settle(pilot)
        assert len(app.status.error) > 76 and app.status.size.height >= 2
        painted = " ".join(render_wide(app.status.render()).split())
        assert " ".join(app.status.error.split())[-20:] in painted  # the end of the sentence is on screen


# --------------------------------------------------------------------------- compare


async def compare_three(tmp_path: Path, store_uri: str, pilot, app: AlignTrackApp) -> None:
    await opened(app, pilot)
    await pilot.press("space", "space", "space", "c")
    await wait_until(pilot, lambda: compared(app), what="compare")
    await settle(pilot)


@pytest.fixture
def three_runs(tmp_path: Path, store_uri: str) -> str:
    exps = tmp_path / "exps"
    write_choices(exps / "a", "adm_a", [0, 1, 0, 1])
    write_choices(exps / "b", "adm_b", [0, 0, 0, 1])
    write_choices(exps / "c", "adm_c", [0, 1, 0, 1])
    write_choices(exps / "d", "adm_d", [0, 1, 0, 1])
    assert not ingest(exps, store_uri).failures
    return store_uri


async def test_compare_marks_the_odd_one_out_and_fits_four_runs_in_80_columns(three_runs):
    app = AlignTrackApp(three_runs)
    async with app.run_test(size=SIZE) as pilot:
        await opened(app, pilot)
        await pilot.press("space", "space", "space", "space", "c")
        await wait_until(pilot, lambda: compared(app), what="compare")
        await settle(pilot)
        pane = app.compare_pane
        table = pane.table
        assert table.total_width <= 80 - 1  # four runs, no sideways scrolling
        row = pane.comparison.keys.index(("June2025-MF-eval", "S1"))
        odd = pane.comparison.odd_ones(row)
        assert len(odd) == 1
        cells = table.rows[row]
        assert cells[3 + next(iter(odd))].startswith("✗") and sum(c.startswith("✗") for c in cells) == 1
        legend = static_text(pane.query_one("#compare-legend"))
        assert all(f"{letter} " in legend for letter in "ABCD")
        # the ≠ column stays in view when scrolling right
        table.frozen = 1
        table.scroll_to(x=10, animate=False, immediate=True)
        await settle(pilot)
        lines = table_text(table).splitlines()
        assert lines[1 + table.view.index(row)].startswith("≠")


async def test_enter_on_a_compared_scene_shows_the_runs_side_by_side(three_runs):
    app = AlignTrackApp(three_runs)
    async with app.run_test(size=SIZE) as pilot:
        await opened(app, pilot)
        await pilot.press("space", "space", "space", "c")
        await wait_until(pilot, lambda: compared(app), what="compare")
        await settle(pilot)
        pane = app.compare_pane
        row = pane.comparison.keys.index(("June2025-MF-eval", "S1"))
        pane.table.move_to_row(row)
        await pilot.press("enter")
        assert isinstance(app.screen, CompareSceneScreen)
        assert app.screen.query_one("#compare-scene").size.width >= 78  # the whole screen for the columns
        text = render_wide(app.screen.render_at(app.screen.position))
        assert "odd one out" in text
        assert text.count("Justification of S1: choice") == 3  # every run's justification, side by side
        assert "Treat Patient A" in text and "Treat Patient B" in text
        assert "true→" in text.replace(" ", "") and "0.20" in text  # true vs predicted KDMA values
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareSceneScreen)


async def test_disagreements_filter_shows_in_the_header_and_resets_on_the_next_compare(three_runs):
    app = AlignTrackApp(three_runs)
    async with app.run_test(size=SIZE) as pilot:
        await opened(app, pilot)
        await pilot.press("space", "space", "space", "space", "c")  # all four: scene S1 disagrees
        await wait_until(pilot, lambda: compared(app), what="compare")
        pane = app.compare_pane
        await pilot.press("d")
        assert "disagreements only" in str(pane.query_one("#compare-summary").render())
        await pilot.press("o")
        assert "by disagreement" in str(pane.query_one("#compare-summary").render())
        first = pane.table.current_row
        assert not pane.comparison.agree[first]  # disagreeing scenes first
        await pilot.press("escape", "u", "home", "space", "space", "space", "c")
        await wait_until(pilot, lambda: compared(app), what="second compare")
        summary = str(pane.query_one("#compare-summary").render())
        assert "disagreements only" not in summary and not pane.only_differences
        assert len(pane.table.view) == len(pane.comparison.keys)


# --------------------------------------------------------------------------- ingest pane


async def test_failed_folder_shows_folder_then_readable_reason_and_enter_shows_it_all(tmp_path, store_uri):
    exps = tmp_path / "exps"
    write_choices(exps / "good", "adm_a", [0, 1])
    bad = write_choices(exps / "bad", "adm_b", [0, 1])
    (bad / ".hydra" / "config.yaml").write_text("adm: [unclosed\nx: 1\n")
    app = AlignTrackApp(store_uri, experiments_dir=exps)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status.state in ("no store yet", "0 runs") or loaded(app),
                         what="start")
        await pilot.press("4", "e", "enter")
        await wait_until(pilot, lambda: app.ingest_pane.summary is not None, timeout=120, what="ingest")
        await settle(pilot)
        log = app.ingest_pane.query_one("#ingest-log")
        failed = next(r for r in log.rows if r[0] == "failed")
        assert failed[2] == "bad"
        assert failed[3].startswith(".hydra/config.yaml: invalid YAML")
        assert str(tmp_path) not in failed[3]  # the folder is its own column: no path repeated
        stats = str(app.ingest_pane.query_one("#ingest-stats").render())
        assert stats.startswith("done · 1 ingested · 1 failed") and len(stats) < 78
        detail = static_text(app.ingest_pane.query_one("#ingest-detail"))
        assert "bad" in detail and "invalid YAML" in detail
        await pilot.press("enter")
        assert isinstance(app.screen, MessageScreen)
        assert app.screen.message.count(str(bad)) == 1
        await pilot.press("escape")
        await pilot.press("4", "e")
        assert app.focused is app.ingest_pane.query_one("#ingest-path")
        assert "esc" in str(app.ingest_pane.query_one("#ingest-hint").render())
        await pilot.press("escape", "q")  # esc leaves the path box; q then quits
    assert not app.is_running


async def test_a_10mb_state_opens_capped_with_the_full_text_one_key_away(tmp_path, store_uri):
    from tests.support.factory import scene

    big = scene("BIG")
    big["input"]["state"] = "x" * 10_000_000
    write_run_folder(tmp_path / "exps" / "big", scenes=[big])
    assert not ingest(tmp_path / "exps", store_uri).failures
    app = AlignTrackApp(store_uri)
    async with app.run_test(size=SIZE) as pilot:
        await opened(app, pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: scenes_loaded(app), timeout=60, what="scenes")
        await settle(pilot)
        box = app.scenes_pane.query_one("#scene-detail-box")
        assert box.virtual_size.height < 200  # a few thousand characters drawn, not 10 MB
        assert "press f for the full text" in static_text(app.scenes_pane.query_one("#scene-detail-box"))
        assert app.scenes_pane.full is False


async def test_the_ingest_summary_from_make_demo_is_shown_when_the_app_opens(demo_store):
    uri, _ = demo_store
    notice = "ingest: ingested=24 updated=0 skipped=0 busy=0 failed=0 traces=192"
    app = AlignTrackApp(uri, notice=notice)
    async with app.run_test(size=SIZE) as pilot:
        await opened(app, pilot)
        assert [n.message for n in app._notifications] == [notice]


async def test_the_pane_bar_keeps_every_pane_key_in_view_at_60_columns(demo_store):
    """At 60x20 the bar cropped ' 7 Analysis  8 Sweep': two panes a newcomer could not know were there."""
    from align_track.tui.widgets.panebar import PaneBar

    async with app_on(demo_store[0], (60, 20)) as (app, pilot):
        bar = app.query_one(PaneBar)

        def shown() -> str:
            return bar.render().plain[:bar.size.width]  # what fits on the bar's one line

        assert bar.size.width == 60
        assert [k for k in "12345678" if f" {k}" in shown()] == list("12345678"), shown()
        assert "1 Runs" in shown()  # the pane shown keeps its title
        await pilot.press("8")
        await settle(pilot)
        assert "8 Sweep" in shown() and " 7" in shown(), shown()
        await pilot.resize_terminal(120, 20)
        await settle(pilot)
        assert "7 Analysis" in shown() and "2 Scenes" in shown(), shown()  # room enough: every title


async def test_the_key_bar_keeps_help_quit_and_the_palette_where_keys_need_more_than_three_lines(demo_store):
    """The Sweep pane at 60x20 needed four lines of keys; the bar shows three, so 'q Quit  ^p Commands' was cut."""
    from align_track.tui.widgets.keybar import KeyBar

    async with app_on(demo_store[0], (60, 20)) as (app, pilot):
        await pilot.press("8")
        await settle(pilot)
        bar = app.query_one(KeyBar)
        shown = bar.render().plain.splitlines()[:bar.size.height]  # the lines the bar has room for
        assert len(bar.lines(bar.size.width)) == bar.size.height <= 3
        text = "\n".join(shown)
        for key in ("? Help", "q Quit", "^p Commands", "/ Filter", "s Sort"):
            assert key in text, text
