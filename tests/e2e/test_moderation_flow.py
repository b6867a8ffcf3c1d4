"""Moderation through the API, four real processes: the review queue, a moderator's approval
releasing points, a takedown reversing them, appeals, explanations, charter versions."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from redis import Redis

from portevoix.runtime.platform import Platform
from tests.e2e.helpers import amb, board, eventually, post

pytestmark = pytest.mark.e2e

HELD = "Document confidentiel, ne pas diffuser : nos résultats du troisième trimestre."
CLEAN = (
    "Retour sur notre journée portes ouvertes à Nantes : merci aux 300 visiteurs ! #collaborateur"
)


def _key(
    platform: Platform, token: str, role: str, subject: str, amb_id: str = ""
) -> dict[str, str]:
    digest = hashlib.sha256(token.encode()).hexdigest()
    with Redis.from_url(str(platform.redis_url)) as r:
        r.hset(f"pv:apikey:{digest}",
               mapping={"role": role, "subject": subject, "ambassador_id": amb_id})  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


def test_held_post_review_takedown_appeal_and_charters(
    platform: Platform, api: httpx.Client
) -> None:
    mod = _key(platform, "tok-mod", "moderator", "mod-ann")
    alice = _key(platform, "tok-alice", "ambassador", "alice", "alice")
    bob = _key(platform, "tok-bob", "ambassador", "bob", "bob")
    r = api.post("/v1/events", json=[
        amb("alice", "Alice Martin", "Ventes", {"linkedin": "alice-m"}),
        amb("bob", "Bob Durand", "Tech", {"linkedin": "bob-d"}),
    ])  # fmt: skip
    assert r.status_code == 202
    r = api.post("/v1/events", json=[post("m1", "mp1", "alice-m", HELD),
                                     post("m2", "mp2", "bob-d", CLEAN)])  # fmt: skip
    assert r.status_code == 202

    # The held post waits in the queue, with its explanation; filters narrow it.
    def queued(**params: str) -> list[str]:
        q = api.get("/v1/moderation/queue", params=params, headers=mod)
        assert q.status_code == 200, q.text
        return [i["post_key"] for i in q.json()["items"]]

    eventually(lambda: queued() == ["linkedin:mp1"] or None)
    assert queued(principle="correction", team="Ventes") == ["linkedin:mp1"]
    assert queued(team="Tech") == []
    item = api.get("/v1/moderation/queue", headers=mod).json()["items"][0]
    assert item["text"] == HELD and item["findings"][0]["message"]["en"]
    assert api.get("/v1/moderation/queue", headers=alice).status_code == 403
    eventually(lambda: board(api).get("bob") == 10 or None)
    assert board(api).get("alice", 0) == 0  # held: no points yet

    # The author reads why, in her language, naming the principle; others may not.
    detail = api.get("/v1/posts/linkedin:mp1", headers={**alice, "Accept-Language": "en"})
    assert detail.status_code == 200, detail.text
    d = detail.json()
    assert d["status"] == "held" and d["in_review_queue"]
    assert d["explanation"][0]["principle"] == "correction" and d["lang"] == "en"
    assert d["explanation"][0]["message"] == d["decision"]["findings"][0]["message"]["en"]
    assert api.get("/v1/posts/linkedin:mp1", headers=bob).status_code == 403

    # Appeals: only the author, recorded in the trail.
    body = {"message": "These figures were published last week."}
    assert api.post("/v1/moderation/posts/linkedin:mp1/appeals", json=body,
                    headers=bob).status_code == 403  # fmt: skip
    r = api.post("/v1/moderation/posts/linkedin:mp1/appeals", json=body, headers=alice)
    assert r.status_code == 202 and r.json()["status"] == "accepted", r.text

    def actions(pk: str) -> list[str]:
        t = api.get(f"/v1/moderation/posts/{pk}/audit", headers=mod)
        return [e["action"] for e in t.json()["items"]]

    eventually(lambda: actions("linkedin:mp1") == ["held", "appealed"] or None)

    # A moderator approves: the held points reach the board; the queue empties.
    r = api.post("/v1/moderation/posts/linkedin:mp1/review",
                 json={"outcome": "approved", "note": "figures are public"}, headers=mod)  # fmt: skip
    assert r.status_code == 202, r.text
    eventually(lambda: board(api).get("alice") == 10 or None)
    eventually(lambda: queued() == [] or None)
    trail = api.get("/v1/moderation/posts/linkedin:mp1/audit", headers=mod).json()["items"]
    assert trail[-1]["action"] == "approved" and trail[-1]["actor"] == "mod-ann"
    r = api.post("/v1/moderation/posts/linkedin:mp1/review", json={"outcome": "rejected"},
                 headers=mod)  # fmt: skip
    assert r.status_code == 409  # no longer waiting

    # A takedown of a published post reverses its points.
    r = api.post("/v1/moderation/posts/linkedin:mp2/takedown", json={"note": "off-topic"},
                 headers=mod)  # fmt: skip
    assert r.status_code == 202, r.text
    eventually(lambda: board(api).get("bob", 0) == 0 or None)
    stats = {s["rule"]: s for s in api.get("/v1/moderation/rules", headers=mod).json()}
    assert stats["_missed"]["overturns"] == 1
    assert any(
        s["overturns"] == 1 and s["fires"] >= 1 for r_, s in stats.items() if r_ != "_missed"
    )
    everything = api.get("/v1/moderation/audit", headers=mod).json()["items"]
    assert [e["action"] for e in everything][:3] == ["taken_down", "approved", "appealed"]
    metrics = httpx.get(platform.metrics_url("moderation")).text
    assert 'pv_moderation_overturns_total{rule="_missed"} 1.0' in metrics

    # Charters: a broken one is a 422 naming the fault; a valid one is hot-reloaded.
    from portevoix_moderation.charter.loader import DEFAULT_CHARTER_PATH

    shipped = DEFAULT_CHARTER_PATH.read_text()
    broken = shipped.replace("principle: correction", "principle: bravado", 1)
    yaml = {"Content-Type": "application/yaml"}
    r = api.post("/v1/charters", content=broken.encode(), headers=yaml)
    assert r.status_code == 422 and "bravado" in r.json()["detail"], r.text
    assert r.json()["rule"]  # names the rule at fault
    r = api.post("/v1/charters", content=broken.encode(), headers={**yaml, **alice})
    assert r.status_code == 403
    current = api.get("/v1/charters/active")
    assert current.status_code == 404  # the shipped charter applies until one is activated
    v2 = shipped.replace('version: "2026.11.1"', 'version: "2099.1"')
    r = api.post("/v1/charters", content=v2.encode(), headers=yaml)
    assert r.status_code == 202, r.text
    eventually(lambda: api.get("/v1/charters").json()["active"] == "2099.1" or None)
    r = api.post("/v1/events", json=[post("m3", "mp3", "bob-d", HELD)])
    eventually(lambda: api.get("/v1/posts/linkedin:mp3", headers=mod).status_code == 200 or None)
    assert api.get("/v1/posts/linkedin:mp3", headers=mod).json()["decision"][
        "charter_version"] == "2099.1"  # fmt: skip
