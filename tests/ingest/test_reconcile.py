"""The rules that keep exactly one complete run per run folder, over plain rows."""

from __future__ import annotations

from dataclasses import dataclass, field

from align_track.ingest.reconcile import after_complete, lost_claim, plan, settles_at
from align_track.schema import METRIC_TOTAL_SECONDS, STALL_SECONDS, TAG_INGEST_TIME


@dataclass
class Row:
    run_id: str
    start_time: int
    end_time: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def done(run_id: str, fp: str, end: int) -> Row:
    return Row(run_id, end - 1, end, {"align_track.complete": "true", "align_track.fingerprint": fp})


def half(run_id: str, start: int, claim: str) -> Row:
    return Row(run_id, start, None, {"align_track.claim": claim})


def alive_if(*tokens: str):
    return lambda token, started: token in tokens


def test_unchanged_is_skipped_and_duplicates_cleaned() -> None:
    p = plan("fp1", [done("a", "fp1", 10), done("b", "fp1", 20), half("c", 5, "dead")], False, alive_if())
    assert p.action == "skip" and sorted(p.cleanup) == ["a", "c"]


def test_changed_is_updated_and_old_removed_only_after() -> None:
    p = plan("fp2", [done("a", "fp1", 10)], False, alive_if())
    assert p.action == "update" and p.cleanup == ["a"]


def test_new_identity_is_created() -> None:
    assert plan("fp", [], False, alive_if()).action == "create"


def test_force_rewrites_even_unchanged() -> None:
    p = plan("fp1", [done("a", "fp1", 10)], True, alive_if())
    assert p.action == "update" and p.cleanup == ["a"]


def test_live_writer_makes_identity_busy_dead_one_does_not() -> None:
    assert plan("fp", [half("x", 5, "live")], False, alive_if("live")).action == "busy"
    p = plan("fp", [half("x", 5, "dead")], False, alive_if("live"))
    assert p.action == "create" and p.cleanup == ["x"]


def test_claim_race_has_exactly_one_winner() -> None:
    rows = [half("r1", 100, "p1"), half("r2", 100, "p2")]
    alive = alive_if("p1", "p2")
    outcomes = [lost_claim("r1", rows, lambda t, s: t == "p2"), lost_claim("r2", rows, lambda t, s: t == "p1")]
    assert sorted(outcomes) == [False, True]
    assert lost_claim("r1", [half("r1", 100, "p1")], alive) is False
    assert lost_claim("missing", rows, alive) is True


def test_after_complete_keeps_only_newest() -> None:
    rows = [done("old", "fp1", 10), done("mine", "fp2", 30), half("dead", 5, "gone"), half("live", 40, "p9")]
    assert sorted(after_complete("mine", rows, alive_if("p9"))) == ["dead", "old"]
    # a rival that completed after us wins, and both writers agree on it
    rows2 = [done("mine", "fp2", 30), done("rival", "fp2", 31)]
    assert after_complete("mine", rows2, alive_if()) == ["mine"]
    assert after_complete("rival", rows2, alive_if()) == ["mine"]


def test_only_a_run_that_may_still_be_running_settles_and_only_after_its_window() -> None:
    """From its end time (its folder's last change) plus the stall window; never a timed run, one already quiet
    when written, or one without the ingest-time tag (readers do not judge those 'may still be running')."""
    window = round(STALL_SECONDS * 1000)

    def run(end: int | None, written: str | None, metrics: dict[str, float] | None = None) -> Row:
        tags = {} if written is None else {TAG_INGEST_TIME: written}
        return Row("r", 0, end, tags, metrics or {})

    assert settles_at(run(1_000_000, "1000010")) == 1_000_000 + window
    assert settles_at(run(1_000_000, str(1_000_000 + window - 1))) == 1_000_000 + window
    assert settles_at(run(1_000_000, str(1_000_000 + window))) is None  # written quiet: 'no timing' already
    assert settles_at(run(1_000_000, "1000010", {METRIC_TOTAL_SECONDS: 3.0})) is None  # timed: done
    assert settles_at(run(1_000_000, None)) is None
    assert settles_at(run(1_000_000, "not a number")) is None
    assert settles_at(run(None, "1000010")) is None
