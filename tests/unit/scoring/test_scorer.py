from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portevoix.contracts.events import (
    AmbassadorErased,
    AmbassadorRegistered,
    EngagementReceived,
    PostModerated,
    PostReceived,
    PostReviewed,
)
from portevoix_scoring.domain.post_state import PostState
from portevoix_scoring.domain.scorer import AmbassadorBook, LedgerEntry, Scored, Scorer, _iso
from portevoix_scoring.domain.table import PointsTable, PointsTableError, default_table, load_table

T0 = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)  # 23:30 in Paris: same day; 2026-11-20
PK = "linkedin:p1"


def post(kind: str = "original", author: str = "a1", eid: str = "p-evt", pid: str = "p1",
         at: datetime = T0, **kw: object) -> PostReceived:  # fmt: skip
    return PostReceived(
        event_id=eid, occurred_at=at, producer="t", post_key=f"linkedin:{pid}",
        network="linkedin", post_id=pid, ambassador_id=author, author="alice", text="hello",
        kind=kind, **kw,
    )  # fmt: skip


def eng(kind: str, eid: str, actor_id: str | None = None, actor: str = "someone",
        pid: str = "p1", at: datetime = T0) -> EngagementReceived:  # fmt: skip
    return EngagementReceived(
        event_id=eid, occurred_at=at, producer="t", engagement=kind, post_key=f"linkedin:{pid}",
        network="linkedin", post_id=pid, actor=actor, actor_ambassador_id=actor_id,
    )  # fmt: skip


def verdict(v: str, eid: str = "d1", pid: str = "p1") -> PostModerated:
    return PostModerated(
        event_id=eid, occurred_at=T0, producer="t", decision_id=eid, post_key=f"linkedin:{pid}",
        post_event_id="p-evt", ambassador_id="a1", verdict=v, charter_version="1",
        engine_version="1", content_hash="h",
    )  # fmt: skip


def review(outcome: str, eid: str = "r1", pid: str = "p1") -> PostReviewed:
    return PostReviewed(
        event_id=eid, occurred_at=T0, producer="t", review_id=eid, post_key=f"linkedin:{pid}",
        outcome=outcome, moderator="m1",
    )  # fmt: skip


class World:
    """Applies events like the service: post states, reaction markers, ambassador states."""

    def __init__(self, table: PointsTable | None = None, tz: str = "Europe/Paris") -> None:
        self.scorer = Scorer(table or default_table(), ZoneInfo(tz))
        self.book = AmbassadorBook()
        self.posts: dict[str, PostState] = {}
        self.reactions: set[tuple[str, str, str]] = set()
        self.totals: dict[str, int] = {}
        self.ledger: list[LedgerEntry] = []
        self.badges: list[str] = []
        self.reach: dict[str, int] = {}

    def run(self, *events: Scored) -> World:
        for ev in events:
            p = None
            if not isinstance(ev, AmbassadorRegistered | AmbassadorErased):
                p = self.posts.setdefault(ev.post_key, PostState(ev.post_key))
            r = None
            if isinstance(ev, EngagementReceived) and ev.engagement in ("like", "share"):
                r = (ev.post_key, ev.engagement, ev.actor_ambassador_id or ev.actor)
            fx = self.scorer.apply(ev, p, self.book, reacted=r in self.reactions)
            if fx.reaction and r:
                self.reactions.add(r)
            self.ledger += fx.ledger
            self.badges += [b.badge for b in fx.badges]
            for c in fx.credits:
                assert c.ambassador_id is not None  # nobody is erased here
                self.totals[c.ambassador_id] = self.totals.get(c.ambassador_id, 0) + c.points
            for d in fx.reach:
                for k, v in d.values.items():
                    self.reach[k] = self.reach.get(k, 0) + v
        return self

    @property
    def state(self) -> PostState:
        return self.posts[PK]

    def ops(self) -> list[str]:
        return [e.op for e in self.ledger]


def pts(**by: float) -> dict[str, int]:
    return {k: round(v * 100) for k, v in by.items()}


def test_default_table_follows_seed_003() -> None:
    t = default_table()
    assert t.points("comment") > t.points("share") > t.points("like")
    assert t.points("original_post") > t.points("relay")
    assert (t.points("original_post"), t.points("relay"), t.points("like")) == (10, 4, 1)
    assert (t.points("share"), t.points("comment")) == (3, 5)
    assert t.points("share", "x") == 2 and t.points("like", "x") == 1  # per-network override
    assert t.fair_play.colleague_weight == 0.5


def test_points_are_held_until_the_verdict_then_released() -> None:
    w = World().run(post(), eng("like", "l1"), eng("comment", "c1"))
    assert w.totals == {} and w.ops() == ["hold", "hold", "hold"]
    w.run(verdict("allow"))
    assert w.totals == pts(a1=16)
    assert w.ops()[-3:] == ["release", "release", "release"]
    assert w.ledger[-1].cause == "d1" and w.state.held == []


def test_nudge_pays_like_allow_and_later_engagement_is_paid_at_once() -> None:
    w = World().run(post("relay"), verdict("nudge"), eng("share", "s1"))
    assert w.totals == pts(a1=4 + 3) and w.ledger[-1].op == "award"


def test_review_holds_then_moderator_approval_releases() -> None:
    w = World().run(post(), eng("like", "l1"), verdict("review"))
    assert w.totals == {} and w.state.status == "held" and len(w.state.held) == 2
    w.run(review("approved"))
    assert w.totals == pts(a1=11)
    assert w.state.status == "released"  # type: ignore[comparison-overlap]
    # A later automated verdict does not override the moderator's decision.
    w.run(verdict("review", "d2"), eng("comment", "c1"))
    assert w.totals == pts(a1=16)


def test_block_voids_and_rejection_of_a_held_post_pays_nothing() -> None:
    w = World().run(post(), eng("like", "l1"), verdict("block"))
    assert w.totals == {} and w.state.held == [] and w.ops()[-2:] == ["void", "void"]
    w = World().run(post(), verdict("block"), eng("comment", "c9"))
    assert w.totals == {} and w.ledger[-1].op == "void"
    w = World().run(post(), eng("like", "l1"), verdict("review"), review("rejected"))
    assert w.totals == {} and w.ops()[-2:] == ["void", "void"]


def test_block_then_approval_on_appeal_restores_the_voided_points() -> None:
    w = World().run(post(), eng("like", "l1"), verdict("block"), review("approved"))
    assert w.totals == pts(a1=11)


def test_takedown_after_payment_reverses_every_point_with_a_ledger_entry() -> None:
    w = World().run(post(), verdict("allow"), eng("comment", "c1"), review("taken_down"))
    assert w.totals == {"a1": 0}
    reversal = [e for e in w.ledger if e.op == "reverse"]
    assert [(e.points, e.rule, e.cause) for e in reversal] == [(-1500, "takedown", "r1")]
    assert w.state.credited == {} and w.reach["posts"] == 0 and w.reach["emv:EUR"] == 0
    w.run(eng("like", "l9"))  # nothing more is ever paid on a removed post
    assert w.totals == {"a1": 0} and w.ledger[-1].op == "void"


def test_rejection_after_payment_reverses_in_the_period_it_was_paid() -> None:
    w = World().run(post(), verdict("allow"), verdict("block", "d2"))
    assert w.totals == {"a1": 0}
    assert [(e.op, e.points, e.rule, e.at) for e in w.ledger][-1] == (
        "reverse", -1000, "rejected", "2026-11-20",
    )  # fmt: skip


def test_engagement_before_its_post_is_kept_and_applied() -> None:
    w = World().run(eng("like", "l1"), eng("comment", "c1"))
    assert w.state.status == "unseen" and len(w.state.held) == 2 and w.totals == {}
    w.run(post(), verdict("allow"))
    assert w.totals == pts(a1=16)


def test_verdict_or_review_before_post_is_remembered() -> None:
    assert World().run(verdict("allow"), post()).totals == pts(a1=10)
    assert World().run(review("rejected"), post()).totals == {}


def test_no_points_for_self_engagement_but_a_reply_to_comments_counts() -> None:
    w = World().run(post(), verdict("allow"), eng("like", "l1", actor_id="a1"))
    assert w.totals == pts(a1=10)
    assert w.ledger[-1].op == "void" and w.ledger[-1].rule == "like:self"
    w.run(eng("comment", "c1", actor_id="a1"))
    assert w.totals == pts(a1=12) and w.ledger[-1].rule == "reply"


def test_one_like_and_one_share_per_actor_per_post() -> None:
    w = World().run(post(), verdict("allow"), eng("like", "l1", actor="bob"),
                    eng("like", "l2", actor="bob"), eng("share", "s1", actor="bob"),
                    eng("comment", "c1", actor="bob"), eng("comment", "c2", actor="bob"))  # fmt: skip
    assert w.totals == pts(a1=10 + 1 + 3 + 5 + 5)
    assert ("void", "like:repeat") in [(e.op, e.rule) for e in w.ledger]


def test_colleague_engagement_is_weighted() -> None:
    w = World().run(post(), verdict("allow"), eng("comment", "c1", actor_id="b1"),
                    eng("like", "l1", actor_id="b1"))  # fmt: skip
    assert w.totals == pts(a1=10 + 2.5 + 0.5)
    assert w.ledger[-1].rule == "like:colleague" and w.ledger[-1].points == 50


def test_reciprocal_like_rings_are_discounted() -> None:
    w = World()
    events: list[Scored] = []
    for i in range(5):  # a1 and b1 like each other's posts, post after post
        events += [post(author="a1", eid=f"pa{i}", pid=f"a{i}"), verdict("allow", f"da{i}", f"a{i}"),
                   post(author="b1", eid=f"pb{i}", pid=f"b{i}"), verdict("allow", f"db{i}", f"b{i}"),
                   eng("like", f"la{i}", actor_id="b1", pid=f"a{i}"),
                   eng("like", f"lb{i}", actor_id="a1", pid=f"b{i}")]  # fmt: skip
    w.run(*events)
    rules = [e.rule for e in w.ledger if e.op == "award" and e.rule.startswith("like")]
    # 3 reciprocal likes each way at colleague weight, then the ring is discounted (0.1 × 0.5).
    assert rules.count("like:colleague") == 6 and rules.count("like:ring") == 4
    # Posts: 3 a day earn points (daily cap); likes: 3 × 0.5 + 2 × 0.05.
    assert w.totals["a1"] == 3 * 1000 + 3 * 50 + 2 * 5


def test_daily_caps_follow_the_organisation_day() -> None:
    # original_post is capped at 30 points a day (3 posts) in the default table.
    w = World()
    for i in range(4):
        w.run(post(eid=f"p{i}", pid=f"q{i}"), verdict("allow", f"d{i}", f"q{i}"))
    assert w.totals == pts(a1=30) and w.ledger[-1].rule == "original_post:cap"
    # 23:30 UTC is already the next day in Paris: a fresh cap.
    w.run(post(eid="p9", pid="q9", at=T0 + timedelta(hours=1)), verdict("allow", "d9", "q9"))
    assert w.totals == pts(a1=40)


def test_the_daily_cap_counts_what_is_paid_so_the_order_of_arrival_does_not_matter() -> None:
    # Four posts the same day (cap: 3 paid), one of them held in review then blocked. Whatever
    # the order the verdicts arrive in, the three allowed posts are paid in full: a held or
    # blocked post never uses up the day's cap.
    def events(held_first: bool) -> list[Scored]:
        held = [post(eid="ph", pid="qh"), verdict("review", "dh", "qh")]
        allowed = [e for i in range(3) for e in (post(eid=f"p{i}", pid=f"q{i}"),
                                                 verdict("allow", f"d{i}", f"q{i}"))]  # fmt: skip
        return [*held, *allowed] if held_first else [*allowed, *held]

    for held_first in (True, False):
        w = World().run(*events(held_first))
        assert w.totals == pts(a1=30), held_first
        # Held: shown with its points before the cap (the cap applies when paid).
        assert [e.points for e in w.ledger if e.op == "hold" and e.event_id == "ph"] == [1000]
        w.run(review("rejected", "r-h", "qh"))
        assert w.totals == pts(a1=30)
    # Approved later instead, the held post is paid within what the day still allows: nothing.
    w = World().run(*events(True), review("approved", "r-h", "qh"))
    assert w.totals == pts(a1=30)
    assert [(e.op, e.rule, e.points) for e in w.ledger][-1] == ("release", "original_post:cap", 0)


def test_campaign_multiplier_and_boards() -> None:
    yaml_text = (
        default_table()
        .dumps()
        .replace(
            "campaigns: []",
            "campaigns:\n- {id: rentree, start: 2026-11-01, end: 2026-11-30, hashtag: Rentree,"
            " multiplier: 2}",
        )
    )
    table = load_table(yaml_text)
    w = World(table)
    w.run(post(hashtags=["rentree"]), verdict("allow"), eng("like", "l1"))
    assert w.totals == pts(a1=22)
    assert w.state.campaigns == ["rentree"]
    w2 = World(table).run(post(campaign="q4-launch"), verdict("allow"))
    assert w2.totals == pts(a1=10) and w2.state.campaigns == ["q4-launch"]


def test_reach_and_emv_follow_firstups_formula() -> None:
    w = World().run(post(followers=1000), verdict("allow"), eng("like", "l1"),
                    eng("click", "k1"), eng("click", "k2"))  # fmt: skip
    # linkedin: impressions = 1000 × 0.15; EMV = 30 × 150/1000 + 5 × (0.2 × 1 + 2) = 15.5 EUR
    assert w.reach["impressions"] == 150 and w.reach["reactions"] == 1 and w.reach["clicks"] == 2
    assert w.reach["emv:EUR"] == 155_000
    assert w.reach["emvnet:EUR:linkedin"] == 155_000  # the same EMV, by network (dashboards)


def test_badges_are_awarded_once() -> None:
    w = World()
    for i in range(3):
        day = T0 - timedelta(days=2 - i)
        w.run(post(eid=f"p{i}", pid=f"q{i}", at=day), verdict("allow", f"d{i}", f"q{i}"))
    assert w.badges == ["first-post", "streak-3"]
    w.run(post(eid="p9", pid="q9"), verdict("allow", "d9", "q9"))
    assert w.badges == ["first-post", "streak-3"]


def test_team_comes_from_the_registration() -> None:
    w = World()
    reg = AmbassadorRegistered(event_id="r", occurred_at=T0, producer="t", ambassador_id="a1",
                               display_name="A", team="Ventes", handles={}, consent=True)  # fmt: skip
    w.run(reg)
    p = PostState(PK)
    fx = w.scorer.apply(post(), p, w.book)
    fx = w.scorer.apply(verdict("allow"), p, w.book)
    assert fx.credits[0].team == "Ventes"


def test_credit_day_follows_the_organisation_time_zone() -> None:
    w = World(tz="Asia/Tokyo").run(post(), verdict("allow"))
    assert w.ledger[-1].at == T0.isoformat()
    p = PostState(PK)
    s = Scorer(default_table(), ZoneInfo("Asia/Tokyo"))
    s.apply(post(), p, AmbassadorBook())
    assert s.apply(verdict("allow"), p, AmbassadorBook()).credits[0].day == "2026-11-21"
    s = Scorer(default_table(), ZoneInfo("America/New_York"))
    p = PostState(PK)
    s.apply(post(), p, AmbassadorBook())
    assert s.apply(verdict("allow"), p, AmbassadorBook()).credits[0].day == "2026-11-20"


def test_state_round_trips_through_json() -> None:
    w = World().run(eng("like", "l1"), post(), verdict("review"))
    again = PostState.loads(w.state.post_key, w.state.dumps())
    assert again == w.state
    from portevoix_scoring.domain.ambassador_state import AmbassadorState

    a = w.book.ambassador("a1")
    assert AmbassadorState.loads("a1", a.dumps()) == a


def test_bad_points_table_is_refused_with_the_reason() -> None:
    with pytest.raises(PointsTableError, match="unknown action"):
        load_table("version: x\nactions: {retweet_party: 3}\n")
    with pytest.raises(PointsTableError, match=">= 0"):
        load_table("version: x\nactions: {like: -1}\n")
    with pytest.raises(PointsTableError, match="needs a hashtag"):
        load_table(
            "version: x\nactions: {}\ncampaigns: [{id: c, start: 2026-01-01, end: 2026-01-02}]"
        )


@given(st.datetimes(timezones=st.sampled_from([UTC, ZoneInfo("Europe/Paris"), None])))
def test_iso_writes_what_isoformat_writes(ts: datetime) -> None:
    # The scorer writes `at` with orjson (faster); ledgers and periods rely on the same text.
    assert _iso(ts) == ts.isoformat()
