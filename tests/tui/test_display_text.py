"""Pure pieces of what the TUI shows: middle cuts, escaped names, readable ingest errors, links, odd ones out."""

from __future__ import annotations

import pytest

from align_track.errors import printable
from align_track.query.textfit import cut_middle, fit_widths
from align_track.tui.models.ingest_log import elapsed_text, readable_error
from align_track.tui.models.links import align_app_command, copy_items, run_url, trace_url
from align_track.tui.models.runs import RunsModel
from align_track.tui.models.scenes import Scene, compare, kdma_error
from align_track.tui.panes.mlflow import jump_host_hint
from align_track.tui.widgets.path_suggester import complete_dir
from align_track.tui.widgets.scene_view import TEXT_CAP, capped


def test_cut_middle_keeps_both_ends_and_the_width():
    assert cut_middle("pipeline_comparative_regression", 20) == "pipeline_…regression"
    assert cut_middle("ADEPT-DryRun-Moral judgement-0.2", 27).endswith("judgement-0.2")
    assert cut_middle("short", 20) == "short"
    assert len(cut_middle("x" * 100, 9)) == 9


def test_fit_widths_shrinks_the_widest_first_never_below_minimum():
    assert fit_widths([30, 10, 6], [8, 8, 6], 40) == [24, 10, 6]
    widths = fit_widths([30, 10, 6], [8, 8, 6], 10)
    assert widths == [8, 8, 6]  # cannot go lower: the table is wider than asked, nothing is cut to nothing


def test_escape_sequences_in_names_are_shown_escaped():
    assert printable("run\x1b[31mred\x07") == "run\\x1b[31mred\\x07"

    class Run:
        run_id, run_name, start_time = "r1", "n", 0
        params = {"adm": "a\x1b[2Jb"}
        metrics: dict = {}
        tags = {"experiment_path": "out/\x1b]0;pwned\x07"}

    model = RunsModel.from_runs([Run()])
    assert not any("\x1b" in cell for cell in model.cells[0])
    assert "a\\x1b[2Jb" in model.cells[0]


@pytest.mark.parametrize("code", [0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067,
                                  0x2068, 0x2069, 0x2028, 0x2029])
def test_bidi_controls_and_line_separators_are_shown_escaped(code: int):
    """U+202E and friends reorder the rest of a terminal line (``evil\u202egpj.exe`` reads ``evilexe.jpg``)."""
    text = f"run{chr(code)}name é 中"
    assert printable(text) == f"run\\u{code:04x}name é 中"
    model = RunsModel.from_runs([type("Run", (), {"run_id": "r", "run_name": "n", "start_time": 0, "metrics": {},
                                                  "params": {"adm": text}, "tags": {"experiment_path": text}})()])
    assert not any(chr(code) in cell for cell in model.cells[0])


def test_yaml_errors_read_folder_relative_with_the_path_said_once():
    root, rel = "/data/exps", "pipeline_baseline_adept_1"
    cfg = f"{root}/{rel}/.hydra/config.yaml"
    error = (f'{cfg}: invalid YAML (while parsing a flow sequence   in "{cfg}", line 60, column 6 did not find '
             f"expected ',' or ']'   in \"{cfg}\", line 61, column 1)")
    text = readable_error(error, root, rel)
    assert text == (".hydra/config.yaml: invalid YAML (while parsing a flow sequence at line 60, column 6 did not "
                    "find expected ',' or ']' at line 61, column 1)")
    assert readable_error(f"{rel}: store error: boom", root, rel) == "store error: boom"
    assert elapsed_text(75.4) == "1:15" and elapsed_text(3725) == "1:02:05"


def test_completion_offers_what_ingest_would_take_before_outdated_folders(tmp_path):
    (tmp_path / "run_OUTDATED").mkdir()
    (tmp_path / "run_z").mkdir()
    assert complete_dir(str(tmp_path / "run")) == str(tmp_path / "run_z") + "/"


def test_links_and_the_jump_host_tunnel():
    assert run_url("http://h:5000/", "3", "abc") == "http://h:5000/#/experiments/3/runs/abc"
    assert trace_url("http://h:5000", "3", "tr-1").endswith("/#/experiments/3/traces?selectedEvaluationId=tr-1")
    assert align_app_command("/data/o brien") == "align-app --experiment '/data/o brien'"
    labels = [i.label for i in copy_items("http://h", "1", "r", {"align_track.source_path": "/d/x"}, "tr-1")]
    assert labels[:2] == ["run id", "folder"] and "align-app command" in labels
    hint = "ssh -N -L 5000:localhost:5000 me@10.0.0.5"
    assert jump_host_hint(hint) == "ssh -N -J me@LOGIN-HOST -L 5000:localhost:5000 me@10.0.0.5"


def test_long_texts_are_capped_until_asked_for_in_full():
    text = capped("y" * (TEXT_CAP * 3), full=False)
    assert len(text.plain) < TEXT_CAP + 100 and "press f" in text.plain
    assert len(capped("y" * (TEXT_CAP * 3), full=True).plain) == TEXT_CAP * 3


def _scene(sid: str, action: str, predicted: float) -> Scene:
    return Scene(trace_id=sid + action, scene_id=sid, scenario_id="S", index=0, seconds=None, choice_index=0,
                 chosen_action=action, attributes={"true_kdma_values": {action: {"merit": 0.5}},
                                                   "predicted_kdma_values": {action: {"merit": [predicted]}}})


def test_odd_one_out_needs_a_majority_and_kdma_error_is_the_mean_gap():
    comparison = compare([[_scene("1", "A", 0.5)], [_scene("1", "A", 0.5)], [_scene("1", "B", 0.9)]])
    assert comparison.odd_ones(0) == {2}
    assert comparison.kdma_error(0) == pytest.approx(0.4)
    tie = compare([[_scene("1", "A", 0.5)], [_scene("1", "B", 0.5)]])
    assert tie.odd_ones(0) == set()
    assert kdma_error(_scene("1", "A", 0.7)) == pytest.approx(0.2)
