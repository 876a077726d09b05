"""Tables move a column per arrow key with the first column pinned, and sort by a shift+letter per column shown
in the header (issue 25, item 11): Pilot against the demo store and factory-built runs."""

from __future__ import annotations

import pytest

from align_track.demo.store import compared, settle, wait_until
from tests.support.tui_fixtures import app_on, table_text, write_choices

pytestmark = pytest.mark.asyncio
SIZE = (80, 24)


def header_words(table) -> list[str]:
    return table.render_line(0).text.split()


def underlined(table) -> str:
    """The header's letters drawn underlined (the sort keys)."""
    return "".join(s.text for s in table.render_line(0) if s.style is not None and s.style.underline)


async def test_right_moves_one_column_and_keeps_the_first_column_pinned(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        table = app.runs_pane.table
        labels = [c.label for c in table.columns]
        assert header_words(table)[:2] == ["ADM", "target"]
        first_rows = [line.split()[0] for line in table_text(table).splitlines()[1:4]]
        presses = 0
        seen = []
        while "folder" not in header_words(table):
            before = table.first_scrolled_column
            await pilot.press("right")
            presses += 1
            after = table.first_scrolled_column
            assert after == before + 1, f"→ moved from column {before} to {after}"
            words = header_words(table)
            assert words[0] == "ADM"  # pinned
            assert words[1] == labels[after].split()[0]  # the next column is the first one scrolled into view
            assert [line.split()[0] for line in table_text(table).splitlines()[1:4]] == first_rows
            seen.append(words[1])
            assert presses < 10
        assert presses <= 7  # the folder column: a few presses, not ~24
        assert seen[:2] == ["score", "avg"]
        for _ in seen:
            await pilot.press("left")
        assert table.first_scrolled_column == 2 and header_words(table)[:2] == ["ADM", "target"]


async def test_a_shift_letter_sorts_by_its_column_and_again_reverses(demo_store):
    async with app_on(demo_store[0], SIZE) as (app, pilot):
        pane = app.runs_pane
        table = pane.table
        score = next(i for i, c in enumerate(table.columns) if c.key == "score")
        letter = next(k for k, i in table.sort_letters.items() if i == score)
        assert letter == "O" and "O" in underlined(table).upper()  # the header shows the key
        assert set(underlined(table).upper()) >= {"A", "T", "O", "V", "C"}  # every column in view has one
        await pilot.press(letter)
        values = [table.rows[i][score] for i in table.view]
        present = [float(v) for v in values if v]
        assert len(present) >= 3 and present == sorted(present)
        assert all(not v for v in values[len(present):])  # missing scores last
        assert "score▲" in header_words(table) and "by score▲" in str(pane.query_one("#runs-count").render())
        await pilot.press(letter)
        values = [table.rows[i][score] for i in table.view]
        assert [float(v) for v in values if v] == sorted(present, reverse=True)
        target = next(i for i, c in enumerate(table.columns) if c.key == "target")
        await pilot.press("T")
        targets = [table.rows[i][target].lower() for i in table.view]
        assert targets == sorted(targets) and len(set(targets)) > 3
        await pilot.press("S")  # the pane's own reverse still works: its letter is never a column's
        assert [table.rows[i][target].lower() for i in table.view] == sorted(targets, reverse=True)


@pytest.fixture
def four_runs(tmp_path, store_uri):
    from align_track.ingest.pipeline import ingest

    exps = tmp_path / "exps"
    write_choices(exps / "a", "adm_a", [0, 1, 0, 1])
    write_choices(exps / "b", "adm_b", [1, 0, 1, 0])
    write_choices(exps / "c", "adm_c", [0, 0, 1, 1])
    assert not ingest(exps, store_uri).failures
    return store_uri


async def test_compare_sorts_by_a_run_column_with_its_own_letter(four_runs):
    async with app_on(four_runs, SIZE) as (app, pilot):
        await pilot.press("space", "space", "space", "c")
        await wait_until(pilot, lambda: compared(app), what="compare")
        await settle(pilot)
        table = app.compare_pane.table
        letters = table.sort_letters
        assert {letters[k] for k in "ABC"} == {3, 4, 5}  # a run's letter sorts by that run's choices
        assert set(underlined(table)) >= {"A", "B", "C"}
        # a run whose choices are not in order scene by scene (which run is which letter: the runs' order)
        run = next(i for i in (3, 4, 5)
                   if [table.rows[r][i] for r in table.view] != sorted((table.rows[r][i] for r in table.view),
                                                                      key=str.lower))
        letter = next(k for k, i in letters.items() if i == run)
        await pilot.press(letter)
        column = [table.rows[i][run] for i in table.view]
        assert column == sorted(column, key=str.lower) and len(set(column)) >= 2
        assert f"{letter}▲" in header_words(table)
        await pilot.press("d")  # a new view keeps the column's order
        column = [table.rows[i][run] for i in table.view]
        assert column == sorted(column, key=str.lower)
        await pilot.press("o")  # o's order replaces it
        assert table.sort_column is None


async def test_a_table_sorted_by_a_column_keeps_arriving_rows_in_order(tmp_path):
    """The ingest log grows a row at a time: sorted by a column, a new row lands in its place."""
    from textual.app import App

    from align_track.tui.widgets.vtable import Column, VirtualTable

    class One(App):
        def compose(self):
            yield VirtualTable([Column("name", "name", 20), Column("n", "n", 6, numeric=True)], id="t")

    app = One()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(VirtualTable)
        for row in (("b", "10"), ("a", "9"), ("c", "100")):
            table.append_row(row)
        table.focus()
        letters = table.sort_letters
        assert set(letters.values()) == {0, 1}  # a letter per column
        await pilot.press(next(k for k, i in letters.items() if i == 1))  # numbers as numbers: 9 < 10 < 100
        assert [table.rows[i][1] for i in table.view] == ["9", "10", "100"]
        table.append_row(("d", "50"))
        assert [table.rows[i][1] for i in table.view] == ["9", "10", "50", "100"]
        await pilot.press(next(k for k, i in letters.items() if i == 0))
        assert [table.rows[i][0] for i in table.view] == ["a", "b", "c", "d"]


async def test_sweep_sorts_by_a_column_letter_through_its_own_order(demo_store):
    from align_track.demo.store import swept

    async with app_on(demo_store[0], SIZE) as (app, pilot):
        await pilot.press("8")
        await wait_until(pilot, lambda: swept(app), what="sweep")
        await settle(pilot)
        pane = app.sweep_pane
        table = pane.scenes_table
        agree = [c.key for c in table.columns].index("agree")
        letter = next(k for k, i in table.sort_letters.items() if i == agree)
        assert letter in underlined(table).upper()
        await pilot.press(letter)
        assert pane.sort_by == "agreement" and table.sort_column == agree
        shares = [float(table.rows[i][agree].rstrip("%")) for i in table.view if table.rows[i][agree]]
        assert shares == sorted(shares) and len(set(shares)) > 1
        await pilot.press(letter)
        shares = [float(table.rows[i][agree].rstrip("%")) for i in table.view if table.rows[i][agree]]
        assert shares == sorted(shares, reverse=True) and pane.reverse
