"""GDPR erasure in the scorer: the person disappears, the team's and the organisation's totals
move exactly as they would have."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson

from portevoix.contracts.events import (
    AmbassadorErased,
    AmbassadorRegistered,
    EngagementReceived,
    PostModerated,
    PostReceived,
    PostReviewed,
)
from portevoix_scoring.domain.ambassador_state import AmbassadorState
from portevoix_scoring.domain.projection import Projection
from portevoix_scoring.domain.scorer import Scored
from portevoix_scoring.domain.table import default_table
from portevoix_scoring.offline import OfflineScoring

T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
TZ = ZoneInfo("Europe/Paris")


def reg(aid: str, team: str, eid: str | None = None) -> AmbassadorRegistered:
    return AmbassadorRegistered(event_id=eid or f"reg-{aid}", occurred_at=T0, producer="t",
                                ambassador_id=aid, display_name=aid, team=team,
                                handles={"linkedin": aid}, consent=True)  # fmt: skip


def post(pid: str, author: str, hours: int = 0, **kw: object) -> PostReceived:
    return PostReceived(event_id=f"post-{pid}", occurred_at=T0 + timedelta(hours=hours),
                        producer="t", post_key=f"linkedin:{pid}", network="linkedin",
                        post_id=pid, ambassador_id=author, author=author, text="t",
                        kind="original", **kw)  # fmt: skip


def verdict(pid: str, v: str, author: str) -> PostModerated:
    return PostModerated(event_id=f"d-{pid}", occurred_at=T0, producer="t", decision_id=f"d-{pid}",
                         post_key=f"linkedin:{pid}", post_event_id=f"post-{pid}",
                         ambassador_id=author, verdict=v, charter_version="1",
                         engine_version="1", content_hash="h")  # fmt: skip


def review(pid: str, outcome: str) -> PostReviewed:
    return PostReviewed(event_id=f"r-{pid}-{outcome}", occurred_at=T0, producer="t",
                        review_id=f"r-{pid}", post_key=f"linkedin:{pid}", outcome=outcome,
                        moderator="m")  # fmt: skip


def eng(eid: str, kind: str, pid: str, days: int = 0, actor_id: str | None = None) -> EngagementReceived:  # fmt: skip
    return EngagementReceived(event_id=eid, occurred_at=T0 + timedelta(days=days), producer="t",
                              engagement=kind, post_key=f"linkedin:{pid}", network="linkedin",
                              post_id=pid, actor=actor_id or f"fan-{eid}",
                              actor_ambassador_id=actor_id)  # fmt: skip


def erased(aid: str, team: str | None = "Ventes") -> AmbassadorErased:
    return AmbassadorErased(event_id=f"erased:req-{aid}", occurred_at=T0, producer="t",
                            ambassador_id=aid, request_id=f"req-{aid}", requested_by="self",
                            team=team, networks=["linkedin"], existed=True)  # fmt: skip


BEFORE: list[Scored] = [
    reg("a1", "Ventes"), reg("a2", "Ventes"), reg("b1", "Tech"),
    post("p1", "a1", campaign="salon"), verdict("p1", "allow", "a1"),  # paid
    post("p2", "a1", hours=1), verdict("p2", "review", "a1"),  # held
    post("p3", "a1", hours=2), verdict("p3", "allow", "a1"),  # paid, taken down later
    post("q1", "a2", hours=3), verdict("q1", "allow", "a2"),
    post("t1", "b1", hours=4), verdict("t1", "allow", "b1"),
    eng("e1", "comment", "p1"), eng("e2", "like", "p1", actor_id="b1"),
    eng("e3", "share", "q1", actor_id="a1"),  # a1 engages a colleague's post
]  # fmt: skip
AFTER: list[Scored] = [
    eng("e4", "comment", "p1", days=3),  # engagement on an old post, another week
    eng("e5", "like", "p1", days=3, actor_id="b1"),  # colleague engagement
    review("p2", "approved"),  # held items released
    eng("e6", "click", "p2", days=3),
    review("p3", "taken_down"),  # points paid before the erasure reversed
    eng("e7", "comment", "q1", days=3),
]


def run(events: list[Scored]) -> Projection:
    proj = Projection(default_table(), TZ, keep_ledger=True)
    for e in events:
        proj.apply(e)
    return proj


def test_erasure_removes_the_person_and_keeps_team_and_organisation_totals() -> None:
    kept = run(BEFORE + AFTER)  # the same history without the erasure
    proj = run(BEFORE)
    assert proj.boards["all"]["a1"] > 0 and proj.badges["a1"]
    fx = proj.apply(erased("a1"))
    assert fx is not None and fx.erased == ["a1"]
    assert all("a1" not in board for board in proj.boards.values())  # every period, campaign
    assert "a1" not in proj.reach and "a1" not in proj.badges
    assert not [e for e in proj.ledger if e.ambassador_id == "a1"]
    tomb = proj.book.ambassador("a1")
    assert tomb.erased and tomb.team == "Ventes" and tomb.era == 1
    assert (tomb.counts, tomb.days, tomb.caps, tomb.recv, tomb.points, tomb.badges) == (
        {}, [], {}, {}, 0, []
    )  # fmt: skip
    # Later events on their posts: team and organisation move as before, nothing personal.
    for e in AFTER:
        fx = proj.apply(e)
        assert fx is not None and not fx.badges
        on_theirs = getattr(e, "post_key", "") != "linkedin:q1"
        assert all(c.ambassador_id is None for c in fx.credits if on_theirs)
        assert not [line for line in fx.ledger if line.ambassador_id == "a1"]
    assert all("a1" not in board for board in proj.boards.values())
    assert "a1" not in proj.reach and not [e for e in proj.ledger if e.ambassador_id == "a1"]
    assert proj.teams == kept.teams  # every period
    assert proj.org == kept.org  # reach and EMV of the organisation
    assert proj.boards["all"]["a2"] == kept.boards["all"]["a2"]
    assert proj.boards["all"]["b1"] == kept.boards["all"]["b1"]
    # The tombstone stayed small: only team and era.
    assert proj.book.ambassador("a1") == AmbassadorState("a1", team="Ventes", erased=True, era=1)


def test_a_new_registration_after_erasure_earns_again_but_old_posts_stay_anonymous() -> None:
    proj = run([*BEFORE, erased("a1"), reg("a1", "Tech", eid="reg-a1-again")])
    assert not proj.book.ambassador("a1").erased
    proj.apply(post("n1", "a1", hours=30))
    proj.apply(verdict("n1", "allow", "a1"))
    assert proj.boards["all"]["a1"] == 1000  # the new post only
    proj.apply(eng("e8", "comment", "p1", days=3))  # an old post: still anonymous
    assert proj.boards["all"]["a1"] == 1000
    assert {e.post_key for e in proj.ledger if e.ambassador_id == "a1"} == {"linkedin:n1"}
    assert proj.badges["a1"] == ["first-post"]


def test_erasure_is_idempotent_and_keeps_no_state_about_a_stranger() -> None:
    proj = run(BEFORE)
    proj.apply(erased("a1"))
    teams = orjson.dumps(proj.teams)
    assert proj.apply(erased("a1")) is None  # the same event again: exactly once
    assert orjson.dumps(proj.teams) == teams
    fx = proj.apply(erased("nobody", team=None).model_copy(update={"event_id": "erased:x"}))
    assert fx is not None and not fx.credits and proj.book.ambassador("nobody").erased


def line(**e: object) -> bytes:
    return orjson.dumps(e)


def test_offline_maps_raw_erasure_requests_at_their_place_in_the_log() -> None:
    at = "2026-11-20T09:00:00Z"
    text = "Retour sur notre journée portes ouvertes à Nantes : merci aux 300 visiteurs !"
    lines = [
        line(type="ambassador", ambassador_id="a", display_name="A", team="T",
             handles={"linkedin": "ann"}, consent=True),
        line(type="ambassador", ambassador_id="b", display_name="B", team="T",
             handles={"linkedin": "bob"}, consent=True),
        line(type="post", event_id="p1", network="linkedin", post_id="1", author="ann",
             text=text, kind="original", occurred_at=at),
        line(type="post", event_id="p2", network="linkedin", post_id="2", author="bob",
             text=text.replace("Nantes", "Brest"), kind="original", occurred_at=at),
        line(type="ambassador.erasure_requested", request_id="req-1", ambassador_id="a",
             requested_by="self", requested_at=at),
        line(type="like", event_id="l1", network="linkedin", post_id="1", actor="fan",
             occurred_at=at),  # on the erased person's post: the team still earns it
        line(type="post", event_id="p3", network="linkedin", post_id="3", author="ann",
             text=text.replace("Nantes", "Lyon"), kind="original", occurred_at=at),  # dropped
        line(type="like", event_id="l2", network="linkedin", post_id="2", actor="ann",
             occurred_at=at),  # the erased handle's engagement: dropped
    ]  # fmt: skip
    offline = OfflineScoring(default_table(), TZ)
    offline.feed(lines)
    report = offline.report()
    assert report["totals"] == {"b": 10}
    assert report["teams"] == {"T": 21}  # a's post (10) and the later like (1) stay in T
    assert set(report["ambassadors"]) == {"b"}
    assert report["counts"]["erased"] == 1 and report["counts"]["erased_dropped"] == 2


def test_registrations_and_erasures_move_people_in_and_out_of_team_members() -> None:
    """What a team's members set is told (a team's board is the organisation's restricted to
    its members): (ambassador, team left, team joined)."""
    proj = Projection(default_table(), TZ)

    def moved(e: Scored) -> tuple[str, str | None, str | None] | None:
        fx = proj.apply(e)
        assert fx is not None
        return fx.moved

    assert moved(reg("a1", "Ventes")) == ("a1", None, "Ventes")
    assert moved(reg("a1", "Ventes", eid="again")) == ("a1", "Ventes", "Ventes")
    assert moved(post("p1", "a1")) is None
    assert moved(reg("a1", "Tech", eid="moved")) == ("a1", "Ventes", "Tech")
    assert moved(erased("a1", team="Tech")) == ("a1", "Tech", None)
    # Registered again after the erasure: they had left every team already.
    assert moved(reg("a1", "RH", eid="back")) == ("a1", None, "RH")
    # Someone never registered (a late erasure of an unknown id) leaves no team.
    assert moved(erased("nobody", team=None)) == ("nobody", None, None)
