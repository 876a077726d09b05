"""Hostile run folders next to healthy ones: each bad folder fails alone, with its file and reason.

Every case runs through the real CLI in a subprocess (a crash, a hang or a traceback is visible as
such) against a real SQLite store; the healthy folders must all be ingested, whatever sits beside them.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.support.factory import config, merit_target, scene, write_run_folder
from tests.support.server_fixtures import align_track_cmd, cli_env
from tests.support.unprivileged import as_nobody

ESC = "\x1b"


def _ingest(tree: Path, uri: str, env: dict[str, str] | None = None, user: list[str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = (user or []) + align_track_cmd("ingest", "--experiments-dir", str(tree), "--mlflow-uri", uri)
    return subprocess.run(cmd, env=env or cli_env(), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, errors="surrogateescape")


def _complete_paths(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT p.value FROM runs r JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = 'experiment_path' "
            "JOIN tags c ON c.run_uuid = r.run_uuid AND c.key = 'align_track.complete' AND c.value = 'true' "
            "WHERE r.lifecycle_stage = 'active'").fetchall()
    return sorted(value for (value,) in rows)


def _failed_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("FAILED ")]


def _hostile_tree(root: Path, outside: Path) -> dict[str, str]:
    """Build the tree; returns {folder: expected text of its failure line} for the folders that must fail."""
    write_run_folder(root / "good" / "a")
    write_run_folder(root / "good" / "b", scenes=[scene("S1"), scene("S2")], timing=[1.0, 2.0])
    expected: dict[str, str] = {}

    bad = write_run_folder(root / "bad" / "kdma_not_mapping",
                           cfg=config(target={"id": "t", "kdma_values": 5}))
    expected[bad.name] = ".hydra/config.yaml: alignment_target.kdma_values is a int"

    digits = json.dumps([scene("S1")]).replace('"choice": 0', '"choice": ' + "7" * 5000)
    write_run_folder(root / "bad" / "huge_int", raw_io=digits)
    expected["huge_int"] = "input_output.json: unreadable JSON value"

    write_run_folder(root / "bad" / "deep_json", raw_io="[" * 100_000 + "]" * 100_000)
    expected["deep_json"] = "input_output.json: JSON nested too deeply"

    write_run_folder(root / "bad" / "long_scene_id", scenes=[scene("S" * 5000)], timing=[1.0])
    expected["long_scene_id"] = "trace name limit is 4096"

    write_run_folder(root / "bad" / "huge_timing", scenes=[scene("S1")], timing=[1e300])
    expected["huge_timing"] = "timing.json: raw_times_s holds 1e+300"

    fifo = root / "bad" / "fifo"
    fifo.mkdir(parents=True)
    os.mkfifo(fifo / "input_output.json")
    expected["fifo"] = "input_output.json: not a regular file"

    leak = write_run_folder(root / "bad" / "leaky_symlink", scores=None)
    (outside / "secret.json").write_text(json.dumps({"token": "s3cret"}))
    (leak / "scores.json").symlink_to(outside / "secret.json")
    expected["leaky_symlink"] = "scores.json: symlink to a file outside the run folder"

    write_run_folder(root / "bad" / "bad_kdma_key",
                     cfg=config(target={"id": "t", "kdma_values": [{"kdma": "../../etc/passwd", "value": 1}]}))
    expected["bad_kdma_key"] = "'kdma.../../etc/passwd' is refused by MLflow"

    hydra_list = write_run_folder(root / "bad" / "hydra_section_list", cfg=config(adm=None))
    (hydra_list / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": ["not", "a", "mapping"]}))
    expected["hydra_section_list"] = ".hydra/hydra.yaml: hydra is a list, expected a mapping"
    write_run_folder(root / "bad" / "hydra_a_list")
    (root / "bad" / "hydra_a_list" / ".hydra" / "hydra.yaml").write_text("- 1\n- 2\n")
    expected["hydra_a_list"] = ".hydra/hydra.yaml: expected a mapping, found a list"

    # A scene whose input or output is a string or a list; found while planning (a config without a
    # target reads the scenes' targets) or while writing (a config with one).
    for field, value, kind in (("input", "a string", "a string"), ("input", ["a", "list"], "a list"),
                               ("output", "a string", "a string"), ("output", ["a", "list"], "a list")):
        shapes = [scene(f"S{i}") for i in range(5)]
        shapes[3][field] = value
        folder = f"scene_{field}_{kind.split()[1]}"
        cfg = config(target=merit_target()) if field == "output" else config()
        write_run_folder(root / "bad" / folder, scenes=shapes, timing=[1.0] * 5, cfg=cfg)
        expected[folder] = f"input_output.json: scene 3: {field} is {kind}, expected an object"

    name = os.fsdecode(b"bad_\xff\xfe_name")
    write_run_folder(root / "bad" / name)
    expected["bad_\\xff\\xfe_name"] = "folder name is not valid UTF-8"

    # Tolerated values: ingested, not failed (the data model reads what it can: nulls, odd choices).
    nulls = [scene("S1"), scene("S2", choice="1")]
    nulls[0]["output"] = None
    nulls[1]["choice_info"] = "not an object"
    write_run_folder(root / "odd" / "scene_nulls", scenes=nulls, timing=[1.0, 2.0])
    write_run_folder(root / "odd" / "long_llm", cfg=config(llm="m" * 20_000, target=merit_target()))
    write_run_folder(root / "odd" / f"{ESC}[31mred{ESC}[0m")
    deep = root / "odd" / "deep"
    deep.mkdir()
    for _ in range(1_050):  # one level at a time: mkdir(parents=True) itself recurses per level
        deep = deep / "d"
        deep.mkdir()
    write_run_folder(deep)
    (root / "odd" / "linked").symlink_to(root / "good" / "a", target_is_directory=True)
    return expected


def _remove_deep(top: Path) -> None:
    """Delete a tree bottom-up without recursion: shutil.rmtree (and so pytest's cleanup of old temp dirs)
    hits Python's recursion limit on the 1,050-level tree and would fail every later pytest session."""
    stack, order = [str(top)], []
    while stack:
        folder = stack.pop()
        order.append(folder)
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    os.unlink(entry.path)
    for folder in reversed(order):
        os.rmdir(folder)


def test_each_hostile_folder_fails_alone_with_file_and_reason(tmp_path: Path) -> None:
    root, outside = tmp_path / "exps", tmp_path / "outside"
    outside.mkdir()
    try:
        _each_hostile_folder_fails_alone(tmp_path, root, outside)
    finally:
        if (root / "odd" / "deep").exists():
            _remove_deep(root / "odd" / "deep")


def _each_hostile_folder_fails_alone(tmp_path: Path, root: Path, outside: Path) -> None:
    expected = _hostile_tree(root, outside)
    db = tmp_path / "store" / "mlflow.db"
    result = _ingest(root, f"sqlite:///{db}")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out and "store error" not in out, out
    assert ESC not in out, "an escape sequence from a folder name reached the terminal"
    failed = _failed_lines(result.stderr)
    for folder, reason in expected.items():
        assert any(folder in line and reason in line for line in failed), (folder, reason, failed)
    assert len(failed) == len(expected), failed

    ingested = _complete_paths(db)
    for healthy in ("good/a", "good/b", "odd/scene_nulls", "odd/long_llm", f"odd/{ESC}[31mred{ESC}[0m"):
        assert healthy in ingested, (healthy, ingested)
    assert any(path.startswith("odd/deep/d/d/") for path in ingested)
    assert not any("linked" in path for path in ingested)  # a symlinked folder is reported, not followed
    assert "odd/linked: symlinked directory not followed" in result.stderr
    assert "odd/long_llm: param 'llm_backbone': 20000 characters truncated to 6000" in result.stderr
    with sqlite3.connect(db) as conn:
        (llm,) = conn.execute("SELECT value FROM params WHERE key = 'llm_backbone' AND length(value) > 100").fetchone()
    assert llm == "m" * 6000
    listed = subprocess.run(align_track_cmd("list-runs", "--mlflow-uri", f"sqlite:///{db}"), env=cli_env(),
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert listed.returncode == 0, listed.stderr
    assert ESC not in listed.stdout + listed.stderr and "\\x1b[31mred" in listed.stdout, listed.stdout
    # Nothing the leaky symlink pointed at was published.
    assert not any("s3cret" in p.read_text(errors="ignore") for p in (db.parent / "artifacts").rglob("*")
                   if p.is_file())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the ingest as an unprivileged user (root reads "
                                              "anything)")
def test_unreadable_directories_are_reported_not_skipped(tmp_path: Path) -> None:
    """As root, chmod stops nobody: the ingest runs as 'nobody' so the permissions bite (from any checkout:
    tests/support/unprivileged.py stages what 'nobody' needs when the checkout is private to root)."""
    tmp_path = Path(tempfile.mkdtemp(prefix="align-track-perm-"))  # pytest's own tmp is private to root
    tmp_path.chmod(0o755)
    try:
        _unreadable_case(tmp_path)
    finally:
        for path in [tmp_path, *tmp_path.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(tmp_path)


def _unreadable_case(tmp_path: Path) -> None:
    root = tmp_path / "exps"
    write_run_folder(root / "good")
    hidden = write_run_folder(root / "hidden_hydra")
    (hidden / ".hydra").chmod(0)
    locked = root / "locked"
    write_run_folder(locked / "inside")
    locked.chmod(0)
    store = tmp_path / "store"
    store.mkdir(mode=0o777)
    store.chmod(0o777)
    for path in [root, *root.rglob("*")]:
        if path not in (hidden / ".hydra", locked) and not str(path).startswith(str(locked) + "/"):
            path.chmod(0o755 if path.is_dir() else 0o644)
    cmd, env = as_nobody("ingest", "--experiments-dir", str(root), "--mlflow-uri", f"sqlite:///{store / 'mlflow.db'}",
                         env=cli_env())
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                            errors="surrogateescape", cwd="/")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out, out
    failed = _failed_lines(result.stderr)
    assert any("hidden_hydra/.hydra/config.yaml: cannot read" in line for line in failed), failed
    assert len([line for line in failed if "hidden_hydra" in line]) == 1, failed  # the folder's, not also .hydra's
    assert "found 3 run folders" in out, out  # good, hidden_hydra, locked: an unreadable .hydra is no run folder
    assert any(line.endswith("locked: cannot read directory (Permission denied)") for line in failed), failed
    assert _complete_paths(store / "mlflow.db") == ["good"]


def test_a_file_over_the_size_limit_is_refused_not_loaded(tmp_path: Path) -> None:
    root = tmp_path / "exps"
    write_run_folder(root / "small")
    big = [scene(f"S{i}") for i in range(1200)]  # ~2 MB of scenes
    write_run_folder(root / "big", scenes=big, timing=False)
    db = tmp_path / "store" / "mlflow.db"
    result = _ingest(root, f"sqlite:///{db}", env=cli_env(ALIGN_TRACK_MAX_FILE_MB="1"))
    assert result.returncode == 1, result.stderr
    assert (root / "big" / "input_output.json").stat().st_size > 1024 * 1024
    assert any("big/input_output.json: larger than 1 MB; refused" in line for line in _failed_lines(result.stderr))
    assert _complete_paths(db) == ["small"]
