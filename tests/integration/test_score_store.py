"""Scoring's atomic Redis step on a real Valkey: exactly once, versioned, all periods."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import cast
from zoneinfo import ZoneInfo

import orjson
import pytest
from redis.asyncio import Redis

from portevoix.contracts.events import PostModerated, PostReceived
from portevoix.contracts.readmodels import SCORING_GENERATION, SCORING_PAUSE, board_key, ledger_key
from portevoix_scoring.domain.post_state import PostState
from portevoix_scoring.domain.scorer import AmbassadorBook, Credit, Effects, Scorer
from portevoix_scoring.domain.table import default_table
from portevoix_scoring.store import (
    APPLIED,
    CONFLICT,
    DUPLICATE,
    STALE,
    Guard,
    ScoreStore,
    board_targets,
)

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


_Row = tuple[str | None, int, str, str]  # ambassador (None: erased), centipoints, day, team


def _credits(rows: list[tuple[str | None, int, str, str]]) -> Effects:
    fx = Effects()
    fx.credits = [Credit(aid, cp, day, team) for aid, cp, day, team in rows]
    return fx


def _sums(rows: list[tuple[str | None, int, str, str]]) -> dict[str, dict[str, int]]:
    """Expected scores, per board key and member, by plain addition (ZINCRBY's semantics)."""
    want: dict[str, dict[str, int]] = {}
    for aid, cp, day, team in rows:
        for key, is_team in board_targets("1", day, team, ()):
            if aid is None and not is_team:
                continue
            member = team if is_team else aid
            assert member is not None
            board = want.setdefault(key, {})
            board[member] = board.get(member, 0) + cp
    return want


async def _board(redis: Redis, key: str) -> dict[str, int]:
    got = cast(list[tuple[bytes, float]], await redis.zrange(key, 0, -1, withscores=True))
    return {m.decode(): int(s) for m, s in got}


async def _write_in_batches(
    store: ScoreStore,
    redis: Redis,
    parts: list[list[_Row]],
    checked: bool,
    ops_per_call: int = 4000,
) -> list[_Row]:
    """Each part as one batch of credits: a checked script call (live writes) or the rebuild's
    bulk writes. Returns every row written."""
    rows: list[_Row] = []
    for n, part in enumerate(parts):
        batch = store.batch()
        for i, row in enumerate(part):
            batch.add(i, f"e{n}-{i}", [], _credits([row]))
        if checked:
            assert (await store.commit(batch, f"t{n}"))[0] == APPLIED
        else:
            await batch.write_unchecked(redis, f"t{n}", ops_per_call=ops_per_call)
        rows += part
    return rows


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "rebuild-bulk"])
async def test_board_writes_equal_per_member_increments_on_busy_and_quiet_boards(
    redis: Redis, checked: bool
) -> None:
    # Boards are written per board: one ZINCRBY per member where a batch moves few members,
    # one ZMSCORE + multi-member ZADD of the new scores where it moves many. Either way the
    # scores must be those of one increment per change: on top of earlier scores, with
    # reversals (negative), members whose changes cancel out (kept at 0, as ZINCRBY leaves
    # them), an erased author's points (team boards only), and both paths in one batch.
    store, _ = await ScoreStore.open(redis, default_table())
    teams = ["Ventes", "Tech", "RH"]
    rnd = random.Random(4)
    days = ["2026-11-02", "2026-11-03", "2026-11-16"]
    first: list[_Row] = [
        (f"a{i}", rnd.randint(1, 900), rnd.choice(days), teams[i % 3]) for i in range(40)
    ]
    second: list[_Row] = [
        *((f"a{i}", rnd.randint(-700, 900), rnd.choice(days), teams[i % 3]) for i in range(60)),
        ("a1", 350, "2026-11-20", "Ventes"),  # alone on its day's boards: the ZINCRBY path
        ("a2", 500, "2026-11-21", "Tech"),
        ("a2", -500, "2026-11-22", "Tech"),  # cancels out on the week, month... boards
        (None, 800, "2026-11-03", "RH"),  # an erased author's: team totals only
    ]
    rows = await _write_in_batches(store, redis, [first, second], checked, ops_per_call=50)
    want = _sums(rows)
    week = board_key(store.gen, "week:2026-W47")
    assert want[week]["a2"] == 0 and len(want[board_key(store.gen, "all")]) > 3
    for key, members in want.items():
        assert await _board(redis, key) == members, key


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "rebuild-bulk"])
async def test_board_writes_of_more_members_than_one_command_carries_stay_exact(
    redis: Redis, checked: bool
) -> None:
    # A board moved for more members than one command carries (the script's chunks of 500) is
    # read and written in several ZMSCORE + ZADD rounds, each chunk mixing members on the board
    # and new ones; the new scores go to Valkey as Lua numbers, exact to the unit near 2**50.
    store, _ = await ScoreStore.open(redis, default_table())
    big = 1_234_567_890_123_456

    def team(i: int) -> str:
        return "Tech" if i % 2 else "RH"

    first: list[_Row] = [
        (f"b{i}", big if i == 0 else i + 1, "2026-11-03", team(i)) for i in range(700)
    ]
    second: list[_Row] = [(f"b{i}", 1 - (i % 5) * 100, "2026-11-04", team(i)) for i in range(1_150)]
    rows = await _write_in_batches(store, redis, [first, second], checked)
    want = _sums(rows)
    everyone = want[board_key(store.gen, "all")]
    assert len(everyone) == 1_150 and everyone["b0"] == big + 1
    assert min(everyone.values()) < 0 < max(everyone.values())
    for key, members in want.items():
        assert await _board(redis, key) == members, key
