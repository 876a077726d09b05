"""Byte-stable, fast encoding of the demo files: JSON with constant blocks spliced in, YAML through libyaml when
present.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: configs are dumped per run


# json.dumps(indent=2) is pure Python and dominates generation time; constant blocks that recur in every
# scene (supplies, environments, vitals, generic actions) are encoded once and spliced in by dumps.
_SPLICES: dict[str, str] = {}


def spliced(obj: Any, depth: int) -> str:
    """Stand-in for a constant block whose key sits `depth` levels deep in the written file."""
    key = f"\x00splice:{id(obj)}:{depth}\x00"
    encoded = json.dumps(key)
    if encoded not in _SPLICES:
        _SPLICES[encoded] = json.dumps(obj, indent=2).replace("\n", "\n" + "  " * depth)
    return key


def dumps(obj: Any) -> str:
    """json.dumps(obj, indent=2) with spliced blocks swapped back in (same bytes as encoding them inline)."""
    text = json.dumps(obj, indent=2)
    for encoded, block in _SPLICES.items():
        if encoded in text:
            text = text.replace(encoded, block)
    return text


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
