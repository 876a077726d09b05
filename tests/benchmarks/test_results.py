"""The benchmark results files and the README speed table built from them."""

from __future__ import annotations

import json

import pytest

from tests.benchmarks.results import Figure, Results
from tests.benchmarks.speed_table import BEGIN, END, render, replace_table


def test_results_round_trip_into_the_speed_table(tmp_path) -> None:
    out = Results("ingest")
    out.add(Figure("marginal cost", "ms/scene", 2.0, 10.0, "naive_ingest.py", 3, "30 and 60 run folders"))
    Results("query", [Figure("pivot", "s", 0.5, 0.25, "pandas.pivot_table", 3, "248 runs")]).save(tmp_path)
    saved = json.loads(out.save(tmp_path).read_text())
    assert saved["figures"][0]["ratio"] == 5.0 and saved["figures"][0]["repeats"] == 3

    table = render(tmp_path)
    lines = table.splitlines()
    assert lines[2].startswith("| `bench_ingest` | marginal cost | 2 ms/scene | naive_ingest.py: 10 ms/scene | 5.00x")
    assert lines[3].startswith("| `bench_query` | pivot | 0.5 s | pandas.pivot_table: 0.25 s | 0.50x")

    readme = f"# x\n\nbefore\n{BEGIN}\nold table\n{END}\nafter\n"
    updated = replace_table(readme, table)
    assert "old table" not in updated and "before\n" in updated and updated.endswith(f"{END}\nafter\n")
    assert replace_table(updated, table) == updated  # rebuilding twice changes nothing


def test_speed_table_needs_its_markers() -> None:
    with pytest.raises(ValueError, match="speed-table markers"):
        replace_table("# no table here\n", "| a |")
