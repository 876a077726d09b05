"""The scene summary: one trace tag holding exactly what the scenes-across-runs index reads of a trace.

The index needs, of each of an experiment's traces, a few values buried in its root span's JSON (5 KB a scene: the
state and characters included). Decoding 80,000 spans' JSON is most of an index's cost, so every writer also
stores those few values as one compact JSON text in the ``mlflow.align_track.scene_summary`` trace tag
(:data:`align_track.schema.TRACE_TAG_SCENE_SUMMARY`), made from the very values the root span holds:

    [1, scenario_id attribute, scene_index attribute, choice_index attribute, chosen_action attribute,
     true_kdma_values attribute, scenario_id input, scene_id input, the choices' texts, the output action's text]

(the choices' texts as the alignment metrics read them: a choice that is not an object, or has none: null; no
choices list: null). A trace without the tag (written by another tool, or by align-track before mapping version 6),
or with one that does not read as this (a user's edit, a cut value), is read from its span as before.

Left out on purpose: the state text. The text filter reads it from one trace per scene (a few hundred spans, not
80,000), whole, so the filter matches anywhere in it; a summary under MLflow's tag limit could hold only a prefix.
"""

from __future__ import annotations

import json
import re
from typing import Any

VERSION = 1
MAX_CHARS = 8_000
"""MLflow's trace tag value limit (``MAX_TRACE_TAG_VAL_LENGTH``; a server cuts longer values): a scene whose summary
is longer gets none and is read from its span."""
INT64 = (-(2**63), 2**63 - 1)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def choice_texts(choices: Any) -> tuple[str | None, ...] | None:
    """The choices' texts as the alignment metrics read them (a choice that is not an object, or has no text:
    None); None when the inputs hold no list of choices."""
    if not isinstance(choices, list):
        return None
    return tuple(str(c["unstructured"]) if isinstance(c, dict) and c.get("unstructured") is not None else None
                 for c in choices)


def _plain(value: Any) -> bool:
    """A value that reads back from the summary exactly as from the span: what the store layer changes before
    writing a span (NUL and unpaired surrogates replaced, integers beyond 64 bits made floats) is left out."""
    if isinstance(value, str):
        return not _UNSTORABLE.search(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return True
    if isinstance(value, int):
        return INT64[0] <= value <= INT64[1]
    if isinstance(value, (list, tuple)):
        return all(map(_plain, value))
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(k) and _plain(v) for k, v in value.items())
    return False


def encode(inputs: dict[str, Any], outputs: dict[str, Any], attributes: dict[str, Any],
           scenario_key: str, scene_key: str, choices_key: str, action_key: str, scene_index_key: str,
           choice_index_key: str, chosen_action_key: str, true_kdma_key: str) -> str | None:
    """The summary of a root span with these inputs, outputs and attributes; None when it would not read back
    exactly (see :func:`_plain`) or is over :data:`MAX_CHARS`."""
    action = outputs.get(action_key)
    values = [VERSION, attributes.get(scenario_key), attributes.get(scene_index_key),
              attributes.get(choice_index_key), attributes.get(chosen_action_key), attributes.get(true_kdma_key),
              inputs.get(scenario_key), inputs.get(scene_key), choice_texts(inputs.get(choices_key)),
              action.get("unstructured") if isinstance(action, dict) else None]
    keys = (scenario_key, scene_index_key, choice_index_key, chosen_action_key, true_kdma_key)
    if not all(k in attributes for k in keys) or not _plain(values):
        return None
    try:
        text = json.dumps(values, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):  # NaN or infinity: JSON has no such numbers (the span path reads them)
        return None
    return text if len(text) <= MAX_CHARS else None


def decode_once(text: Any, cache: dict[str, Any]) -> tuple[tuple, tuple, Any] | None:
    """:func:`decode`, once per distinct text in ``cache`` (a sweep's runs share their scenes' summaries: a whole
    experiment's read decodes a few thousand texts, not every trace's)."""
    if not isinstance(text, str):
        return None
    found = cache.get(text)
    if found is None:
        found = cache[text] = decode(text) or False
    return found or None


def decode(text: Any) -> tuple[tuple, tuple, Any] | None:
    """(attributes: scenario, scene index, choice index, chosen action, true KDMA values; inputs: scenario, scene,
    the choices' texts as a tuple; the output action's text) of a summary; None for anything else than a summary
    :func:`encode` could have written (read the span then)."""
    if not isinstance(text, str) or not text.startswith(f"[{VERSION},"):
        return None
    try:
        values = json.loads(text, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return None
    if not isinstance(values, list) or len(values) != 10 or values[0] != VERSION:
        return None
    _, scenario, scene_index, choice, action, truth, scenario_in, scene_in, choices, action_text = values
    if choices is not None:
        if not isinstance(choices, list) or not all(c is None or isinstance(c, str) for c in choices):
            return None
        choices = tuple(choices)
    return (scenario, scene_index, choice, action, truth), (scenario_in, scene_in, choices), action_text


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not in a summary")
