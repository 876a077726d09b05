"""Column widths shared fairly (issue 25, item 6 at wide sizes): at 200 columns the Runs table used to widen ADM
and target to their longest values and cut the folder, what users search and read to tell runs apart."""

from __future__ import annotations

import pytest

from align_track.query.textfit import share_widths, tell_apart_width
from tests.support.factory import config, merit_target, write_run_folder
from tests.support.tui_fixtures import app_on, table_text

COLLECTION = "phase1_integrated_eval"
LONG_RUNS = [  # (variant, timestamp, ADM, target): real-style folders, ADM and target values as long as they come
    ("pipeline_comparative_regression_Qwen2.5-32B-Instruct", "2025-06-01__10-00-00",
     "OutlinesTransformersComparativeRegressionADM", "ADEPT-June2025-affiliation_merit-0.0_1.0"),
    ("pipeline_comparative_regression_Qwen2.5-32B-Instruct", "2025-06-02__09-15-00",
     "pipeline_comparative_regression", "ADEPT-June2025-personal_safety-0.8"),
    ("pipeline_baseline_Mistral-7B-Instruct-v0.3", "2025-06-01__11-30-00",
     "pipeline_baseline", "ADEPT-June2025-personal_safety-0.3"),
    ("outlines_transformers_structured_Llama-3.1-8B-Instruct", "2025-06-03__17-45-10",
     "outlines_transformers_structured", "ADEPT-June2025-merit-0.5"),
]


def folder(variant: str, stamp: str) -> str:
    return f"{COLLECTION}/{variant}/{stamp}"


@pytest.fixture
def long_store(tmp_path, store_uri):
    from align_track.ingest.pipeline import ingest

    exps = tmp_path / "exps"
    for variant, stamp, adm, target in LONG_RUNS:
        tgt = merit_target()
        tgt["id"] = target
        write_run_folder(exps / folder(variant, stamp), cfg=config(adm=adm, target=tgt))
    assert not ingest(exps, store_uri).failures
    return store_uri


def cells(table, key: str) -> list[str]:
    """The column's cells as painted on the rows in view (the table not scrolled sideways)."""
    column = next(i for i, c in enumerate(table.columns) if c.key == key)
    start = (2 if table.markable else 0) + sum(w + table.gap for w in table.widths[:column])
    lines = table_text(table).splitlines()[1:1 + len(table.view)]
    return [line[start:start + table.widths[column]].strip() for line in lines]


def assert_told_apart(table) -> None:
    """Each ADM and each target shows differently from the others: a cut keeps what tells them apart."""
    for key in ("adm", "target"):
        shown = cells(table, key)
        assert len(set(shown)) == len({table.rows[r][table.columns.index(
            next(c for c in table.columns if c.key == key))] for r in table.view}), (key, shown)


@pytest.mark.asyncio
async def test_the_folder_is_whole_at_200_columns_beside_long_adm_and_target_values(long_store):
    async with app_on(long_store, (200, 50)) as (app, _pilot):
        table = app.runs_pane.table
        text = table_text(table)
        rows = text.splitlines()[1:1 + len(LONG_RUNS)]
        assert len(rows) == len(LONG_RUNS)
        for variant, stamp, _adm, _target in LONG_RUNS:
            row = next((r for r in rows if stamp in r), None)
            assert row is not None, f"{stamp} cut from every row:\n{text}"
            assert folder(variant, stamp) in row, f"folder cut:\n{text}"
        assert "…" in "".join(cells(table, "adm") + cells(table, "target"))  # the long values gave cells for it
        assert_told_apart(table)


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40)])
async def test_narrower_screens_keep_adm_and_target_first_and_the_folder_a_scroll_away(long_store, size):
    """Where the folder cannot be whole beside what tells ADMs and targets apart, they keep the screen."""
    async with app_on(long_store, size) as (app, pilot):
        table = app.runs_pane.table
        header = table.render_line(0).text.split()
        assert header[:2] == ["ADM", "target"]
        assert_told_apart(table)
        for _ in range(8):
            if "folder" in table.render_line(0).text:
                break
            await pilot.press("right")
        assert "folder" in table.render_line(0).text


def test_share_widths_gives_the_whole_column_its_length_before_the_others_grow():
    floor, keep, cap, want, whole = [14, 16, 24], [25, 20, 48], [34, 34, 48], [44, 40, 97], [False, False, True]

    def share(available: int) -> list[int]:
        return share_widths(floor, keep, cap, want, whole, available)

    assert share(40) == floor  # floors that do not fit: the table scrolls
    assert share(60) == [14, 16, 30]  # the whole column first
    assert share(45 + 97) == [25, 20, 97]  # then the others keep what tells their values apart
    widths = share(30 + 97 + 4)  # short of that: as many cells above its floor each
    assert widths == [16, 18, 97]
    widths = share(68 + 97 + 4)  # past their cap: as many cells above it each
    assert widths == [36, 36, 97]
    assert share(500) == want


def test_tell_apart_width_is_what_a_cut_must_keep():
    # Qwen… and Llama… share 'B-Instruct' (Llama-3.1-8 and a '…' tell it apart); the Mistral pair differ at the end
    values = ["Qwen2.5-7B-Instruct", "Llama-3.1-8B-Instruct", "Mistral-7B-Instruct-v0.3", "Mistral-7B-Instruct-v0.2"]
    assert tell_apart_width(values) == len("Llama-3.1-8") + 1
    assert tell_apart_width(["a" * 40]) == 0  # one value tells nothing apart
    assert tell_apart_width(["abc", "xyz"]) == 0  # nothing shared: a middle cut keeps differing ends
    assert tell_apart_width([f"run-{i:04d}" for i in range(600)], limit=512) == 0  # one per row: not measured


def test_share_widths_gives_the_columns_ahead_their_cap_before_the_others_grow():
    """ADM and target (ahead) are what runs are compared by: past ``keep`` they widen first (at 200 columns the
    fair fill gave the LLM its length while ``pipeline_comparative_regression`` lost two letters)."""
    floor, keep, cap, want, whole = [14, 10, 24], [14, 10, 30], [34, 24, 30], [34, 24, 30], [False, False, True]
    assert share_widths(floor, keep, cap, want, whole, 14 + 10 + 30 + 12) == [20, 16, 30]  # fair, without
    assert share_widths(floor, keep, cap, want, whole, 14 + 10 + 30 + 12, [True, False, False]) == [26, 10, 30]
    assert share_widths(floor, keep, cap, want, whole, 34 + 24 + 30, [True, False, False]) == [34, 24, 30]


@pytest.mark.asyncio
@pytest.mark.parametrize("width", [140, 170, 200])
async def test_the_folder_joins_only_beside_readable_adm_and_target(demo_store, width):
    """At 140 columns the folder joining squeezed ADM, target, LLM and variant to fragments (`…compar…ession`,
    `Llam….1-8…`): it joins only where ADM and target keep READABLE cells, else they take the screen."""
    from align_track.tui.widgets.vtable import READABLE

    async with app_on(demo_store[0], (width, 24)) as (app, _pilot):
        table = app.runs_pane.table
        keys = [c.key for c in table.columns]
        adm, target = table.widths[keys.index("adm")], table.widths[keys.index("target")]
        assert adm >= READABLE and target >= READABLE
        header = table.render_line(0).text
        if "folder" in header:  # joined: whole on every row in view
            for row, line in zip(table.view, table_text(table).splitlines()[1:], strict=False):
                assert table.rows[row][keys.index("folder")] in line
