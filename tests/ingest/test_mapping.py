"""The pure run folder -> run/trace mapping: schema drift never drops data, names come out right."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from align_track import scene_summary
from align_track.ingest.folders import RunFolderError, discover, read_config, read_files
from align_track.ingest.mapping import adm_name, build_run, identities, llm_name, scene_times, score_metrics
from align_track.ingest.variants import assign_variants, differing_parts
from tests.support.factory import config, merit_target, scene, write_run_folder


def runs_of(root: Path) -> list:
    configs = [read_config(root, f) for f in discover(root)]
    ids = [i for c in configs for i in identities(c)]
    variants = assign_variants((i.key, i.group, i.config.rel_path) for i in ids)
    return [build_run(i, variants[i.key], read_files(i.config.path)) for i in ids]


def test_adm_name_fallbacks() -> None:
    assert adm_name({"adm": {"name": "pipeline_kaleido"}}, None) == "pipeline_kaleido"
    hydra = {"hydra": {"runtime": {"choices": {"adm": "outlines_structured"}}}}
    assert adm_name({"adm": {"instance": {"_target_": "a.b.RandomADM"}}}, hydra) == "outlines_structured"
    assert adm_name({"adm": {"instance": {"_target_": "align_system.algorithms.random_adm.RandomADM"}}},
                    None) == "RandomADM"
    assert adm_name({}, None) == "unknown_adm"
    assert adm_name({"adm": "not-a-mapping"}, None) == "unknown_adm"


def test_llm_name_fallbacks() -> None:
    both = {"adm": {"structured_inference_engine": {"model_name": "m1"}, "instance": {"model_name": "m2"}}}
    assert llm_name(both) == "m1"
    assert llm_name({"adm": {"instance": {"model_name": "m2"}}}) == "m2"
    assert llm_name({"adm": {"name": "random"}}) is None


def test_params_metrics_tags_follow_the_data_model(tmp_path: Path) -> None:
    write_run_folder(tmp_path / "exp", timing=[2.0, 4.0, 6.0],
                     scores=[{"alignment_target_id": "ADEPT-June2025-merit-0.5", "score": 0.75}])
    (run,) = runs_of(tmp_path)
    assert run.params == {
        "adm": "pipeline_baseline", "llm_backbone": "mistralai/Mistral-7B-Instruct-v0.3",
        "alignment_target_id": "ADEPT-June2025-merit-0.5", "kdma.merit": "0.5", "run_variant": "default",
        "num_scenarios": "3", "first_scenario_id": "June2025-AF-eval",
    }
    alignment = {k: run.metrics.pop(k) for k in list(run.metrics) if k.startswith(("alignment.", "kdma."))}
    assert run.metrics == {"timing.total_seconds": 12.0, "timing.avg_seconds": 4.0, "timing.min_seconds": 2.0,
                           "timing.max_seconds": 6.0, "score.alignment_score": 0.75}
    # choices A (merit 0.2) and B (0.8) tie at 0.3 from the 0.5 target; chosen A, B, A; predictions 0.3 / 0.7
    assert alignment == pytest.approx({
        "alignment.chosen_distance": 0.3, "alignment.oracle_hit_rate": 1.0, "alignment.scenes_covered": 3,
        "alignment.scenes_left_out.unaligned": 0, "alignment.scenes_left_out.kde_target": 0,
        "alignment.scenes_left_out.no_choice": 0, "alignment.scenes_left_out.no_true_values": 0,
        "alignment.scenes_left_out.chosen_no_true_value": 0,
        "kdma.merit.chosen_mean": (0.2 + 0.8 + 0.2) / 3, "kdma.merit.chosen_scenes": 3,
        "kdma.merit.prediction_mae": 0.1, "kdma.merit.prediction_choices": 6,
    })
    assert run.tags["adm"] == "pipeline_baseline" and run.tags["llm"].startswith("mistralai/")
    assert run.tags["experiment_path"] == "exp" and run.tags["has_hydra_config"] == "True"
    assert run.tags["alignment_target_id"] == "ADEPT-June2025-merit-0.5"
    assert {Path(a.path).name for a in run.artifacts} == {"input_output.json", "timing.json", "scores.json",
                                                          "config.yaml"}
    trace = run.traces[1]
    assert trace.name == "S1" and set(trace.tags) == {"scene_id", "mlflow.align_track.scene_summary"}
    assert trace.tags["scene_id"] == "S1"
    # the summary holds the span's own values (what the scenes-across-runs index reads instead of the span)
    attrs, inputs, action = scene_summary.decode(trace.tags["mlflow.align_track.scene_summary"])
    a = trace.attributes
    assert attrs == (a["scenario_id"], 1, 1, "Treat Patient A", a["true_kdma_values"])
    assert inputs == (trace.inputs["scenario_id"], "S1", tuple(c["unstructured"] for c in trace.inputs["choices"]))
    assert action == trace.outputs["action"]["unstructured"]
    assert set(trace.inputs) == {"scenario_id", "state", "scene_id", "unstructured", "characters", "choices"}
    assert trace.outputs["choice_index"] == 1 and trace.outputs["action"]["justification"]
    assert trace.attributes["timing_seconds"] == 4.0 and trace.attributes["scene_index"] == 1
    assert trace.attributes["chosen_action"] == "Treat Patient A"
    assert trace.end_ns - trace.start_ns == 4_000_000_000
    assert run.traces[0].end_ns == trace.start_ns


def test_scenes_without_times_start_in_scene_order_a_millisecond_apart(tmp_path: Path) -> None:
    write_run_folder(tmp_path / "exp", timing=None)
    (run,) = runs_of(tmp_path)
    starts = [t.start_ns // 1_000_000 for t in run.traces]
    assert len(starts) == 3 and starts == sorted(set(starts))  # strictly increasing: MLflow's order is scene order
    assert all(t.end_ns == t.start_ns for t in run.traces)  # no time recorded: no duration invented


def test_schema_drift_is_tolerated(tmp_path: Path) -> None:
    scenes = [
        scene(7, choice="1", true_kdma={"Treat Patient A": None, "Treat Patient B": {"merit": 0.8}}),
        scene(None, choice=None, predicted={"Treat Patient A": None}),
        scene("S3", choice="not-a-number"),
    ]
    kde = {"id": "ADEPT-kde-merit", "kdma_values": [{"kdma": "merit", "kdes": {"rawscores": {}}}]}
    write_run_folder(tmp_path / "e", scenes=scenes, cfg=config(target=kde), timing=[3.0])
    (run,) = runs_of(tmp_path)
    assert [t.name for t in run.traces] == ["7", "scene_1", "S3"]
    assert [t.outputs["choice_index"] for t in run.traces] == [1, None, None]
    assert run.traces[0].attributes["true_kdma_values"]["Treat Patient A"] is None
    assert run.params["kdma.merit"] == "kde"
    assert run.metrics["timing.total_seconds"] == 3.0 and run.traces[1].attributes["timing_seconds"] is None


def test_missing_optional_files(tmp_path: Path) -> None:
    write_run_folder(tmp_path / "bare", cfg=False, timing=False)
    (run,) = runs_of(tmp_path)
    assert run.params["adm"] == "unknown_adm" and run.params["alignment_target_id"] == "unaligned"
    assert run.tags["has_hydra_config"] == "False"
    # no timing, no scores, no target: only what the scenes' own KDMA values give, and the left-out count
    assert not any(k.startswith(("timing.", "score.")) for k in run.metrics)
    assert run.metrics["alignment.scenes_left_out.unaligned"] == 3 and "alignment.chosen_distance" not in run.metrics
    assert [Path(a.path).name for a in run.artifacts] == ["input_output.json"]


def test_mixed_target_folder_gives_one_run_per_target(tmp_path: Path) -> None:
    scenes = [scene("A1", target="ADEPT-June2025-merit-0.0"), scene("B1", target="ADEPT-June2025-affiliation-1.0"),
              scene("A2", target="ADEPT-June2025-merit-0.0")]
    write_run_folder(tmp_path / "eval", scenes=scenes, cfg=config(), timing=[1.0, 2.0, 3.0],
                     scores=[{"alignment_target_id": "ADEPT-June2025-merit-0.0", "score": 0.1},
                             {"alignment_target_id": "ADEPT-June2025-affiliation-1.0", "score": 0.9}])
    runs = runs_of(tmp_path)
    by_target = {r.params["alignment_target_id"]: r for r in runs}
    assert set(by_target) == {"ADEPT-June2025-merit-0.0", "ADEPT-June2025-affiliation-1.0"}
    merit = by_target["ADEPT-June2025-merit-0.0"]
    assert [t.name for t in merit.traces] == ["A1", "A2"] and merit.params["num_scenarios"] == "2"
    assert merit.params["kdma.merit"] == "0.0" and merit.metrics["score.alignment_score"] == 0.1
    assert merit.metrics["timing.total_seconds"] == 4.0
    assert by_target["ADEPT-June2025-affiliation-1.0"].params["kdma.affiliation"] == "1.0"
    assert len({r.tags["align_track.key"] for r in runs}) == 2


def test_sweep_siblings_get_distinct_readable_variants(tmp_path: Path) -> None:
    for temp in ("0.7", "0.9"):
        for stamp in ("2025-06-12_10-31-02", "2025-06-13_08-00-00"):
            write_run_folder(tmp_path / "sweep" / f"temperature-{temp}" / stamp)
    write_run_folder(tmp_path / "other", cfg=config(adm="pipeline_random", target=merit_target()))
    runs = runs_of(tmp_path)
    variants = sorted(r.params["run_variant"] for r in runs if r.params["adm"] == "pipeline_baseline")
    assert variants == ["temperature-0.7/2025-06-12_10-31-02", "temperature-0.7/2025-06-13_08-00-00",
                        "temperature-0.9/2025-06-12_10-31-02", "temperature-0.9/2025-06-13_08-00-00"]
    assert [r.params["run_variant"] for r in runs if r.params["adm"] == "pipeline_random"] == ["default"]
    assert sorted(r.params["run_variant"] for r in runs_of(tmp_path)) == sorted(r.params["run_variant"] for r in runs)


def test_differing_parts_handles_uneven_depths() -> None:
    assert differing_parts(["a/b", "a/b/c"]) == ["default", "c"]
    assert differing_parts(["outputs/2025-06-12/10-31-02", "outputs/2025-06-12/11-00-00"]) == ["10-31-02", "11-00-00"]


def test_discovery_skips_outdated_below_root_only(tmp_path: Path) -> None:
    root = tmp_path / "OUTDATED_archive" / "exps"
    write_run_folder(root / "a")
    write_run_folder(root / "old_outdated_runs" / "b")
    write_run_folder(root / "c" / "Outdated" / "d")
    assert [p.name for p in discover(root)] == ["a"]


@pytest.mark.parametrize(
    "raw, reason",
    [('[{"input": {}', "invalid JSON"), ('{"scenes": []}', "expected a list of scenes"), ("[1, 2]", "scene 0")],
)
def test_damaged_input_names_file_and_reason(tmp_path: Path, raw: str, reason: str) -> None:
    write_run_folder(tmp_path / "bad", raw_io=raw)
    with pytest.raises(RunFolderError) as info:
        read_files(tmp_path / "bad")
    assert "input_output.json" in str(info.value) and reason in str(info.value)


def test_invalid_yaml_is_named(tmp_path: Path) -> None:
    path = write_run_folder(tmp_path / "bad")
    (path / ".hydra" / "config.yaml").write_text("adm: [unclosed\n  name: x")
    with pytest.raises(RunFolderError, match=r"config.yaml: invalid YAML"):
        read_config(tmp_path, path)


def test_scene_times_and_scores_shapes() -> None:
    assert scene_times({"raw_times_s": [1, "x", 2.5]}, 4) == [1.0, None, 2.5, None]
    assert scene_times({"scenarios": [{"raw_times_s": [1.0]}, {"raw_times_s": [2.0]}]}, 2) == [1.0, 2.0]
    assert scene_times(None, 2) == [None, None]
    assert score_metrics({"score": 0.5, "n": 3, "flag": True}, "t") == {"score.alignment_score": 0.5, "score.n": 3.0}
    assert score_metrics([{"alignment_target_id": "x", "score": 0.2}], "t") == {"score.alignment_score": 0.2}
    assert score_metrics(None, "t") == {}


def test_hydra_yaml_choice_used_when_config_has_no_name(tmp_path: Path) -> None:
    path = write_run_folder(tmp_path / "e", cfg=config(adm=None, llm=None,
                                                      instance={"_target_": "x.y.OutlinesADM", "model_name": "m"}))
    hydra = {"hydra": {"runtime": {"choices": {"adm": "outlines_zs"}}}}
    (path / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (run,) = runs_of(tmp_path)
    assert run.params["adm"] == "outlines_zs" and run.params["llm_backbone"] == "m"
