"""A post held in review (or blocked) gathers every like it gets: on a real Valkey, its state stays
small, its items are appended to their own list one batch at a time, a cold instance reads them
back, and the verdict pays exactly what the scorer computes in memory."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from portevoix.contracts.events import (
    AmbassadorRegistered,
    EngagementReceived,
    PostModerated,
    PostReceived,
    PostReviewed,
)
from portevoix.contracts.readmodels import ledger_key
from portevoix_scoring.domain.post_state import PostState
from portevoix_scoring.domain.scorer import Scored, Scorer
from portevoix_scoring.domain.table import default_table
from portevoix_scoring.pipeline import ScoringPipeline
from portevoix_scoring.store import APPLIED, ScoreStore
from tests.integration.test_scoring_pipeline import T0, TZ, board, expected

pytestmark = pytest.mark.integration
PK = "linkedin:viral"


def _setup(verdict: str) -> list[Scored]:
    reg = AmbassadorRegistered(event_id="reg-a1", occurred_at=T0, producer="t",
                               ambassador_id="a1", display_name="A1", team="Tech",
                               handles={"linkedin": "a1"}, consent=True)  # fmt: skip
    post = PostReceived(event_id="post-v", occurred_at=T0, producer="t", post_key=PK,
                        network="linkedin", post_id="viral", ambassador_id="a1", author="a1",
                        text="t", kind="original", followers=900)  # fmt: skip
    mod = PostModerated(event_id="d-v", occurred_at=T0, producer="t", decision_id="d-v",
                        post_key=PK, post_event_id="post-v", ambassador_id="a1", verdict=verdict,
                        charter_version="1", engine_version="1", content_hash="h")  # fmt: skip
    return [reg, post, mod]


def _likes(start: int, n: int) -> list[Scored]:
    return [
        EngagementReceived(
            event_id=f"like-{i}",
            occurred_at=T0 + timedelta(minutes=i % 600),
            producer="t",
            engagement="like",
            post_key=PK,
            network="linkedin",
            post_id="viral",
            actor=f"fan-{i}",
        )
        for i in range(start, start + n)
    ]


def _approved(i: int = 0) -> PostReviewed:
    return PostReviewed(event_id=f"r-{i}", occurred_at=T0, producer="t", review_id=f"r-{i}",
                        post_key=PK, outcome="approved", moderator="m")  # fmt: skip


async def _stored(redis: Redis, store: ScoreStore) -> tuple[int, list[str], list[str]]:
    """(size of the post's state, event ids of its held items, of its voided items)."""
    raw: Any = await redis.get(store.post_key(PK))
    lists = []
    for key in store.items_keys(PK):
        items: list[Any] = await redis.lrange(key, 0, -1)
        lists.append([orjson.loads(x)[0] for x in items])
    return len(raw), lists[0], lists[1]


@pytest.mark.parametrize("verdict,kept", [("review", 1), ("block", 2)], ids=["held", "voided"])
async def test_items_of_a_post_awaiting_review_are_appended_and_paid_on_approval(
    redis: Redis, verdict: str, kept: int
) -> None:
    store, table = await ScoreStore.open(redis, default_table())
    a = ScoringPipeline(Scorer(table, TZ), store, chunk=10)  # overlapped script batches
    events = _setup(verdict)
    assert all(o.result == APPLIED for o in await a.apply(events))
    size0 = None
    for k in range(0, 300, 25):
        likes = _likes(k, 25)
        assert all(o.result == APPLIED for o in await a.apply(likes))
        events += likes
        size, *lists = await _stored(redis, store)
        # The state does not grow with the items; they are in their list, in order, once.
        size0 = size0 or size
        assert size <= size0 + 8
        assert lists[kept - 1] == ["post-v", *(f"like-{i}" for i in range(k + 25))]
        assert lists[2 - kept] == []
    assert await board(redis, store.gen) == {}  # nothing paid while awaiting a review
    # A cold instance (nothing in memory) reads the items back, adds to them, then approves.
    b = ScoringPipeline(Scorer(table, TZ), ScoreStore(redis, store.gen), chunk=10)
    tail: list[Scored] = [*_likes(300, 20), _approved()]
    assert all(o.result == APPLIED for o in await b.apply(tail))
    events += tail
    size, held, voided = await _stored(redis, store)
    assert held == voided == [] and size < 400  # paid: its credited days and reach, no items
    assert not await redis.exists(*store.items_keys(PK))
    assert await board(redis, store.gen) == expected(events).boards["all"] != {}
    lines: list[Any] = await redis.lrange(ledger_key(store.gen, "a1"), 0, -1)
    released = [orjson.loads(x)["event_id"] for x in lines if orjson.loads(x)["op"] == "release"]
    assert sorted(released) == sorted(["post-v", *(f"like-{i}" for i in range(320))])


async def test_a_state_stored_with_its_items_inline_is_read_and_moved_to_lists(
    redis: Redis,
) -> None:
    # States written before items were kept apart hold them inline: the next write moves them.
    store, table = await ScoreStore.open(redis, default_table())
    a = ScoringPipeline(Scorer(table, TZ), store)
    events = [*_setup("review"), *_likes(0, 40)]
    assert all(o.result == APPLIED for o in await a.apply(events))
    key = store.post_key(PK)
    version, _, blob = (await redis.get(key) or b"").partition(b"\n")
    post = PostState.loads(PK, blob)
    await store.load_items([post])
    assert len(post.held) == 41  # the post's own points and its likes
    await redis.set(key, version + b"\n" + post.dumps())  # the old object form, items inline
    await redis.delete(*store.items_keys(PK))
    b = ScoringPipeline(Scorer(table, TZ), ScoreStore(redis, store.gen))
    more: list[Scored] = [*_likes(40, 5)]
    assert all(o.result == APPLIED for o in await b.apply(more))
    _, held, _ = await _stored(redis, store)
    assert held == ["post-v", *(f"like-{i}" for i in range(45))]
    assert all(o.result == APPLIED for o in await b.apply([_approved()]))
    events += [*more, _approved()]
    assert await board(redis, store.gen) == expected(events).boards["all"] != {}
