"""The analytics read model in Redis: the Lua that applies a batch of events (one call, atomic,
idempotent per event id, every key under `{an}`) and the reads the routes make."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
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

# One batch of steps (analytics.py's `Step`s) in one call. ARGV[1] is a flat MessagePack array
# of the steps one after another, each as: n (how many values follow), op, the step's keys, its
# args (one flat array is what Lua decodes fastest; as MessagePack, Valkey's cmsgpack decodes a
# batch of 1,000 steps in about a quarter less time than its cjson decoded their JSON). In an
# op, key i of the step is F[k + i] and arg j is F[a + j], as listed above each op. Returns one
# outcome per step: 1 applied, 0 seen, 2 known post.
#
# The effect is that of applying the steps one by one, in order, with a few commands each (one
# script call per event before; tests/integration/test_analytics_projection.py keeps those
# scripts as the reference). Each seen-set is read once (SMISMEMBER), the batch's ids tracked.
# A post hash is read once (HGETALL) and kept here while steps change it; counters, set members,
# idea ranks and last-active days are summed or settled here; `flush` then writes each post hash
# once (new fields in the order the steps create them), each counter once, each set and zset in
# one command, and EXPIREs each key once (time stands still during a script). A registration or
# an erasure (rare) flushes and forgets what is kept here, then runs as before: nothing read
# here is ever stale. A flush writes the steps' effects and their ids together; a failure before
# it writes neither, and the nak'ed batch is retried.
# Every key is under `{an}` (one Cluster slot); the call names one of them to be routed.
BATCH = """
local F = cmsgpack.unpack(ARGV[1])
local NKEYS = {post = 10, engagement = 7, moderated = 4, reviewed = 4, registered = 4, erased = 6}

-- Pending writes (key -> what to write), and reads kept until the next flush.
local counts, tags, adds, ranks, last_days, ttls, posts, written, post_order, teams, consenting
local function forget()
  counts, tags, adds, ranks, last_days, ttls = {}, {}, {}, {}, {}, {}
  posts, written, post_order, teams, consenting = {}, {}, {}, {}, {}
end
forget()
local yyyymmdd = {}

-- Pending counters and set members are ordered maps: t[member] is the value and t[1..n] the
-- members in first-touch order, the order the steps would have created them in.
local function sub(map, key)
  local t = map[key]
  if t == nil then
    t = {}
    map[key] = t
  end
  return t
end
local function add(t, member)
  local n = t[member]
  if n == nil then
    t[#t + 1] = member
    n = 0
  end
  t[member] = n + 1
end
local function sadd(key, member)
  local t = sub(adds, key)
  if t[member] == nil then
    t[#t + 1] = member
    t[member] = true
  end
end
-- A post hash's fields, read once; `written[key]` lists those set since, in first-set order.
local function post_of(key)
  local f = posts[key]
  if f == nil then
    local flat = redis.call('HGETALL', key)
    f = {}
    for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
    posts[key] = f
    written[key] = {}
    post_order[#post_order + 1] = key
  end
  return f
end
local function hset(key, f, field, value)
  local w = written[key]
  if w[field] == nil then
    w[field] = true
    w[#w + 1] = field
  end
  f[field] = value
end
-- A counter field: Lua reads the stored text as a number (and fails on anything else, as
-- HINCRBY would).
local function hincr(key, f, field)
  hset(key, f, field, (f[field] or 0) + 1)
end
local function team_of(amb)
  local team = teams[amb]
  if team == nil then
    team = redis.call('HGET', amb, 'team')
    teams[amb] = team
  end
  return team
end
local function sync_idea(f, ideas, post_key)
  local rank = false
  if f['idea'] == '1' and f['hidden'] ~= '1' then rank = (f['eng'] or 0) + 0 end
  sub(ranks, ideas)[post_key] = rank
end
-- A consenting registered ambassador's last active day (YYYYMMDD, only ever moves forward).
local function mark_active(registered, last_active, who, day)
  local known = sub(consenting, registered)
  local yes = known[who]
  if yes == nil then
    yes = redis.call('SISMEMBER', registered, who) == 1
    known[who] = yes
  end
  if yes then
    local n = yyyymmdd[day]
    if n == nil then
      n = tonumber((string.gsub(day, '-', '')))
      yyyymmdd[day] = n
    end
    local days = sub(last_days, last_active)
    if (days[who] or 0) < n then days[who] = n end
  end
end

-- Commands with many arguments go in chunks (Lua's unpack has a stack limit).
local function call_many(cmd, key, opt, flat)
  for i = 1, #flat, 2000 do
    local last = math.min(i + 1999, #flat)
    if opt then redis.call(cmd, key, opt, unpack(flat, i, last))
    else redis.call(cmd, key, unpack(flat, i, last)) end
  end
end
local function flush()
  for key, fields in pairs(counts) do
    for _, f in ipairs(fields) do redis.call('HINCRBY', key, f, fields[f]) end
  end
  for key, by in pairs(tags) do
    for _, m in ipairs(by) do redis.call('ZINCRBY', key, by[m], m) end
  end
  for _, key in ipairs(post_order) do
    local f, flat = posts[key], {}
    for _, field in ipairs(written[key]) do
      flat[#flat + 1] = field
      flat[#flat + 1] = f[field]
    end
    if #flat > 0 then call_many('HSET', key, nil, flat) end
  end
  for key, set in pairs(adds) do call_many('SADD', key, nil, set) end
  for key, by in pairs(ranks) do
    local ranked, dropped = {}, {}
    for m, rank in pairs(by) do
      if rank then
        ranked[#ranked + 1] = rank
        ranked[#ranked + 1] = m
      else dropped[#dropped + 1] = m end
    end
    if #ranked > 0 then call_many('ZADD', key, nil, ranked) end
    if #dropped > 0 then call_many('ZREM', key, nil, dropped) end
  end
  for key, days in pairs(last_days) do
    local flat = {}
    for who, n in pairs(days) do
      flat[#flat + 1] = n
      flat[#flat + 1] = who
    end
    if #flat > 0 then call_many('ZADD', key, 'GT', flat) end
  end
  for key, ttl in pairs(ttls) do redis.call('EXPIRE', key, ttl) end
  forget()
end

local OPS = {
  -- KEYS seen, post, amb, day, active, tags, ideas, amb-ideas, registered, last-active
  -- ARGV id, ttl, post_key, network, kind, day, idea, detail, person, hashtags... (to F[last])
  post = function(k, a, last)
    local post = F[k + 2]
    local f = post_of(post)
    if f['day'] ~= nil then return 2 end
    local day, active, tag_set = F[k + 4], F[k + 5], F[k + 6]
    local ttl, post_key, network, date, idea, who = F[a + 2], F[a + 3], F[a + 4], F[a + 6],
      F[a + 7], F[a + 9]
    local team = team_of(F[k + 3]) or '(none)'
    hset(post, f, 'team', team)
    hset(post, f, 'network', network)
    hset(post, f, 'day', date)
    hset(post, f, 'idea', idea)
    ttls[post] = ttl
    local c = sub(counts, day)
    add(c, 'posts')
    add(c, 'posts:net:' .. network)
    add(c, 'posts:team:' .. team)
    add(c, 'posts:kind:' .. F[a + 5])
    ttls[day] = ttl
    sadd(active, who)
    ttls[active] = ttl
    mark_active(F[k + 9], F[k + 10], who, date)
    if last >= a + 10 then
      local t = sub(tags, tag_set)
      for i = a + 10, last do add(t, F[i]) end
      ttls[tag_set] = ttl
    end
    if idea == '1' then
      hset(post, f, 'detail', F[a + 8])
      sadd(F[k + 8], post_key)
      sync_idea(f, F[k + 7], post_key)
    end
    return 1
  end,
  -- KEYS seen, post, day, active, ideas, registered, last-active
  -- ARGV id, ttl, post_key, type, network, person|'', day
  engagement = function(k, a)
    local post, day = F[k + 2], F[k + 3]
    local ttl, kind, who = F[a + 2], F[a + 4], F[a + 6]
    local f = post_of(post)
    local c = sub(counts, day)
    add(c, 'eng')
    add(c, 'eng:net:' .. F[a + 5])
    add(c, 'eng:team:' .. (f['team'] or '(unknown)'))
    add(c, 'eng:type:' .. kind)
    ttls[day] = ttl
    hincr(post, f, 'eng')
    hincr(post, f, 'eng:' .. kind)
    ttls[post] = ttl
    if who ~= '' then
      local active = F[k + 4]
      sadd(active, who)
      ttls[active] = ttl
      mark_active(F[k + 6], F[k + 7], who, F[a + 7])
    end
    sync_idea(f, F[k + 5], F[a + 3])
    return 1
  end,
  -- KEYS seen, post, day, ideas; ARGV id, ttl, post_key, verdict, principle:verdict...
  moderated = function(k, a, last)
    local post, day = F[k + 2], F[k + 3]
    local ttl, verdict = F[a + 2], F[a + 4]
    local c = sub(counts, day)
    add(c, 'verdict:' .. verdict)
    for i = a + 5, last do add(c, 'principle:' .. F[i]) end
    ttls[day] = ttl
    local f = post_of(post)
    hset(post, f, 'verdict', verdict)
    hset(post, f, 'hidden', (verdict == 'review' or verdict == 'block') and '1' or '0')
    ttls[post] = ttl
    sync_idea(f, F[k + 4], F[a + 3])
    return 1
  end,
  -- KEYS seen, post, day, ideas; ARGV id, ttl, post_key, outcome
  reviewed = function(k, a)
    local post, day = F[k + 2], F[k + 3]
    local ttl, outcome = F[a + 2], F[a + 4]
    add(sub(counts, day), 'review:' .. outcome)
    ttls[day] = ttl
    local f = post_of(post)
    hset(post, f, 'hidden', outcome == 'approved' and '0' or '1')
    ttls[post] = ttl
    sync_idea(f, F[k + 4], F[a + 3])
    return 1
  end,
  -- KEYS seen, amb, registered, last-active; ARGV id, ttl, person, team, consent
  registered = function(k, a)
    flush()
    local registered, who = F[k + 3], F[a + 3]
    redis.call('HSET', F[k + 2], 'team', F[a + 4])
    if F[a + 5] == '1' then redis.call('SADD', registered, who)
    else
      redis.call('SREM', registered, who)
      redis.call('ZREM', F[k + 4], who)
    end
    return 1
  end,
  -- KEYS seen, amb, registered, amb-ideas, ideas, last-active; ARGV id, ttl, person, post key
  -- prefix
  erased = function(k, a)
    flush()
    local amb_ideas, ideas, who = F[k + 4], F[k + 5], F[a + 3]
    redis.call('SREM', F[k + 3], who)
    redis.call('ZREM', F[k + 6], who)
    redis.call('DEL', F[k + 2])
    for _, pk in ipairs(redis.call('SMEMBERS', amb_ideas)) do
      redis.call('ZREM', ideas, pk)
      redis.call('HDEL', F[a + 4] .. pk, 'detail')
    end
    redis.call('DEL', amb_ideas)
    return 1
  end,
}

-- Where each step starts; each seen-set (KEYS[1]) read once for the batch's ids (ARGV[1]).
local starts, ids, size, o = {}, {}, #F, 1
while o <= size do
  starts[#starts + 1] = o
  local list = sub(ids, F[o + 2])
  list[#list + 1] = F[o + 2 + NKEYS[F[o + 1]]]
  o = o + F[o] + 1
end
local seen = {}
for key, list in pairs(ids) do
  local have = {}
  for i = 1, #list, 1000 do
    local got = redis.call('SMISMEMBER', key, unpack(list, i, math.min(i + 999, #list)))
    for j = 1, #got do
      if got[j] == 1 then have[list[i + j - 1]] = true end
    end
  end
  seen[key] = have
end

local out = {}
for i, o in ipairs(starts) do
  local op = F[o + 1]
  local k = o + 1
  local a = k + NKEYS[op]
  local key, id = F[k + 1], F[a + 1]
  local have = seen[key]
  if have[id] then
    out[i] = 0
  else
    have[id] = true
    sadd(key, id)
    ttls[key] = F[a + 2]
    out[i] = OPS[op](k, a, o + F[o])
  end
end
flush()
return out
"""

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


_PACK = msgspec.msgpack.Encoder().encode


def batch_rows(steps: Sequence[Step]) -> bytes:
    """`BATCH`'s argument: each step as n, op, keys, args, one after another."""
    flat: list[str | int] = []
    for s in steps:
        flat.append(1 + len(s.keys) + len(s.args))
        flat.append(s.op)
        flat += s.keys
        flat += s.args
    return _PACK(flat)


class AnalyticsStore:
    def __init__(self, redis: Redis, *, steps_per_call: int = 1_000) -> None:
        self.redis = redis
        # Valkey serves nobody else while a script runs (~10 µs a step): longer batches are cut
        # into calls of at most this many steps, still one round trip.
        self.steps_per_call = steps_per_call
        self._batch: AsyncScript = redis.register_script(BATCH)
        self._participation = redis.register_script(PARTICIPATION)
        self._backfill = redis.register_script(BACKFILL_LAST_ACTIVE)

    async def apply(self, steps: Sequence[Step]) -> list[int]:
        """Apply steps in order, one round trip; per step 1 = applied, 0 = seen, 2 = known post."""
        if not steps:
            return []
        n = self.steps_per_call
        if len(steps) <= n:
            outcomes: list[int] = await self._batch(
                keys=[steps[0].keys[0]], args=[batch_rows(steps)]
            )
        else:
            pipe = self.redis.pipeline(transaction=False)
            for i in range(0, len(steps), n):
                part = steps[i : i + n]
                await self._batch(keys=[part[0].keys[0]], args=[batch_rows(part)], client=pipe)
            outcomes = [x for part_outcomes in await pipe.execute() for x in part_outcomes]
        if len(outcomes) != len(steps):
            raise RuntimeError(f"{len(outcomes)} outcomes for {len(steps)} steps")
        return outcomes

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
