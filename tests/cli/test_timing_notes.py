"""The CLI says what the TUI says of runs whose folder had no timing.json (issue 25 item 7): 'no timing', or
'may still be running' when the folder's files changed within the stall window before the ingest.

Real ingest, real SQLite store, the real CLI (click's runner, as the other CLI tests run it); folders from
tests/support/factory.py, their file times set by hand.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from align_track.cli.main import main
from align_track.schema import STALL_SECONDS
from tests.support.factory import scene, write_run_folder

FIRST_FEW = 5
"""Folders the ingest summary names per note before it counts the rest."""
OLD = 2 * 3600.0
"""Seconds before now the 'untimed' folder last changed: far outside the stall window."""
assert OLD > 2 * STALL_SECONDS


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def age_folder(path: Path, seconds: float) -> None:
    """Every file and directory of a run folder last changed ``seconds`` ago."""
    when = time.time() - seconds
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*filenames, *dirnames]:
            os.utime(Path(dirpath) / name, (when, when))


def three_folders(root: Path) -> Path:
    """'timed' (timing.json, old), 'untimed' (none, old), 'writing' (none, written just now)."""
    for name, timing in (("timed", True), ("untimed", False), ("writing", False)):
        write_run_folder(root / name, scenes=[scene(f"{name}-{i}") for i in range(3)], timing=timing)
    age_folder(root / "timed", OLD)
    age_folder(root / "untimed", OLD)
    return root


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Result]:
    """(store URI, the ingest's result) for the three folders."""
    base = tmp_path_factory.mktemp("timing-notes")
    root = three_folders(base / "exps")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        result = cli("ingest", "--experiments-dir", str(root), "--mlflow-uri", uri)
    assert result.exit_code == 0, result.output
    return uri, result


def test_ingest_counts_and_names_them(ingested: tuple[str, Result]) -> None:
    _, result = ingested
    (line,) = result.stdout.splitlines()  # stdout stays the one key=value line
    fields = dict(f.split("=", 1) for f in line.split())
    assert (fields["ingested"], fields["no_timing"], fields["maybe_running"]) == ("3", "1", "1")
    err = result.stderr.splitlines()
    by_folder = {folder: next(x for x in err if f"] ingested {folder} " in x)
                 for folder in ("timed", "untimed", "writing")}
    assert "(no timing)" in by_folder["untimed"] and "may still" not in by_folder["untimed"]
    assert "(may still be running)" in by_folder["writing"]
    assert "timing)" not in by_folder["timed"] and "running" not in by_folder["timed"]
    notes = [x for x in err if x.startswith("note: ")]
    assert notes == [
        "note: no timing (1 run folder): untimed · no timing.json (the run recorded none, or stopped; counted as "
        "complete)",
        f"note: may still be running (1 run folder): writing · no timing.json, its files changed within "
        f"{round(STALL_SECONDS / 60)} min before the ingest",
    ]


def test_list_runs_shows_the_state_the_tui_shows(ingested: tuple[str, Result]) -> None:
    uri, _ = ingested
    result = cli("list-runs", "--mlflow-uri", uri)
    assert result.exit_code == 0, result.output
    header, _, *rows = result.stdout.splitlines()
    assert header.split() == ["ADM", "target", "variant", "scenes", "state", "folder"]
    states = {row.split()[-1]: " ".join(row.split()[4:-1]) for row in rows}  # 4 one-word cells, then state
    assert states == {"timed": "done", "untimed": "no timing", "writing": "may still be running"}


def test_list_runs_links_say_the_state(ingested: tuple[str, Result]) -> None:
    uri, _ = ingested
    out = cli("list-runs", "--mlflow-uri", uri, "--with-links").stdout.splitlines()
    heads = [line for line in out if not line.startswith("  ")]
    assert {h.rsplit("scenes", 1)[1] for h in heads} == {"]", " · may still be running]", " · no timing]"}


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_search_carries_the_state(ingested: tuple[str, Result], fmt: str) -> None:
    uri, _ = ingested
    out = cli("search", "--mlflow-uri", uri, "--format", fmt).stdout
    if fmt == "json":
        records = json.loads(out)
    elif fmt == "csv":
        records = list(csv.DictReader(out.splitlines()))
    else:
        records = [{"experiment_path": r.split()[-2], "state": " ".join(r.split()[6:-2])}
                   for r in out.splitlines()[2:]]  # ADM target variant scenes avg_s score, state, folder LLM
        assert out.splitlines()[0].split()[-3:] == ["state", "folder", "LLM"]
    assert {r["experiment_path"]: r["state"] for r in records} == {
        "timed": "done", "untimed": "no timing", "writing": "may still be running"}


def test_many_are_counted_with_how_to_list_them_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "exps"
    names = [f"untimed-{i:02d}" for i in range(FIRST_FEW + 2)]
    for name in names:
        write_run_folder(root / name, scenes=[scene(f"{name}-0")], timing=False)
        age_folder(root / name, OLD)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = cli("ingest", "--experiments-dir", str(root), "--mlflow-uri", uri, "--experiment-name", "sweep 1")
    assert result.exit_code == 0, result.output
    (note,) = [x for x in result.stderr.splitlines() if x.startswith("note: ")]
    listed, hint = note.split(" and 2 more (all: ")
    assert listed == f"note: no timing ({len(names)} run folders): {', '.join(sorted(names)[:FIRST_FEW])}"
    command, grep = hint.split(") · ")[0].split(" | ")
    assert grep == "grep -F 'no timing'"
    args = shlex.split(command)
    assert args[:2] == ["align-track", "list-runs"]
    listing = cli(*args[1:]).stdout.splitlines()  # the command it gives, run: it lists every one of them
    assert sorted(line.split()[-1] for line in listing if "no timing" in line) == sorted(names)
    quiet = cli("ingest", "--experiments-dir", str(root), "--mlflow-uri", uri, "--experiment-name", "sweep 1",
                "-q", "--force")
    assert quiet.exit_code == 0 and quiet.output == ""  # -q: errors and failures only
