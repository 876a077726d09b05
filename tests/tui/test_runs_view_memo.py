"""RunsModel.view remembers and narrows filter answers; every answer must equal a full scan's."""

from __future__ import annotations

import random

from align_track.tui.models.runs import RunsModel


def full_scan(model: RunsModel) -> list[int]:
    terms = model.text.lower().split()
    rows = [i for i in model._order if model.allowed is None or i in model.allowed]
    return [i for i in rows if all(t in model.haystacks[i] for t in terms)]


def model_of(n: int, seed: int = 0) -> RunsModel:
    rng = random.Random(seed)
    words = ["merit", "0.5", "0.2", "llama", "mistral", "qwen", "baseline", "kaleido", "affiliation"]
    hay = [" ".join(rng.sample(words, 4)) for _ in range(n)]
    model = RunsModel([f"r{i}" for i in range(n)], [(h,) for h in hay], hay, [hay])
    model._order = list(range(n))
    return model


def test_typing_deleting_sorting_and_allowed_sets_give_what_a_full_scan_gives():
    model = model_of(2000)
    rng = random.Random(1)
    query = "merit 0.5 llama"
    texts = [query[:k] for k in range(1, len(query) + 1)] + [query[:k] for k in range(len(query) - 1, -1, -1)]
    texts += ["llama merit", "a", "  l  ", "MERIT", "ma", "merit 0.2", "zzz", "0.", "ll am"]
    checked = 0
    for step in range(3):
        if step == 1:
            model.sort(0, reverse=True)  # a new order: nothing remembered may leak into it
        if step == 2:
            model.allowed = set(rng.sample(range(2000), 700))
        for text in texts + texts[::-1]:
            model.text = text
            assert model.view() == full_scan(model), (step, text)
            checked += 1
    assert checked == 3 * 2 * len(texts)


def test_narrowing_scans_only_the_rows_a_previous_answer_kept():
    model = model_of(1000)
    model.text = "merit"
    kept = set(model.view())
    model.haystacks = [h if i in kept else h + " merit llama" for i, h in enumerate(model.haystacks)]
    model.text = "merit llama"
    # Rows outside the remembered "merit" answer are not rescanned (their haystacks changed behind its back).
    assert set(model.view()) <= kept
