"""Colleague pairs (like-rings) on a real Valkey: kept apart from the ambassador state and
written only when a colleague engages; rings found across script batches and instances exactly
as the in-memory scorer finds them; pairs stored inside an older ambassador state moved to their
own key."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis

from portevoix.contracts.events import (
    AmbassadorRegistered,
    EngagementReceived,
    PostModerated,
    PostReceived,
    subject_for,
)
from portevoix.contracts.readmodels import ledger_key
from portevoix.runtime.streams import ensure_streams
from portevoix_scoring.domain.projection import Projection
from portevoix_scoring.domain.scorer import Scored, Scorer
from portevoix_scoring.domain.table import PointsTable, default_table
from portevoix_scoring.pipeline import ScoringPipeline
from portevoix_scoring.rebuild import Rebuild
from portevoix_scoring.store import APPLIED, ScoreStore
from tests.integration.test_scoring_pipeline import T0, TZ, board, expected

pytestmark = pytest.mark.integration
DAY = "2026-11-16"  # T0's day in Paris


def _reg(aid: str) -> AmbassadorRegistered:
    return AmbassadorRegistered(event_id=f"reg-{aid}", occurred_at=T0, producer="t",
                                ambassador_id=aid, display_name=aid, team="Tech",
                                handles={"linkedin": aid}, consent=True)  # fmt: skip


def _post(aid: str, n: int) -> list[Scored]:
    pk, at = f"linkedin:{aid}-{n}", T0 + timedelta(hours=n)
    return [
        PostReceived(event_id=f"post-{aid}-{n}", occurred_at=at, producer="t", post_key=pk,
                     network="linkedin", post_id=f"{aid}-{n}", ambassador_id=aid, author=aid,
                     text="t", kind="original"),
        PostModerated(event_id=f"d-{aid}-{n}", occurred_at=at, producer="t",
                      decision_id=f"d-{aid}-{n}", post_key=pk, post_event_id=f"post-{aid}-{n}",
                      ambassador_id=aid, verdict="allow", charter_version="1",
                      engine_version="1", content_hash="h"),
    ]  # fmt: skip


def _like(actor: str, author: str, n: int, colleague: bool = True) -> EngagementReceived:
    return EngagementReceived(event_id=f"like-{actor}-{author}-{n}",
                              occurred_at=T0 + timedelta(hours=n, minutes=5), producer="t",
                              engagement="like", post_key=f"linkedin:{author}-{n}",
                              network="linkedin", post_id=f"{author}-{n}", actor=actor,
                              actor_ambassador_id=actor if colleague else None)  # fmt: skip


async def _state(redis: Redis, key: str) -> tuple[bytes, Any]:
    raw: Any = await redis.get(key)
    assert isinstance(raw, bytes), key
    version, _, blob = raw.partition(b"\n")
    return version, orjson.loads(blob)


def _in_memory(table: PointsTable, events: list[Scored]) -> Projection:
    """The events through the scorer in memory, ledger kept: what Valkey must hold."""
    proj = Projection(table, TZ, keep_ledger=True)
    for e in events:
        proj.apply(e)
    return proj


async def _rules(redis: Redis, gen: str, aid: str) -> list[str]:
    lines: list[Any] = await redis.lrange(ledger_key(gen, aid), 0, -1)
    return [orjson.loads(x)["rule"] for x in lines]


async def test_rings_across_batches_and_instances_equal_the_in_memory_scorer(
    redis: Redis,
) -> None:
    events: list[Scored] = [_reg("a1"), _reg("b1"), _reg("c1")]
    for n in range(6):  # a1 and b1 like each other's posts; c1 likes a1's; fans like both
        events += [*_post("a1", n), *_post("b1", n), _like("b1", "a1", n), _like("a1", "b1", n),
                   _like("c1", "a1", n), _like(f"fan{n}", "a1", n, colleague=False)]  # fmt: skip
    store, table = await ScoreStore.open(redis, default_table())
    a = ScoringPipeline(Scorer(table, TZ), store, chunk=3)  # overlapped script batches
    half = len(events) // 2
    assert all(o.result == APPLIED for o in await a.apply(events[:half]))
    # A cold instance (nothing in memory) reads the pairs back and goes on counting.
    b = ScoringPipeline(Scorer(table, TZ), ScoreStore(redis, store.gen), chunk=4)
    assert all(o.result == APPLIED for o in await b.apply(events[half:]))
    want = _in_memory(table, events)
    assert await board(redis, store.gen) == want.boards["all"]
    for aid in ("a1", "b1"):
        rules = await _rules(redis, store.gen, aid)
        assert rules.count("like:ring") == 3, rules  # 3 reciprocal likes each way, then rings
        assert rules == [e.rule for e in want.ledger if e.ambassador_id == aid]
        _, pairs = await _state(redis, store.pairs_key(aid))
        assert pairs["recv"] == want.book.pairs(aid).recv
    _, pairs = await _state(redis, store.pairs_key("a1"))
    assert pairs["recv"] == {"b1": [6, DAY], "c1": [6, DAY]}
    _, amb = await _state(redis, store.ambassador_key("a1"))
    assert amb["recv"] == {}  # the ambassador state holds no pairs


async def test_a_rebuild_writes_the_pairs_the_live_service_then_counts_on(
    redis: Redis, nc: NatsClient, nats_server: object
) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    events: list[Scored] = [_reg("a1"), _reg("b1")]
    for n in range(6):
        events += [*_post("a1", n), *_post("b1", n), _like("b1", "a1", n), _like("a1", "b1", n)]
    done, later = events[:-8], events[-8:]
    for e in done:
        await js.publish(subject_for(e), orjson.dumps(e.model_dump(mode="json")),
                         headers={"Nats-Msg-Id": e.event_id})  # fmt: skip
    _, table = await ScoreStore.open(redis, default_table())
    rebuild = Rebuild(redis, nats_server.url, table, TZ, batch=7, flush_every=11)  # type: ignore[attr-defined]
    report = await rebuild.run()
    live = ScoringPipeline(Scorer(table, TZ), ScoreStore(redis, report.generation))
    assert all(o.result == APPLIED for o in await live.apply(later))
    want = _in_memory(table, events)
    assert await board(redis, report.generation) == want.boards["all"]
    for aid in ("a1", "b1"):
        rules = await _rules(redis, report.generation, aid)
        assert rules == [e.rule for e in want.ledger if e.ambassador_id == aid]
        assert "like:ring" in rules
        _, pairs = await _state(redis, live.store.pairs_key(aid))
        assert pairs["recv"] == want.book.pairs(aid).recv


async def test_an_ambassador_state_does_not_grow_with_the_colleagues_who_engage(
    redis: Redis,
) -> None:
    store, table = await ScoreStore.open(redis, default_table())
    pipe = ScoringPipeline(Scorer(table, TZ), store, chunk=10)
    colleagues = [f"c{i}" for i in range(60)]
    setup: list[Scored] = [_reg("a1"), *(_reg(c) for c in colleagues), *_post("a1", 0)]
    assert all(o.result == APPLIED for o in await pipe.apply(setup))
    first = [_like("c0", "a1", 0)]
    assert all(o.result == APPLIED for o in await pipe.apply(first))
    amb_size = len(await redis.get(store.ambassador_key("a1")) or b"")
    likes = [_like(c, "a1", 0) for c in colleagues[1:]]
    assert all(o.result == APPLIED for o in await pipe.apply(likes))
    # Counters and points gain a few digits; the 60 colleagues are in the pairs' own state.
    assert len(await redis.get(store.ambassador_key("a1")) or b"") <= amb_size + 8
    _, pairs = await _state(redis, store.pairs_key("a1"))
    assert sorted(pairs["recv"]) == sorted(colleagues)
    # External likes pay a1 (the ambassador state is rewritten): the pairs are left as they are.
    pairs_before = await redis.get(store.pairs_key("a1"))
    amb_before = await redis.get(store.ambassador_key("a1"))
    fans = [_like(f"fan{i}", "a1", 0, colleague=False) for i in range(30)]
    assert all(o.result == APPLIED for o in await pipe.apply(fans))
    assert await redis.get(store.pairs_key("a1")) == pairs_before
    assert await redis.get(store.ambassador_key("a1")) != amb_before
    events = [*setup, *first, *likes, *fans]
    assert await board(redis, store.gen) == expected(events).boards["all"]


async def test_pairs_stored_in_an_older_ambassador_state_are_moved_to_their_own_key(
    redis: Redis,
) -> None:
    store, table = await ScoreStore.open(redis, default_table())
    a = ScoringPipeline(Scorer(table, TZ), store)
    setup: list[Scored] = [_reg("a1"), _reg("b1"), *_post("a1", 0), *_post("a1", 1)]
    assert all(o.result == APPLIED for o in await a.apply(setup))
    # As stored before pairs had their own key: inside the ambassador states (3 likes each way).
    for me, them in (("a1", "b1"), ("b1", "a1")):
        key = store.ambassador_key(me)
        version, state = await _state(redis, key)
        state["recv"] = {them: [3, DAY]}
        await redis.set(key, version + b"\n" + orjson.dumps(state))
        await redis.delete(store.pairs_key(me))
    b = ScoringPipeline(Scorer(table, TZ), ScoreStore(redis, store.gen))  # cold: reads them
    # An external like rewrites a1's state without touching pairs: the old ones stay in it.
    assert all(o.result == APPLIED for o in await b.apply([_like("fan", "a1", 0, False)]))
    _, amb = await _state(redis, store.ambassador_key("a1"))
    assert amb["recv"] == {"b1": [3, DAY]} and not await redis.exists(store.pairs_key("a1"))
    # b1's 4th like of a1's posts, a1 having liked b1's 3 times: a ring, counted from the old
    # pairs; a1's pairs now live in their own key, b1's (only read) stay where they were.
    assert all(o.result == APPLIED for o in await b.apply([_like("b1", "a1", 1)]))
    assert (await _rules(redis, store.gen, "a1"))[-1] == "like:ring"
    _, pairs = await _state(redis, store.pairs_key("a1"))
    assert pairs["recv"] == {"b1": [4, DAY]}
    _, amb = await _state(redis, store.ambassador_key("a1"))
    assert amb["recv"] == {}
    _, amb_b = await _state(redis, store.ambassador_key("b1"))
    assert amb_b["recv"] == {"a1": [3, DAY]} and not await redis.exists(store.pairs_key("b1"))


async def test_colleague_engagement_held_for_its_post_is_counted_when_the_post_arrives(
    redis: Redis,
) -> None:
    # Likes arriving before their post are held in its state; the post's arrival, batches and
    # an instance later, earns them: both people's pairs must be read then.
    store, table = await ScoreStore.open(redis, default_table())
    a = ScoringPipeline(Scorer(table, TZ), store)
    events: list[Scored] = [_reg("a1"), _reg("b1"), *_post("b1", 0), _like("a1", "b1", 0)]
    events += [_like("b1", "a1", n) for n in range(5)]  # before a1's posts
    assert all(o.result == APPLIED for o in await a.apply(events))
    b = ScoringPipeline(Scorer(table, TZ), ScoreStore(redis, store.gen), chunk=2)
    posts = [e for n in range(5) for e in _post("a1", n)]
    assert all(o.result == APPLIED for o in await b.apply(posts))
    events += posts
    want = _in_memory(table, events)
    assert await board(redis, store.gen) == want.boards["all"]
    assert await _rules(redis, store.gen, "a1") == [
        e.rule for e in want.ledger if e.ambassador_id == "a1"
    ]
    _, pairs = await _state(redis, store.pairs_key("a1"))
    assert pairs["recv"] == {"b1": [5, DAY]}
