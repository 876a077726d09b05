"""search, export, report, list-runs and ui as a user runs them, on stores filled by the real ingest."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from align_track.cli.main import main
from align_track.mlflow_ui import find_free_port, port_is_free
from align_track.store.uri import DEFAULT_EXPERIMENT
from tests.support.query_fixtures import EXPECTED, MISTRAL, QUOTED_LLM, make_ingested

OBRIEN_RUN = "O'Brien/ADEPT-DryRun-Moral judgement-0.2"


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def uri_args(ingested: tuple[str, Path]) -> list[str]:
    return ["--mlflow-uri", ingested[0]]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return make_ingested(tmp_path_factory)


# --------------------------------------------------------------------------- the CLI stays light


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "from align_track.cli.main import main\n"
        "for args in (['--help'], ['search', '--help'], ['report', '--help'], ['ui', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, exc.code\n"
        "heavy = [m for m in ('mlflow', 'pandas', 'textual', 'openpyxl', 'sqlalchemy', 'rich') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "HEAVY=\n" in out.stdout, out.stdout[-500:]
    for name in ("search", "export", "report", "list-runs", "ui"):
        assert name in out.stdout


def test_mlflow_telemetry_is_off_unless_the_user_asks_for_it() -> None:
    code = ("import os\nimport align_track.cli.main\n"
            "print('TELEMETRY_OFF=' + os.environ.get('MLFLOW_DISABLE_TELEMETRY', ''))")

    def run(**env: str) -> str:
        base = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              check=True, env={**base, **env}).stdout

    assert "TELEMETRY_OFF=true" in run()
    assert "TELEMETRY_OFF=false" in run(MLFLOW_DISABLE_TELEMETRY="false")
    assert "TELEMETRY_OFF=\n" in run(DO_NOT_TRACK="false")


# --------------------------------------------------------------------------- search


def test_search_plain_table_lists_every_complete_run(ingested: tuple[str, Path]) -> None:
    result = cli("search", *uri_args(ingested))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    # The run name (ADM/target again) is left out; the folder ties a row to its run folder.
    assert lines[0].split() == ["ADM", "target", "variant", "scenes", "avg", "s", "score", "state", "folder", "LLM"]
    assert len(lines) == 2 + len(EXPECTED)
    obrien = next(line for line in lines if line.startswith("O'Brien "))
    assert "ADEPT-DryRun-Moral judgement-0.2" in obrien  # complete in a pipe: nothing cut
    assert obrien.split()[-7:] == ["3", "2.000", "0.800", "done", "obrien", "mj", MISTRAL]
    assert "\x1b[" not in result.stdout  # no colour codes in a pipe


@pytest.mark.parametrize(("args", "expected"), [
    (["--adm", "O'Brien"], {OBRIEN_RUN}),
    (["--llm", QUOTED_LLM], {"pipeline_kaleido/ADEPT-June2025-merit-0.5"}),
    (["--filter", "params.`kdma.Moral judgement` = '0.2'"], {OBRIEN_RUN}),
    (["--filter", "params.adm = 'pipeline_baseline'", "--min-score", "0.8"],
     {"pipeline_baseline/ADEPT-June2025-merit-0.5"}),
    (["--min-score", "0.3", "--score-metric", "metrics.score.accuracy"],
     {"pipeline_baseline/ADEPT-June2025-merit-0.2"}),
])
def test_search_filters_as_json(ingested: tuple[str, Path], args: list[str], expected: set[str]) -> None:
    result = cli("search", *uri_args(ingested), *args, "--format", "json")
    assert result.exit_code == 0, result.output
    assert {r["run_name"] for r in json.loads(result.stdout)} == expected


def test_search_csv_and_tsv_are_machine_readable(ingested: tuple[str, Path]) -> None:
    out = cli("search", *uri_args(ingested), "--adm", "O'Brien", "--format", "csv").stdout
    (row,) = list(csv.DictReader(out.splitlines()))
    assert (row["adm"], row["num_scenarios"], float(row["score.alignment_score"])) == ("O'Brien", "3", 0.8)
    out = cli("search", *uri_args(ingested), "--llm", QUOTED_LLM, "--format", "tsv").stdout
    (row,) = list(csv.DictReader(out.splitlines(), delimiter="\t"))
    assert row["llm"] == QUOTED_LLM and float(row["avg_seconds"]) == 15.0


def test_search_limit(ingested: tuple[str, Path]) -> None:
    rows = json.loads(cli("search", *uri_args(ingested), "--limit", "2", "--format", "json").stdout)
    assert len(rows) == 2
    assert cli("search", *uri_args(ingested), "--limit", "0").exit_code == 2


def test_search_empty_result_says_why_and_exits_0(ingested: tuple[str, Path]) -> None:
    result = cli("search", *uri_args(ingested), "--min-score", "0.99")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no runs match" in result.stderr and "score.alignment_score` >= 0.99" in result.stderr
    result = cli("search", *uri_args(ingested), "--adm", "nobody", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []


def test_invalid_filter_exits_2_naming_the_problem(ingested: tuple[str, Path]) -> None:
    result = cli("search", *uri_args(ingested), "--filter", "params.adm = pipeline_baseline")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid --filter 'params.adm = pipeline_baseline'")
    assert "quote" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("text", "named"), [
    ("params.adm = 'pipeline_baseline' and", "ends with 'and'"),
    ("params.adm = 'pipeline_baseline' AND ", "ends with 'AND'"),
    ("AND params.adm = 'pipeline_baseline'", "starts with 'AND'"),
    ("params.adm = 'pipeline_baseline' and and params.llm_backbone = 'x'", "AND then AND"),
    ("params.adm = 'pipeline_baseline' or", "ends with 'or'"),
    ("(params.adm = 'pipeline_baseline'", "'(' at character 1 is never closed"),
    ("params.adm = 'pipeline_baseline')", "')' at character 33 closes nothing"),
    ("params.adm = 'pipeline_baseline", "single quote (') at character 14 is never closed"),
    ('params.adm = "pipeline_baseline', 'double quote (") at character 14 is never closed'),
    ("metrics.`timing.avg_seconds < 30", "backtick (`) at character 9 is never closed"),
])
def test_incomplete_filter_is_refused_not_run_as_a_shorter_one(ingested: tuple[str, Path], text: str,
                                                              named: str) -> None:
    """MLflow drops a dangling AND: `... and` selected the runs of the filter before it (issue 25, item 4)."""
    result = cli("search", *uri_args(ingested), "--filter", text)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: incomplete --filter {text!r}: ")
    assert named in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_filter_words_inside_quotes_are_not_joiners(ingested: tuple[str, Path]) -> None:
    """'and' / 'or' / parentheses inside a quoted value or a backticked key are data, not syntax."""
    result = cli("search", *uri_args(ingested), "--format", "json", "--filter",
                 "params.adm = 'x and (' AND metrics.`timing.avg_seconds` > 0 AND params.adm != 'it''s or'")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == []
    result = cli("search", *uri_args(ingested), "--format", "json", "--filter", "params.adm LIKE '%and'")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("command", [["search"], ["export", "-o", "out.csv"], ["report"], ["list-runs"]])
def test_missing_store_exits_2_and_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "data" / "mlflow" / "mlflow.db"
    result = cli(*command, "--mlflow-uri", f"sqlite:///{missing}")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no MLflow store at")
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "cwd" / "out.csv").exists()


def test_default_store_is_resolved_from_env_then_relative_default(tmp_path: Path, monkeypatch) -> None:
    result = cli("search")  # cwd is empty: sqlite:///data/mlflow/mlflow.db does not exist
    assert result.exit_code == 2 and str(Path.cwd() / "data" / "mlflow" / "mlflow.db") in result.stderr
    assert not (Path.cwd() / "data").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")
    assert "env.db" in cli("search").stderr


def test_unknown_experiment_exits_2_listing_existing(ingested: tuple[str, Path]) -> None:
    result = cli("search", *uri_args(ingested), "--experiment-name", "typo")
    assert result.exit_code == 2
    assert f"no experiment named 'typo'; existing experiments: 'Default', '{DEFAULT_EXPERIMENT}'" in result.stderr


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "xlsx"])
def test_export_round_trips(ingested: tuple[str, Path], tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"results.{fmt}"
    result = cli("export", *uri_args(ingested), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote {len(EXPECTED)} runs to {out} ({fmt})" in result.stdout
    if fmt in ("csv", "tsv"):
        with open(out, newline="", encoding="utf-8") as fh:
            records = list(csv.DictReader(fh, delimiter="," if fmt == "csv" else "\t"))
    elif fmt == "json":
        records = json.loads(out.read_text())
    else:
        wb = load_workbook(out)
        ws = wb["runs"]
        header = [c.value for c in ws[1]]
        records = [dict(zip(header, row, strict=True)) for row in ws.iter_rows(min_row=2, values_only=True)]
        assert all(cell.font.b for cell in ws[1]) and ws.freeze_panes == "A2"
    assert list(records[0])[:4] == ["run_id", "run_name", "status", "start_time"]
    by_name = {r["run_name"]: r for r in records}
    assert len(by_name) == len(EXPECTED)
    obrien = by_name[OBRIEN_RUN]
    assert obrien["params.adm"] == "O'Brien"
    assert obrien["params.kdma.Moral judgement"] == "0.2"  # stays text, not a float
    assert float(obrien["metrics.timing.avg_seconds"]) == pytest.approx(2.0)
    assert obrien["tags.experiment_path"] == "obrien mj"
    assert obrien["status"] == "FINISHED" and obrien["start_time"].endswith("+00:00")
    kaleido = by_name["pipeline_kaleido/ADEPT-June2025-merit-0.5"]
    assert kaleido["params.llm_backbone"] == QUOTED_LLM
    assert kaleido["metrics.score.alignment_score"] in ("", None)  # missing, not 0 or NaN


def test_export_format_flag_beats_suffix_and_filters_apply(ingested: tuple[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "results.dat"
    assert cli("export", *uri_args(ingested), "-o", str(out)).exit_code == 2  # no known suffix, no --format
    assert not out.exists()
    result = cli("export", *uri_args(ingested), "--format", "json", "-o", str(out), "--adm", "pipeline_baseline")
    assert result.exit_code == 0
    assert {r["params.adm"] for r in json.loads(out.read_text())} == {"pipeline_baseline"}


def test_export_with_no_runs_exits_1_and_writes_nothing(ingested: tuple[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    result = cli("export", *uri_args(ingested), "--adm", "nobody", "-o", str(out))
    assert result.exit_code == 1
    assert "nothing exported: no runs match" in result.stderr
    assert not out.exists()


def test_export_into_a_missing_folder_exits_2(ingested: tuple[str, Path], tmp_path: Path) -> None:
    result = cli("export", *uri_args(ingested), "-o", str(tmp_path / "nope" / "r.csv"))
    assert result.exit_code == 2 and "folder does not exist" in result.stderr


# --------------------------------------------------------------------------- report


def test_report_xlsx_is_formatted_with_a_runs_sheet(ingested: tuple[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.xlsx"
    result = cli("report", *uri_args(ingested), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"to {out}" in result.stdout and "mean of timing.avg_seconds" in result.stdout
    assert "ADEPT-June2025-merit-0.5" in result.stdout  # the preview
    wb = load_workbook(out)
    # the tree's targets are scalar and its scenes carry true KDMA values: the alignment curve sits beside the pivot
    assert wb.sheetnames == ["report", "alignment curve", "curve data", "runs"]
    ws = wb["report"]
    assert ws["A1"].value == "mean of timing.avg_seconds by alignment_target_id (rows) x adm (columns)"
    assert ws["A1"].font.b
    assert ws.freeze_panes == "B5"
    header = [c.value for c in ws[4]]
    assert header[0] == "alignment_target_id \\ adm"
    assert header[1:] == sorted(header[1:])
    assert all(c.font.b for c in ws[4])
    rows = {r[0].value: r for r in ws.iter_rows(min_row=5)}
    kaleido = rows["ADEPT-June2025-merit-0.5"][header.index("pipeline_kaleido")]
    assert kaleido.value == pytest.approx(15.0) and kaleido.number_format == "0.000"
    assert "unaligned" not in rows  # its runs have no timing: a row of empty cells is said below, not drawn
    assert any(str(key).startswith("1 row with no timing.avg_seconds not shown: unaligned") for key in rows)
    assert ws.column_dimensions["A"].width >= len("ADEPT-DryRun-Moral judgement-0.2")
    runs = wb["runs"]
    assert [c.value for c in runs[1]][:2] == ["run_id", "run_name"]
    assert runs.max_row == 1 + len(EXPECTED) and runs.freeze_panes == "A2"


def test_report_readme_example_and_other_formats(ingested: tuple[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = cli("report", *uri_args(ingested), "--rows", "alignment_target_id", "--cols", "adm",
                 "--values", "metrics.score.alignment_score", "-o", str(out))
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["values"] == "metrics.score.alignment_score" and payload["runs"] == len(EXPECTED)
    assert payload["table"]["ADEPT-June2025-merit-0.5"]["pipeline_baseline"] == pytest.approx(0.9)
    assert "pipeline_kaleido" not in payload["columns"]  # no score in any of its runs: said, not drawn
    assert any(line.startswith("2 columns with no score.alignment_score not shown: ") and "pipeline_kaleido" in line
               for line in payload["left_out"])
    assert any("without score.alignment_score: no scores.json in the folder" in line for line in payload["left_out"])
    out = tmp_path / "report.csv"
    assert cli("report", *uri_args(ingested), "--agg", "count", "--values", "adm", "-o", str(out)).exit_code == 0
    rows = list(csv.reader(out.read_text().splitlines()))
    counts = {r[0]: r[1:] for r in rows[1:]}
    assert counts["unaligned"][rows[0].index("RandomADM") - 1] == "1"


def test_report_without_output_prints_the_table(ingested: tuple[str, Path]) -> None:
    result = cli("report", *uri_args(ingested), "--agg", "max", "--adm", "pipeline_baseline")
    assert result.exit_code == 0
    assert result.stdout.startswith("max of timing.avg_seconds")
    assert "5.000" in result.stdout and "O'Brien" not in result.stdout


def test_report_unknown_column_exits_2_listing_columns(ingested: tuple[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.xlsx"
    result = cli("report", *uri_args(ingested), "--values", "speed", "-o", str(out))
    assert result.exit_code == 2
    assert "unknown column 'speed'; available:" in result.stderr
    metrics = result.stderr.split("metrics: ", 1)[1].split(";", 1)[0].split(", ")
    expected = {"score.accuracy", "score.alignment_score", "timing.avg_seconds", "alignment.oracle_hit_rate"}
    assert expected <= set(metrics)
    assert metrics == sorted(metrics)
    assert not out.exists()
    assert cli("report", *uri_args(ingested), "--values", "adm").exit_code == 2  # not numeric for mean


# --------------------------------------------------------------------------- list-runs


def test_list_runs_table(ingested: tuple[str, Path]) -> None:
    result = cli("list-runs", *uri_args(ingested))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ADM", "target", "variant", "scenes", "state", "folder"]
    assert any(line.startswith("O'Brien ") and line.split()[-3:] == ["done", "obrien", "mj"] for line in lines)


def test_list_runs_links_flag_missing_folders(ingested: tuple[str, Path], tmp_path: Path) -> None:
    _, root = ingested
    moved = tmp_path / "moved experiments"
    shutil.copytree(root, moved)
    shutil.rmtree(moved / "random")
    result = cli("list-runs", *uri_args(ingested), "--with-links", "--experiments-root", str(moved))
    assert result.exit_code == 0
    links = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    assert len(links) == len(EXPECTED)
    quoted = f"align-app --experiment '{moved / 'obrien mj'}'"  # shell-quoted: pastes as one argument
    assert quoted in links
    missing = [line for line in links if "MISSING" in line]
    assert missing == [f"align-app --experiment '{moved / 'random'}'  # MISSING: folder no longer exists"]
    assert "1 of 5 run folders not found" in result.stderr


def test_list_runs_links_default_to_the_ingested_folders(ingested: tuple[str, Path]) -> None:
    _, root = ingested
    result = cli("list-runs", *uri_args(ingested), "--with-links", "--adm", "pipeline_baseline")
    links = sorted(line.strip() for line in result.stdout.splitlines() if line.startswith("  "))
    assert links == [f"align-app --experiment {root.resolve() / 'baseline' / m}" for m in ("merit-0.2", "merit-0.5")]


# --------------------------------------------------------------------------- ui


def _wait_for(proc: subprocess.Popen, text: str, timeout: float = 120) -> str:
    """Read the child's stdout until ``text`` shows up."""
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"{text!r} not printed; stdout so far: {seen!r}; stderr: {proc.stderr.read()}")


def _ui(uri: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "align_track", "ui", "--mlflow-uri", uri, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


@pytest.mark.server
def test_ui_serves_the_runs_and_stops_cleanly_on_sigint(ingested: tuple[str, Path]) -> None:
    uri, _ = ingested
    port = find_free_port(start=17000)
    proc = _ui(uri, "--port", str(port), env={"SSH_CONNECTION": "10.0.0.9 50000 10.0.0.5 22"})
    try:
        out = _wait_for(proc, "press Ctrl-C")
        assert f"MLflow UI: http://127.0.0.1:{port}" in out
        assert f"ssh -N -L {port}:localhost:{port} " in out and "@10.0.0.5" in out
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200
        exps = httpx.get(f"{base}/api/2.0/mlflow/experiments/get-by-name",
                         params={"experiment_name": DEFAULT_EXPERIMENT}, timeout=10).json()
        found = httpx.post(f"{base}/api/2.0/mlflow/runs/search", timeout=30, json={
            "experiment_ids": [exps["experiment"]["experiment_id"]],
            "filter": "params.adm = \"O'Brien\""}).json()["runs"]
        assert [r["info"]["run_name"] for r in found] == [OBRIEN_RUN]
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        assert len(family) >= 2  # align-track and the mlflow server (and its uvicorn worker)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert "stopped" in proc.stderr.read()
        assert all(_gone(p) for p in family), [p.pid for p in family if not _gone(p)]
        assert port_is_free("127.0.0.1", port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.server
def test_ui_stops_on_sigterm_too(ingested: tuple[str, Path]) -> None:
    uri, _ = ingested
    port = find_free_port(start=17300)
    proc = _ui(uri, "--port", str(port))
    try:
        _wait_for(proc, "press Ctrl-C")
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert all(_gone(p) for p in family)
        assert port_is_free("127.0.0.1", port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_ui_busy_port_exits_2_naming_a_free_one(ingested: tuple[str, Path]) -> None:
    uri, _ = ingested
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("ui", "--mlflow-uri", uri, "--port", str(port))
    assert result.exit_code == 2
    assert f"error: port {port} on 127.0.0.1 is in use; try --port " in result.stderr
    suggested = int(result.stderr.rsplit("--port ", 1)[1].split()[0])
    assert suggested != port


def test_ui_on_all_interfaces_warns(ingested: tuple[str, Path]) -> None:
    uri, _ = ingested
    with socket.socket() as busy:  # busy so the test fails fast after the warning instead of serving
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("ui", "--mlflow-uri", uri, "--host", "0.0.0.0", "--port", str(port))
    assert "warning: the MLflow UI listens on all interfaces without authentication" in result.stderr
    assert result.exit_code == 2


def test_ui_missing_store_exits_2_without_creating_it(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "mlflow.db"
    result = cli("ui", "--mlflow-uri", f"sqlite:///{missing}", "--port", str(find_free_port(start=17600)))
    assert result.exit_code == 2 and "no MLflow store" in result.stderr
    assert not missing.parent.exists()
