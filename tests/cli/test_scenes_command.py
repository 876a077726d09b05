"""``align-track scenes``: the scene list and one scene's decisions, in every format of the registry."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from align_track.cli.main import main
from align_track.query.formats import EXPORT_FORMATS
from align_track.query.scene_index import DECISION_HEADER, SCENE_HEADER
from tests.support.factory import config, merit_target, write_run_folder
from tests.support.tui_fixtures import choosing_scene


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Three ADMs on scenes S1 (all choose A), S2 (2 A, 1 B) and S3, which scenario 'Other' has too."""
    from align_track.ingest.pipeline import ingest

    root = tmp_path_factory.mktemp("scenes-cli")
    exps = root / "exps"
    plans = {"alpha": (0.2, [0, 0, 1]), "beta": (0.2, [0, 0, 0]), "gamma": (0.8, [0, 1, 1])}
    for adm, (target, choices) in plans.items():
        scenes = [choosing_scene(f"S{i + 1}", c) for i, c in enumerate(choices)]
        scenes.append(choosing_scene("S3", 1, scenario="Other"))
        write_run_folder(exps / adm, scenes=scenes, cfg=config(adm=adm, target=merit_target(target)))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    assert not ingest(exps, uri).failures
    return uri


def test_scene_list_as_json_counts_choices_and_agreement(store: str):
    out = cli("scenes", "--mlflow-uri", store, "--format", "json", "--sort", "agreement")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [(r["scenario_id"], r["scene_id"]) for r in rows][:2] == [("June2025-MF-eval", "S2"),
                                                                      ("June2025-MF-eval", "S3")]
    by = {(r["scenario_id"], r["scene_id"]): r for r in rows}
    assert by[("June2025-MF-eval", "S1")]["agreement"] == 1.0
    assert by[("June2025-MF-eval", "S2")]["choices"] == [{"choice": "Treat Patient A", "runs": 2},
                                                         {"choice": "Treat Patient B", "runs": 1}]
    assert by[("June2025-MF-eval", "S2")]["agreement"] == pytest.approx(2 / 3)
    # alpha and beta (target 0.2) hit with A, gamma (0.8) misses with A on S1
    assert by[("June2025-MF-eval", "S1")]["oracle_hit_rate"] == pytest.approx(2 / 3)
    assert by[("Other", "S3")]["runs"] == 3


def test_splits_text_and_scenario_narrow_the_list(store: str):
    out = cli("scenes", "--mlflow-uri", store, "--format", "csv", "--splits")
    rows = list(csv.DictReader(io.StringIO(out.output)))
    assert {r["scene_id"] for r in rows} == {"S2", "S3"} and all(r["scenario_id"] != "Other" for r in rows)
    out = cli("scenes", "--mlflow-uri", store, "--format", "csv", "--text", "state of s2")
    assert [r["scene_id"] for r in csv.DictReader(io.StringIO(out.output))] == ["S2"]
    out = cli("scenes", "--mlflow-uri", store, "--format", "csv", "--scenario", "Other")
    assert [(r["scenario_id"], r["scene_id"]) for r in csv.DictReader(io.StringIO(out.output))] == [("Other", "S3")]
    out = cli("scenes", "--mlflow-uri", store, "--adm", "gamma", "--format", "csv")
    assert {r["runs"] for r in csv.DictReader(io.StringIO(out.output))} == {"1"}


def test_one_scene_lists_every_run_decision_grouped_by_adm(store: str):
    out = cli("scenes", "--mlflow-uri", store, "--scene", "S3")
    assert out.exit_code == 2 and "--scenario" in out.output and "Other" in out.output
    out = cli("scenes", "--mlflow-uri", store, "--scene", "S2", "--format", "json")
    rows = json.loads(out.output)
    assert [r["adm"] for r in rows] == ["alpha", "beta", "gamma"]
    assert [r["choice"] for r in rows] == ["Treat Patient A", "Treat Patient A", "Treat Patient B"]
    assert rows[0]["true_kdma"] == {"merit": 0.2} and rows[0]["predicted_kdma"] == {"merit": 0.3}
    assert rows[2]["justification"] == "Justification of S2: choice 1."
    assert [r["oracle_hit"] for r in rows] == [True, True, True]
    table = cli("scenes", "--mlflow-uri", store, "--scene", "S2")
    assert table.output.count("Justification of S2") == 3  # a pipe: the plain table, every row


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_every_registry_format_to_a_file(store: str, tmp_path: Path, fmt: str):
    path = tmp_path / f"scenes.{fmt}"
    out = cli("scenes", "--mlflow-uri", store, "-o", str(path))
    assert out.exit_code == 0 and f"({fmt})" in out.output
    if fmt == "xlsx":
        header = [c.value for c in next(load_workbook(path).active.iter_rows())]
    elif fmt == "json":
        header = list(json.loads(path.read_text())[0])
    else:
        header = path.read_text().splitlines()[0].split("," if fmt == "csv" else "\t")
    assert header == list(SCENE_HEADER)
    path = tmp_path / f"decisions.{fmt}"
    assert cli("scenes", "--mlflow-uri", store, "--scene", "S1", "--scenario", "June2025-MF-eval",
               "-o", str(path)).exit_code == 0
    assert path.stat().st_size > 0


def test_bad_outputs_exit_2(store: str, tmp_path: Path):
    assert cli("scenes", "--mlflow-uri", store, "-o", str(tmp_path / "x.doc")).exit_code == 2
    piped = cli("scenes", "--mlflow-uri", store, "--format", "xlsx")  # not a terminal: the workbook's bytes
    assert piped.exit_code == 0 and piped.stdout_bytes.startswith(b"PK")
    out = cli("scenes", "--mlflow-uri", store, "-o", str(tmp_path / "missing" / "x.csv"))
    assert out.exit_code == 2 and "does not exist" in out.output
    out = cli("scenes", "--mlflow-uri", store, "--scene", "nope", "--format", "json")
    assert out.exit_code == 0 and out.output.strip().endswith("[]")
    assert DECISION_HEADER[0] == "adm"


def test_no_match_says_what_was_asked_in_words_including_splits(store: str):
    """'no scene 'x' match', and an empty --splits list did not say --splits had left every scene out."""
    out = CliRunner().invoke(main, ["scenes", "--mlflow-uri", store, "--scene", "nope"])
    assert out.exit_code == 0 and "no scene 'nope' matches (" in out.stderr, out.stderr
    out = CliRunner().invoke(main, ["scenes", "--mlflow-uri", store, "--splits", "--scenario", "Other"])
    assert out.exit_code == 0 and "no scenes match (" in out.stderr, out.stderr
    assert "only scenes where the runs split (--splits)" in out.stderr and len(out.stderr.splitlines()) == 1


def test_scenes_of_a_sqlite_store_never_import_mlflow_or_pandas(store: str):
    code = ("import sys\nfrom align_track.cli.main import main\n"
            "try:\n    main(['scenes', '--mlflow-uri', sys.argv[1], '--format', 'csv'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('mlflow', 'pandas') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code, store], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout
