from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from portevoix.contracts.events import EngagementReceived, PostModerated, PostReceived
from portevoix_scoring.domain.post_state import PostState
from portevoix_scoring.domain.scorer import Scorer
from portevoix_scoring.domain.table import PointsTableError, default_table, load_table

T0 = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)  # 23:30 in Paris: same day; 2026-11-20


def post(kind: str = "original", author: str = "a1", eid: str = "p-evt") -> PostReceived:
    return PostReceived(
        event_id=eid, occurred_at=T0, producer="t", post_key="linkedin:p1", network="linkedin",
        post_id="p1", ambassador_id=author, author="alice", text="hello", kind=kind,
    )  # fmt: skip


def eng(kind: str, eid: str, actor_id: str | None = None) -> EngagementReceived:
    return EngagementReceived(
        event_id=eid, occurred_at=T0, producer="t", engagement=kind, post_key="linkedin:p1",
        network="linkedin", post_id="p1", actor="someone", actor_ambassador_id=actor_id,
    )  # fmt: skip


def verdict(v: str, eid: str = "d1") -> PostModerated:
    return PostModerated(
        event_id=eid, occurred_at=T0, producer="t", decision_id=eid, post_key="linkedin:p1",
        post_event_id="p-evt", ambassador_id="a1", verdict=v, charter_version="1",
        engine_version="1", content_hash="h",
    )  # fmt: skip


def run(events: list[object], tz: str = "Europe/Paris") -> tuple[PostState, dict[str, int], list]:
    scorer = Scorer(default_table(), ZoneInfo(tz))
    state = PostState("linkedin:p1")
    totals: dict[str, int] = {}
    ledger = []
    for ev in events:
        fx = scorer.apply(state, ev)  # type: ignore[arg-type]
        ledger += fx.ledger
        for c in fx.credits:
            totals[c.ambassador_id] = totals.get(c.ambassador_id, 0) + c.points
    return state, totals, ledger


def test_default_table_follows_seed_003() -> None:
    t = default_table()
    assert t.points("comment") > t.points("share") > t.points("like")
    assert t.points("original_post") > t.points("relay")
    assert (t.points("original_post"), t.points("relay"), t.points("like")) == (10, 4, 1)
    assert (t.points("share"), t.points("comment")) == (3, 5)


def test_points_are_held_until_the_verdict_then_released() -> None:
    state, totals, ledger = run([post(), eng("like", "l1"), eng("comment", "c1")])
    assert totals == {}
    assert [e.op for e in ledger] == ["hold", "hold", "hold"]
    state, totals, ledger = run([post(), eng("like", "l1"), eng("comment", "c1"), verdict("allow")])
    assert totals == {"a1": 16}
    assert [e.op for e in ledger][-3:] == ["release", "release", "release"]
    assert state.held == []


def test_nudge_pays_like_allow_and_later_engagement_is_paid_at_once() -> None:
    _, totals, ledger = run([post("relay"), verdict("nudge"), eng("share", "s1")])
    assert totals == {"a1": 4 + 3}
    assert ledger[-1].op == "award"


def test_review_keeps_points_held_and_block_voids_them() -> None:
    state, totals, _ = run([post(), eng("like", "l1"), verdict("review")])
    assert totals == {} and state.status == "held" and len(state.held) == 2
    state, totals, ledger = run([post(), eng("like", "l1"), verdict("block")])
    assert totals == {} and state.held == []
    assert [e.op for e in ledger][-2:] == ["void", "void"]
    _, totals, ledger = run([post(), verdict("block"), eng("comment", "c9")])
    assert totals == {} and ledger[-1].op == "void"


def test_takedown_after_payment_reverses_every_point_with_a_ledger_entry() -> None:
    state, totals, ledger = run(
        [post(), verdict("allow"), eng("comment", "c1"), verdict("block", "d2")]
    )
    assert totals == {"a1": 0}
    reversal = [e for e in ledger if e.op == "reverse"]
    assert len(reversal) == 1 and reversal[0].points == -15 and state.credited == {}


def test_engagement_before_its_post_is_kept_and_applied() -> None:
    state, totals, _ = run([eng("like", "l1"), eng("comment", "c1")])
    assert state.status == "unseen" and len(state.held) == 2 and totals == {}
    _, totals, _ = run([eng("like", "l1"), eng("comment", "c1"), post(), verdict("allow")])
    assert totals == {"a1": 16}


def test_verdict_before_post_is_remembered() -> None:
    _, totals, _ = run([verdict("allow"), post()])
    assert totals == {"a1": 10}


def test_no_points_for_self_engagement() -> None:
    _, totals, ledger = run([post(), verdict("allow"), eng("like", "l1", actor_id="a1")])
    assert totals == {"a1": 10}
    assert ledger[-1].op == "void" and ledger[-1].rule == "like:self"


def test_same_post_twice_does_not_pay_twice() -> None:
    _, totals, _ = run([post(), verdict("allow"), post(eid="p-evt-2")])
    assert totals == {"a1": 10}


def test_credit_day_follows_the_organisation_time_zone() -> None:
    scorer = Scorer(default_table(), ZoneInfo("Asia/Tokyo"))
    state = PostState("linkedin:p1")
    scorer.apply(state, post())
    fx = scorer.apply(state, verdict("allow"))
    assert fx.credits[0].day == "2026-11-21"  # 07:30 next morning in Tokyo
    scorer = Scorer(default_table(), ZoneInfo("America/New_York"))
    state = PostState("linkedin:p1")
    scorer.apply(state, post())
    assert scorer.apply(state, verdict("allow")).credits[0].day == "2026-11-20"


def test_state_round_trips_through_json() -> None:
    state, _, _ = run([eng("like", "l1"), post(), verdict("review")])
    again = PostState.loads(state.post_key, state.dumps())
    assert again == state


def test_bad_points_table_is_refused_with_the_reason() -> None:
    with pytest.raises(PointsTableError, match="unknown action"):
        load_table("version: x\nactions: {retweet_party: 3}\n")
    with pytest.raises(PointsTableError, match=">= 0"):
        load_table("version: x\nactions: {like: -1}\n")
