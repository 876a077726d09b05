"""Unit tests of the TUI's plain-data layer: runs model, scenes/compare model, path completion."""

from __future__ import annotations

import json

from align_track.query.select import load_complete_runs
from align_track.tui.models.runs import RunsModel
from align_track.tui.models.scenes import compare, format_kdma_value, kdma_rows
from align_track.tui.panes.ingest import eta_text
from align_track.tui.widgets.path_suggester import complete_dir


def test_compare_counts_only_scenes_every_run_has():
    from align_track.tui.models.scenes import Scene

    def s(sid, action, index):
        return Scene("t", sid, "sc", index, 1.0, 0, action)

    a = [s("1", "X", 0), s("2", "Y", 1), s("3", "Z", 2)]
    b = [s("1", "X", 0), s("2", "X", 1)]
    result = compare([a, b])
    assert (result.agreeing, result.comparable) == (1, 2)
    assert result.summary() == "1 of 2 scenes agree · 1 scene missing from some run (—)"
    assert [result.missing(i) for i in range(3)] == [False, False, True]
    assert [result.differs(i) for i in range(3)] == [False, True, False]  # a scene b lacks is no difference
    only_a = compare([[s("1", "X", 0)], [s("2", "X", 0)]])
    assert only_a.summary() == "no scene in common · 2 scenes missing from some run (—)"
    repeated = compare([[s("1", "X", 0), s("1", "Y", 1)], [s("1", "X", 0), s("1", "Y", 1)]])
    assert repeated.keys == [("sc", "1"), ("sc", "1#2")] and repeated.agreeing == 2


def test_kdma_values_are_formatted_side_by_side():
    rows = kdma_rows({"A": {"merit": 0.2}, "B": None}, {"A": {"merit": [0.3, 0.4]}}, ["B", "A"])
    assert rows == [("B", "–", "–"), ("A", "merit 0.20", "merit 0.30, 0.40")]
    assert format_kdma_value(None) == "–"


def test_path_suggester_completes_directories(tmp_path):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "exp.txt").write_text("")
    assert complete_dir(str(tmp_path / "exp")) == str(tmp_path / "experiments") + "/"
    assert complete_dir(str(tmp_path / "nothing")) is None


class _Run:
    def __init__(self, run_id, adm, target, score=None, start=0):
        self.run_id, self.run_name, self.start_time = run_id, f"{adm}/{target}", start
        self.params = {"adm": adm, "alignment_target_id": target, "num_scenarios": "3"}
        self.metrics = {} if score is None else {"score.alignment_score": score}
        self.tags = {}


def test_runs_model_filters_on_every_word_and_sorts_missing_last():
    model = RunsModel.from_runs([_Run("1", "Alpha", "merit-0.5", 0.4), _Run("2", "beta", "merit-0.9"),
                                 _Run("3", "alpha", "search-0.1", 0.9)])
    model.text = "ALPHA merit"
    assert model.view() == [0]
    model.text = ""
    score = [c.key for c in model.columns].index("score")
    model.sort(score)
    assert model.view() == [0, 2, 1]
    model.sort(score, reverse=True)
    assert model.view() == [2, 0, 1]
    model.allowed = {1, 2}
    assert model.view() == [2, 1]


def test_raw_json_of_a_scene_is_valid_json(demo_store):
    from align_track.store.runs_reader import get_experiment_id
    from align_track.tui.models.data import scene_pages
    from align_track.tui.models.scenes import raw_json

    uri, _ = demo_store
    run = load_complete_runs(uri)[2][0]
    page = next(scene_pages(uri, get_experiment_id(uri, "align-system-experiments"), run.run_id))
    parsed = json.loads(raw_json(page[0]))
    assert parsed["info"]["trace_id"] == page[0].trace_id


def test_ingest_eta_is_the_pace_of_the_folders_written_so_far():
    assert eta_text(0, 10, 5.0) == "–"  # nothing written yet: no pace to extrapolate
    assert eta_text(2, 10, 30.0) == "–"  # two folders (the first batch's start-up in them) say too little
    assert eta_text(3, 10, 30.0) == "1:10"  # 10 s a folder written, 7 to go
    assert eta_text(10, 10, 99.0) == "0:00"


def test_a_live_run_shows_its_scenes_so_far_and_progress():
    from align_track.schema import TAG_LAST_SCENE, TAG_SCENES, RunSummary
    from align_track.store.runs_reader import RunRow
    from align_track.tui.panes.runs import details_text, progress_text

    start = 1_700_000_000_000
    live = RunRow("r1", "live", "RUNNING", start, None, "active", "",
                  params={"adm": "a"}, tags={TAG_SCENES: "7", TAG_LAST_SCENE: str(start + 60_000)})
    done = RunRow("r2", "done", "FINISHED", start, start + 1, "active", "", params={"num_scenarios": "9"})
    model = RunsModel.from_runs([live, done], states={"r1": "running"})
    scenes = [c.key for c in model.columns].index("scenes")
    assert [model.cells[0][scenes], model.cells[1][scenes]] == ["7", "9"]
    assert RunSummary.of(live).scenes == 7
    now = start + 95_000
    assert progress_text(live, now) == "7 scenes so far · running for 1:35 · last scene 0:35 ago"
    assert "7 scenes so far" in details_text(live, "running", now).plain
    assert "so far" not in details_text(done, "finished", now).plain


def test_the_details_strip_packs_whole_fields_into_its_width():
    """At a 60-column split the strip broke 'LLM' from its value (a label alone at a line's end); now a field
    that does not fit starts a line, every value stays whole, and the copy hint goes before it costs a line."""
    from align_track.store.runs_reader import RunRow
    from align_track.tui.panes.runs import details_text

    start = 1_700_000_000_000
    run = RunRow("r1", "r", "FINISHED", start, start + 209_000, "active", "",
                 params={"adm": "pipeline_comparative_regression", "llm_backbone": "meta-llama/Llama-3.1-8B-Instruct",
                         "alignment_target_id": "ADEPT-June2025-search-0.7"},
                 tags={"align_track.path": "june2025-sweep/temperature-0.0/2025-06-11_02-01-04"},
                 metrics={"timing.total_seconds": 209.0})
    for width in (58, 78, 118):
        lines = details_text(run, "finished", width=width).plain.split("\n")
        assert all(len(line) <= width for line in lines), (width, lines)
        for label, value in (("ADM", "pipeline_comparative_regression"), ("LLM", "meta-llama/Llama-3.1-8B-Instruct"),
                             ("target", "ADEPT-June2025-search-0.7"), ("state", "done")):
            assert any(f"{label} {value}" in line for line in lines), (width, label, lines)
        assert not any(line.rstrip().endswith(("LLM", "variant", "target")) for line in lines), lines
    assert "(y copies the run id)" in details_text(run, "finished", width=118).plain
    assert len(details_text(run, "finished", width=58).plain.split("\n")) <= 6
