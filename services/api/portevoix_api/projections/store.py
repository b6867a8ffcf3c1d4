"""The analytics read model in Redis: the Lua steps that apply events (each one call, atomic,
idempotent per event id, every key under `{an}`) and the reads the routes make."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from portevoix.contracts.readmodels import (
    ANALYTICS_ACTIVE,
    ANALYTICS_DAY,
    ANALYTICS_IDEAS,
    ANALYTICS_POST,
    ANALYTICS_REGISTERED,
    ANALYTICS_TAGS,
)
from portevoix.runtime.redis import text
from portevoix_api.projections.analytics import LAST_ACTIVE, Step

# Every step: KEYS[1] the seen-set, ARGV[1] event id, ARGV[2] ttl (s).
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
# A consenting registered ambassador's last active day (YYYYMMDD, only ever moves forward).
_MARK_ACTIVE = """
local function mark_active(registered, last_active, who, day)
  if redis.call('SISMEMBER', registered, who) == 1 then
    redis.call('ZADD', last_active, 'GT', tonumber((string.gsub(day, '-', ''))), who)
  end
end
"""
STEPS: dict[str, str] = {
    # KEYS seen, post, amb, day, active, tags, ideas, amb-ideas, registered, last-active
    # ARGV id, ttl, post_key, network, kind, day, idea, detail, person, hashtags...
    "post": _SYNC_IDEA
    + _MARK_ACTIVE
    + _SEEN
    + """
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
    # KEYS seen, post, day, active, ideas, registered, last-active
    # ARGV id, ttl, post_key, type, network, person|'', day
    "engagement": _SYNC_IDEA
    + _MARK_ACTIVE
    + _SEEN
    + """
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
    # KEYS seen, post, day, ideas; ARGV id, ttl, post_key, verdict, principle:verdict...
    "moderated": _SYNC_IDEA
    + _SEEN
    + """
redis.call('HINCRBY', KEYS[3], 'verdict:' .. ARGV[4], 1)
for i = 5, #ARGV do redis.call('HINCRBY', KEYS[3], 'principle:' .. ARGV[i], 1) end
redis.call('EXPIRE', KEYS[3], ARGV[2])
local held = (ARGV[4] == 'review' or ARGV[4] == 'block') and '1' or '0'
redis.call('HSET', KEYS[2], 'verdict', ARGV[4], 'hidden', held)
redis.call('EXPIRE', KEYS[2], ARGV[2])
sync_idea(KEYS[2], KEYS[4], ARGV[3])
return 1
""",
    # KEYS seen, post, day, ideas; ARGV id, ttl, post_key, outcome
    "reviewed": _SYNC_IDEA
    + _SEEN
    + """
redis.call('HINCRBY', KEYS[3], 'review:' .. ARGV[4], 1)
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[2], 'hidden', ARGV[4] == 'approved' and '0' or '1')
redis.call('EXPIRE', KEYS[2], ARGV[2])
sync_idea(KEYS[2], KEYS[4], ARGV[3])
return 1
""",
    # KEYS seen, amb, registered, last-active; ARGV id, ttl, person, team, consent
    "registered": _SEEN
    + """
redis.call('HSET', KEYS[2], 'team', ARGV[4])
if ARGV[5] == '1' then redis.call('SADD', KEYS[3], ARGV[3])
else
  redis.call('SREM', KEYS[3], ARGV[3])
  redis.call('ZREM', KEYS[4], ARGV[3])
end
return 1
""",
    # KEYS seen, amb, registered, amb-ideas, ideas, last-active; ARGV id, ttl, person, post key
    # prefix
    "erased": _SEEN
    + """
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
}

# KEYS tmp, registered, active days...; → {registered, active among registered}
PARTICIPATION = """
local n = redis.call('SCARD', KEYS[2])
if #KEYS < 3 then return {n, 0} end
local days = {}
for i = 3, #KEYS do days[#days + 1] = KEYS[i] end
redis.call('SUNIONSTORE', KEYS[1], unpack(days))
local active = #redis.call('SINTER', KEYS[1], KEYS[2])
redis.call('DEL', KEYS[1])
return {n, active}
"""

# KEYS day's active set, registered, last-active; ARGV YYYYMMDD → members added or moved forward.
BACKFILL_LAST_ACTIVE = """
local who = redis.call('SINTER', KEYS[1], KEYS[2])
local n = 0
for i = 1, #who, 500 do
  local args = {}
  for j = i, math.min(i + 499, #who) do
    args[#args + 1] = ARGV[1]
    args[#args + 1] = who[j]
  end
  n = n + redis.call('ZADD', KEYS[3], 'GT', 'CH', unpack(args))
end
return n
"""
LAST_ACTIVE_FILLED = "pv:{an}:last-active:filled"  # flag: LAST_ACTIVE was backfilled once


class AnalyticsStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._steps: dict[str, AsyncScript] = {
            name: redis.register_script(src) for name, src in STEPS.items()
        }
        self._participation = redis.register_script(PARTICIPATION)
        self._backfill = redis.register_script(BACKFILL_LAST_ACTIVE)

    async def apply(self, steps: Sequence[Step]) -> list[int]:
        """Apply steps in order, one round trip; per step 1 = applied, 0 = seen, 2 = known post."""
        if not steps:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for step in steps:
            await self._steps[step.op](keys=step.keys, args=step.args, client=pipe)
        return [int(x) for x in await pipe.execute()]

    async def period(self, days: Sequence[str], top: int) -> PeriodFigures:
        pipe = self.redis.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(ANALYTICS_DAY.format(day=day))
        counters = await pipe.execute()
        tags: list[Any] = await self.redis.zunion(
            [ANALYTICS_TAGS.format(day=d) for d in days], withscores=True
        )
        tmp = f"pv:{{an}}:tmp:{secrets.token_hex(8)}"
        registered, active = await self._participation(
            keys=[tmp, ANALYTICS_REGISTERED, *(ANALYTICS_ACTIVE.format(day=d) for d in days)]
        )
        figures = PeriodFigures(registered=int(registered), active=int(active))
        for day, raw in zip(days, counters, strict=True):
            figures.days[day] = {text(k): int(v) for k, v in raw.items()}
        ranked = sorted(((text(t), int(n)) for t, n in tags), key=lambda x: (-x[1], x[0]))
        figures.hashtags = ranked[:top]
        return figures

    async def backfill_last_active(self, days: Sequence[str]) -> int | None:
        """Fill the last-active index from the day sets, once per deployment (one that ran before
        the index existed). Idempotent (ZADD GT): replicas racing here only repeat work. One
        short script per day; returns the entries written, None when already done."""
        if await self.redis.exists(LAST_ACTIVE_FILLED):
            return None
        n = 0
        for day in days:
            n += int(
                await self._backfill(
                    keys=[ANALYTICS_ACTIVE.format(day=day), ANALYTICS_REGISTERED, LAST_ACTIVE],
                    args=[day.replace("-", "")],
                )
            )
        await self.redis.set(LAST_ACTIVE_FILLED, "1")
        return n

    async def ideas(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """A page of visible idea posts, most engaging first; and whether more follow."""
        reply: list[Any] = await self.redis.zrevrange(
            ANALYTICS_IDEAS, offset, offset + limit, withscores=True
        )
        more = len(reply) > limit
        reply = reply[:limit]
        pipe = self.redis.pipeline(transaction=False)
        for member, _ in reply:
            pipe.hgetall(ANALYTICS_POST.format(post_key=text(member)))
        posts = await pipe.execute() if reply else []
        out: list[dict[str, Any]] = []
        for raw in posts:
            fields = {text(k): text(v) for k, v in raw.items()}
            if "detail" not in fields:  # expired or erased meanwhile
                continue
            detail = orjson.loads(fields["detail"])
            engagement = {
                k.removeprefix("eng:"): int(v) for k, v in fields.items() if k.startswith("eng:")
            }
            out.append(
                {**detail, "team": fields.get("team"), "verdict": fields.get("verdict"),
                 "engagement": {"total": int(fields.get("eng", "0")), **engagement}}
            )  # fmt: skip
        return out, more


@dataclass
class PeriodFigures:
    registered: int
    active: int
    days: dict[str, dict[str, int]] = field(default_factory=dict)
    hashtags: list[tuple[str, int]] = field(default_factory=list)
