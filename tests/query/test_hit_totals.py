"""Hit-rate totals per ADM, per target and overall, on a store built by the real ingest, against a hand count.

Targets merit 1.0 and 0.0 over scenes whose choices carry merit 0.2 and 0.8: at 1.0 choosing 1 hits, at 0.0
choosing 0 hits, so each run's hits are counted by hand from the choices written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from align_track.ingest.pipeline import ingest
from align_track.query.analysis import hit_rate_totals, hit_rates
from align_track.query.select import load_complete_runs
from tests.support.factory import config, merit_target, scene, write_run_folder

# (folder, ADM, target value, choices): hits are choices == 1 at 1.0, choices == 0 at 0.0
RUNS = [
    ("a-high", "adm_a", 1.0, [1, 1, 0]),          # 2 of 3
    ("a-low", "adm_a", 0.0, [0, 0, 0, 0]),        # 4 of 4
    ("b-high-1", "adm_b", 1.0, [0, 0, 1]),        # 1 of 3
    ("b-high-2", "adm_b", 1.0, [1, 0, 0, 0, 0]),  # 1 of 5 (pooled with b-high-1 in one cell)
    ("c-low", "adm_c", 0.0, [1, 1]),              # 0 of 2
]


def hand_hits(target: float, choices: list[int]) -> int:
    return sum(1 for c in choices if c == (1 if target == 1.0 else 0))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list:
    base = tmp_path_factory.mktemp("hit-totals")
    for folder, adm, target, choices in RUNS:
        scenes = [scene(f"S{i}", choice=c) for i, c in enumerate(choices)]
        write_run_folder(base / "exps" / folder, scenes=scenes, cfg=config(adm=adm, target=merit_target(target)))
    uri = f"sqlite:///{base / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        assert not ingest(Path(base / "exps"), uri).failures
    return load_complete_runs(uri)[2]


def test_totals_match_a_hand_count_of_the_choices(runs: list) -> None:
    assert len(runs) == len(RUNS)
    totals = hit_rate_totals(hit_rates(runs))

    def expect(rows: list) -> tuple[float, int]:
        hits = sum(hand_hits(t, c) for _, _, t, c in rows)
        scenes = sum(len(c) for _, _, _, c in rows)
        return hits / scenes, scenes

    for adm in ("adm_a", "adm_b", "adm_c"):
        rate, scenes = totals.by_adm[adm]
        assert (pytest.approx(rate), scenes) == expect([r for r in RUNS if r[1] == adm]), adm
    assert totals.by_adm["adm_a"] == (pytest.approx(6 / 7), 7)
    assert totals.by_adm["adm_b"] == (pytest.approx(2 / 8), 8)  # pooled by scenes, not (1/3 + 1/5) / 2
    for target, value in (("ADEPT-June2025-merit-1.0", 1.0), ("ADEPT-June2025-merit-0.0", 0.0)):
        rate, scenes = totals.by_target[target]
        assert (pytest.approx(rate), scenes) == expect([r for r in RUNS if r[2] == value]), target
    assert totals.overall == (pytest.approx(8 / 17), 17)


def test_no_covered_scene_no_total() -> None:
    totals = hit_rate_totals(hit_rates([]))
    assert totals.by_adm == {} and totals.by_target == {} and totals.overall is None
