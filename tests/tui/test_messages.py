"""Every message readable in full at 80x24 and 60x20 (issue 25, items 3 and 4): read off the rendered screen."""

from __future__ import annotations

import pytest

from align_track.demo.store import compared, loaded, settle, swept, wait_until
from align_track.tui.app import AlignTrackApp
from align_track.tui.screens.confirm import ConfirmScreen
from align_track.tui.screens.messages import MessagesScreen
from align_track.tui.widgets.status import MORE
from tests.support.tui_fixtures import app_on
from tests.tui.test_app import hold_after_first_batch, one_scene_folders, send_keys

pytestmark = pytest.mark.asyncio
SIZES = [(80, 24), (60, 20)]
LONG_FILTER = "params.adm = 'pipeline_baseline' AND attributes.nope = 'x'"
"""MLflow refuses it with a 270-character message listing the valid attribute keys."""


def screen_lines(app: AlignTrackApp) -> list[str]:
    """What the terminal shows, line by line (a dialog drawn over the screen beneath it)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def shown_in(app: AlignTrackApp, widget) -> str:
    """The screen's text inside ``widget``'s region."""
    r = widget.region
    return "\n".join(line[r.x:r.right] for line in screen_lines(app)[r.y:r.bottom])


def squeeze(text: str) -> str:
    """Without whitespace: a wrapped message reads the same as the one-line original."""
    return "".join(text.split())


@pytest.mark.parametrize("size", SIZES)
async def test_invalid_filter_is_shown_in_full_where_the_runs_would_be(demo_store, size):
    async with app_on(demo_store[0], size) as (app, pilot):
        await pilot.press("f", *"params.adm = 'pipeline_baseline' AND params.llm_backbone === 'x'", "enter")
        await wait_until(pilot, lambda: app.status.error != "", what="filter error")
        await settle(pilot)
        error = app.status.error
        assert error.startswith("invalid filter") and "Invalid comparator '==='" in error and len(error) > 2 * size[0]
        status = squeeze(shown_in(app, app.status))
        if size == (80, 24):
            assert squeeze(error) in status  # wrapped onto three lines, never cut
        else:  # 175 characters need four lines of 58: the first three, and where the rest is
            assert status.startswith(squeeze(f"✖ {error}")[:120]) and status.endswith(squeeze(MORE))
        body = shown_in(app, app.runs_pane.table)
        assert squeeze(error) in squeeze(body) and "no runs match" not in body

        # longer than the status bar's three lines: the runs' place and the messages screen hold it whole
        await pilot.press("f", "ctrl+u", *LONG_FILTER, "enter")
        await wait_until(pilot, lambda: "nope" in app.status.error, what="second filter error")
        await settle(pilot)
        error = app.status.error
        assert len(error) > 3 * size[0] and squeeze(error) in squeeze(shown_in(app, app.runs_pane.table))
        status = shown_in(app, app.status)
        assert MORE.strip() in status and squeeze(error)[:100] in squeeze(status)
        await pilot.press("exclamation_mark")
        assert isinstance(app.screen, MessagesScreen)
        text = squeeze(shown_in(app, app.screen.query_one("#messages-text")))
        assert squeeze(error) in text and "Invalidcomparator'==='" in text  # both errors, in full
        await pilot.press("escape")

        await pilot.press("f", "escape")  # clearing the filter clears the error everywhere
        await settle(pilot)
        assert app.status.error == "" and "✖" not in shown_in(app, app.runs_pane.table)
        assert app.runs_pane.table.view
        assert "folder" in shown_in(app, app.runs_pane.query_one("#runs-details"))  # the strip is back


@pytest.mark.parametrize("text", ["params.adm = 'pipeline_baseline' and", "params.adm = 'pipeline_baseline",
                                  "(params.adm = 'pipeline_baseline'"])
async def test_incomplete_filter_is_refused_and_the_box_keeps_it_to_fix(demo_store, text):
    """MLflow drops a dangling AND: `... and` listed the runs of the filter before it (issue 25, item 4)."""
    async with app_on(demo_store[0], (80, 24)) as (app, pilot):
        await pilot.press("f", *text, "enter")
        await settle(pilot)
        assert app.status.error.startswith(f"incomplete filter {text!r}: ")
        assert app.focused is app.runs_pane.filter_input and app.runs_pane.filter_input.value == text
        assert not app.runs_pane.table.view
        assert squeeze(app.status.error) in squeeze(shown_in(app, app.runs_pane.table))
        await pilot.press(*" params.llm_backbone != 'x'"[(0 if text.endswith("and") else 99):], "enter")
        if text.endswith("and"):  # completed: applied, back in the table
            await wait_until(pilot, lambda: app.runs_pane.table.view, what="completed filter")
            assert app.status.error == "" and app.focused is app.runs_pane.table
            adms = {app.selection.run(r).params["adm"] for r in app.runs_pane.shown_run_ids}
            assert adms == {"pipeline_baseline"}


@pytest.mark.parametrize("size", SIZES)
async def test_store_error_lists_every_experiment_on_screen(demo_store, size):
    app = AlignTrackApp(demo_store[0], experiment_name="bench")
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: loaded(app), what="the error")
        await settle(pilot)
        error = app.status.error
        assert "no experiment named 'bench'" in error and "'align-system-experiments'" in error
        assert squeeze(error) in squeeze(shown_in(app, app.status))
        assert squeeze(f"cannot load runs: {error}") in squeeze(shown_in(app, app.runs_pane.table))


@pytest.mark.parametrize("size", SIZES)
async def test_quit_dialog_question_wraps(tmp_path, store_uri, monkeypatch, size):
    exps = one_scene_folders(tmp_path / "exps", 150)
    async with app_on(store_uri, size, experiments_dir=exps) as (app, pilot):
        hold_after_first_batch(monkeypatch, app)
        await send_keys(app, "4", "ctrl+s")
        assert app.ingest_pane.running
        await send_keys(app, "ctrl+q")
        assert isinstance(app.screen, ConfirmScreen)
        question = shown_in(app, app.screen.query_one("#confirm-question"))
        assert squeeze(app.screen.question) in squeeze(question) and "and quit?" in app.screen.question
        assert "n / escape: no" in shown_in(app, app.screen.query_one("Vertical"))
        await send_keys(app, "y")


@pytest.mark.parametrize("size", SIZES)
async def test_compare_order_stays_in_view(demo_store, size):
    async with app_on(demo_store[0], size) as (app, pilot):
        await pilot.press("space", "space", "c")
        await wait_until(pilot, lambda: compared(app), what="compare")
        summary = app.compare_pane.query_one("#compare-summary")
        assert "by scene (o)" in shown_in(app, summary)
        await pilot.press("o", "d")
        await settle(pilot)
        text = shown_in(app, summary)
        assert "by disagreement (o)" in text and "disagreements only (d: all)" in text
        assert squeeze(app.compare_pane.comparison.summary()) in squeeze(text)


async def test_messages_screen_keeps_notices_that_faded(demo_store):
    async with app_on(demo_store[0], (60, 20)) as (app, pilot):
        await pilot.press("c")  # nothing marked: a warning toast, gone after seconds
        await pilot.press("exclamation_mark")
        assert isinstance(app.screen, MessagesScreen)
        text = squeeze(shown_in(app, app.screen.query_one("#messages-text")))
        assert squeeze("! mark at least two runs with space first") in text
        await pilot.press("exclamation_mark")
        assert not isinstance(app.screen, MessagesScreen)


async def test_usual_status_keeps_one_line_cutting_only_the_store_path(demo_store):
    """At 60 columns the store's path gives way (cut in the middle) so the run count and the web UI's URL stay
    on one line, in full, and the table keeps its rows."""
    async with app_on(demo_store[0], (60, 20)) as (app, pilot):
        app.status.ui = "web UI http://127.0.0.1:5123"
        await settle(pilot)
        line = shown_in(app, app.status)
        assert app.status.size.height == 1 and "\n" not in line.strip()
        assert app.status.state in line and "web UI http://127.0.0.1:5123" in line
        assert "…" in line and line.strip().startswith(app.status.store[:4])  # the store, cut in the middle


@pytest.mark.parametrize("size", SIZES)
async def test_ingest_error_names_the_whole_folder(demo_store, tmp_path, size):
    """'not a folder: <path>' was cut at the pane's edge: the part of a long path that is wrong is its end."""
    missing = tmp_path / "experiments" / "phase1_integration_sweep" / "2026-01-06__10-00-00" / "no-such-run-folder"
    async with app_on(demo_store[0], size) as (app, pilot):
        await pilot.press("4")
        app.ingest_pane.query_one("#ingest-path").value = str(missing)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not app.ingest_pane.running
        shown = squeeze(shown_in(app, app.ingest_pane.query_one("#ingest-stats")))
        assert squeeze(f"not a folder: {missing}") in shown


async def test_sweep_summary_keeps_its_order_and_filter_in_view(demo_store):
    async with app_on(demo_store[0], (60, 20)) as (app, pilot):
        await pilot.press("8")
        await wait_until(pilot, lambda: swept(app), what="sweep")
        await pilot.press("s", "s", "s", "d")
        await settle(pilot)
        text = squeeze(shown_in(app, app.sweep_pane.query_one("#sweep-summary")))
        assert squeeze("splits only (d)") in text and squeeze("by agreement▲") in text


async def test_export_error_is_kept_in_full_in_the_messages(demo_store, tmp_path):
    blocker = tmp_path / "a-file-not-a-folder"
    blocker.write_text("")
    target = blocker / ("quarterly-alignment-report-" * 4) / "[bold]report.csv"
    async with app_on(demo_store[0], (60, 20)) as (app, pilot):
        await pilot.press("5")
        await wait_until(pilot, lambda: app.report_pane.pivot is not None, what="pivot")
        app.report_pane.query_one("#report-path").value = str(target)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.messages.items and app.messages.items[-1].severity == "error",
                         what="export error")
        assert str(target) in app.messages.items[-1].text
        await pilot.press("exclamation_mark")
        text = squeeze(shown_in(app, app.screen.query_one("#messages-text")))
        assert squeeze(app.messages.items[-1].text) in text and "[bold]report.csv" in text


async def test_notices_are_text_not_markup(demo_store):
    """A notice carries folders and store errors: '[/bold]' in one made its toast raise MarkupError when drawn,
    and '[red]' vanished."""
    from textual.widgets._toast import Toast

    async with app_on(demo_store[0], (80, 24)) as (app, pilot):
        message = "folder runs/[/bold]/x [red]failed"
        app.runs_pane.notify(message, severity="warning")
        await wait_until(pilot, lambda: app._notifications._notifications, what="the notice")
        notice = list(app._notifications._notifications.values())[-1]
        toast = Toast(notice)
        await app.screen.mount(toast)
        await settle(pilot)
        assert str(toast.render()) == message and app.is_running
        assert app.messages.items[-1].text == message


@pytest.mark.parametrize("size", SIZES)
async def test_compares_hint_is_whole_before_anything_is_compared(demo_store, size):
    """Compare opened with nothing compared says how to start one; at 60 columns it was cut at 'then press …'."""
    async with app_on(demo_store[0], size) as (app, pilot):
        await pilot.press("3")
        await settle(pilot)
        legend = app.compare_pane.query_one("#compare-legend")
        shown = squeeze(shown_in(app, legend))
        assert shown == squeeze(str(legend.render())) and shown.endswith("thenpressc.") and "…" not in shown
