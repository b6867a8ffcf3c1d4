"""The API's analytics projection against real Valkey and NATS: the batch script leaves exactly
the state (values, hash field order, TTLs) and outcomes of the per-event steps it replaced, for
any batching; the projector counts every outcome once per event, terminates what it cannot use,
and naks with a growing delay while Redis refuses the batch."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from portevoix.contracts.readmodels import ANALYTICS_DAY, ANALYTICS_POST, ANALYTICS_SEEN
from portevoix.runtime.publisher import EventPublisher, Outgoing
from portevoix.runtime.redis import connect_redis, text
from portevoix.runtime.streams import EVENTS, ensure_streams
from portevoix_api.projections.analytics import SUBJECTS, AnalyticsPlanner, Step
from portevoix_api.projections.projector import DURABLE, AnalyticsProjector
from portevoix_api.projections.store import AnalyticsStore
from portevoix_api.settings import ApiSettings
from tests.infra import Server, start_redis

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")
PLANNER = AnalyticsPlanner(PARIS, ["idée", "ideas"], retention_days=400)

# The per-event steps the batch script stands for (store.py before batching), one call each:
# the reference the batch must match.
_SEEN = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
"""
_SYNC_IDEA = """
local function sync_idea(post, ideas, post_key)
  if redis.call('HGET', post, 'idea') == '1' and redis.call('HGET', post, 'hidden') ~= '1' then
    redis.call('ZADD', ideas, tonumber(redis.call('HGET', post, 'eng') or '0'), post_key)
  else
    redis.call('ZREM', ideas, post_key)
  end
end
"""
_MARK_ACTIVE = """
local function mark_active(registered, last_active, who, day)
  if redis.call('SISMEMBER', registered, who) == 1 then
    redis.call('ZADD', last_active, 'GT', tonumber((string.gsub(day, '-', ''))), who)
  end
end
"""
PER_EVENT: dict[str, str] = {
    "post": _SYNC_IDEA + _MARK_ACTIVE + _SEEN + """
if redis.call('HEXISTS', KEYS[2], 'day') == 1 then return 2 end
local team = redis.call('HGET', KEYS[3], 'team') or '(none)'
redis.call('HSET', KEYS[2], 'team', team, 'network', ARGV[4], 'day', ARGV[6], 'idea', ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[2])
for _, f in ipairs({'posts', 'posts:net:' .. ARGV[4], 'posts:team:' .. team,
                    'posts:kind:' .. ARGV[5]}) do
  redis.call('HINCRBY', KEYS[4], f, 1)
end
redis.call('EXPIRE', KEYS[4], ARGV[2])
redis.call('SADD', KEYS[5], ARGV[9])
redis.call('EXPIRE', KEYS[5], ARGV[2])
mark_active(KEYS[9], KEYS[10], ARGV[9], ARGV[6])
if #ARGV >= 10 then
  for i = 10, #ARGV do redis.call('ZINCRBY', KEYS[6], 1, ARGV[i]) end
  redis.call('EXPIRE', KEYS[6], ARGV[2])
end
if ARGV[7] == '1' then
  redis.call('HSET', KEYS[2], 'detail', ARGV[8])
  redis.call('SADD', KEYS[8], ARGV[3])
  sync_idea(KEYS[2], KEYS[7], ARGV[3])
end
return 1
""",
    "engagement": _SYNC_IDEA + _MARK_ACTIVE + _SEEN + """
local team = redis.call('HGET', KEYS[2], 'team') or '(unknown)'
for _, f in ipairs({'eng', 'eng:net:' .. ARGV[5], 'eng:team:' .. team, 'eng:type:' .. ARGV[4]}) do
  redis.call('HINCRBY', KEYS[3], f, 1)
end
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'eng', 1)
redis.call('HINCRBY', KEYS[2], 'eng:' .. ARGV[4], 1)
redis.call('EXPIRE', KEYS[2], ARGV[2])
if ARGV[6] ~= '' then
  redis.call('SADD', KEYS[4], ARGV[6])
  redis.call('EXPIRE', KEYS[4], ARGV[2])
  mark_active(KEYS[6], KEYS[7], ARGV[6], ARGV[7])
end
sync_idea(KEYS[2], KEYS[5], ARGV[3])
return 1
""",
    "moderated": _SYNC_IDEA + _SEEN + """
redis.call('HINCRBY', KEYS[3], 'verdict:' .. ARGV[4], 1)
for i = 5, #ARGV do redis.call('HINCRBY', KEYS[3], 'principle:' .. ARGV[i], 1) end
redis.call('EXPIRE', KEYS[3], ARGV[2])
local held = (ARGV[4] == 'review' or ARGV[4] == 'block') and '1' or '0'
redis.call('HSET', KEYS[2], 'verdict', ARGV[4], 'hidden', held)
redis.call('EXPIRE', KEYS[2], ARGV[2])
sync_idea(KEYS[2], KEYS[4], ARGV[3])
return 1
""",
    "reviewed": _SYNC_IDEA + _SEEN + """
redis.call('HINCRBY', KEYS[3], 'review:' .. ARGV[4], 1)
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[2], 'hidden', ARGV[4] == 'approved' and '0' or '1')
redis.call('EXPIRE', KEYS[2], ARGV[2])
sync_idea(KEYS[2], KEYS[4], ARGV[3])
return 1
""",
    "registered": _SEEN + """
redis.call('HSET', KEYS[2], 'team', ARGV[4])
if ARGV[5] == '1' then redis.call('SADD', KEYS[3], ARGV[3])
else
  redis.call('SREM', KEYS[3], ARGV[3])
  redis.call('ZREM', KEYS[4], ARGV[3])
end
return 1
""",
    "erased": _SEEN + """
redis.call('SREM', KEYS[3], ARGV[3])
redis.call('ZREM', KEYS[6], ARGV[3])
redis.call('DEL', KEYS[2])
for _, pk in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  redis.call('ZREM', KEYS[5], pk)
  redis.call('HDEL', ARGV[4] .. pk, 'detail')
end
redis.call('DEL', KEYS[4])
return 1
""",
}  # fmt: skip

# Instants around the organisation's midnight: one local day or the next.
INSTANTS = ("2026-11-19T10:00:00Z", "2026-11-19T22:59:59Z", "2026-11-19T23:00:00Z",
            "2026-11-20T12:00:00+01:00", "2026-11-21T00:10:00+01:00")  # fmt: skip
TAGS = ("Idée", "IDEAS", "rse", "#Tech", "Été", "", "rse")


def history(seed: int, n: int) -> list[dict[str, Any]]:
    """Every kind of event, in an order a stream may have: re-registrations (team, consent),
    engagement before its post, a post re-published under a new id (known post), reviews,
    erasures, and events sent again soon (same batch) or much later (another batch)."""
    rnd = random.Random(seed)
    people = [f"a{i}" for i in range(9)]
    post_keys = [f"linkedin:p{i}" for i in range(n // 6)]
    out: list[dict[str, Any]] = []
    for i in range(n):
        r, at = rnd.random(), rnd.choice(INSTANTS)
        base = {"event_id": f"ev{i}", "occurred_at": at, "producer": "test"}
        pk = rnd.choice(post_keys)
        if r < 0.08:
            out.append({**base, "type": "ambassador.registered", "ambassador_id":
                        rnd.choice(people), "team": rnd.choice(("Ventes", "Tech", None)),
                        "consent": rnd.random() < 0.8})  # fmt: skip
        elif r < 0.26:
            tags = rnd.sample(TAGS, rnd.randrange(0, 4))
            out.append({**base, "type": "post.received", "post_key": pk,
                        "network": pk.split(":")[0], "post_id": pk.split(":")[1],
                        "ambassador_id": rnd.choice(people), "text": f"t{i} " * 30,
                        "kind": rnd.choice(("original", "relay", None)), "hashtags": tags})  # fmt: skip
        elif r < 0.36:
            verdict = rnd.choice(("allow", "nudge", "review", "block"))
            findings = [{"principle": rnd.choice(("utilité", "modestie")), "verdict":
                         rnd.choice(("allow", "nudge", "review")), "shadow": rnd.random() < 0.2}
                        for _ in range(rnd.randrange(0, 3))]  # fmt: skip
            out.append({**base, "type": "post.moderated", "post_key": pk, "verdict": verdict,
                        "findings": findings})  # fmt: skip
        elif r < 0.40:
            out.append({**base, "type": "post.reviewed", "post_key": pk,
                        "outcome": rnd.choice(("approved", "rejected"))})  # fmt: skip
        elif r < 0.42:
            out.append({**base, "type": "ambassador.erased", "ambassador_id": rnd.choice(people)})
        elif r < 0.50 and out:
            out.append(dict(rnd.choice(out[-15:] if rnd.random() < 0.7 else out)))
        else:
            actor = rnd.choice(people) if rnd.random() < 0.3 else None
            out.append({**base, "type": "engagement.received", "post_key": pk,
                        "network": "linkedin", "engagement":
                        rnd.choice(("like", "comment", "share", "click")),
                        "actor_ambassador_id": actor})  # fmt: skip
    return out


def steps_of(events: list[dict[str, Any]]) -> list[Step]:
    return [s for s in map(PLANNER.plan, events) if s is not None]


async def apply_one_by_one(redis: Redis, steps: list[Step]) -> list[int]:
    scripts = {op: redis.register_script(src) for op, src in PER_EVENT.items()}
    return [int(await scripts[s.op](keys=s.keys, args=s.args)) for s in steps]


async def apply_in_batches(redis: Redis, steps: list[Step], sizes: Callable[[], int]) -> list[int]:
    store, out, i = AnalyticsStore(redis), [], 0
    while i < len(steps):
        n = sizes()
        out += await store.apply(steps[i : i + n])
        i += n
    return out


async def snapshot(redis: Redis) -> dict[str, Any]:
    """Every analytics key: type, encoding, value (in the server's own order where the encoding
    keeps insertion order), and whether it expires (and when, to the second)."""
    out: dict[str, Any] = {}
    async for raw in redis.scan_iter(match="pv:{an}:*", count=1000):
        key = text(raw)
        kind = text(await redis.type(key))
        encoding = text(await redis.object("encoding", key))
        value: Any
        if kind == "hash":
            pairs = [(text(f), text(v)) for f, v in (await redis.hgetall(key)).items()]
            value = pairs if encoding == "listpack" else sorted(pairs)
        elif kind == "set":  # SSCAN keeps the server's order (SMEMBERS comes back as a set)
            members = [text(m) async for m in redis.sscan_iter(key, count=10_000)]
            value = members if encoding == "listpack" else sorted(members)
        elif kind == "zset":
            ranked: list[Any] = await redis.zrange(key, 0, -1, withscores=True)
            value = [(text(m), score) for m, score in ranked]
        else:
            value = await redis.get(key)
        out[key] = (kind, encoding, value, await redis.ttl(key))
    return out


def same_state(reference: dict[str, Any], batched: dict[str, Any]) -> None:
    assert sorted(batched) == sorted(reference)
    for key, (kind, encoding, value, ttl) in reference.items():
        b_kind, b_encoding, b_value, b_ttl = batched[key]
        assert (b_kind, b_encoding, b_value) == (kind, encoding, value), key
        assert (b_ttl < 0) == (ttl < 0) and abs(b_ttl - ttl) <= 5, (key, ttl, b_ttl)


@pytest.fixture
async def reference(tmp_path: Path) -> AsyncIterator[Redis]:
    """A second Valkey for the per-event reference."""
    server = start_redis(tmp_path / "reference")
    client = connect_redis(server.url)
    await client.flushdb()
    yield client
    await client.aclose()
    server.stop()


@pytest.mark.parametrize(("seed", "sizes"), [(1, (1, 1)), (2, (2, 40)), (3, (200, 900))])
async def test_batches_leave_the_state_and_outcomes_of_per_event_steps(
    redis: Redis, reference: Redis, seed: int, sizes: tuple[int, int]
) -> None:
    steps = steps_of(history(seed, 1500))
    assert {s.op for s in steps} == set(PER_EVENT)
    expected = await apply_one_by_one(reference, steps)
    assert {0, 1, 2} <= set(expected)  # duplicates and known posts are part of it
    rnd = random.Random(seed)
    outcomes = await apply_in_batches(redis, steps, lambda: rnd.randint(*sizes))
    assert outcomes == expected
    same_state(await snapshot(reference), await snapshot(redis))
    # Redelivered as a whole, in other batches: all seen, nothing changes.
    before = await snapshot(redis)
    assert set(await apply_in_batches(redis, steps, lambda: 333)) == {0}
    same_state(before, await snapshot(redis))


@pytest.mark.parametrize("steps_per_call", [1_000, 5_000])
async def test_a_large_batch_of_one_day(
    redis: Redis, reference: Redis, steps_per_call: int
) -> None:
    """Cut into script calls (one round trip), or in one call with more ids than one SMISMEMBER
    or SADD takes in the script (1,000 / 2,000 arguments)."""
    events = [{"type": "engagement.received", "event_id": f"e{i}", "post_key": f"x:{i % 700}",
               "network": "x", "engagement": ("like", "share")[i % 2], "occurred_at":
               INSTANTS[0], "actor_ambassador_id": None} for i in range(2_500)]  # fmt: skip
    earlier, steps = steps_of(events[1_200:1_300]), steps_of(events + events[:10] + events[-10:])
    expected = await apply_one_by_one(reference, earlier + steps)
    store = AnalyticsStore(redis, steps_per_call=steps_per_call)
    assert await store.apply(earlier) + await store.apply(steps) == expected
    assert expected == [1] * 1_300 + [0] * 100 + [1] * 1_200 + [0] * 20
    same_state(await snapshot(reference), await snapshot(redis))


# -- the projector on NATS -------------------------------------------------------------------
def counted() -> dict[str, float]:
    return {
        outcome: REGISTRY.get_sample_value(
            "pv_api_projection_events_total", {"outcome": outcome}
        ) or 0.0
        for outcome in ("applied", "duplicate", "ignored", "invalid", "retried")
    }  # fmt: skip


def since(before: dict[str, float]) -> dict[str, float]:
    return {k: v - before[k] for k, v in counted().items() if v != before[k]}


def ev(type_: str, event_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "event_id": event_id, "occurred_at": INSTANTS[0], **fields}


class Stream:
    def __init__(self, nc: NatsClient) -> None:
        self.publisher = EventPublisher(nc.jetstream())
        self.n = 0

    async def send(self, *events: dict[str, Any] | tuple[str, bytes]) -> None:
        out = []
        for e in events:
            self.n += 1  # each publication its own message id: a re-sent event is a new message
            subject, data = e if isinstance(e, tuple) else (f"pv.evt.{e['type']}", orjson.dumps(e))
            out.append(Outgoing(subject, f"m{self.n}", data))
        await self.publisher.publish_many(out)


async def drained(nc: NatsClient, within_s: float = 15.0) -> None:
    js, deadline = nc.jetstream(), time.monotonic() + within_s
    info = None
    while time.monotonic() < deadline:
        with contextlib.suppress(NotFoundError):  # the projector creates it as it starts
            info = await js.consumer_info(EVENTS.name, DURABLE)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not drained: {info}")


@pytest.fixture
async def stream(nc: NatsClient) -> Stream:
    await ensure_streams(nc.jetstream())
    return Stream(nc)


def settings_for(nats_server: Server, redis_server: Server, **over: Any) -> ApiSettings:
    return ApiSettings(
        nats_url=nats_server.url, redis_url=redis_server.url, log_level="WARNING", **over
    )


async def test_projector_counts_each_event_once_and_terminates_what_it_cannot_use(
    nc: NatsClient, redis: Redis, stream: Stream, nats_server: Server, redis_server: Server
) -> None:
    day = PLANNER.plan(ev("post.reviewed", "x", post_key="k", outcome="approved"))
    assert day is not None
    day_key = day.keys[2]
    await stream.send(
        ev("ambassador.registered", "r1", ambassador_id="a1", team="Ventes", consent=True),
        ev("post.received", "p1", post_key="li:1", network="li", ambassador_id="a1",
           hashtags=["Idée"], text="Une idée"),
        ev("engagement.received", "e1", post_key="li:1", network="li", engagement="like"),
        ev("engagement.received", "e1", post_key="li:1", network="li", engagement="like"),
        ("pv.evt.post.received", b"not json"),
        ev("post.received", "bad-time", post_key="li:2", network="li", ambassador_id="a1")
        | {"occurred_at": "yesterday"},
        ("pv.evt.post.received", orjson.dumps(ev("badge.awarded", "b1"))),
        ev("post.moderated", "m1", post_key="li:1", verdict="nudge",
           findings=[{"principle": "utilité", "verdict": "nudge"}]),
    )  # fmt: skip
    terminated = await nc.subscribe(
        f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{EVENTS.name}.{DURABLE}"
    )
    before = counted()
    projector = AnalyticsProjector(nc, redis, settings_for(nats_server, redis_server, batch_size=4))
    await projector.start()
    try:
        await drained(nc)
        assert since(before) == {"applied": 4, "duplicate": 1, "invalid": 2, "ignored": 1}
        advisories = [orjson.loads((await terminated.next_msg(2)).data) for _ in range(2)]
        assert sorted(a["stream_seq"] for a in advisories) == [5, 6]  # not json, bad time
        # Sent again later (another batch), and the same post under a new event id.
        await stream.send(
            ev("engagement.received", "e1", post_key="li:1", network="li", engagement="like"),
            ev("post.received", "p1-again", post_key="li:1", network="li", ambassador_id="a1"),
            ev("engagement.received", "e2", post_key="li:1", network="li", engagement="share"),
        )  # fmt: skip
        await drained(nc)
        assert since(before) == {"applied": 5, "duplicate": 3, "invalid": 2, "ignored": 1}
        info = await nc.jetstream().consumer_info(EVENTS.name, DURABLE)
        assert sorted(info.config.filter_subjects or []) == sorted(SUBJECTS)
        assert info.num_redelivered == 0  # acked or terminated, never retried
        assert (
            projector.last_stream_seq
            == (await nc.jetstream().stream_info(EVENTS.name)).state.last_seq
        )
    finally:
        await projector.stop()
    counters = {text(k): int(v) for k, v in (await redis.hgetall(day_key)).items()}
    assert counters == {
        "posts": 1, "posts:net:li": 1, "posts:team:Ventes": 1, "posts:kind:original": 1,
        "eng": 2, "eng:net:li": 2, "eng:team:Ventes": 2, "eng:type:like": 1,
        "eng:type:share": 1, "verdict:nudge": 1, "principle:utilité:nudge": 1,
    }  # fmt: skip
    post = {text(k): text(v) for k, v in (await redis.hgetall(ANALYTICS_POST.format(
        post_key="li:1"))).items()}  # fmt: skip
    assert (post["team"], post["eng"], post["eng:like"], post["eng:share"], post["hidden"]) == (
        "Ventes",
        "2",
        "1",
        "1",
        "0",
    )


async def test_projector_naks_with_growing_delay_while_redis_refuses(
    nc: NatsClient, redis: Redis, stream: Stream, nats_server: Server, redis_server: Server
) -> None:
    # A seen-set of the wrong type: every attempt at this day's batch fails (WRONGTYPE).
    seen = ANALYTICS_SEEN.format(day="2026-11-19")
    await redis.set(seen, "not a set")
    await stream.send(
        ev("engagement.received", "e1", post_key="li:1", network="li", engagement="like"),
        ev("engagement.received", "e2", post_key="li:1", network="li", engagement="like"),
    )
    before = counted()
    projector = AnalyticsProjector(
        nc, redis,
        settings_for(nats_server, redis_server, retry_base_delay_s=0.25, max_deliver=10),
    )  # fmt: skip
    attempts: list[float] = []
    await projector.start()
    try:
        deadline = time.monotonic() + 10
        while len(attempts) < 3 and time.monotonic() < deadline:
            retried = since(before).get("retried", 0)
            if retried > 2 * len(attempts):
                assert retried == 2 * (len(attempts) + 1)  # both events, once per attempt
                attempts.append(time.monotonic())
            await asyncio.sleep(0.01)
        assert len(attempts) == 3, since(before)
        first, second = attempts[1] - attempts[0], attempts[2] - attempts[1]
        assert 0.2 <= first < second and second >= 0.45  # 0.25 s, then 0.5 s
        await redis.delete(seen)  # Redis takes the batch again
        await drained(nc)
    finally:
        await projector.stop()
    assert since(before) == {"retried": 6, "applied": 2}
    assert await redis.hget(ANALYTICS_DAY.format(day="2026-11-19"), "eng") == b"2"
