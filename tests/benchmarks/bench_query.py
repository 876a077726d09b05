"""Querying runs: align-track's load+filter, option filters, pivot and export against MLflow and pandas doing
the same on the same store, in the same run, best of ``--repeat`` on both sides.

Reuses bench_load_runs' cached store (N runs written by direct SQL). Both sides must select the same runs
(or build the same table); we time load+filter for a ``--filter`` string matched by MLflow's own SearchUtils
and for an option-style filter (no mlflow import needed) against ``mlflow.search_runs(filter_string=...)``,
the pivot against ``pandas.pivot_table`` and the xlsx export against ``DataFrame.to_excel``.

usage: python -m tests.benchmarks.bench_query [--runs N] [--repeat R]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.benchmarks.results import Figure, Results, best_of, seconds

FILTER = "params.model = 'mistral' AND metrics.accuracy > 50 AND tags.team != 'team-1'"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3, help="best of R timings, the same R for both sides")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/align-track-bench"))
    args = parser.parse_args()

    from tests.benchmarks.bench_load_runs import EXPERIMENT, build_store

    db = args.cache_dir / f"load-runs-{args.runs}" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    if not db.exists():
        build_store(db, args.runs)
    uri = f"sqlite:///{db}"

    import mlflow
    import pandas as pd

    from align_track.query.export import write_export
    from align_track.query.report import build_pivot
    from align_track.query.select import filter_rows, parse_filter, rows_to_frame
    from align_track.store.runs_reader import get_experiment_id, load_runs

    eid = get_experiment_id(uri, EXPERIMENT)
    load_runs(uri, eid)  # warm-up: engine, schema
    mlflow.set_tracking_uri(uri)
    mlflow.search_runs(experiment_ids=[eid], max_results=1)
    repeats, corpus = args.repeat, f"{args.runs} runs (bench_load_runs store)"
    out = Results("query")

    expected = mlflow.search_runs(experiment_ids=[eid], filter_string=FILTER)
    frame = rows_to_frame(filter_rows(load_runs(uri, eid), parsed=parse_filter(FILTER)))
    assert set(frame["run_id"]) == set(expected["run_id"]), "different runs selected"
    print(f"runs={args.runs} selected={len(frame)} same runs: yes")
    out.add(Figure("--filter string: load + filter + frame", "s",
                   best_of(repeats, lambda: seconds(
                       lambda: rows_to_frame(filter_rows(load_runs(uri, eid), parsed=parse_filter(FILTER))))),
                   best_of(repeats, lambda: seconds(
                       lambda: mlflow.search_runs(experiment_ids=[eid], filter_string=FILTER))),
                   "mlflow.search_runs(filter_string)", repeats, corpus))

    option = [{"type": "tag", "key": "team", "comparator": "=", "value": "team-2"}]
    same = "tags.team = 'team-2'"
    assert len(filter_rows(load_runs(uri, eid), options=option)) == len(
        mlflow.search_runs(experiment_ids=[eid], filter_string=same))
    out.add(Figure("option filter (--tag team=team-2): load + filter", "s",
                   best_of(repeats, lambda: seconds(lambda: filter_rows(load_runs(uri, eid), options=option))),
                   best_of(repeats, lambda: seconds(lambda: mlflow.search_runs(experiment_ids=[eid],
                                                                                filter_string=same))),
                   "mlflow.search_runs(filter_string)", repeats, corpus))

    rows, cols, values = "params.target", "params.model", "metrics.latency_s"
    ours = build_pivot(frame, rows=rows, cols=cols, values=values).table
    theirs = pd.pivot_table(frame, index=rows, columns=cols, values=values, aggfunc="mean")
    pd.testing.assert_frame_equal(ours, theirs.rename_axis(index=None, columns=None), check_dtype=False)
    out.add(Figure("pivot (mean latency by target x model)", "s",
                   best_of(repeats, lambda: seconds(lambda: build_pivot(frame, rows=rows, cols=cols, values=values))),
                   best_of(repeats, lambda: seconds(lambda: pd.pivot_table(frame, index=rows, columns=cols,
                                                                           values=values, aggfunc="mean"))),
                   "pandas.pivot_table", repeats, f"{len(frame)} selected runs"))

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "runs.xlsx"
        plain = frame.assign(start_time=frame["start_time"].astype(str), end_time=frame["end_time"].astype(str))
        out.add(Figure("xlsx export of the selected runs", "s",
                       best_of(repeats, lambda: seconds(lambda: write_export(frame, target, "xlsx"))),
                       best_of(repeats, lambda: seconds(lambda: plain.to_excel(Path(tmp) / "pandas.xlsx",
                                                                               index=False))),
                       "DataFrame.to_excel (openpyxl)", repeats, f"{len(frame)} selected runs"))
    out.save()


if __name__ == "__main__":
    main()
