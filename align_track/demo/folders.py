"""One run folder on disk: input_output.json, .hydra/ configs, timing.json, scores.json, meta.json and the log, in the
layout (sweep, hydra outputs, multirun) its plan slot names.
"""

from __future__ import annotations

import json
import os
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from align_track.demo.adms import ADMS, LLM_SPEED, LLMS, Adm, adm_config
from align_track.demo.encode import dump_yaml, dumps
from align_track.demo.plan import PLAN
from align_track.demo.scenes import scene_record
from align_track.demo.targets import FAMILY_OF_TARGET, FAMILY_SCENARIOS, VALUE_GRID, alignment_target, target_values


def _config(
    adm: Adm, llm: str | None, temperature: float, style: str, target: dict[str, Any] | None,
    scenario_ids: list[str],
) -> dict[str, Any]:
    dryrun = scenario_ids[0].startswith("DryRun")
    cfg: dict[str, Any] = {
        "name": "action_based",
        "loglevel": "EXPLAIN",
        "save_log": True,
        "save_raw_log": True,
        "save_input_output": True,
        "save_scoring_output": True,
        "save_alignment_targets": False,
        "save_timing": True,
        "save_last_unstructured_state_per_scenario": False,
        "align_to_target": target is not None,
    }
    if dryrun:
        cfg["interface"] = {"_target_": "align_system.interfaces.input_output_file.InputOutputFileInterface",
                            "input_output_filepath": "${test_data_dir}/adept-mj-eval-subset.json"}
    else:
        cfg["interface"] = {"_target_": "align_system.interfaces.ta3.TA3Interface",
                            "api_endpoint": "http://127.0.0.1:8080", "session_type": "adept",
                            "training_session": None, "username": "ALIGN-ADM-Kitware", "domain": "p2triage",
                            "scenario_ids": scenario_ids}
    cfg["adm"] = adm_config(adm, llm, temperature, style)
    cfg["driver"] = {"_target_": "align_system.drivers.itm_phase1.ITMPhase1Driver", "filter_tag_character": False,
                     "apply_action_filtering": True, "sort_available_actions": False}
    if target is not None:
        cfg["alignment_target"] = target
    cfg["force_determinism"] = True
    return cfg


def _hydra_config(adm: Adm, target: dict[str, Any] | None, out_rel: str, dt: datetime) -> dict[str, Any]:
    """A trimmed `.hydra/hydra.yaml`: the bit that names the ADM via runtime choices."""
    overrides = [f"adm={adm.name}"] + ([f"+alignment_target={target['id']}"] if target else [])
    return {
        "hydra": {
            "run": {"dir": "outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}"},
            "sweep": {"dir": "multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}", "subdir": "${hydra.job.num}"},
            "mode": "RUN",
            "overrides": {"hydra": ["hydra.mode=RUN"], "task": overrides},
            "job": {"name": "run_align_system", "chdir": None, "override_dirname": ",".join(overrides),
                    "config_name": "action_based"},
            "runtime": {
                "version": "1.3.2",
                "version_base": "1.3",
                "cwd": "/data/users/itm/align-system",
                "output_dir": f"/data/users/itm/align-system/{out_rel}",
                "choices": {
                    "adm": adm.name,
                    "alignment_target": target["id"] if target else None,
                    "interface": "ta3",
                    "driver": "itm_phase1",
                    "hydra/job_logging": "default",
                    "hydra/hydra_logging": "default",
                },
            },
            "verbose": False,
        }
    }


def _timing(raw: list[float], blocks: list[tuple[str, int]]) -> dict[str, Any]:
    """timing.json: one `scenarios` entry per scenario block, plus the same keys over the whole run."""

    def stats(times: list[float]) -> dict[str, Any]:
        return {"n_actions_taken": len(times), "total_time_s": sum(times),
                "avg_time_s": sum(times) / len(times) if times else 0.0,
                "max_time_s": max(times) if times else 0.0, "raw_times_s": times}

    scenarios, start = [], 0
    for _, n in blocks:
        part = raw[start:start + n]
        start += n
        if part:
            scenarios.append(stats(part))
    return {"scenarios": scenarios, **stats(raw)}


def _short_length(n: int) -> int:
    return n - 2 if n > 2 else max(0, n - 1)


def _quirk_for_scene(slot_quirk: str, j: int, n: int) -> str:
    """Which scene of a run carries the run's per-scene quirk (every scene for null KDMA values)."""
    if slot_quirk == "null_kdma":
        return "null_kdma"
    if slot_quirk in ("choice_null", "choice_str"):
        return slot_quirk if j == min(1, n - 1) else ""
    if slot_quirk == "scene_ids":
        null_at = min(3, n - 1)
        int_at = min(2, n - 1)
        if int_at == null_at and n >= 2:
            int_at = null_at - 1
        if j == null_at:
            return "scene_id_null"
        if j == int_at:
            return "scene_id_int"
    return ""


def write_run_folder(out_dir: Path, i: int, n_scenes: int, seed: int) -> Path:
    """Write run folder `i` (plan slot i % 24) with its own RNG, so run folders don't depend on each other."""
    slot = PLAN[i % len(PLAN)]
    cycle = i // len(PLAN)
    rng = random.Random(seed * 1_000_003 + i)
    adm = ADMS[slot.adm]

    llm = slot.llm
    targets_spec = slot.targets
    if cycle:  # later passes over the plan: same shapes and quirks, other LLMs and target values
        if llm:
            llm = rng.choice(LLMS)
        targets_spec = tuple(
            (kind, values if kind == "kde" else tuple(rng.choice(VALUE_GRID) for _ in values))
            for kind, values in targets_spec
        )
    speed = LLM_SPEED.get(llm or "", 1.0)
    targets = [alignment_target(kind, values, rng) for kind, values in targets_spec]
    families = [FAMILY_OF_TARGET[kind] for kind, _ in targets_spec] or [slot.family]
    scenario_for = {fam: rng.choice(FAMILY_SCENARIOS[fam]) for fam in dict.fromkeys(families)}

    # Mixed-target runs hold consecutive blocks of scenes, one block per target, as the driver runs them.
    n_blocks = max(1, len(targets))
    sizes = [n_scenes // n_blocks + (1 if b < n_scenes % n_blocks else 0) for b in range(n_blocks)]
    blocks: list[tuple[str, int]] = []
    scenes, raw, hits, per_target = [], [], 0, []
    k = 0
    for b, size in enumerate(sizes):
        target = targets[b] if targets else None
        fam = families[b]
        sid = scenario_for[fam]
        blocks.append((sid, size))
        wanted = target_values(target) if target else None
        block_hits = 0
        for _ in range(size):
            q = _quirk_for_scene(slot.quirk, k, n_scenes)
            k += 1
            record, wall, best = scene_record(adm, speed, fam, k, sid, target["id"] if target else None, wanted, q, rng)
            scenes.append(record)
            raw.append(wall)
            block_hits += best
        hits += block_hits
        per_target.append((target, sid, size, block_hits, k - size))

    dt = datetime(2025, 6, 10, 8, 0, 0) + timedelta(minutes=47 * i, seconds=rng.randint(0, 59))
    kind = slot.layout[0]
    if kind == "sweep":
        rel = f"{slot.layout[1]}/{slot.layout[2]}/{dt:%Y-%m-%d_%H-%M-%S}"
    elif kind == "multirun":
        rel = f"multirun/{dt:%Y-%m-%d}/{dt:%H-%M-%S}/{slot.layout[1]}"
    else:
        rel = f"outputs/{dt:%Y-%m-%d}/{dt:%H-%M-%S}"
    exp = out_dir / rel
    exp.mkdir(parents=True, exist_ok=True)

    (exp / "input_output.json").write_text(dumps(scenes))

    config_target = targets[0] if len(targets) == 1 else None  # mixed-target runs carry targets per scene
    if slot.config != "none":
        hydra_dir = exp / ".hydra"
        hydra_dir.mkdir(exist_ok=True)
        scenario_ids = list(dict.fromkeys(scenario_for.values()))
        cfg = _config(adm, llm, slot.temperature, slot.config, config_target, scenario_ids)
        (hydra_dir / "config.yaml").write_text(dump_yaml(cfg))
        overrides = [f"adm={adm.name}"] + ([f"+alignment_target={config_target['id']}"] if config_target else [])
        (hydra_dir / "overrides.yaml").write_text(dump_yaml(overrides))
        if kind in ("hydra", "multirun") or slot.config == "hydra_choice":
            (hydra_dir / "hydra.yaml").write_text(dump_yaml(_hydra_config(adm, config_target, rel, dt)))

    if slot.timing != "none":
        times = raw[: _short_length(len(raw))] if slot.timing == "short" else raw
        (exp / "timing.json").write_text(json.dumps(_timing(times, blocks), indent=2))

    if slot.scores and targets:
        scores = []
        for target, sid, size, block_hits, first in per_target:
            if not size:
                continue
            frac = block_hits / size
            base = 0.45 + 0.45 * frac if adm.aligned else rng.uniform(0.35, 0.65)
            wanted = target_values(target)
            scores.append({
                "alignment_source": [{"scenario_id": sid,
                                      "probes": [f"{sid}.{p}" for p in range(first + 1, first + size + 1)]}],
                "alignment_target_id": target["id"],
                "score": round(min(0.99, max(0.05, base + rng.gauss(0, 0.04))), 4),
                "kdma_values": [{"kdma": kd, "value": round(min(1.0, max(0.0, v + rng.gauss(0, 0.15))), 4),
                                 "kdes": None} for kd, v in wanted.items()],
            })
        (exp / "scores.json").write_text(json.dumps(scores, indent=2))

    if slot.meta:
        host = f"node{rng.randint(1, 64):03d}"
        meta = {"align_system_version": rng.choice(("0.5.7", "0.5.8", "0.5.9")),
                "git_commit": f"{rng.getrandbits(160):040x}", "hostname": host, "started": dt.isoformat(),
                "command": f"run_align_system adm={adm.name}"
                + (f" +alignment_target='{config_target['id']}'" if config_target else "")}
        (exp / "meta.json").write_text(json.dumps(meta, indent=2))
        (exp / "align_system.log").write_text(_log(adm, llm, scenes, raw, dt))
    _date_files(exp, dt.timestamp() + sum(raw))
    return exp


def _date_files(exp: Path, ended: float) -> None:
    """Give the folder's files the time the experiment ended, as a real finished run's have: written now, a demo
    run without timing.json would look as if align-system were still writing it ('may still be running')."""
    for path in (exp, *exp.rglob("*")):
        os.utime(path, (ended, ended))


def _log(adm: Adm, llm: str | None, scenes: list[dict[str, Any]], raw: list[float], dt: datetime) -> str:
    """A few lines in Hydra's log format; enough to make the log artifact look real."""
    t = dt
    lines = [f"[{t:%Y-%m-%d %H:%M:%S},{t.microsecond // 1000:03d}][align_system.cli][INFO] - "
             f"Instantiating ADM: {adm.name}"]
    if llm:
        lines.append(f"[{t:%Y-%m-%d %H:%M:%S},412][align_system.algorithms][INFO] - Loading model {llm}")
        t += timedelta(seconds=41)
    for scene, wall in zip(scenes, raw, strict=True):
        t += timedelta(seconds=wall)
        inp = scene["input"]
        action = scene["output"]["action"]
        lines.append(f"[{t:%Y-%m-%d %H:%M:%S},{t.microsecond // 1000:03d}][align_system.drivers][INFO] - "
                     f"{inp['scenario_id']} scene {inp['full_state']['meta_info']['scene_id']}: "
                     f"chose \"{action['unstructured']}\" ({wall:.2f}s)")
    lines.append(f"[{t:%Y-%m-%d %H:%M:%S},{t.microsecond // 1000:03d}][align_system.cli][INFO] - "
                 f"Saved {len(scenes)} scenes to input_output.json")
    return "\n".join(lines) + "\n"
