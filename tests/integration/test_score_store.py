"""Scoring's atomic Redis step on a real Valkey: exactly once, versioned, all periods."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
from redis.asyncio import Redis

from portevoix.contracts.events import PostModerated, PostReceived
from portevoix.contracts.readmodels import SCORING_GENERATION, SCORING_PAUSE, board_key, ledger_key
from portevoix_scoring.domain.post_state import PostState
from portevoix_scoring.domain.scorer import AmbassadorBook, Scorer
from portevoix_scoring.domain.table import default_table
from portevoix_scoring.store import APPLIED, CONFLICT, DUPLICATE, STALE, Guard, ScoreStore

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


async def _apply(store: ScoreStore, scorer: Scorer, event, expected: str | None = None) -> int:  # type: ignore[no-untyped-def]
    key = store.post_key(event.post_key)
    states, _ = await store.load([key], [event.event_id])
    state = PostState.loads(event.post_key, states[key].raw)
    fx = scorer.apply(event, state, AmbassadorBook())
    version = states[key].version if expected is None else expected
    batch = store.batch()
    batch.add(0, event.event_id, [Guard(key, version, state.dumps())], fx)
    status, where = await store.commit(batch, f"t-{event.event_id}")
    assert where == ([] if status in (APPLIED, STALE) else [0])
    return status


async def test_award_is_atomic_exactly_once_and_counted_in_every_period(redis: Redis) -> None:
    store, table = await ScoreStore.open(redis, default_table())
    scorer = Scorer(table, ZoneInfo("Europe/Paris"))
    assert await _apply(store, scorer, _post()) == APPLIED
    assert await _apply(store, scorer, _verdict()) == APPLIED
    # Redelivery of an applied event: the marker makes it a no-op.
    assert await _apply(store, scorer, _verdict()) == DUPLICATE
    for period in ("all", "day:2026-11-21", "week:2026-W47", "month:2026-11", "quarter:2026-Q4"):
        assert await redis.zscore(board_key(store.gen, period), "a1") == 1000.0  # centipoints
    ledger = [orjson.loads(x) for x in await redis.lrange(ledger_key(store.gen, "a1"), 0, -1)]
    assert [(e["op"], e["points"], e["event_id"]) for e in ledger] == [
        ("hold", 10, "p1"), ("release", 10, "p1"),
    ]  # fmt: skip


async def test_stale_version_is_refused_and_changes_nothing(redis: Redis) -> None:
    store, _ = await ScoreStore.open(redis, default_table())
    scorer = Scorer(default_table())
    assert await _apply(store, scorer, _post()) == APPLIED
    assert await _apply(store, scorer, _verdict(), expected="") == CONFLICT
    assert await redis.zscore(board_key(store.gen, "all"), "a1") is None
    assert await _apply(store, scorer, _verdict()) == APPLIED
    assert await redis.zscore(board_key(store.gen, "all"), "a1") == 1000.0


async def test_live_writes_stop_during_a_swap_pause_and_after_a_swap(redis: Redis) -> None:
    store, _ = await ScoreStore.open(redis, default_table())
    scorer = Scorer(default_table())
    await redis.set(SCORING_PAUSE, "2", px=5000)
    assert await _apply(store, scorer, _post()) == STALE
    assert await redis.exists(store.post_key("x:1")) == 0
    assert await store.swap("1", "2")
    assert await redis.get(SCORING_GENERATION) == b"2" and not await redis.exists(SCORING_PAUSE)
    assert await _apply(store, scorer, _post()) == STALE  # still writing generation 1
    assert not await store.swap("1", "3")  # generation 1 is not live any more
