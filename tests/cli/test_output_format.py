"""What search, list-runs and export print: fitted to 80 columns on a terminal, complete in a pipe, and a
bare SQLite path given as --mlflow-uri answered with the URI it meant."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from align_track.cli.main import main
from align_track.schema import TAG_COMPLETE, TAG_PATH
from tests.support.query_fixtures import EXPECTED, make_ingested


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return make_ingested(tmp_path_factory)


@pytest.mark.parametrize("command", [["search"], ["list-runs"], ["export", "-o", "x.csv"], ["report"],
                                     ["ingest", "--experiments-dir", "."], ["tui"]])
def test_a_bare_sqlite_path_as_uri_is_answered_with_the_uri_it_meant(command: list[str], tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    result = CliRunner().invoke(main, [*command, "--mlflow-uri", str(db)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: --mlflow-uri takes a URI, not a file path: did you mean --mlflow-uri "
                     f"sqlite:///{db} ?"]
    assert not db.exists()  # nothing was created at the bare path


def test_export_to_stdout_has_run_id_and_folder_and_no_bookkeeping_tags(ingested: tuple[str, Path]) -> None:
    result = cli("export", "--mlflow-uri", ingested[0], "-o", "-")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(EXPECTED)
    assert all(row["run_id"] for row in rows)
    assert {row[f"tags.{TAG_PATH}"] for row in rows} == {e.folder for e in EXPECTED}
    assert not [c for c in rows[0] if c.startswith("tags.align_track.")]
    full = cli("export", "--mlflow-uri", ingested[0], "-o", "-", "--format", "json", "--all-columns")
    records = json.loads(full.stdout)
    assert all(r[f"tags.{TAG_COMPLETE}"] == "true" for r in records)


def test_export_xlsx_to_stdout_flows_into_a_pipe(ingested: tuple[str, Path]) -> None:
    """Not a terminal (click's runner): the workbook's bytes; on a terminal it is refused (test_output_edges)."""
    from openpyxl import load_workbook

    result = cli("export", "--mlflow-uri", ingested[0], "-o", "-", "--format", "xlsx")
    assert result.exit_code == 0, result.output
    rows = list(load_workbook(io.BytesIO(result.stdout_bytes))["runs"].iter_rows(values_only=True))
    assert len(rows) == 1 + len(EXPECTED) and rows[0][0] == "run_id"


def test_search_json_rows_carry_run_id_and_folder(ingested: tuple[str, Path]) -> None:
    result = cli("search", "--mlflow-uri", ingested[0], "--format", "json")
    records = json.loads(result.stdout)
    assert {r["experiment_path"] for r in records} == {e.folder for e in EXPECTED}
    assert all(len(r["run_id"]) == 32 for r in records)


def test_columns_chooses_the_table_and_unknown_names_exit_2(ingested: tuple[str, Path]) -> None:
    result = cli("search", "--mlflow-uri", ingested[0], "--columns", "folder,run_id")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["folder", "run", "id"]
    assert {line.split()[0] for line in lines[2:]} >= {"random", "kaleido"}
    bad = cli("list-runs", "--mlflow-uri", ingested[0], "--columns", "adm,nope")
    assert bad.exit_code == 2 and "nope" in bad.output


def test_tables_at_80_columns_cut_in_the_middle_never_mid_word_wrapped(ingested: tuple[str, Path]) -> None:
    """On a real terminal (a pty) 80 columns wide: every line fits, no value folds onto a second line."""
    import pty

    for command in ("search", "list-runs"):
        main_fd, child_fd = pty.openpty()
        env = {**os.environ, "COLUMNS": "80", "LINES": "24", "TERM": "xterm-256color"}
        proc = subprocess.Popen([sys.executable, "-m", "align_track", command, "--mlflow-uri", ingested[0]],
                                stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env, close_fds=True)
        os.close(child_fd)
        chunks = []
        while True:
            try:
                data = os.read(main_fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=60)
        os.close(main_fd)
        text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", b"".join(chunks).decode())
        body = [line for line in text.splitlines() if line.startswith("│")]
        assert len(body) == len(EXPECTED), text  # one line per run: nothing wrapped
        assert all(len(line) <= 80 for line in text.splitlines()), text
        assert any("…" in line for line in body) or all(len(line) < 80 for line in body)
        assert any(line.startswith("│ O'Brien") for line in body), text
