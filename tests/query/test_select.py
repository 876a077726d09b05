"""The query layer, report pivots and export tables, against a store filled by the real ingest."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.utils.search_utils import SearchUtils

from align_track.query.export import atomic_write, export_columns, export_table
from align_track.query.formats import ExportError, format_for
from align_track.query.report import build_pivot
from align_track.query.select import (
    QueryError,
    RunQuery,
    clause_text,
    describe_columns,
    quote_key,
    quote_value,
    resolve_column,
    run_query,
)
from align_track.schema import TAG_COMPLETE
from align_track.store.uri import DEFAULT_EXPERIMENT, StoreError
from tests.support.query_fixtures import EXPECTED, MISTRAL, QUOTED_LLM, build_tree, ingest_tree, make_ingested

NASTY = ["plain", "O'Brien", "it's a \\ backslash", "x' AND params.a = 'y", "' OR 1=1 --", "a%b_c",
         'acme/"quoted"-7B', "ADEPT-DryRun-Moral judgement-0.2", "", " lead", "tab\there"]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return make_ingested(tmp_path_factory)


# --------------------------------------------------------------------------- filter building


@pytest.mark.parametrize("value", NASTY)
def test_quoted_values_parse_back_exactly_with_mlflow(value: str) -> None:
    text = f"{quote_key('params', 'kdma.Moral judgement')} = {quote_value(value)} AND tags.llm != 'z'"
    parsed = SearchUtils.parse_search_filter(text)
    assert parsed[0] == {"type": "parameter", "key": "kdma.Moral judgement", "comparator": "=", "value": value}
    assert len(parsed) == 2  # the value never swallows or injects a clause


def test_quote_value_picks_the_quote_mlflow_needs() -> None:
    assert quote_value("pipeline_baseline") == "'pipeline_baseline'"
    assert quote_value("O'Brien") == '"O\'Brien"'  # MLflow has no escapes: 'O''Brien' would keep both quotes
    with pytest.raises(QueryError, match="both"):
        quote_value("a'b\"c")


def test_quote_key_backticks_dots_and_spaces() -> None:
    assert quote_key("params", "kdma.Moral judgement") == "params.`kdma.Moral judgement`"
    assert quote_key("metric", "score.alignment_score") == "metrics.`score.alignment_score`"
    with pytest.raises(QueryError):
        quote_key("params", "a`b")
    with pytest.raises(QueryError):
        quote_key("nope", "a")


def test_option_clauses_and_filter_string_agree() -> None:
    query = RunQuery(adm="O'Brien", llm=QUOTED_LLM, min_score=0.75, score_metric="metrics.score.accuracy",
                     filter="params.run_variant = 'default'")
    options = query.option_clauses()
    text = query.filter_string()
    assert text.endswith("AND params.run_variant = 'default'")
    parsed = SearchUtils.parse_search_filter(text)
    assert [(c["type"], c["key"], c["comparator"], c["value"]) for c in parsed[:3]] == [
        ("tag", "adm", "=", "O'Brien"), ("tag", "llm", "=", QUOTED_LLM), ("metric", "score.accuracy", ">=", "0.75")]
    assert [c["value"] for c in options] == ["O'Brien", QUOTED_LLM, 0.75]


def test_unwritable_value_still_filters_but_string_says_so(ingested: tuple[str, Path]) -> None:
    query = RunQuery(adm="a'b\"c")
    with pytest.raises(QueryError):
        query.filter_string()
    assert query.filter_string(strict=False) == "tags.`adm` = " + repr("a'b\"c")
    assert clause_text(query.option_clauses()[0], strict=False) == query.filter_string(strict=False)
    result = run_query(ingested[0], query=query)  # the option filters without a string: no error
    assert result.rows == [] and result.complete == len(EXPECTED)


# --------------------------------------------------------------------------- selecting runs


def _names(result) -> set[tuple[str, str]]:
    return {(r.params["adm"], r.params["alignment_target_id"]) for r in result.rows}


def test_all_complete_runs_load_with_their_values(ingested: tuple[str, Path]) -> None:
    uri, _ = ingested
    result = run_query(uri)
    assert result.complete == len(EXPECTED) == len(result.rows)
    frame = result.frame
    assert list(frame.columns[:3]) == ["run_id", "run_name", "experiment_id"]
    by_adm = {row["params.alignment_target_id"] + row["params.adm"]: row for _, row in frame.iterrows()}
    for exp in EXPECTED:
        row = by_adm[exp.target + exp.adm]
        if exp.avg is None:
            assert math.isnan(row["metrics.timing.avg_seconds"])
        else:
            assert row["metrics.timing.avg_seconds"] == pytest.approx(exp.avg)
        llm = row["params.llm_backbone"]
        assert llm == exp.llm if exp.llm else llm is None or math.isnan(llm)
    starts = [r.start_time for r in result.rows]
    assert starts == sorted(starts, reverse=True)  # newest first, like MLflow


def test_frame_has_every_column_mlflow_search_runs_has(ingested: tuple[str, Path]) -> None:
    import mlflow

    uri, _ = ingested
    mlflow.set_tracking_uri(uri)
    theirs = mlflow.search_runs(experiment_names=[DEFAULT_EXPERIMENT])
    ours = run_query(uri).frame
    assert set(theirs.columns) <= set(ours.columns)
    assert set(ours.columns) - set(theirs.columns) == {"run_name"}


@pytest.mark.parametrize(("query", "expected"), [
    (RunQuery(adm="O'Brien"), {("O'Brien", "ADEPT-DryRun-Moral judgement-0.2")}),
    (RunQuery(adm="pipeline_baseline"), {("pipeline_baseline", "ADEPT-June2025-merit-0.5"),
                                         ("pipeline_baseline", "ADEPT-June2025-merit-0.2")}),
    (RunQuery(llm=QUOTED_LLM), {("pipeline_kaleido", "ADEPT-June2025-merit-0.5")}),
    (RunQuery(llm=MISTRAL, min_score=0.8), {("O'Brien", "ADEPT-DryRun-Moral judgement-0.2"),
                                            ("pipeline_baseline", "ADEPT-June2025-merit-0.5")}),
    (RunQuery(min_score=0.5, score_metric="score.accuracy"), {("pipeline_baseline", "ADEPT-June2025-merit-0.2")}),
    (RunQuery(filter="params.`kdma.Moral judgement` = '0.2'"), {("O'Brien", "ADEPT-DryRun-Moral judgement-0.2")}),
    (RunQuery(filter="params.adm = \"O'Brien\""), {("O'Brien", "ADEPT-DryRun-Moral judgement-0.2")}),
    (RunQuery(filter="metrics.timing.avg_seconds > 4 AND params.adm LIKE 'pipeline%'"),
     {("pipeline_baseline", "ADEPT-June2025-merit-0.2"), ("pipeline_kaleido", "ADEPT-June2025-merit-0.5")}),
    (RunQuery(filter="tags.llm IS NULL"), {("RandomADM", "unaligned")}),
    (RunQuery(adm="pipeline_baseline", filter="params.alignment_target_id = 'ADEPT-June2025-merit-0.2'"),
     {("pipeline_baseline", "ADEPT-June2025-merit-0.2")}),
    (RunQuery(adm="O'Brien", llm=QUOTED_LLM), set()),
])
def test_filters_select_exactly(ingested: tuple[str, Path], query: RunQuery, expected: set) -> None:
    assert _names(run_query(ingested[0], query=query)) == expected


def test_min_score_is_inclusive_and_explains_a_missing_metric(ingested: tuple[str, Path]) -> None:
    uri, _ = ingested
    assert len(run_query(uri, query=RunQuery(min_score=0.9)).rows) == 1
    query = RunQuery(min_score=0.1, score_metric="score.nope")
    result = run_query(uri, query=query)
    assert result.rows == []
    assert "no run has the metric 'score.nope'" in result.empty_reason()


def test_limit_keeps_the_newest(ingested: tuple[str, Path]) -> None:
    uri, _ = ingested
    every = run_query(uri).rows
    limited = run_query(uri, query=RunQuery(limit=2)).rows
    assert [r.run_id for r in limited] == [r.run_id for r in every[:2]]


@pytest.mark.parametrize(("text", "problem"), [
    ("params.adm = pipeline_baseline", "not quoted"),
    ("params.adm > 'x'", "Invalid comparator"),
    ("metrics.timing.avg_seconds < 'fast'", "numeric"),
    ("params.adm = 'a' OR params.adm = 'b'", "OR"),
    ("nonsense.adm = 'a'", "Invalid entity type"),
])
def test_invalid_filter_names_the_problem_before_touching_the_store(tmp_path: Path, text: str, problem: str) -> None:
    missing = tmp_path / "none" / "mlflow.db"
    with pytest.raises(QueryError, match=problem) as info:
        run_query(f"sqlite:///{missing}", query=RunQuery(filter=text))
    assert "--filter" in str(info.value)
    assert not missing.exists()


def test_missing_store_is_refused_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "data" / "mlflow.db"
    with pytest.raises(StoreError, match="no MLflow store"):
        run_query(f"sqlite:///{missing}", query=RunQuery(adm="x"))
    assert not missing.exists() and not missing.parent.exists()


def test_unknown_experiment_lists_the_existing_ones(ingested: tuple[str, Path]) -> None:
    with pytest.raises(StoreError, match=f"existing experiments: .*'{DEFAULT_EXPERIMENT}'"):
        run_query(ingested[0], "no-such-experiment")


def test_only_complete_active_runs_count(tmp_path: Path, store_uri: str) -> None:
    root = build_tree(tmp_path / "exps")
    ingest_tree(root, store_uri)
    rows = run_query(store_uri).rows
    client = MlflowClient(tracking_uri=store_uri)
    half_written, deleted = rows[0], rows[1]
    client.set_tag(half_written.run_id, TAG_COMPLETE, "false")
    client.delete_run(deleted.run_id)
    left = {r.run_id for r in run_query(store_uri).rows}
    assert left == {r.run_id for r in rows[2:]}


# --------------------------------------------------------------------------- columns


def test_resolve_column_prefers_params_then_metrics_then_tags() -> None:
    cols = ["run_id", "params.adm", "tags.adm", "metrics.timing.avg_seconds", "tags.experiment_path",
            "params.kdma.Moral judgement"]
    assert resolve_column(cols, "adm") == "params.adm"
    assert resolve_column(cols, "tags.adm") == "tags.adm"
    assert resolve_column(cols, "timing.avg_seconds") == "metrics.timing.avg_seconds"
    assert resolve_column(cols, "metric.timing.avg_seconds") == "metrics.timing.avg_seconds"
    assert resolve_column(cols, "experiment_path") == "tags.experiment_path"
    assert resolve_column(cols, "params.`kdma.Moral judgement`") == "params.kdma.Moral judgement"
    assert resolve_column(cols, "run_id") == "run_id"
    with pytest.raises(QueryError, match=r"unknown column 'score'; available: params: adm, kdma.Moral judgement"):
        resolve_column(cols, "score")


def test_describe_columns_hides_bookkeeping_tags() -> None:
    text = describe_columns(["params.adm", "tags.align_track.key", "tags.mlflow.runName", "tags.llm", "run_id"])
    assert text == "params: adm; tags: llm; run: run_id"


# --------------------------------------------------------------------------- report pivots


def test_default_pivot_is_mean_seconds_by_target_and_adm(ingested: tuple[str, Path]) -> None:
    frame = run_query(ingested[0]).frame
    pivot = build_pivot(frame)
    assert (pivot.rows, pivot.cols, pivot.values) == (
        "params.alignment_target_id", "params.adm", "metrics.timing.avg_seconds")
    table = pivot.table
    assert table.loc["ADEPT-June2025-merit-0.5", "pipeline_kaleido"] == pytest.approx(15.0)
    assert table.loc["ADEPT-June2025-merit-0.2", "pipeline_baseline"] == pytest.approx(5.0)
    assert "RandomADM" not in table.columns  # its only run has no timing: dropped, and named
    assert pivot.dropped_cols == ["RandomADM"]
    assert pivot.dropped_rows == ["unaligned"]  # its runs have no timing either
    assert len(pivot.runs) == len(EXPECTED)
    assert pivot.title == "mean of timing.avg_seconds by alignment_target_id (rows) x adm (columns)"


@pytest.mark.parametrize(("agg", "cell"), [("mean", 3.5), ("median", 3.5), ("min", 2.0), ("max", 5.0), ("count", 2)])
def test_pivot_aggregations(ingested: tuple[str, Path], agg: str, cell: float) -> None:
    # llm MISTRAL x run_variant default: baseline 0.5 (avg 2.0), baseline 0.2 (5.0), O'Brien (2.0) -> 3 runs
    frame = run_query(ingested[0], query=RunQuery(adm="pipeline_baseline")).frame
    pivot = build_pivot(frame, rows="llm_backbone", cols="run_variant", agg=agg)
    assert pivot.table.loc[MISTRAL, "default"] == pytest.approx(cell)


def test_pivot_counts_text_values_and_groups_missing_labels(ingested: tuple[str, Path]) -> None:
    frame = run_query(ingested[0]).frame
    pivot = build_pivot(frame, rows="llm_backbone", cols="has_hydra_config", values="adm", agg="count")
    assert pivot.table.loc["(none)", "True"] == 1  # RandomADM has no LLM: its own row, not dropped
    assert pivot.table.loc[MISTRAL, "True"] == 3
    assert list(pivot.table.index)[-1] == "(none)"
    with pytest.raises(QueryError, match="not numeric"):
        build_pivot(frame, values="adm", agg="mean")
    with pytest.raises(QueryError, match="unknown column 'nope'"):
        build_pivot(frame, rows="nope")
    with pytest.raises(QueryError, match="unknown aggregation"):
        build_pivot(frame, agg="sum")


# --------------------------------------------------------------------------- export table and atomic writes


def test_export_table_leads_with_run_fields_and_iso_times(ingested: tuple[str, Path]) -> None:
    frame = run_query(ingested[0]).frame
    columns = export_columns(frame)
    assert columns[:5] == ["run_id", "run_name", "status", "start_time", "params.adm"]
    kinds = [c.split(".", 1)[0] for c in columns[4:]]
    assert kinds == sorted(kinds, key=["params", "metrics", "tags"].index)
    assert "tags.mlflow.runName" not in columns
    header, rows = export_table(frame)
    start = rows[0][header.index("start_time")]
    assert start.endswith("+00:00") and "T" in start
    assert all(v is None or not (isinstance(v, float) and math.isnan(v)) for row in rows for v in row)


def test_format_for_uses_flag_then_suffix() -> None:
    assert format_for("out.TSV", None) == "tsv"
    assert format_for("out.csv", "json") == "json"
    with pytest.raises(ExportError, match="--format"):
        format_for("out.txt", None)
    with pytest.raises(ExportError, match="unknown format"):
        format_for("out.csv", "xml")


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "report.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(folder) == ["report.csv"]
    with atomic_write(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and os.listdir(folder) == ["report.csv"]


def test_atomic_write_gives_normal_permissions_and_refuses_missing_folder(tmp_path: Path) -> None:
    target = tmp_path / "fresh.json"
    with atomic_write(target) as tmp:
        tmp.write_text("{}")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    with pytest.raises(ExportError, match="folder does not exist"):
        with atomic_write(tmp_path / "nope" / "x.csv"):
            pass
