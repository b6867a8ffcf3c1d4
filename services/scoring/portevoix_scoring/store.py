"""Scoring's Redis repository: one atomic Lua step per event, with its dedupe marker.

The step checks the event's marker (duplicate → no-op) and the post's version (optimistic
concurrency between scoring instances → retry), then writes the new post state, the marker,
the leaderboard increments and the ledger lines together. All keys share the `{sc}` hash tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from portevoix.contracts.periods import periods_of
from portevoix.contracts.readmodels import (
    POST_STATE,
    SCORING_GENERATION,
    SEEN,
    board_key,
    ledger_key,
)
from portevoix.runtime.redis import text
from portevoix_scoring.domain.post_state import PostState
from portevoix_scoring.domain.scorer import Effects

APPLIED, DUPLICATE, CONFLICT = 1, 0, -1

# KEYS: state, seen, board_1..board_nb, ledger_1..ledger_nl
# ARGV: expected_version, state_json, nb, (member, delta) * nb, entry * nl
APPLY_LUA = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local v = redis.call('HGET', KEYS[1], 'v')
if (v or '0') ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'v', tostring(tonumber(ARGV[1]) + 1), 's', ARGV[2])
redis.call('SET', KEYS[2], '1')
local nb = tonumber(ARGV[3])
for i = 1, nb do
  redis.call('ZINCRBY', KEYS[2 + i], ARGV[3 + 2 * i], ARGV[2 + 2 * i])
end
for j = 3 + nb, #KEYS do
  redis.call('RPUSH', KEYS[j], ARGV[3 + 2 * nb + (j - 2 - nb)])
end
return 1
"""


@dataclass
class Loaded:
    version: int
    state: PostState


class ScoreStore:
    def __init__(self, redis: Redis, generation: str = "1") -> None:
        self._r = redis
        self.gen = generation
        self._apply = redis.register_script(APPLY_LUA)

    @classmethod
    async def open(cls, redis: Redis) -> ScoreStore:
        await redis.set(SCORING_GENERATION, "1", nx=True)
        gen = text(await redis.get(SCORING_GENERATION) or b"1")
        return cls(redis, gen)

    def _state_key(self, post_key: str) -> str:
        return POST_STATE.format(gen=self.gen, post_key=post_key)

    def _seen_key(self, event_id: str) -> str:
        return SEEN.format(gen=self.gen, event_id=event_id)

    async def load(
        self, post_keys: Iterable[str], event_ids: Iterable[str]
    ) -> tuple[dict[str, Loaded], set[str]]:
        posts = list(dict.fromkeys(post_keys))
        events = list(dict.fromkeys(event_ids))
        pipe = self._r.pipeline(transaction=False)
        for pk in posts:
            pipe.hmget(self._state_key(pk), "v", "s")
        for eid in events:
            pipe.exists(self._seen_key(eid))
        res = await pipe.execute()
        loaded: dict[str, Loaded] = {}
        for pk, (v, s) in zip(posts, res[: len(posts)], strict=True):
            loaded[pk] = Loaded(int(v or 0), PostState.loads(pk, s))
        seen = {eid for eid, hit in zip(events, res[len(posts) :], strict=True) if hit}
        return loaded, seen

    async def stage(
        self,
        pipe: object,
        *,
        post_key: str,
        expected_version: int,
        state: PostState,
        event_id: str,
        effects: Effects,
    ) -> None:
        boards: dict[tuple[str, str], int] = {}
        for c in effects.credits:
            for period in periods_of(c.day):
                k = (board_key(self.gen, period), c.ambassador_id)
                boards[k] = boards.get(k, 0) + c.points
        keys = [self._state_key(post_key), self._seen_key(event_id)]
        args: list[object] = [str(expected_version), state.dumps(), len(boards)]
        for (bkey, member), delta in boards.items():
            keys.append(bkey)
            args += [member, delta]
        for entry in effects.ledger:
            keys.append(ledger_key(self.gen, entry.ambassador_id))
        args += [orjson.dumps(e.as_dict()) for e in effects.ledger]
        await self._apply(keys=keys, args=args, client=pipe)  # type: ignore[arg-type]

    def pipeline(self) -> object:
        return self._r.pipeline(transaction=False)

    @staticmethod
    async def commit(pipe: object) -> Sequence[int]:
        return [int(x) for x in await pipe.execute()]  # type: ignore[attr-defined]

    async def mark_seen(self, event_ids: Iterable[str]) -> None:
        ids = list(event_ids)
        if ids:
            await self._r.mset({self._seen_key(e): b"1" for e in ids})
