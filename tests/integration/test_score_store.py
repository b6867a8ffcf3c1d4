"""Scoring's atomic Redis step on a real Valkey: exactly once, versioned, all periods."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
from redis.asyncio import Redis

from portevoix.contracts.events import PostModerated, PostReceived
from portevoix.contracts.readmodels import board_key, ledger_key
from portevoix_scoring.domain.scorer import Scorer
from portevoix_scoring.domain.table import default_table
from portevoix_scoring.store import APPLIED, CONFLICT, DUPLICATE, ScoreStore

pytestmark = pytest.mark.integration
AT = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def _post() -> PostReceived:
    return PostReceived(
        event_id="p1", occurred_at=AT, producer="t", post_key="x:1", network="x", post_id="1",
        ambassador_id="a1", author="al", text="t", kind="original",
    )  # fmt: skip


def _verdict() -> PostModerated:
    return PostModerated(
        event_id="d1", occurred_at=AT, producer="t", decision_id="d1", post_key="x:1",
        post_event_id="p1", ambassador_id="a1", verdict="allow", charter_version="1",
        engine_version="1", content_hash="h",
    )  # fmt: skip


async def _apply(store: ScoreStore, scorer: Scorer, event, expected: int | None = None) -> int:  # type: ignore[no-untyped-def]
    loaded, _ = await store.load([event.post_key], [event.event_id])
    cur = loaded[event.post_key]
    fx = scorer.apply(cur.state, event)
    pipe = store.pipeline()
    await store.stage(
        pipe, post_key=event.post_key, event_id=event.event_id, state=cur.state, effects=fx,
        expected_version=cur.version if expected is None else expected,
    )  # fmt: skip
    return (await store.commit(pipe))[0]


async def test_award_is_atomic_exactly_once_and_counted_in_every_period(redis: Redis) -> None:
    store = await ScoreStore.open(redis)
    scorer = Scorer(default_table(), ZoneInfo("Europe/Paris"))
    assert await _apply(store, scorer, _post()) == APPLIED
    assert await _apply(store, scorer, _verdict()) == APPLIED
    # Redelivery of an applied event: the marker makes it a no-op.
    assert await _apply(store, scorer, _verdict()) == DUPLICATE
    for period in ("all", "day:2026-11-21", "week:2026-W47", "month:2026-11", "quarter:2026-Q4"):
        assert await redis.zscore(board_key(store.gen, period), "a1") == 10.0
    ledger = [orjson.loads(x) for x in await redis.lrange(ledger_key(store.gen, "a1"), 0, -1)]
    assert [(e["op"], e["points"], e["event_id"]) for e in ledger] == [
        ("hold", 10, "p1"), ("release", 10, "p1"),
    ]  # fmt: skip


async def test_stale_version_is_refused_and_changes_nothing(redis: Redis) -> None:
    store = await ScoreStore.open(redis)
    scorer = Scorer(default_table())
    assert await _apply(store, scorer, _post()) == APPLIED
    assert await _apply(store, scorer, _verdict(), expected=0) == CONFLICT
    assert await redis.zscore(board_key(store.gen, "all"), "a1") is None
    assert await _apply(store, scorer, _verdict()) == APPLIED
    assert await redis.zscore(board_key(store.gen, "all"), "a1") == 10.0
