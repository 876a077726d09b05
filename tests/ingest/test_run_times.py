"""A run's start and end are the experiment's (its Hydra folder's timestamp, its recorded time), not the ingest's;
each trace sits at its scene's own time. Hand-computed from folders built here, then read back through MLflow's
own read APIs from SQLite, PostgreSQL (direct) and a tracking server: the same times on each."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest
from mlflow import MlflowClient

from align_track import schema as S
from align_track.ingest.pipeline import ingest
from align_track.store.uri import DEFAULT_EXPERIMENT
from tests.ingest.test_mapping import runs_of
from tests.support import server_fixtures
from tests.support.factory import scene, write_run_folder

pg_db = server_fixtures.pg_db  # a fresh PostgreSQL database per test (skips, or fails in CI, without one)

START = datetime(2025, 6, 12, 10, 31, 2)
"""Hydra names its output folders in local time: the folder says 10:31:02 where the experiment ran."""


def local_ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def set_times(folder: Path, seconds: float) -> None:
    """Every file of the folder (and .hydra/) modified at ``seconds`` (epoch)."""
    for path in [*folder.glob("*"), *folder.glob(".hydra/*")]:
        if path.is_file():
            os.utime(path, (seconds, seconds))


def one_run(root: Path):
    [record] = runs_of(root)
    return record


@pytest.mark.parametrize("rel", ["outputs/2025-06-12/10-31-02", "multirun/2025-06-12/10-31-02/3",
                                 "sweep/temperature-0.7/2025-06-12_10-31-02"])
def test_hydra_folder_timestamp_is_the_start_and_timing_gives_the_end(tmp_path: Path, rel: str) -> None:
    folder = write_run_folder(tmp_path / rel, timing=[2.5, 4.0, 1.25])
    set_times(folder, 1_800_000_000)  # files copied later: their times are not the experiment's
    run = one_run(tmp_path)
    start = local_ms(START)
    assert (run.start_ms, run.end_ms) == (start, start + 7750)
    # each scene at its own time: start + the seconds of the scenes before it
    assert [t.start_ns // 1_000_000 for t in run.traces] == [start, start + 2500, start + 6500]
    assert [(t.end_ns - t.start_ns) // 1_000_000 for t in run.traces] == [2500, 4000, 1250]


def test_without_a_timestamp_folder_the_earliest_file_starts_and_the_last_ends(tmp_path: Path) -> None:
    folder = write_run_folder(tmp_path / "exp-a", timing=False)
    set_times(folder, 1_700_000_000)
    os.utime(folder / ".hydra" / "config.yaml", (1_699_990_000.25, 1_699_990_000.25))  # Hydra writes it first
    os.utime(folder / "input_output.json", (1_700_000_100.5, 1_700_000_100.5))  # rewritten after each scene
    run = one_run(tmp_path)
    assert (run.start_ms, run.end_ms) == (1_699_990_000_250, 1_700_000_100_500)
    # no time per scene: 1 ms apart, in scene order, from the start
    assert [t.start_ns // 1_000_000 for t in run.traces] == [1_699_990_000_250 + i for i in range(3)]


def test_timing_json_total_ends_the_run_and_unknown_scene_times_keep_their_order(tmp_path: Path) -> None:
    folder = write_run_folder(tmp_path / "exp-b", scenes=[scene(f"S{i}", choice=0) for i in range(3)])
    (folder / "timing.json").write_text(json.dumps({"total_time_s": 10.0, "raw_times_s": [3.0, None]}))
    set_times(folder, 1_700_000_000)
    run = one_run(tmp_path)
    assert (run.start_ms, run.end_ms) == (1_700_000_000_000, 1_700_000_010_000)  # the recorded total
    assert [t.start_ns // 1_000_000 - run.start_ms for t in run.traces] == [0, 3000, 3001]


def read_back(uri: str) -> list[tuple]:
    """(experiment_path, start, end, trace timestamps) per run, through MlflowClient."""
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(DEFAULT_EXPERIMENT).experiment_id
    out = []
    for run in client.search_runs([experiment_id]):
        traces = client.search_traces(locations=[experiment_id], run_id=run.info.run_id)
        out.append((run.data.tags[S.TAG_PATH], run.info.start_time, run.info.end_time,
                    sorted(t.info.timestamp_ms for t in traces), run.data.tags.get(S.TAG_INGEST_TIME)))
    return sorted(out)


def experiment_tree(root: Path) -> Path:
    write_run_folder(root / "outputs/2025-06-12/10-31-02", timing=[2.5, 4.0, 1.25])
    plain = write_run_folder(root / "plain", timing=False)
    set_times(plain, 1_700_000_000)
    return root


def expected_times() -> list[tuple]:
    start = local_ms(START)
    return [("outputs/2025-06-12/10-31-02", start, start + 7750, [start, start + 2500, start + 6500]),
            ("plain", 1_700_000_000_000, 1_700_000_000_000, [1_700_000_000_000 + i for i in range(3)])]


def check(uri: str, before_ms: int) -> list[tuple]:
    got = read_back(uri)
    assert [g[:4] for g in got] == expected_times()
    for *_, ingested in got:  # the ingest's own time stays on the run, as a tag
        assert ingested is not None and before_ms <= int(ingested) <= local_ms(datetime.now()) + 1
    return [g[:4] for g in got]


@pytest.mark.parametrize("direct", ["1", "0"])
def test_sqlite_runs_carry_the_experiments_times(tmp_path: Path, store_uri: str, monkeypatch, direct: str) -> None:
    monkeypatch.setenv("ALIGN_TRACK_DIRECT", direct)  # 0: the MLflow client fallback (run_writer, trace_writer)
    before = local_ms(datetime.now())
    assert not ingest(experiment_tree(tmp_path / "exps"), store_uri).failures
    check(store_uri, before)


@pytest.mark.server
def test_server_and_postgresql_give_the_same_times_as_sqlite(tmp_path: Path, http_server: str,
                                                            pg_db: str) -> None:
    before = local_ms(datetime.now())
    root = experiment_tree(tmp_path / "exps")
    sqlite = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for uri in (sqlite, http_server, pg_db):
        assert not ingest(root, uri).failures, uri
    assert check(sqlite, before) == check(http_server, before) == check(pg_db, before)
