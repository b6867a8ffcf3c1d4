"""Contract tests of the gateway's own resources over real HTTP (uvicorn on loopback) with real
NATS (JetStream) and Valkey: API keys, leaderboard ETags, the analytics/idea-box projection fed
by domain events on `pv.evt.>`, and the live SSE feed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import nats
import orjson
import pytest
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis

from portevoix.contracts.readmodels import ambassador_key, board_key
from portevoix.runtime.publisher import EventPublisher, Outgoing
from tests.e2e.api_harness import ADMIN, RunningApi, api_settings, on_loopback
from tests.infra import Server

pytestmark = pytest.mark.e2e
DAY = "2026-11-20"


def ev(type_: str, event_id: str, at: str = f"{DAY}T09:00:00Z", **fields: Any) -> dict[str, Any]:
    return {"type": type_, "event_id": event_id, "occurred_at": at, "producer": "test",
            "schema_version": 1, **fields}  # fmt: skip


def registered(aid: str, team: str, consent: bool = True) -> dict[str, Any]:
    return ev("ambassador.registered", f"reg-{aid}-{consent}", ambassador_id=aid,
              display_name=aid.upper(), team=team, handles={"linkedin": aid}, consent=consent)  # fmt: skip


def posted(eid: str, pid: str, aid: str, text: str, tags: list[str], network: str = "linkedin",
           **extra: Any) -> dict[str, Any]:  # fmt: skip
    return ev("post.received", eid, post_key=f"{network}:{pid}", network=network, post_id=pid,
              ambassador_id=aid, author=aid, text=text, kind="original", hashtags=tags, **extra)  # fmt: skip


def engaged(eid: str, pid: str, kind: str = "like", actor_aid: str | None = None,
            network: str = "linkedin") -> dict[str, Any]:  # fmt: skip
    return ev("engagement.received", eid, engagement=kind, post_key=f"{network}:{pid}",
              network=network, post_id=pid, actor=f"fan-{eid}", actor_ambassador_id=actor_aid)  # fmt: skip


def moderated(eid: str, pid: str, verdict: str, findings: list[tuple[str, str]]) -> dict[str, Any]:
    return ev("post.moderated", eid, decision_id=f"d-{eid}", post_key=f"linkedin:{pid}",
              post_event_id=pid, ambassador_id="?", verdict=verdict, charter_version="1",
              engine_version="1", content_hash="h",
              findings=[{"rule": f"r-{p}", "principle": p, "verdict": v} for p, v in findings])  # fmt: skip


class Bus:
    def __init__(self, nc: NatsClient) -> None:
        self.publisher = EventPublisher(nc.jetstream())

    async def send(self, *events: dict[str, Any], msg_id_suffix: str = "") -> None:
        await self.publisher.publish_many(
            [Outgoing(f"pv.evt.{e['type']}", e["event_id"] + msg_id_suffix, orjson.dumps(e))
             for e in events]
        )  # fmt: skip


@pytest.fixture
async def api(nats_server: Server, redis_server: Server) -> AsyncIterator[RunningApi]:
    settings = api_settings(
        nats_server.url, redis_server.url, feed_heartbeat_s=0.3, feed_max_seconds=30,
        feed_max_clients=2, batch_timeout_s=0.02, response_cache_ms=0,
    )  # fmt: skip
    async with on_loopback(settings) as running:
        yield running


@pytest.fixture
async def bus(nats_server: Server) -> AsyncIterator[Bus]:
    nc = await nats.connect(nats_server.url)
    yield Bus(nc)
    await nc.close()


async def eventually(check: Any, timeout_s: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached in {timeout_s}s; last: {last!r}")


# -- API keys ---------------------------------------------------------------------------------
async def test_api_key_lifecycle(api: RunningApi) -> None:
    admin = api.auth(ADMIN)
    r = await api.client.post(
        "/v1/api-keys", json={"role": "ambassador", "ambassador_id": "a-1", "label": "portal"},
        headers=admin,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    created = r.json()
    token, key_id = created["token"], created["id"]
    assert r.headers["location"] == f"/v1/api-keys/{key_id}"
    assert created["role"] == "ambassador" and created["ambassador_id"] == "a-1"
    # The token works, for its own data only.
    me = api.auth(token)
    assert (await api.client.get("/v1/ambassadors/a-1/score", headers=me)).status_code == 404
    assert (await api.client.get("/v1/ambassadors/a-2/score", headers=me)).status_code == 403
    # Listed and readable without any secret.
    listing = await api.client.get("/v1/api-keys", headers=admin)
    assert [k["id"] for k in listing.json()["items"]] == [key_id]
    assert token not in listing.text and "digest" not in listing.text
    one = await api.client.get(f"/v1/api-keys/{key_id}", headers=admin)
    assert one.json() == {k: v for k, v in created.items() if k != "token"}
    # Role filter and pagination.
    for _ in range(3):
        assert (await api.client.post("/v1/api-keys", json={"role": "service"},
                                      headers=admin)).status_code == 201  # fmt: skip
    page = (await api.client.get("/v1/api-keys?role=service&limit=2", headers=admin)).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = await api.client.get(
        "/v1/api-keys", params={"role": "service", "limit": 2, "cursor": page["next_cursor"]},
        headers=admin,
    )  # fmt: skip
    assert len(rest.json()["items"]) == 1 and rest.json()["next_cursor"] is None
    # Revoked: the token is refused at once; a second revoke is a 404.
    assert (await api.client.delete(f"/v1/api-keys/{key_id}", headers=admin)).status_code == 204
    r = await api.client.get("/v1/ambassadors/a-1/score", headers=me)
    assert r.status_code == 401
    assert (await api.client.delete(f"/v1/api-keys/{key_id}", headers=admin)).status_code == 404


async def test_api_key_rules(api: RunningApi) -> None:
    admin = api.auth(ADMIN)
    for body in ({"role": "ambassador"}, {"role": "moderator", "ambassador_id": "a-1"},
                 {"role": "root"}):  # fmt: skip
        r = await api.client.post("/v1/api-keys", json=body, headers=admin)
        assert r.status_code == 422, body
        assert r.headers["content-type"] == "application/problem+json"
    service = await api.new_key("service")  # a service may not mint keys (escalation)
    r = await api.client.post("/v1/api-keys", json={"role": "admin"}, headers=api.auth(service))
    assert r.status_code == 403


# -- ETag on leaderboards ---------------------------------------------------------------------
async def test_leaderboard_etag_and_304(api: RunningApi, redis: Redis) -> None:
    await redis.zadd(board_key("1", "all"), {"a-1": 1500, "a-2": 900})
    await redis.hset(ambassador_key("a-1"), mapping={"display_name": "A", "team": "T"})
    admin = api.auth(ADMIN)
    first = await api.client.get("/v1/leaderboards/all-time", headers=admin)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    again = await api.client.get("/v1/leaderboards/all-time", headers={**admin,
                                                                       "If-None-Match": etag})  # fmt: skip
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    # Another page is another representation; a change on the board is a new tag.
    other = await api.client.get("/v1/leaderboards/all-time?limit=1", headers=admin)
    assert other.headers["etag"] != etag
    await redis.zincrby(board_key("1", "all"), 700, "a-2")
    changed = await api.client.get("/v1/leaderboards/all-time", headers={**admin,
                                                                         "If-None-Match": etag})  # fmt: skip
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["items"][0]["ambassador_id"] == "a-2"
    # Routes outside the opted-in prefixes are not tagged.
    assert "etag" not in (await api.client.get("/v1/ideas", headers=admin)).headers


async def test_leaderboard_micro_cache_still_authenticates(
    nats_server: Server, redis_server: Server, redis: Redis
) -> None:
    settings = api_settings(
        nats_server.url, redis_server.url, response_cache_ms=60_000, analytics_projection=False,
        rate_limits={"ambassador": 3, "admin": 1000},
    )  # fmt: skip
    await redis.zadd(board_key("1", "all"), {"a-1": 100})
    async with on_loopback(settings) as api:
        admin = api.auth(ADMIN)
        first = await api.client.get("/v1/leaderboards/all-time", headers=admin)
        await redis.zadd(board_key("1", "all"), {"a-2": 5000})
        cached = await api.client.get("/v1/leaderboards/all-time", headers=admin)
        assert cached.json() == first.json()  # served from the cache: a-2 not there yet
        assert cached.headers["etag"] == first.headers["etag"]
        fresh = await api.client.get("/v1/leaderboards/all-time?limit=10", headers=admin)
        assert fresh.json()["items"][0]["ambassador_id"] == "a-2"  # another URL, not cached
        # A hit still needs a valid token, and counts against the caller's rate limit.
        assert (await api.client.get("/v1/leaderboards/all-time")).status_code == 401
        bad = await api.client.get("/v1/leaderboards/all-time", headers=api.auth("nope"))
        assert bad.status_code == 401 and bad.headers["content-type"] == "application/problem+json"
        key = await api.new_key("ambassador", "a-1")
        codes = [
            (await api.client.get("/v1/leaderboards/all-time", headers=api.auth(key))).status_code
            for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        # Revocation is immediate even for cached answers.
        keys = (await api.client.get("/v1/api-keys", headers=admin)).json()["items"]
        await api.client.delete(f"/v1/api-keys/{keys[0]['id']}", headers=admin)
        r = await api.client.get("/v1/leaderboards/all-time", headers=api.auth(key))
        assert r.status_code == 401


# -- analytics and idea box -------------------------------------------------------------------
async def analytics(api: RunningApi) -> dict[str, Any]:
    r = await api.client.get(
        "/v1/analytics", params={"from": "2026-11-19", "to": "2026-11-21"},
        headers=api.auth(ADMIN),
    )  # fmt: skip
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def ideas(api: RunningApi) -> list[dict[str, Any]]:
    r = await api.client.get("/v1/ideas", headers=api.auth(ADMIN))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_analytics_and_idea_box_from_domain_events(api: RunningApi, bus: Bus) -> None:
    await bus.send(registered("a1", "Ventes"), registered("a2", "Tech"), registered("a3", "Tech"),
                   registered("a4", "RH", consent=False))  # fmt: skip
    await bus.send(
        posted("p1", "p1", "a1", "Et si on ouvrait l'atelier aux écoles ? #Idée", ["Idée", "RSE"]),
        posted("p2", "p2", "a2", "Nouvelle appli mobile #ideas #tech", ["ideas", "tech"]),
        posted("p3", "p3", "a2", "Salon de Lyon", ["RSE"], network="x"),
        posted("p4", "p4", "a1", "An idea: bike racks #idea", ["idea"],
               at="2026-11-21T00:30:00+01:00"),
        engaged("e1", "p1"), engaged("e2", "p1", "comment"), engaged("e3", "p1", "share"),
        engaged("e4", "p2", "like", actor_aid="a3"), engaged("e5", "p3", "like", network="x"),
        moderated("m1", "p1", "allow", []),
        moderated("m2", "p2", "nudge", [("utilité", "nudge"), ("utilité", "allow")]),
        moderated("m3", "p4", "review", [("circonspection", "review"), ("modestie", "nudge")]),
    )  # fmt: skip

    async def settled() -> dict[str, Any] | None:
        a = await analytics(api)
        return a if a["engagement"]["total"] == 5 and a["verdicts"]["decisions"] == 3 else None

    a = await eventually(settled)
    assert a["participation"] == {"registered": 3, "active": 3, "rate": 1.0}
    assert a["posts"] == {"total": 4, "by_network": {"linkedin": 3, "x": 1},
                          "by_team": {"Tech": 2, "Ventes": 2}, "by_kind": {"original": 4}}  # fmt: skip
    assert a["engagement"]["by_team"] == {"Tech": 2, "Ventes": 3}
    assert a["engagement"]["by_kind"] == {"comment": 1, "like": 3, "share": 1}
    # p4 happened at 00:30 Paris time on the 21st: its local day.
    days = {d["date"]: d for d in a["days"]}
    assert days["2026-11-20"]["posts"] == 3 and days["2026-11-21"]["posts"] == 1
    assert a["top_hashtags"][0] == {"hashtag": "rse", "posts": 2}
    assert a["verdicts"]["by_verdict"] == {"allow": 1, "nudge": 1, "review": 1}
    assert a["verdicts"]["by_principle"] == {
        "circonspection": {"review": 1}, "modestie": {"nudge": 1}, "utilité": {"nudge": 1},
    }  # fmt: skip
    # Ideas: p4 is held (review) so not shown; p1 (3 engagements) before p2 (1).
    box = await ideas(api)
    assert [i["post_key"] for i in box] == ["linkedin:p1", "linkedin:p2"]
    assert box[0]["engagement"] == {"total": 3, "like": 1, "comment": 1, "share": 1}
    assert box[0]["team"] == "Ventes" and box[0]["text"].startswith("Et si")

    # Idempotent per event id: the same events re-sent under new message ids change nothing.
    await bus.send(engaged("e1", "p1"), posted("p3", "p3", "a2", "Salon", ["RSE"], network="x"),
                   msg_id_suffix="-again")  # fmt: skip
    # A moderator approves p4; a like makes p2 overtake? No: p2 gets 3 more and leads.
    await bus.send(
        ev("post.reviewed", "rv1", review_id="rv1", post_key="linkedin:p4", outcome="approved",
           moderator="m"),
        engaged("e6", "p2"), engaged("e7", "p2"), engaged("e8", "p2"),
    )  # fmt: skip

    async def reordered() -> list[dict[str, Any]] | None:
        box = await ideas(api)
        return box if [i["post_key"] for i in box][:1] == ["linkedin:p2"] else None

    box = await eventually(reordered)
    assert [i["post_key"] for i in box] == ["linkedin:p2", "linkedin:p1", "linkedin:p4"]
    a = await analytics(api)
    assert a["engagement"]["total"] == 8 and a["posts"]["total"] == 4
    assert a["verdicts"]["reviews"] == {"approved": 1}

    # Erasure: the ambassador's ideas leave the box; anonymous counts stay.
    await bus.send(ev("ambassador.erased", "er1", ambassador_id="a1", request_id="x",
                      requested_by="admin", existed=True))  # fmt: skip

    async def erased() -> list[dict[str, Any]] | None:
        box = await ideas(api)
        return box if all(i["ambassador_id"] != "a1" for i in box) else None

    assert [i["post_key"] for i in await eventually(erased)] == ["linkedin:p2"]
    a = await analytics(api)
    assert a["posts"]["total"] == 4 and a["participation"]["registered"] == 2


async def test_analytics_period_rules(api: RunningApi) -> None:
    admin = api.auth(ADMIN)
    r = await api.client.get("/v1/analytics?from=2026-11-21&to=2026-11-01", headers=admin)
    assert r.status_code == 422
    r = await api.client.get("/v1/analytics?from=2024-01-01&to=2026-11-01", headers=admin)
    assert r.status_code == 422
    r = await api.client.get("/v1/analytics", headers=admin)
    assert r.status_code == 200 and len(r.json()["days"]) == 30


# -- live feed (SSE) --------------------------------------------------------------------------
async def read_events(
    api: RunningApi, n: int, headers: dict[str, str], **params: str
) -> tuple[list[dict[str, Any]], int]:
    """The first `n` events of a feed connection, and the heartbeats seen meanwhile."""
    events: list[dict[str, Any]] = []
    beats = 0
    async with api.client.stream("GET", "/v1/feed", headers=headers, params=params) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        current: dict[str, Any] = {}
        async for line in resp.aiter_lines():
            if line == ": keepalive":
                beats += 1
            elif line.startswith(("id: ", "event: ", "data: ")):
                name, _, value = line.partition(": ")
                current[name] = value
            elif line == "" and current:
                events.append({**current, "data": orjson.loads(current["data"])})
                current = {}
                if len(events) == n:
                    break
    return events, beats


async def test_feed_streams_filters_and_resumes(api: RunningApi, bus: Bus) -> None:
    admin = api.auth(ADMIN)
    moderator = api.auth(await api.new_key("moderator"))
    reader = asyncio.create_task(read_events(api, 2, moderator, types="post.moderated"))
    await asyncio.sleep(0.8)  # subscribed, and idle long enough for heartbeats
    await bus.send(posted("f1", "f1", "a1", "x", []), moderated("fm1", "f1", "review", []),
                   posted("f2", "f2", "a1", "y", []), moderated("fm2", "f2", "allow", []))  # fmt: skip
    events, beats = await asyncio.wait_for(reader, 10)
    assert beats >= 1
    assert [e["event"] for e in events] == ["post.moderated", "post.moderated"]
    assert [e["data"]["event_id"] for e in events] == ["fm1", "fm2"]
    first_id = events[0]["id"]
    # Resume after the first: the next matching event, then everything from there.
    resumed, _ = await asyncio.wait_for(read_events(api, 1, admin, types="post.moderated",
                                                    last_event_id=first_id), 10)  # fmt: skip
    assert resumed[0]["data"]["event_id"] == "fm2"

    # The header form, unfiltered: everything after the first post.
    async def from_header() -> tuple[list[dict[str, Any]], int]:
        headers = {**admin, "Last-Event-ID": str(int(first_id) - 1)}
        return await read_events(api, 3, headers)

    everything, _ = await asyncio.wait_for(from_header(), 10)
    assert [e["data"]["event_id"] for e in everything] == ["fm1", "f2", "fm2"]
    assert all(int(e["id"]) > 0 for e in everything)


async def test_feed_access_and_bounds(api: RunningApi) -> None:
    for role in ("ambassador", "service"):
        token = await api.new_key(role, "a-1" if role == "ambassador" else None)
        r = await api.client.get("/v1/feed", headers=api.auth(token))
        assert r.status_code == 403
    assert (await api.client.get("/v1/feed")).status_code == 401
    admin = api.auth(ADMIN)
    r = await api.client.get("/v1/feed?types=post.moderated,nope.nope", headers=admin)
    assert r.status_code == 422 and "nope.nope" in r.json()["detail"]
    r = await api.client.get("/v1/feed", headers={**admin, "Last-Event-ID": "abc"})
    assert r.status_code == 422
    # At most `feed_max_clients` (2 here) at once: the third is a 503 with Retry-After.
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            resp = await stack.enter_async_context(
                api.client.stream("GET", "/v1/feed", headers=admin)
            )
            assert resp.status_code == 200
        r = await api.client.get("/v1/feed", headers=admin)
        assert r.status_code == 503 and r.headers["retry-after"]
    await asyncio.sleep(0.3)  # the two streams closed: room again

    async def admitted() -> bool:
        async with api.client.stream("GET", "/v1/feed", headers=admin) as resp:
            return resp.status_code == 200

    assert await eventually(admitted, 5)
