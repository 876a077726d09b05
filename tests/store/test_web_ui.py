"""The MLflow web UI shows the ingested store, checked in a real browser (headless Chromium).

Skipped where /usr/bin/chromium is missing; required in CI (ALIGN_TRACK_REQUIRE_CHROMIUM=1, .ci/run installs it).
The browser is driven as a user drives it (tests/support/browser.py): pages of MLflow 3.17's React app
(``#/experiments/<id>/runs``, ``#/experiments/<id>/runs/<run>/traces``, ``#/experiments/<id>/traces``), its
Display > Columns menu, the traces search box, a trace row opened. Each check reads the rows the app rendered
(trace ids from the rows' selection boxes, cells by column header) against the store read with MlflowClient.
Set ALIGN_TRACK_SCREENSHOTS=DIR to also save the README's screenshots of those pages there.
"""

from __future__ import annotations

import base64
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from mlflow import MlflowClient

from align_track import schema
from align_track.demo.generate import generate_demo
from align_track.ingest.pipeline import ingest
from align_track.mlflow_ui import start_ui, stop_ui
from align_track.store import sql_rows, trace_writer
from align_track.store.uri import DEFAULT_EXPERIMENT
from tests.support.browser import WAIT_S, Browser, require_chromium
from tests.support.server_fixtures import free_port

pytestmark = pytest.mark.server

_ROWS = """[...document.querySelectorAll('[role=row]')].map(row => ({
    cells: [...row.querySelectorAll('[role=columnheader],[role=cell]')].map(c => c.innerText.trim()),
    links: [...row.querySelectorAll('[role=cell]')].map(c => (c.querySelector('a[href]') || {}).href || ''),
    trace: (row.outerHTML.match(/tr-[0-9a-f]{32}/) || [''])[0],
}))"""
"""The traces table as rendered: the header row's cells, then per trace row its cells, links and trace id (which
every row carries: in its selection box's label, its link to the trace, or its Trace ID cell)."""

_VISIBLE_SCENE_IDS = """[...document.querySelectorAll('[role=row]')].map(row => {
    const trace = (row.outerHTML.match(/tr-[0-9a-f]{32}/) || [''])[0];
    const walker = document.createTreeWalker(row, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const at = node.data.indexOf('"scene_id": "');
        if (at < 0) continue;
        const end = node.data.indexOf('"', at + 13) + 1;
        const range = document.createRange();
        range.setStart(node, at);
        range.setEnd(node, end > at ? end : node.data.length);
        const box = range.getBoundingClientRect();
        let right = Infinity;  // the narrowest box that clips the preview (the cell, its ellipsis span)
        for (let e = node.parentElement; e && e !== row.parentElement; e = e.parentElement) {
            const style = getComputedStyle(e);
            if (style.overflow !== 'visible' || style.overflowX !== 'visible') {
                right = Math.min(right, e.getBoundingClientRect().right);
            }
        }
        return {trace, shown: box.width > 0 && box.right <= right + 0.5, text: node.data.slice(at, end)};
    }
    return {trace, shown: false, text: ''};
}).filter(r => r.trace)"""
"""Per trace row of a traces table: whether its request preview's ``"scene_id": "..."`` is on screen (not cut off
by the cell's ellipsis), and the text."""

_SPAN_ID_SPELLING_P3 = int.from_bytes(base64.b64decode("AAP3AAAAAAA="), "big")
"""A span id whose base64 form (as a span's stored content holds it) contains ``P3``. The web UI's search box
looks for its text in the whole span content (``trace.text ILIKE '%P3%'``), base64 ids included: a random id
spells ``p3`` for about 1 trace in 60, so the fixture gives one trace that id for sure."""

_POPUPS = ('[data-component-id="mlflow.detect_issues.guidance.got_it"]',  # "Detect Issues" tip, shown once
           '[data-component-id="mlflow.assistant.chat_panel.close"]')  # the assistant panel, opened on first visit


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    require_chromium()
    root = tmp_path_factory.mktemp("web-ui")
    generate_demo(root / "exps", run_folders=3, scenes=3, seed=0)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:  # the first trace's span id spells the last scene's id (see below)
        ids = iter([_SPAN_ID_SPELLING_P3])
        new_span_id = sql_rows.new_span_id
        for module in (sql_rows, trace_writer):
            patch.setattr(module, "new_span_id", lambda: next(ids, None) or new_span_id())
        assert not ingest(root / "exps", uri).failures
    server = start_ui(uri, port=free_port(), log_path=root / "ui.log")
    try:
        yield server.url, uri
    finally:
        stop_ui(server)


@pytest.fixture(scope="module")
def browser(ui: tuple[str, str]) -> Iterator[Browser]:
    """One browser (one profile) for the module, as one user's: what they dismiss or tick stays."""
    with Browser(size=(1920, 1000)) as chromium:
        yield chromium


def store_view(uri: str) -> tuple[str, list, dict[str, list]]:
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(DEFAULT_EXPERIMENT).experiment_id
    runs = client.search_runs([experiment_id])
    traces = {run.info.run_id: client.search_traces(locations=[experiment_id], run_id=run.info.run_id)
              for run in runs}
    return experiment_id, runs, traces


def traces_page(url: str, experiment_id: str) -> str:
    """The experiment's Traces list over all time: traces sit at their scenes' own times (the experiment's, often
    months ago), and the list shows the last 7 days unless told (its time menu's "All", kept in the URL only)."""
    return f"{url}/#/experiments/{experiment_id}/traces?startTimeLabel=ALL"


def visit(browser: Browser, url: str, shows: str) -> None:
    """Open ``url``, wait until the page's text contains ``shows``, and close MLflow's first-visit pop-ups."""
    browser.open(url)
    browser.wait_for(lambda: shows in browser.text(), repr(shows))
    for popup in _POPUPS:
        if browser.present(popup):
            browser.click(popup)


def table(browser: Browser) -> tuple[list[str], list[dict]]:
    """The traces table's column headers and its rows: ``{"trace": id, <header>: text, "link:<header>": href}``."""
    rendered = browser.evaluate(_ROWS)
    header = max((row["cells"] for row in rendered if not row["trace"]), key=len, default=[])  # not a group row
    rows = []
    for row in rendered:
        if row["trace"]:
            cells = dict(zip(header, row["cells"], strict=False))
            cells.update({f"link:{h}": link for h, link in zip(header, row["links"], strict=False)})
            rows.append({**cells, "trace": row["trace"]})
    return header, rows


def rows_once(browser: Browser, ready: Callable[[list[dict]], bool], what: str) -> list[dict]:
    """The table's rows once ``ready(rows)`` holds: the app renders counts, rows and cells in separate steps."""
    if not browser.until(lambda: ready(table(browser)[1]), WAIT_S):
        rows = [(row["trace"], row.get("Trace name", "?")) for row in table(browser)[1]]
        pytest.fail(f"waited {WAIT_S:.0f}s for {what}; the table shows {len(rows)} rows: {rows}; "
                    f"the page shows: {browser.text()[:1500]}")
    return table(browser)[1]


def show_columns(browser: Browser, *names: str, shot: str | None = None) -> None:
    """Tick columns in the traces list's Display > Columns menu (those not shown yet), then close the menu
    (``shot``: the screenshot, menu open, taken first)."""
    browser.click('[data-component-id="mlflow.traces-v4.display.trigger"]')
    browser.wait_for(lambda: browser.present("[role=menu] [role=menuitem]"), "the Display menu")
    browser.click("[role=menuitem]", "Columns")
    browser.wait_for(lambda: browser.present("[role=menuitemcheckbox]"), "the Columns menu")
    for name in names:
        browser.click('[role=menuitemcheckbox][aria-checked="false"]', name)
    if shot:
        shoot(browser, shot)
    browser.press("Escape")
    browser.wait_for(lambda: set(names) <= set(table(browser)[0]), f"the columns {names}")


def shoot(browser: Browser, name: str) -> None:
    if directory := os.environ.get("ALIGN_TRACK_SCREENSHOTS"):
        browser.screenshot(Path(directory) / name)


def test_runs_table_lists_every_run(ui: tuple[str, str], browser: Browser) -> None:
    url, uri = ui
    experiment_id, runs, _ = store_view(uri)
    visit(browser, f"{url}/#/experiments/{experiment_id}/runs", f"{len(runs)} matching runs")
    browser.wait_for(lambda: all(run.info.run_name in browser.text() for run in runs), "every run's name")
    shoot(browser, "mlflow-runs.png")


def duration_text(ms: int) -> str:
    """A run's duration as MLflow's web UI writes it (``Utils.getDuration``)."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size or (unit == "s" and ms >= 500):
            return f"{ms / size:.1f}{unit}"
    return f"{ms}ms"


def test_each_run_shows_its_experiments_date_and_duration(ui: tuple[str, str], browser: Browser) -> None:
    """Not the ingest's: a run created months ago by align-system, running for its recorded time (not 0ms)."""
    url, uri = ui
    experiment_id, runs, _ = store_view(uri)
    for run in runs:
        start, end = run.info.start_time, run.info.end_time
        assert end - start >= 1000, run.info  # the demo's runs took seconds to minutes
        visit(browser, f"{url}/#/experiments/{experiment_id}/runs/{run.info.run_id}", "Duration")
        browser.wait_for(lambda: re.search(r"Created at\s+\d", browser.text()), "the run's creation time")
        text = browser.text()
        shown = re.search(r"Duration\s+(\S+)", text)
        assert shown and shown.group(1) == duration_text(end - start), (shown, end - start)
        created = datetime.fromtimestamp(start / 1000)  # the browser's zone is this machine's
        assert re.search(rf"Created at\s+{created:%m/%d/%Y}, ", text), text[:600]
        assert created.year < datetime.now().year or (datetime.now() - created).days > 30  # the demo's 2025 runs


def test_run_traces_tab_lists_its_scenes(ui: tuple[str, str], browser: Browser) -> None:
    url, uri = ui
    experiment_id, runs, traces = store_view(uri)
    run = max(runs, key=lambda r: len(traces[r.info.run_id]))
    scenes = traces[run.info.run_id]
    visit(browser, f"{url}/#/experiments/{experiment_id}/runs/{run.info.run_id}/traces",
          f"{len(scenes)} of {len(scenes)}")  # found by the run's mlflow.sourceRun / run link
    assert run.info.run_name in browser.text()
    expected = sorted(t.info.trace_id for t in scenes)
    rows = rows_once(browser, lambda rows: sorted(row["trace"] for row in rows) == expected, "the run's traces")
    scene_of = {t.info.trace_id: t.info.tags[schema.TRACE_TAG_SCENE_ID] for t in scenes}
    for row in rows:  # each row's request names its scene
        assert f'"scene_id": "{scene_of[row["trace"]]}"' in row["Request"], row
    # ... where a researcher sees it: before the preview is cut (the state text after it runs long)
    shown = {r["trace"]: r for r in browser.evaluate(_VISIBLE_SCENE_IDS)}
    for trace_id, scene in scene_of.items():
        assert shown[trace_id]["shown"] and shown[trace_id]["text"] == f'"scene_id": "{scene}"', shown[trace_id]
    shoot(browser, "mlflow-run-traces.png")


def test_experiment_traces_list_shows_each_traces_run(ui: tuple[str, str], browser: Browser) -> None:
    url, uri = ui
    experiment_id, runs, traces = store_view(uri)
    run_of = {t.info.trace_id: run for run in runs for t in traces[run.info.run_id]}
    scene_of = {t.info.trace_id: t.info.tags[schema.TRACE_TAG_SCENE_ID] for ts in traces.values() for t in ts}
    page = traces_page(url, experiment_id)
    visit(browser, page, f"{len(run_of)} of {len(run_of)}")
    # MLflow 3.17 hides "Run name" (and "Trace name") by default: tick them as a user does.
    browser.wait_for(lambda: "Time" in table(browser)[0], "the table's header")
    show_columns(browser, *(c for c in ("Run name", "Trace name") if c not in table(browser)[0]),
                 shot="mlflow-traces-columns.png")
    # The run names come from a second request (the runs of the traces' mlflow.sourceRun ids).
    rows = rows_once(browser, lambda rows: len(rows) == len(run_of) and all(row["Run name"] for row in rows),
                     "every row's run name")
    assert sorted(row["trace"] for row in rows) == sorted(run_of)
    for row in rows:
        run = run_of[row["trace"]]
        assert row["Run name"] == run.info.run_name, row  # from the trace's mlflow.sourceRun
        assert row["link:Run name"].endswith(f"/runs/{run.info.run_id}"), row
        assert row["Trace name"] == scene_of[row["trace"]], row  # mlflow.traceName: the scene id
        assert f"{schema.TRACE_TAG_SCENE_ID}: {scene_of[row['trace']]}" in row["Tags"], row
    shoot(browser, "mlflow-traces.png")

    visit(browser, page, f"{len(run_of)} of {len(run_of)}")  # the choice is kept (per browser and experiment)
    browser.wait_for(lambda: {"Run name", "Trace name"} <= set(table(browser)[0]), "the ticked columns, again")
    rows_once(browser, lambda rows: len(rows) == len(run_of) and all(row["Run name"] for row in rows),
              "every row's run name, again")


def test_traces_search_box_filters_by_scene_id(ui: tuple[str, str], browser: Browser) -> None:
    url, uri = ui
    experiment_id, runs, traces = store_view(uri)
    every = [t for scenes in traces.values() for t in scenes]
    by_scene = Counter(t.info.tags[schema.TRACE_TAG_SCENE_ID] for t in every)
    scene_id, count = sorted(by_scene.items())[-1]
    assert count < len(every)
    visit(browser, traces_page(url, experiment_id), f"{len(every)} of {len(every)}")
    search = '[data-component-id="web-shared.traces-table.search"]'
    browser.settled(search, "the traces search box")  # typed into before a late re-render, the text is lost
    browser.type(search, scene_id)
    # Enter submits what React last rendered, not what the box shows: on a loaded machine it once submitted the
    # empty search (no request, the rows never changed). So wait until React has rendered the typed text (a
    # controlled input's value *attribute* is set on React's commit; the property changes at once), and press
    # Enter only in the box that holds it and has the focus.
    ready = f"""(() => {{ const e = document.querySelector({search!r});
        if (!e || e.value !== {scene_id!r} || e.getAttribute('value') !== {scene_id!r}) return false;
        e.focus(); return document.activeElement === e; }})()"""
    browser.wait_for(lambda: browser.evaluate(ready), f"the search box to hold {scene_id!r}, rendered, focused")
    browser.press("Enter")
    # The rows themselves, not the footer's "N of M" (rendered in a later step, once missed by a 60 s wait
    # while the rows were already filtered): exactly the traces MLflow's own search gives for what the box sends.
    # That is every trace of the scene, and any other whose span content holds the text elsewhere, in any case: its
    # base64 trace or span id (the fixture makes one; expecting the scene's traces alone failed 1 run in 10 in CI).
    client = MlflowClient(uri)
    found = client.search_traces(locations=[experiment_id], filter_string=f"trace.text ILIKE '%{scene_id}%'",
                                 max_results=1000)
    expected = sorted(t.info.trace_id for t in found)
    of_scene = {t.info.trace_id for t in every if t.info.tags[schema.TRACE_TAG_SCENE_ID] == scene_id}
    assert of_scene < set(expected), "the fixture's span id spelling the scene id is not in the search's answer"
    for trace in found:
        if trace.info.trace_id not in of_scene:
            [span] = client.get_trace(trace.info.trace_id).data.spans
            ids = span.to_dict()["trace_id"] + " " + span.to_dict()["span_id"]
            assert scene_id.lower() in ids.lower(), (trace.info.trace_id, ids)
    rows = rows_once(browser, lambda rows: sorted(row["trace"] for row in rows) == expected, "the search's traces")
    assert len(rows) < len(every)
    for row in rows:
        if row["trace"] in of_scene:
            assert f"{schema.TRACE_TAG_SCENE_ID}: {scene_id}" in row["Tags"], row
    shoot(browser, "mlflow-traces-search.png")


def test_trace_opens_to_its_inputs_and_outputs(ui: tuple[str, str], browser: Browser) -> None:
    url, uri = ui
    experiment_id, runs, traces = store_view(uri)
    every = [t for scenes in traces.values() for t in scenes]
    trace = MlflowClient(uri).get_trace(every[0].info.trace_id)
    [span] = trace.data.spans
    visit(browser, traces_page(url, experiment_id), f"{len(every)} of {len(every)}")
    browser.click(f'a[aria-label^="Open trace {trace.info.trace_id}"]')  # the row's input preview
    state = " ".join(span.inputs[schema.IN_STATE].split())
    browser.wait_for(lambda: "Inputs / Outputs" in (text := browser.text()) and state in text, "the trace's inputs")
    text = browser.text()
    assert "Attributes" in text
    assert span.name == trace.info.tags.get("mlflow.traceName", span.name)
    for key in schema.TRACE_INPUTS:
        assert key in text
    browser.wait_for(lambda: " ".join(span.outputs[schema.OUT_ACTION]["justification"].split()) in browser.text(),
                     "the trace's outputs")
    shoot(browser, "mlflow-trace.png")
