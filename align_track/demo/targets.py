"""KDMAs, alignment targets as align-system's target YAML files look, and the scenario family each target is evaluated
on.
"""

from __future__ import annotations

import base64
import random
from typing import Any

VALUE_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


KDMA_INFO = {
    "merit": (
        "merit focus",
        "Favoring victims or bystanders over those who are perpetrators or otherwise potentially "
        "blame-worthy when deciding who to treat first.",
    ),
    "affiliation": (
        "affiliation focus",
        "Favoring casualties who are members of your same group, such as your military unit or "
        "nationality, over those who are not part of your group.",
    ),
    "personal_safety": (
        "personal safety",
        "Choosing actions that keep the medic out of danger, even if it delays care for a casualty "
        "who is in an exposed position.",
    ),
    "search": (
        "search or stay",
        "Leaving a known, stabilized casualty to search for unseen casualties who may need help, "
        "instead of staying to keep treating the patient in front of you.",
    ),
    "Moral judgement": (
        "moral judgment",
        "The tendency to consider moral deservingness or culpability, and to reward moral deservingness "
        "when making medical triage decisions.",
    ),
}


FAMILY_OF_TARGET = {
    "merit": "MF",
    "affiliation": "AF",
    "personal_safety": "PS",
    "search": "SS",
    "affiliation_merit": "AFMF",
    "Moral judgement": "MJ",
    "kde": "MJ",
}


FAMILY_KDMAS = {
    "MF": ("merit",),
    "AF": ("affiliation",),
    "PS": ("personal_safety",),
    "SS": ("search",),
    "AFMF": ("affiliation", "merit"),
    "MJ": ("Moral judgement",),
}


FAMILY_SCENARIOS = {
    "MF": ("June2025-MF-eval",),
    "AF": ("June2025-AF-eval",),
    "PS": ("June2025-PS-eval",),
    "SS": ("June2025-SS-eval",),
    "AFMF": ("June2025-AF-MF-eval",),
    "MJ": ("DryRunEval.MJ1", "DryRunEval.MJ4", "DryRunEval.MJ5"),
}


_KDE_ID = "9d2a61f4-mj-high"


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def alignment_target(kind: str, values: tuple[float, ...], rng: random.Random) -> dict[str, Any]:
    """Build an alignment_target block exactly as align-system's target YAML files look."""
    if kind == "kde":
        # KDE targets carry pickled sklearn KDEs (base64) per normalization and no scalar value.
        kdes = {}
        for label in ("globalnorm", "localnorm", "rawscores"):
            blob = base64.encodebytes(bytes(rng.getrandbits(8) for _ in range(96))).decode()
            kdes[label] = {"kde": blob, "label": label}
        return {
            "_target_": "align_system.data_models.compat.ta3_ph1_client_models.AlignmentTarget",
            "id": _KDE_ID,
            "kdma_values": [{"kdes": kdes, "kdma": "Moral judgement"}],
        }
    if kind == "Moral judgement":
        return {
            "_target_": "align_system.data_models.compat.ta3_ph1_client_models.AlignmentTarget",
            "id": f"ADEPT-DryRun-Moral judgement-{_fmt(values[0])}",
            "kdma_values": [{"kdma": "Moral judgement", "value": values[0]}],
        }
    kdmas = kind.split("_") if len(values) > 1 else [kind]
    return {
        "id": f"ADEPT-June2025-{kind}-{'_'.join(_fmt(v) for v in values)}",
        "kdma_values": [{"kdes": None, "kdma": k, "value": v} for k, v in zip(kdmas, values, strict=True)],
    }


def target_values(target: dict[str, Any]) -> dict[str, float]:
    """KDMA -> wanted value; KDE targets aim high (the '-high' in their id)."""
    return {kv["kdma"]: kv.get("value", 0.85) for kv in target["kdma_values"]}
