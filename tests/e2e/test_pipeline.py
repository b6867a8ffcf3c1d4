"""Ingest → moderation → scoring → API, as four real processes over real NATS and Valkey."""

from __future__ import annotations

import asyncio
import time

import httpx
import nats
import orjson
import pytest
from redis import Redis

from portevoix.contracts.readmodels import decision_key
from portevoix.runtime.platform import Platform
from tests.e2e.helpers import act, amb, board, eventually, post, settle

pytestmark = pytest.mark.e2e

CLEAN_FR = (
    "Fière de présenter notre nouvelle usine de Lyon ! Venez découvrir nos métiers. #collaboratrice"
)
# Distinct texts: identical posts by many ambassadors are a burst the charter sends to review.
CLEAN = [
    "Retour sur notre journée portes ouvertes à Nantes : merci aux 300 visiteurs ! #collaborateur",
    "Our engineering team just shipped the new mobile app. Proud of this launch! #employee",
    "Nous recrutons des alternants en logistique à Rennes, parlez-en autour de vous #salarié",
    "Great panel today on sustainable packaging with our partners in Lille. #employee",
    "Belle victoire de notre équipe au challenge inter-entreprises de course à pied #collaboratrice",
    "Merci à nos clients pour leur confiance cette année, rendez-vous au salon de Lyon #collaborateur",
]
CLEAN_RELAY = "Notre rapport RSE 2026 est en ligne, bonne lecture #collaborateur"
INSULT = "Ce client est un vrai connard, je ne le supporte plus."
CONFIDENTIAL = "Document confidentiel, ne pas diffuser : nos résultats du troisième trimestre."


def test_activity_flows_to_an_exact_leaderboard(platform: Platform, api: httpx.Client) -> None:
    ambassadors = [
        amb("alice", "Alice Martin", "Ventes", {"linkedin": "alice-m", "x": "alice_x"}),
        amb("bob", "Bob Durand", "Tech", {"linkedin": "bob-d"}),
        amb("carol", "Carol Petit", "Tech", {"linkedin": "carol-p"}),
        amb("dave", "Dave Roux", "RH", {"linkedin": "dave-r"}, consent=False),
        amb("eve", "Ève Leroy", "Ventes", {"linkedin": "eve-l"}),
    ]
    r = api.post("/v1/events", json=ambassadors)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 5

    # Engagement before its post, as NDJSON: kept and applied when the post arrives.
    early = act("like", "e-early", "p7", "ext9")
    r = api.post(
        "/v1/events", content=orjson.dumps(early) + b"\n",
        headers={"Content-Type": "application/x-ndjson"},
    )  # fmt: skip
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text

    events = [
        post("e1", "p1", "@Alice-M", CLEAN_FR),  # 10, handle matched case-insensitively
        post("e2", "p2", "bob-d", CLEAN_RELAY, kind="relay"),  # 4
        post("e3", "p3", "carol-p", INSULT),  # block: never paid
        post("e4", "p4", "carol-p", CONFIDENTIAL),  # review: held
        post("e5", "p5", "dave-r", CLEAN[0]),  # no consent: not scored
        post("e6", "p6", "zed-z", CLEAN[1]),  # unknown handle: parked
        post("e7", "p7", "eve-l", CLEAN[2]),  # 10 (+1 early like)
        act("like", "e10", "p1", "bob-d"),  # 1 x 0.5: engagement by a colleague
        act("like", "e11", "p1", "ext1"),  # 1
        act("comment", "e12", "p1", "ext2", text="Bravo !"),  # 5
        act("share", "e13", "p1", "ext3"),  # 3
        act("like", "e14", "p1", "alice-m"),  # self-engagement: 0
        act("comment", "e15", "p2", "alice-m", text="Super"),  # 5 x 0.5 for bob (colleague)
        act("like", "e16", "p3", "ext4"),  # blocked post: 0
        act("comment", "e17", "p4", "ext5", text="?"),  # held
    ]
    r = api.post("/v1/events", json=events)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == len(events)

    settle(api, {"alice": 19.5, "bob": 6.5, "eve": 11})

    # The parked post is replayed when its author registers.
    r = api.post("/v1/events", json=[amb("zed", "Zed Zeller", "Tech", {"linkedin": "zed-z"})])
    assert r.status_code == 202
    settle(api, {"alice": 19.5, "bob": 6.5, "eve": 11, "zed": 10})

    r = api.get("/v1/leaderboards/all-time")
    items = r.json()["items"]
    assert [(i["rank"], i["ambassador_id"], i["display_name"], i["team"]) for i in items] == [
        (1, "alice", "Alice Martin", "Ventes"),
        (2, "eve", "Ève Leroy", "Ventes"),
        (3, "zed", "Zed Zeller", "Tech"),
        (4, "bob", "Bob Durand", "Tech"),
    ]
    # Points count in the period of the action (2026-11-20, organisation zone).
    r = api.get("/v1/leaderboards/day", params={"date": "2026-11-20"})
    assert {i["ambassador_id"]: i["points"] for i in r.json()["items"]}["alice"] == 19.5

    # Decisions are stored with their explanation.
    with Redis.from_url(str(platform.redis_url)) as redis:
        blocked = orjson.loads(redis.get(decision_key("linkedin:p3")) or b"{}")
        held = orjson.loads(redis.get(decision_key("linkedin:p4")) or b"{}")
    assert blocked["verdict"] == "block"
    assert any(f["principle"] == "responsabilite" for f in blocked["findings"])
    assert held["verdict"] == "review"
    assert any(f["principle"] == "correction" for f in held["findings"])


def test_duplicates_and_redeliveries_are_not_counted_twice(
    platform: Platform, api: httpx.Client
) -> None:
    api.post("/v1/events", json=[amb("fred", "Fred", "Ops", {"x": "fred"})])
    events = [post("d1", "dp1", "fred", CLEAN[3], network="x")] + [
        act("like", f"dl{i}", "dp1", f"fan{i}", network="x") for i in range(20)
    ]
    r = api.post("/v1/events", json=events)
    assert r.json()["accepted"] == 21
    eventually(lambda: board(api).get("fred") == 30 or None)

    # 1. The same events again over HTTP: JetStream recognises the Nats-Msg-Id.
    r = api.post("/v1/events", json=events)
    assert r.status_code == 202
    assert r.json()["duplicates"] == 21 and r.json()["accepted"] == 0

    # 2. Past JetStream's dedupe: the same domain events published again under other msg ids
    #    (what a producer retry after the window, or a replay, looks like to scoring).
    async def replay() -> None:
        nc = await nats.connect(str(platform.nats_url))
        js = nc.jetstream()
        for seq in range(1, (await js.stream_info("PV_EVENTS")).state.last_seq + 1):
            msg = await js.get_msg("PV_EVENTS", seq)
            body = orjson.loads(msg.data)
            if body.get("post_key") == "x:dp1":
                await js.publish(msg.subject, msg.data, headers={"Nats-Msg-Id": f"again-{seq}"})
        await nc.close()

    asyncio.run(replay())
    time.sleep(1.5)
    assert board(api)["fred"] == 30

    # 3. A crash mid-stream: scoring is killed (SIGKILL) while a burst is in flight, so some
    #    messages are processed but never acked and come back; nothing is counted twice.
    burst = [act("like", f"bl{i}", "dp1", f"crowd{i}", network="x") for i in range(3000)]
    r = api.post("/v1/events", json=burst)
    assert r.json()["accepted"] == 3000
    time.sleep(0.3)
    platform.children["scoring"].kill()
    platform.restart("scoring")
    settle(api, {**board(api), "fred": 30 + 3000}, timeout_s=60)


def test_bad_messages_are_dead_lettered_and_the_pipeline_keeps_flowing(
    platform: Platform, api: httpx.Client
) -> None:
    api.post("/v1/events", json=[amb("gina", "Gina", "Ops", {"mastodon": "gina"})])
    api.post("/v1/events", json=[post("g1", "gp1", "gina", CLEAN[4], network="mastodon")])

    async def poison() -> None:
        nc = await nats.connect(str(platform.nats_url))
        js = nc.jetstream()
        await js.publish("pv.raw.v1", b"{this is not json", headers={"Nats-Msg-Id": "bad-1"})
        bad = act("like", "bad-2", "gp1", "x1", network="mastodon")
        del bad["actor"]
        await js.publish("pv.raw.v1", orjson.dumps(bad), headers={"Nats-Msg-Id": "bad-2"})
        good = act("comment", "good-1", "gp1", "x2", network="mastodon", text="Top")
        await js.publish("pv.raw.v1", orjson.dumps(good), headers={"Nats-Msg-Id": "good-1"})
        await nc.close()

    asyncio.run(poison())
    eventually(lambda: board(api).get("gina") == 15 or None)

    async def dead_letters() -> list[dict]:
        nc = await nats.connect(str(platform.nats_url))
        js = nc.jetstream()
        n = (await js.stream_info("PV_DLQ")).state.last_seq
        out = [orjson.loads((await js.get_msg("PV_DLQ", s)).data) for s in range(1, n + 1)]
        await nc.close()
        return out

    letters = eventually(lambda: [x for x in asyncio.run(dead_letters())
                                  if str(x["original_msg_id"]).startswith("bad-")] or None)  # fmt: skip
    by_id = {x["original_msg_id"]: x for x in letters}
    assert by_id["bad-1"]["reason_code"] == "invalid_json"
    assert by_id["bad-1"]["payload"] == "{this is not json"
    assert by_id["bad-2"]["reason_code"] == "invalid_event"
    assert "actor" in by_id["bad-2"]["reason"]
    assert by_id["bad-2"]["service"] == "ingest"
    for name in ("ingest", "moderation", "scoring", "api"):
        assert platform.children[name].alive(), f"{name} died"


def test_http_errors_are_problem_json(platform: Platform) -> None:
    url = f"{platform.api_url}/v1/events"
    r = httpx.post(url, json=[])
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = httpx.post(url, json=[], headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["status"] == 401
    auth = {"Authorization": f"Bearer {platform.admin_token}"}
    bad = post("x1", "xp1", "someone", "hello")
    bad["kind"] = "story"
    r = httpx.post(url, json=bad, headers=auth)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert "kind" in problem["detail"]
    assert problem["results"][0]["errors"][0]["field"] == "kind"
    r = httpx.post(url, content=b"{nope", headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["type"].endswith("invalid-json")
    # A mixed batch: per-item results, the good one goes through.
    ok = post("x2", "xp2", "someone", "hello")
    r = httpx.post(url, json=[ok, bad], headers=auth)
    assert r.status_code == 202
    assert [i["status"] for i in r.json()["results"]] == ["accepted", "rejected"]
    r = httpx.get(f"{platform.api_url}/v1/leaderboards/decade")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
