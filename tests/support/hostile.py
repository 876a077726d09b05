"""Hypothesis strategies for hostile run folders: long, odd, control, bidi, NUL and unpaired-surrogate text in every
field that reaches the store; values of the wrong type; huge numbers; missing and extra files.

A drawn :class:`Folder` is written with :func:`write_tree`. Files are written as align-system writes them (JSON; the
Hydra config as JSON, which is YAML too, so NUL and surrogates arrive as ``\\u0000``/``\\ud800`` escapes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.support.factory import scene

ODD = ["\x00", "\x1b[31m", "\r", "\n", "\t", "\x7f", "\x85", "\u202e", "\u2066", "\u200f", "\u061c", "\u2028",
       "\ufeff", "\ufffd", "\ud800", "\udfff", "\U0001f600", "é", "\\", "'", '"', "%s", "{0}", "../", "/", ":", " ",
       "kdma.", "\u0301"]
"""Characters and pieces that have broken stores, terminals or parsers: NUL, escapes, bidi controls, line
separators, a BOM, lone surrogates, astral characters, combining marks, quoting and path pieces."""
LONG_SIZES = [251, 4097, 6001, 8001, 9000]
"""Just over each limit: key/run name (250), trace name (4,096), param (6,000), tag (8,000)."""

odd_text = st.lists(st.one_of(st.text(max_size=6), st.sampled_from(ODD)), max_size=5).map("".join)
long_text = st.builds(lambda piece, size: (piece * size)[:size],
                      st.sampled_from(["x", "é", "\u202e", "\x00", "\U0001f600", "ab\x00"]),
                      st.sampled_from(LONG_SIZES))
texts = st.one_of(odd_text, odd_text, long_text)
"""Text for any field: mostly short and odd, sometimes just over a limit."""
numbers = st.one_of(st.integers(min_value=-10**20, max_value=10**20), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, 0.5, 1e300, -1e300, 10**400]))
wrong = st.one_of(st.none(), st.booleans(), numbers, st.lists(st.just("x"), max_size=2), st.just({"a": 1}))
values = st.one_of(texts, texts, wrong)
"""A value where text is expected: text, or the wrong type."""

folder_names = st.lists(st.one_of(st.sampled_from(["\x1b[31m", "\t", "\u202e", "\u2066", "é", "\U0001f600", " ",
                                                   "%s", ":", "'", "\r", "\x7f"]),
                                  st.text(alphabet="abc-_.", min_size=1, max_size=6)),
                        min_size=1, max_size=4).map("".join)
"""Folder names as a file system allows them (no '/' or NUL, never '.' or '..': prefixed by the caller)."""


@dataclass
class Folder:
    """One run folder to write: its files' contents (None: the file is missing)."""

    name: str
    scenes: Any
    config: Any
    timing: Any
    scores: Any
    extra: dict[str, str] = field(default_factory=dict)
    raw_io: str | None = None


@st.composite
def hostile_scene(draw: st.DrawFn, index: int) -> Any:
    item = scene(f"S{index}", choice=index % 2)
    state = item["input"]["full_state"]
    if draw(st.booleans()):
        state["meta_info"]["scene_id"] = draw(st.one_of(texts, st.none(), st.integers(-5, 5)))
    if draw(st.booleans()):
        state["unstructured"] = draw(values)
    if draw(st.booleans()):
        item["input"]["scenario_id"] = draw(values)
    if draw(st.booleans()):
        item["input"]["alignment_target_id"] = draw(st.one_of(st.none(), texts))
    if draw(st.booleans()):
        item["output"]["choice"] = draw(st.one_of(values, st.sampled_from(["1", " 0 ", "-1", 99])))
    if draw(st.booleans()):
        item["output"]["action"]["justification"] = draw(values)
    if draw(st.booleans()):
        item["input"]["choices"][0]["unstructured"] = draw(values)
    if draw(st.booleans()):
        item["choice_info"]["true_kdma_values"] = draw(st.one_of(wrong, st.dictionaries(
            texts, st.dictionaries(texts, numbers, max_size=2), max_size=2)))
    if draw(st.booleans()):
        item["input"]["choices"][1]["kdma_association"] = {draw(texts): draw(numbers)}
    return item if draw(st.integers(0, 7)) else draw(wrong)  # now and then not a scene at all


@st.composite
def hostile_config(draw: st.DrawFn) -> Any:
    cfg: dict[str, Any] = {"name": "action_based", "adm": {"name": draw(values)}}
    if draw(st.booleans()):
        cfg["adm"]["structured_inference_engine"] = {"model_name": draw(values)}
    kdmas = draw(st.one_of(
        st.lists(st.fixed_dictionaries({"kdma": st.one_of(texts, st.sampled_from(["merit", "affiliation"])),
                                        "value": st.one_of(numbers, texts, st.none())}), max_size=2),
        st.dictionaries(texts, numbers, max_size=2), wrong))
    if draw(st.booleans()):
        cfg["alignment_target"] = {"id": draw(values), "kdma_values": kdmas}
    return cfg if draw(st.integers(0, 7)) else draw(wrong)


@st.composite
def hostile_folder(draw: st.DrawFn) -> Folder:
    count = draw(st.integers(0, 3))
    scenes: Any = [draw(hostile_scene(i)) for i in range(count)]
    raw_io = None if draw(st.integers(0, 9)) else draw(st.sampled_from(["[", '{"a": 1}', "\x00", "[1e999]",
                                                                         "[" * 50, "[]"]))
    seconds = st.one_of(st.floats(0, 1e4), st.floats(0, 1e4), numbers, st.none(), st.just("1.5"))
    timing = draw(st.one_of(st.none(), st.lists(seconds, max_size=4).map(lambda t: {"raw_times_s": t}),
                            st.lists(seconds, max_size=4), wrong))
    scores = draw(st.one_of(st.none(), st.fixed_dictionaries({"score": numbers, "alignment_target_id": values}),
                            wrong))
    extra = draw(st.dictionaries(st.sampled_from(["notes.txt", "meta.json", "\u202ex.log", "trace\x1b.json",
                                                  ".hidden", "input_output.json.bak"]), texts, max_size=2))
    return Folder(draw(folder_names), scenes, draw(st.one_of(hostile_config(), st.none())), timing, scores, extra,
                  raw_io)


trees = st.lists(hostile_folder(), min_size=1, max_size=3)


def _write(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")


def write_tree(root: Path, folders: list[Folder]) -> Path:
    """Each folder under ``root`` (named ``<n>-<name>``, so names are unique and never '.' or '..')."""
    for n, folder in enumerate(folders):
        path = root / f"{n}-{folder.name}"
        path.mkdir(parents=True)
        if folder.raw_io is not None:
            (path / "input_output.json").write_text(folder.raw_io, encoding="utf-8")
        else:
            _write(path / "input_output.json", folder.scenes)
        if folder.config is not None:
            (path / ".hydra").mkdir()
            _write(path / ".hydra" / "config.yaml", folder.config)
        if folder.timing is not None:
            _write(path / "timing.json", folder.timing)
        if folder.scores is not None:
            _write(path / "scores.json", folder.scores)
        for name, text in folder.extra.items():
            (path / name).write_text(text, encoding="utf-8", errors="surrogatepass")
    return root
