"""Colleague pairs (like-rings), the pure state: bounded by the rings window, kept apart from
the ambassador state, touched only by colleague engagement."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta

from portevoix_scoring.domain.ambassador_state import (
    PAIRS_LATE_DAYS,
    AmbassadorState,
    ColleaguePairs,
)
from portevoix_scoring.domain.scorer import Effects
from tests.unit.scoring.test_scorer import World, eng, post, verdict

WINDOW = 30  # the default table's rings window
D0 = date(2026, 1, 5)


def _day(n: int) -> str:
    return (D0 + timedelta(days=n)).isoformat()


def test_counts_within_the_window_and_start_over_after_it() -> None:
    p = ColleaguePairs()
    assert [p.count_from("b1", _day(0), WINDOW) for _ in range(3)] == [1, 2, 3]
    assert p.received_from("b1", _day(WINDOW), WINDOW) == 3
    assert p.received_from("b1", _day(WINDOW + 1), WINDOW) == 0
    assert p.count_from("b1", _day(WINDOW + 1), WINDOW) == 1


def test_pairs_nothing_can_count_any_more_are_pruned_late_engagement_still_counts() -> None:
    p = ColleaguePairs()
    for _ in range(4):
        p.count_from("old", _day(0), WINDOW)
    horizon = WINDOW + PAIRS_LATE_DAYS
    p.count_from("recent", _day(horizon), WINDOW)  # exactly at the horizon: kept
    assert set(p.recv) == {"old", "recent"} and p.pruned == _day(horizon)
    # Engagement dated 20 days back (late) still finds what an unpruned state would hold.
    assert p.received_from("old", _day(20), WINDOW) == 4
    p.count_from("recent", _day(horizon + 1), WINDOW)
    assert set(p.recv) == {"recent"}  # "old" can only count for engagement > 35 days late
    assert ColleaguePairs(**asdict(ColleaguePairs.loads(p.dumps()))) == p


def test_pruning_runs_once_a_day_and_never_for_late_engagement() -> None:
    p = ColleaguePairs()
    p.count_from("b1", _day(100), WINDOW)
    p.recv["stale"] = [1, _day(0)]  # stands for a pair the next prune must drop
    p.count_from("c1", _day(100), WINDOW)  # same day: not pruned again
    assert "stale" in p.recv
    p.count_from("c1", _day(50), WINDOW)  # late engagement: the day is not newer
    assert "stale" in p.recv and p.pruned == _day(100)
    p.count_from("c1", _day(101), WINDOW)
    assert "stale" not in p.recv and set(p.recv) == {"b1", "c1"}


def test_old_pairs_inside_an_ambassador_state_are_taken_when_none_are_stored() -> None:
    legacy = {"b1": [3, _day(0)]}
    assert ColleaguePairs.loads(None, legacy).recv == legacy
    stored = ColleaguePairs(recv={"c1": [1, _day(0)]}).dumps()
    assert ColleaguePairs.loads(stored, legacy).recv == {"c1": [1, _day(0)]}
    old = AmbassadorState.loads("a1", b'{"ambassador_id": "a1", "recv": {"b1": [3, "2026-01-05"]}}')
    assert old.recv == {"b1": [3, "2026-01-05"]}


def test_only_colleague_engagement_touches_pairs_and_the_ambassador_state_stays_small() -> None:
    w = World().run(post(), verdict("allow"))
    fx = w.scorer.apply(eng("like", "fan"), w.state, w.book)
    assert fx.pairs == {}  # an external like: the author's state only
    fx = w.scorer.apply(eng("like", "l0", actor_id="c0"), w.state, w.book)
    assert fx.pairs == {"a1": True, "c0": False}  # written for the author, read for the actor
    size = len(w.book.ambassador("a1").dumps())
    for i in range(1, 200):
        w.scorer.apply(eng("like", f"l{i}", actor_id=f"c{i}"), w.state, w.book)
    assert len(w.book.pairs("a1").recv) == 200
    # Counters gain a few digits and a level badge comes: nothing per colleague.
    assert len(w.book.ambassador("a1").dumps()) <= size + 40


def test_an_erasure_empties_the_pairs_with_the_state() -> None:
    w = World().run(post(), verdict("allow"), eng("like", "l1", actor_id="b1"))
    assert w.book.pairs("a1").recv
    fx = Effects()
    assert fx.pairs == {}
    from portevoix.contracts.events import AmbassadorErased

    erased = AmbassadorErased(event_id="x", occurred_at=post().occurred_at, producer="t",
                              ambassador_id="a1", request_id="r", requested_by="self",
                              networks=["linkedin"], existed=True)  # fmt: skip
    fx = w.scorer.apply(erased, None, w.book)
    assert fx.pairs == {"a1": True}
    assert w.book.pairs("a1") == ColleaguePairs()
