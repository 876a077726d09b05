"""One outcome on every backend (SQLite, PostgreSQL direct, ``mlflow server`` on SQLite and on PostgreSQL) for the
edges where they used to differ (issue 20, items 6-8): long values, long run names, NUL characters.

Each case ingests into the session's store for that backend (tests/support/backends.py), in an experiment of its
own, and reads back through MLflow's read APIs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.backends import BACKENDS, backend_uri, new_experiment, outcome
from tests.support.factory import config, merit_target, scene, write_run_folder


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ALIGN_TRACK_ARTIFACTS_ROOT", str(request.getfixturevalue("pg_artifacts")))
    return backend_uri(request, request.param)


def test_a_long_adm_or_target_gives_a_run_name_within_mlflows_limit(backend: str, tmp_path: Path) -> None:
    """A 7,000-character ADM name or a 9,000-character target: the run name (and ``mlflow.runName``) is cut to
    MLflow's 250 with a note, never a store error (PostgreSQL's varchar(250)) nor a 9,000-character tag."""
    tree = tmp_path / "exps"
    write_run_folder(tree / "long_adm", cfg=config(adm="a" * 7000, target=merit_target()))
    write_run_folder(tree / "long_target",
                     cfg=config(target={"id": "t" * 9000, "kdma_values": [{"kdma": "merit", "value": 0.5}]}))
    got = outcome(tree, backend, new_experiment())
    assert got["failed"] == []
    names = {key.split("|")[0]: (run["name"], run["tags"]["mlflow.runName"]) for key, run in got["runs"].items()}
    assert names == {"long_adm": ("a" * 250,) * 2, "long_target": (("pipeline_baseline/" + "t" * 9000)[:250],) * 2}
    assert [n for n in got["notes"] if "run name" in n] == [
        "long_adm: run name: 7025 characters truncated to 250 (MLflow's limit)",
        "long_target: run name: 9018 characters truncated to 250 (MLflow's limit)",
    ]


def test_long_param_and_tag_values_are_truncated_alike_on_every_backend(backend: str, tmp_path: Path) -> None:
    """A 7,000-character param value and 9,000-character tag values: cut to MLflow's 6,000 / 8,000 with a note
    naming the folder and field on every backend (a PostgreSQL-backed store said 'store error' for the target)."""
    tree = tmp_path / "exps"
    write_run_folder(tree / "long_llm", cfg=config(llm="m" * 9000, target=merit_target()))
    write_run_folder(tree / "long_kdma", cfg=config(target={"id": "t1", "kdma_values": [{"kdma": "merit",
                                                                                         "value": "v" * 7000}]}))
    write_run_folder(tree / "long_target",
                     cfg=config(target={"id": "t" * 9000, "kdma_values": [{"kdma": "merit", "value": 0.5}]}))
    got = outcome(tree, backend, new_experiment())
    assert got["failed"] == []
    lengths = {key.split("|")[0]: ({k: len(v) for k, v in run["params"].items() if len(v) > 250},
                                   {k: len(v) for k, v in run["tags"].items() if len(v) > 250})
               for key, run in got["runs"].items()}
    assert lengths == {
        "long_llm": ({"llm_backbone": 6000}, {"llm": 8000}),
        "long_kdma": ({"kdma.merit": 6000}, {}),
        "long_target": ({"alignment_target_id": 6000}, {"alignment_target_id": 8000}),
    }
    assert [n for n in got["notes"] if "truncated" in n and "run name" not in n] == [
        "long_kdma: param 'kdma.merit': 7000 characters truncated to 6000 (MLflow's limit)",
        "long_llm: param 'llm_backbone': 9000 characters truncated to 6000 (MLflow's limit)",
        "long_llm: tag 'llm': 9000 characters truncated to 8000 (MLflow's limit)",
        "long_target: param 'alignment_target_id': 9000 characters truncated to 6000 (MLflow's limit)",
        "long_target: tag 'alignment_target_id': 9000 characters truncated to 8000 (MLflow's limit)",
    ]
    run = got["runs"][f"long_target|{'t' * 6000}"]
    assert run["params"]["alignment_target_id"] == "t" * 6000 and run["tags"]["alignment_target_id"] == "t" * 8000


def test_nul_and_lone_surrogates_are_replaced_alike_on_every_backend(backend: str, tmp_path: Path) -> None:
    """NUL in an ADM name, a scene id and scene text (and an unpaired surrogate, JSON's ``\\ud800``): U+FFFD in
    every field that holds it (params, tags, run name, trace name and tags, span inputs/outputs/attributes), with
    a note, on every backend (PostgreSQL said 'store error: A string literal cannot contain NUL')."""
    tree = tmp_path / "exps"
    write_run_folder(tree / "nul_adm", cfg=config(adm="a\x00b", target=merit_target()))
    odd = scene("S\x001")
    odd["input"]["full_state"]["unstructured"] = "text\x00with NUL"
    odd["output"]["action"]["justification"] = "lone \ud800 surrogate"
    write_run_folder(tree / "nul_scene", scenes=[odd, scene("S2")])
    got = outcome(tree, backend, new_experiment())
    assert got["failed"] == []
    adm = got["runs"][next(k for k in got["runs"] if k.startswith("nul_adm|"))]
    assert adm["params"]["adm"] == adm["tags"]["adm"] == "a\ufffdb"
    assert adm["name"] == adm["tags"]["mlflow.runName"] == "a\ufffdb/ADEPT-June2025-merit-0.5"
    assert {t["attributes"]["adm"] for t in adm["traces"]} == {"a\ufffdb"}
    traces = got["runs"][next(k for k in got["runs"] if k.startswith("nul_scene|"))]["traces"]
    first = traces[0]
    assert first["name"] == first["tags"]["scene_id"] == first["span"][0] == "S\ufffd1"
    assert first["span"][1]["unstructured"] == "text\ufffdwith NUL" and first["span"][1]["scene_id"] == "S\ufffd1"
    assert first["span"][2]["action"]["justification"] == "lone \ufffd surrogate"
    assert "\x00" not in first["request_preview"] and "\\u0000" not in first["request_preview"]
    assert [t["name"] for t in traces[1:]] == ["S2"]
    assert [n for n in got["notes"] if "U+FFFD" in n] == [
        "nul_adm: NUL or unpaired surrogate characters replaced by U+FFFD (no store can hold them alike) in "
        "param 'adm', tag 'adm', run name, 3 scenes ('S0', ...)",
        "nul_scene: NUL or unpaired surrogate characters replaced by U+FFFD (no store can hold them alike) in "
        "1 scene ('S\ufffd1')",
    ]


@pytest.mark.parametrize("name", ["sqlite", "postgresql"])
def test_a_watched_live_run_stores_nul_as_ingest_does(name: str, request: pytest.FixtureRequest,
                                                      tmp_path: Path) -> None:
    """Scenes appended to a live run go through the same rule as a whole run (the finished run's traces are the
    ones a plain ingest writes): on PostgreSQL the append failed with 'store error' on main."""
    from mlflow import MlflowClient

    from align_track.ingest.watch import FAILED, NOTE, Watcher
    from tests.support import live_writer as lw

    uri = backend_uri(request, name)
    folder = lw.start(tmp_path / "exp" / "live", config(adm="a\x00b", target=merit_target()))
    scenes = [scene("S\x000"), scene("S1")]
    events: list = []
    experiment = new_experiment("watch")
    watcher = Watcher(tmp_path / "exp", uri, experiment, stall_after=3600, on_event=events.append)
    for count in (1, 2):
        (folder / "input_output.json").write_text(json.dumps(scenes[:count]))
        watcher.poll()
    lw.finish(folder, 2)
    watcher.poll()
    assert [e.message for e in events if e.kind == FAILED] == []
    assert watcher.summary.counts["finished"] == 1
    assert any("U+FFFD" in e.message for e in events if e.kind == NOTE)
    client = MlflowClient(uri)
    eid = client.get_experiment_by_name(experiment).experiment_id
    (run,) = client.search_runs([eid])
    assert run.info.run_name == "a\ufffdb/ADEPT-June2025-merit-0.5" and run.data.params["adm"] == "a\ufffdb"
    found = client.search_traces(locations=[eid], run_id=run.info.run_id)
    names = sorted(t.info.tags["mlflow.traceName"] for t in found)
    plain = outcome(tmp_path / "exp", uri, new_experiment("plain"))
    assert names == sorted(t["name"] for t in plain["runs"][next(iter(plain["runs"]))]["traces"]) == ["S1", "S\ufffd0"]


def test_integers_beyond_64_bits_in_a_scene_are_floats_on_every_backend(backend: str, tmp_path: Path) -> None:
    """Found by the hostile-folder generator: a 20-digit number in a scene (true KDMA values, a scenario id) was
    stored by SQLite and PostgreSQL direct, but a tracking server's span protocol (OTLP ``int_value``) holds 64
    bits: 'store error: ValueError: Value out of range'. Everywhere now: a float, with a note."""
    tree = tmp_path / "exps"
    odd = scene("S1", true_kdma={"Treat Patient A": {"merit": 10**20}, "Treat Patient B": {"merit": 0.8}})
    odd["input"]["scenario_id"] = -(2**70)
    write_run_folder(tree / "wide", scenes=[odd, scene("S2")])
    got = outcome(tree, backend, new_experiment())
    assert got["failed"] == []
    (run,) = got["runs"].values()
    first = run["traces"][0]
    assert first["attributes"]["true_kdma_values"]["Treat Patient A"]["merit"] == 1e20
    assert first["attributes"]["scenario_id"] == first["span"][1]["scenario_id"] == float(-(2**70))
    assert run["traces"][1]["attributes"]["scenario_id"] == "June2025-AF-eval"
    assert got["notes"] == ["wide: integers beyond 64 bits stored as floats (a tracking server's span protocol "
                            "holds 64) in 1 scene ('S1')"]


def test_a_scene_target_with_a_lone_surrogate_stops_nothing(backend: str, tmp_path: Path) -> None:
    """Found by the generator: a scene's alignment_target_id holding JSON's ``"\\ud800"`` crashed the whole
    ingest on every backend (UnicodeEncodeError hashing the run's identity, a traceback, no folder written)."""
    tree = tmp_path / "exps"
    write_run_folder(tree / "good")
    scenes = [scene("S1", target="ADEPT-June2025-merit-0.5"), scene("S2", target="t\ud800")]
    write_run_folder(tree / "odd", scenes=scenes, cfg=config(target=None), raw_io=json.dumps(scenes))
    got = outcome(tree, backend, new_experiment())
    assert got["failed"] == []
    assert sorted(k.split("|")[0] for k in got["runs"]) == ["good", "odd", "odd"]
    assert "t\ufffd" in {run["params"]["alignment_target_id"] for run in got["runs"].values()}


def test_a_folder_failing_on_one_target_gives_no_notes_for_the_other(backend: str, tmp_path: Path) -> None:
    """Found by the generator: a mixed-target folder whose first target maps with a note and whose second fails
    (a scene id over 4,096 characters): through a server the note was printed, on SQL stores not. The folder is
    all or nothing: no note anywhere, one failure."""
    tree = tmp_path / "exps"
    first = scene("S1", target="ADEPT-June2025-merit-0.5")
    first["output"]["action"]["justification"] = "nul\x00"
    scenes = [first, scene("x" * 5000, target="ADEPT-June2025-merit-0.9")]
    write_run_folder(tree / "mixed", scenes=scenes, cfg=config(target=None))
    got = outcome(tree, backend, new_experiment())
    assert got["runs"] == {} and got["notes"] == []
    (failure,) = got["failed"]
    assert "scene id 'xxx" in failure and "5000 characters" in failure and "store error" not in failure
