"""The scenes-across-runs index against hand counts from the run folders, and against ingest's per-run metrics."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml

from align_track.demo.generate import generate_demo
from align_track.ingest.pipeline import ingest
from align_track.query.scene_index import (
    attach_state_texts,
    build_index,
    haystack,
    matches,
    refresh_index,
    sort_rows,
)
from align_track.query.select import load_complete_runs
from align_track.schema import METRIC_CHOSEN_DISTANCE, METRIC_ORACLE_HIT_RATE, METRIC_SCENES_COVERED
from tests.support import server_fixtures
from tests.support.factory import config, merit_target, write_run_folder
from tests.support.tui_fixtures import choosing_scene

pg_db = server_fixtures.pg_db


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("scene-index")
    exps = root / "exps"
    generate_demo(exps, run_folders=16, scenes=6, seed=3)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    assert not ingest(exps, uri).failures
    return uri, exps


def hand_count(exps: Path) -> dict[tuple[str, str], Counter]:
    """Per (scenario, scene): how many runs chose each action, counted from the input_output.json files alone.

    A folder is one run, or (a config without a target) one run per scene target; a run's second meeting with a
    scene is '<scene>#2'. The choice is the output action's text, else the chosen choice's text."""
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for path in sorted(exps.rglob("input_output.json")):
        if "outdated" in str(path.relative_to(exps)).lower():
            continue
        folder = path.parent
        cfg_path = folder / ".hydra" / "config.yaml"
        cfg = yaml.safe_load(cfg_path.read_text()) if cfg_path.is_file() else {}
        configured = isinstance((cfg or {}).get("alignment_target"), dict)
        runs: dict[str, list[tuple[int, dict]]] = defaultdict(list)
        for i, item in enumerate(json.loads(path.read_text())):
            target = "config" if configured else (item["input"].get("alignment_target_id") or "unaligned")
            runs[target].append((i, item))
        for items in runs.values():
            met: Counter = Counter()
            for i, item in items:
                inp = item["input"]
                meta = (inp.get("full_state") or {}).get("meta_info") or {}
                sid = f"scene_{i}" if meta.get("scene_id") in (None, "") else str(meta["scene_id"])
                key = (str(inp.get("scenario_id") or ""), sid)
                met[key] += 1
                if met[key] > 1:
                    key = (key[0], f"{sid}#{met[key]}")
                output = item.get("output") or {}
                action = output.get("action") if isinstance(output.get("action"), dict) else {}
                text = action.get("unstructured")
                choice = output.get("choice")
                choice = int(choice) if isinstance(choice, (int, str)) and str(choice).strip().isdigit() else None
                if not text and choice is not None and choice < len(inp.get("choices") or []):
                    text = inp["choices"][choice].get("unstructured")
                counts[key][text or (f"choice {choice}" if choice is not None else "")] += 1
    return counts


def test_agreement_and_choice_counts_match_a_hand_count_from_the_run_folders(demo):
    uri, exps = demo
    uri, eid, runs = load_complete_runs(uri)
    index = build_index(uri, eid, runs)
    rows = {r.key: r for r in index.rows()}
    expected = hand_count(exps)
    assert set(rows) == set(expected)
    assert sum(r.runs for r in rows.values()) == sum(sum(c.values()) for c in expected.values()) > 50
    assert any(r.split for r in rows.values()) and any(not r.split for r in rows.values())
    for key, counts in expected.items():
        row = rows[key]
        assert dict(row.choices) == dict(counts), key
        assert row.runs == sum(counts.values())
        assert row.agreement == pytest.approx(max(counts.values()) / sum(counts.values()))


def test_oracle_hits_and_distances_are_what_ingest_averaged_into_each_run(demo):
    """Per run, the mean of its decisions' distances and share of hits are its alignment metrics (alignment.py)."""
    uri, _ = demo
    uri, eid, runs = load_complete_runs(uri)
    index = build_index(uri, eid, runs)
    by_run = defaultdict(list)
    for d in index.decisions:
        by_run[d.run_id].append(d)
    checked = 0
    for run in runs:
        covered = [d for d in by_run[run.run_id] if d.hit is not None]
        assert len(covered) == run.metrics.get(METRIC_SCENES_COVERED, 0)
        if not covered:
            assert METRIC_ORACLE_HIT_RATE not in run.metrics
            continue
        assert sum(d.distance for d in covered) / len(covered) == pytest.approx(run.metrics[METRIC_CHOSEN_DISTANCE],
                                                                                 abs=1e-12)
        assert sum(d.hit for d in covered) / len(covered) == pytest.approx(run.metrics[METRIC_ORACLE_HIT_RATE])
        checked += 1
    assert checked >= 5
    # and the scene rows aggregate exactly those decisions
    for row in index.rows():
        mine = [d for d in index.decisions if d.key == row.key and d.hit is not None]
        assert row.covered == len(mine)
        if mine:
            assert row.hit_rate == pytest.approx(sum(d.hit for d in mine) / len(mine))
            assert row.distance == pytest.approx(sum(d.distance for d in mine) / len(mine))


def test_a_subset_of_runs_sorting_and_the_text_filter(demo):
    uri, _ = demo
    uri, eid, runs = load_complete_runs(uri)
    index = build_index(uri, eid, runs)
    two = {runs[0].run_id, runs[1].run_id}
    rows = index.rows(two)
    assert rows and all(1 <= r.runs <= 2 for r in rows)
    assert {d.run_id for r in rows for d in index.decisions_of(r.key, two)} == two
    by_agreement = sort_rows(index.rows(), "agreement")
    values = [r.agreement for r in by_agreement]
    assert values == sorted(values)
    assert sort_rows(index.rows(), "runs", reverse=True)[0].runs == max(r.runs for r in index.rows())
    attach_state_texts(index, uri, eid)
    row = by_agreement[0]
    state = index.texts[row.key]
    assert state  # the scene's state text, from one run's trace
    word = max(state.split(), key=len)
    hay = {r.key: haystack(r, index.texts[r.key]) for r in index.rows()}
    assert row.key in {k for k, h in hay.items() if matches(h, f"{word.upper()} {row.key[1]}")}
    assert not any(matches(h, "no-such-text-anywhere") for h in hay.values())


def test_a_scene_met_twice_by_a_run_is_numbered_as_compare_numbers_it(tmp_path: Path, store_uri: str):
    exps = tmp_path / "exps"
    scenes = [choosing_scene("P1", 0), choosing_scene("P1", 1), choosing_scene("P2", 1)]
    write_run_folder(exps / "a", scenes=scenes, cfg=config(adm="a", target=merit_target(0.2)))
    write_run_folder(exps / "b", scenes=[choosing_scene("P1", 1), choosing_scene("P2", 1)],
                     cfg=config(adm="b", target=merit_target(0.8)))
    assert not ingest(exps, store_uri).failures
    uri, eid, runs = load_complete_runs(store_uri)
    rows = {r.key[1]: r for r in build_index(uri, eid, runs).rows()}
    assert set(rows) == {"P1", "P1#2", "P2"}
    assert dict(rows["P1"].choices) == {"Treat Patient A": 1, "Treat Patient B": 1}
    assert rows["P1"].agreement == 0.5 and rows["P2"].agreement == 1.0
    assert dict(rows["P1#2"].choices) == {"Treat Patient B": 1}
    # a at merit 0.2 chose A (0.2: a hit, distance 0); b at 0.8 chose B (a hit too)
    assert rows["P1"].hit_rate == 1.0 and rows["P1"].distance == pytest.approx(0.0)
    assert rows["P2"].hit_rate == 0.5 and rows["P2"].distance == pytest.approx(0.3)


def test_refresh_adds_the_runs_ingested_since(tmp_path: Path, store_uri: str):
    exps = tmp_path / "exps"
    generate_demo(exps / "first", run_folders=4, scenes=3, seed=1)
    assert not ingest(exps, store_uri).failures
    uri, eid, runs = load_complete_runs(store_uri)
    index = build_index(uri, eid, runs)
    before = len(index)
    generate_demo(exps / "second", run_folders=4, scenes=3, seed=2)
    assert not ingest(exps, store_uri).failures
    uri, eid, runs = load_complete_runs(store_uri)
    assert refresh_index(index, uri, eid, runs) > 0
    fresh = build_index(uri, eid, runs)
    assert sum(r.runs for r in index.rows()) == len(fresh) > before  # runs the second ingest replaced: gone
    assert [(r.key, r.choices) for r in index.rows()] == [(r.key, r.choices) for r in fresh.rows()]
    assert refresh_index(index, uri, eid, runs) == 0
    assert not math.isnan(sum(r.runs for r in index.rows()))


def test_postgresql_and_sqlite_give_the_same_index_and_a_first_pass_is_its_prefix(tmp_path: Path, pg_db: str):
    """The same folders ingested into SQLite and PostgreSQL index alike (rows, each scene's decisions); the
    decisions of a read's first batch (what the pane shows first) are the first decisions of the whole index,
    on both (SQLite's rowid ranges, PostgreSQL's two halves read at once)."""
    from align_track.query.scene_index import SceneIndex
    from align_track.schema import TAG_PATH
    from align_track.store import scenes_reader
    from align_track.store.scenes_reader import read_trace_fields

    exps = tmp_path / "exps"
    generate_demo(exps, run_folders=10, scenes=5, seed=5)
    sqlite_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    seen = []
    for store in (sqlite_uri, pg_db):
        assert not ingest(exps, store).failures
        uri, eid, runs = load_complete_runs(store)
        index = build_index(uri, eid, runs)
        assert len(index) > 40
        if store == pg_db:  # read as two halves of the spans table at once
            assert scenes_reader._pg_halves(uri, int(eid)) is not None
        whole = SceneIndex.for_runs(runs)  # the pane's read: every trace of the experiment, in the store's order
        for batch in read_trace_fields(uri, eid):
            whole.add(batch)
        assert whole.rows() == index.rows()
        partial, first = SceneIndex.for_runs(runs), None
        for batch in read_trace_fields(uri, eid, batch=7):
            partial.add(batch)
            if first is None:
                first = [d.trace_id for d in partial.decisions]
                first_rows = partial.rows()
        assert first and len(first) < len(whole)
        assert [d.trace_id for d in whole.decisions][:len(first)] == first
        assert {r.key for r in first_rows} <= {r.key for r in whole.rows()}
        assert [d.trace_id for d in partial.decisions] == [d.trace_id for d in whole.decisions]

        def folder(run_id: str, index: SceneIndex = index) -> str:
            return index.runs[run_id].tags[TAG_PATH]

        seen.append((index.rows(), {r.key: [(folder(d.run_id), d.decision, d.choice_index, d.chosen_true, d.hit,
                                            d.distance, d.left_out) for d in index.decisions_of(r.key)]
                                    for r in index.rows()}))
    assert seen[0] == seen[1]


def _index_view(index) -> tuple:
    """Rows and every scene's decisions, by run folder (comparable across stores: run ids differ)."""
    from align_track.schema import TAG_PATH

    def folder(run_id: str) -> str:
        return index.runs[run_id].tags[TAG_PATH]

    rows = index.rows()
    return rows, {r.key: sorted((folder(d.run_id), d.decision, d.choice_index, d.index, repr(d.chosen_true), d.hit,
                                 d.distance, d.left_out) for d in index.decisions_of(r.key)) for r in rows}


def test_the_index_from_scene_summaries_equals_the_index_from_spans(tmp_path: Path, pg_db: str):
    """On SQLite, PostgreSQL and a store a tracking server wrote (ingest over HTTP), every trace carries the scene
    summary and the index built from the summaries equals the one built from the spans (the summaries deleted);
    over HTTP the index (read from the summaries of the server's trace search pages) is the same again."""
    from tests.store.test_scenes_reader import set_summary, summaries

    exps = tmp_path / "exps"
    generate_demo(exps, run_folders=8, scenes=5, seed=7)
    backend = tmp_path / "server" / "backend.db"
    backend.parent.mkdir()
    views = []
    with server_fixtures.running_server(f"sqlite:///{backend}", tmp_path / "server" / "artifacts",
                                        tmp_path / "server.log") as server:
        assert not ingest(exps, server.url).failures
        uri, eid, runs = load_complete_runs(server.url)
        over_http = _index_view(build_index(uri, eid, runs))
    for store in (f"sqlite:///{tmp_path / 'mlflow.db'}", pg_db, f"sqlite:///{backend}"):
        if store != f"sqlite:///{backend}":
            assert not ingest(exps, store).failures
        uri, eid, runs = load_complete_runs(store)
        index = build_index(uri, eid, runs)
        assert len(summaries(uri)) == len(index) > 30  # every trace summarised
        from_summaries = _index_view(index)
        set_summary(uri, None, None)
        from_spans = _index_view(build_index(uri, eid, runs))
        assert from_summaries == from_spans
        views.append(from_summaries)
    assert views[0] == views[1] == views[2] == over_http
