"""Scoring's Redis repository: one atomic Lua step per event, with its dedupe marker.

The step checks, in this order: the generation (a live writer whose generation was swapped out by
a rebuild, or that meets the swap pause, gets STALE and recomputes on the new generation), the
event's marker (duplicate → no-op), and the version of every state the event read (post state,
ambassador states, reaction marker: optimistic concurrency between scoring instances → CONFLICT →
recompute). Then it writes the new states, the marker, the leaderboard increments, the reach
counters, the ledger lines, the badges and the outbox together. Every key carries the `{sc}` hash
tag: one script call touches one slot (Redis Cluster).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import msgspec
import orjson
from mypy_extensions import mypyc_attr
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from portevoix.contracts.events import BadgeAwarded
from portevoix.contracts.periods import periods_of
from portevoix.contracts.readmodels import (
    AMBASSADOR_STATE,
    BOARD_INDEX,
    BOARD_INDEX_DONE,
    COLLEAGUE_PAIRS,
    ORG_ONLY,
    POST_ITEMS,
    POST_STATE,
    REACTION,
    SCORING_GENERATION,
    SCORING_OUTBOX,
    SCORING_PAUSE,
    SCORING_TABLES,
    SEEN,
    TEAM_MEMBERS_DONE,
    badges_key,
    board_key,
    campaign_board_key,
    gen_table_key,
    ledger_key,
    stats_key,
    stats_total_key,
    team_members_key,
    teams_board_key,
)
from portevoix.runtime.redis import text
from portevoix_scoring.domain.ambassador_state import AmbassadorState
from portevoix_scoring.domain.post_state import PostState, changed_items, item_line, item_of
from portevoix_scoring.domain.scorer import Effects
from portevoix_scoring.domain.table import PointsTable, load_table

APPLIED, DUPLICATE, CONFLICT, STALE = 1, 0, -1, -2
_PACK = msgspec.msgpack.Encoder().encode  # the script's batch (cmsgpack.unpack)
PRODUCER = "scoring"

# One script call applies a batch of steps atomically, all or nothing. It checks, in order: the
# generation (a live writer whose generation was swapped out by a rebuild, or that meets the swap
# pause, gets STALE), the events' dedupe markers (any already set → DUPLICATE with their indexes,
# nothing written), the version of every state the batch read (any changed by another instance →
# CONFLICT with their indexes, nothing written). Then it writes the new states (version = the
# batch's token: unique per write, so a step computed on top of a write that did not happen can
# never pass; a state is stored as one string "version\njson", read with one MGET), the markers,
# and the aggregated leaderboard, counter, ledger and badge changes.
# Redis Cluster: every key carries the `{sc}` hash tag, so every key the script touches is in the
# slot of its declared KEYS (gen, pause); the cluster verifies that same-slot rule at run time.
# The other keys travel in the payload: declaring thousands of KEYS per batch cost more to encode
# in Python than the whole computation.
# KEYS: gen, pause. ARGV: gen ('' = no check: a rebuild writing a generation not yet live), token
# (unused by the script: the states in the blob already carry it), the batch as MessagePack, and
# the values (states "token\njson", ledger lines, badges) concatenated, referred to as (offset,
# length): neither escaped into the batch nor parsed by the script. (MessagePack, not JSON:
# Valkey's cmsgpack decodes a batch in fewer instructions than its cjson; Valkey instructions
# replaying the awards bench's batches under callgrind, 6.59 → 6.37 G.)
#   m: marker keys; gk: state keys read, gv: the versions they must have; gw: (index into gk,
#   offset, length)* of the states written; z: [key, (member, delta)*]; h: [key, (field, delta)*];
#   d: post item lists to start over (DEL, before `l` appends to them); l: [key, (offset,
#   length)*] (RPUSH: ledger lines, post items); x: [key, field, offset, length]; s: team
#   members, (1 add | 0 remove, key, ambassador)*; bp: prefix of
#   the per-person board keys, bi: their index (set), ob: the outbox; e: GDPR erasures, after the
#   batch's writes (an erasure is always the last step of its batch): [ambassador, ledger key,
#   badges key, stats key, [rolling cache keys], [their reaction markers]]
# Multi-key commands (EXISTS, MGET, MSET) in chunks: each call from Lua has a fixed cost that
# dominated the script when every marker and state had its own call.
# The writing half, shared with the unchecked bulk writes of a rebuild (WRITE_LUA).
# Board writes: inside a script every write command costs ~1 µs of AOF propagation on top of
# its own work (a ZINCRBY is ~2 µs all-in), so a board moved for 3+ members takes one ZMSCORE and
# one ZADD of the new scores instead of a ZINCRBY each (the threshold measured flat from 1 to 8).
# The summing is Lua work too, so it is one table update per credit and board (a team's total
# once per target set), and scores go as numbers, not string.format'ed: awards bench, Valkey CPU
# per award 64 (a ZINCRBY each) → 61.5 (summed per board and member) → 56.5 µs.
_WRITE_PART = """
local V = ARGV[4]
local args = {}
local W = b.gw
for j = 1, #W, 3 do
  args[#args + 1] = GK[W[j]]
  args[#args + 1] = string.sub(V, W[j + 1], W[j + 1] + W[j + 2] - 1)
  if #args >= 2 * CH then redis.call('MSET', unpack(args)); args = {} end
end
for _, k in ipairs(M) do
  args[#args + 1] = k
  args[#args + 1] = '1'
  if #args >= 2 * CH then redis.call('MSET', unpack(args)); args = {} end
end
if #args > 0 then redis.call('MSET', unpack(args)) end
-- Post item lists started over (then appended to by `l`, like the ledgers).
for _, k in ipairs(b.d) do redis.call('DEL', k) end
local BP, idx = b.bp, {}
-- Board changes are summed per (board, member) first (credits per target set, a team's once per
-- set), then written per board: one ZINCRBY per member on a board with few of them, else one
-- ZMSCORE and one multi-member ZADD of the new scores. Scores go as Lua numbers: integer
-- centipoints, which Valkey prints as integers (exact, no exponent), cheaper than formatting
-- them in Lua. A member whose changes sum to 0 is still written (created at 0, as ZINCRBY does).
local ZA, ZK, nk = {}, {}, 0
for _, z in ipairs(b.z) do
  local k = z[1]
  local a = ZA[k]
  if not a then a = {}; ZA[k] = a; nk = nk + 1; ZK[nk] = k end
  for j = 2, #z, 2 do
    local m = z[j]
    a[m] = (a[m] or 0) + tonumber(z[j + 1])
  end
  if string.sub(k, 1, #BP) == BP then idx[#idx + 1] = k end
end
-- Credits fanned out here (checked batches): c = (target set, ambassador, delta)*, t = target
-- sets {per-person boards, teams boards, team}. Python sends each credit once instead of ~15
-- board entries.
local TS, C = b.t or {}, b.c or {}
if #C > 0 then
  for _, t in ipairs(TS) do
    for _, k in ipairs(t[1]) do idx[#idx + 1] = k end
  end
  local P, T = {}, {}
  for j = 1, #C, 3 do
    local i, d = C[j], tonumber(C[j + 2])
    local p = P[i]
    if p then
      p[#p + 1] = C[j + 1]; p[#p + 1] = d; T[i] = T[i] + d
    else
      P[i] = {C[j + 1], d}; T[i] = d
    end
  end
  for i, t in ipairs(TS) do
    local p = P[i]
    if p then
      local np = #p
      for _, k in ipairs(t[1]) do
        local a = ZA[k]
        if not a then a = {}; ZA[k] = a; nk = nk + 1; ZK[nk] = k end
        for j = 1, np, 2 do
          local m = p[j]
          a[m] = (a[m] or 0) + p[j + 1]
        end
      end
      local team, v = t[3], T[i]
      for _, k in ipairs(t[2]) do
        local a = ZA[k]
        if not a then a = {}; ZA[k] = a; nk = nk + 1; ZK[nk] = k end
        a[team] = (a[team] or 0) + v
      end
    end
  end
end
for n = 1, nk do
  local k = ZK[n]
  local a, ms, nm = ZA[k], {}, 0
  for m in pairs(a) do nm = nm + 1; ms[nm] = m end
  if nm < 3 then
    for i = 1, nm do redis.call('ZINCRBY', k, a[ms[i]], ms[i]) end
  else
    for i = 1, nm, CH do
      local last = math.min(i + CH - 1, nm)
      local cur = redis.call('ZMSCORE', k, unpack(ms, i, last))
      local args, na = {}, 0
      for j = i, last do
        local s, m = cur[j - i + 1], ms[j]
        args[na + 1] = (s and tonumber(s) or 0) + a[m]
        args[na + 2] = m
        na = na + 2
      end
      redis.call('ZADD', k, unpack(args))
    end
  end
end
-- Team members: (1 add | 0 remove, members key, ambassador)*, in step order (a registration,
-- then an erasure of the same person, in one batch).
local S = b.s or {}
for j = 1, #S, 3 do
  if S[j] == 1 then
    redis.call('SADD', S[j + 1], S[j + 2])
  else
    redis.call('SREM', S[j + 1], S[j + 2])
  end
end
-- Per-person boards are indexed as they are written (one SADD per batch): an erasure finds
-- every board of every period without a SCAN of the keyspace.
for i = 1, #idx, CH do redis.call('SADD', b.bi, unpack(idx, i, math.min(i + CH - 1, #idx))) end
for _, h in ipairs(b.h) do
  local k = h[1]
  for j = 2, #h, 2 do redis.call('HINCRBY', k, h[j], h[j + 1]) end
end
for _, l in ipairs(b.l) do
  local vals = {}
  for j = 2, #l, 2 do
    vals[#vals + 1] = string.sub(V, l[j], l[j] + l[j + 1] - 1)
    if #vals >= CH then redis.call('RPUSH', l[1], unpack(vals)); vals = {} end
  end
  if #vals > 0 then redis.call('RPUSH', l[1], unpack(vals)) end
end
for _, x in ipairs(b.x) do
  redis.call('HSET', x[1], x[2], string.sub(V, x[3], x[3] + x[4] - 1))
end
if #b.e > 0 then
  local boards = redis.call('SMEMBERS', b.bi)
  local queued = redis.call('LRANGE', b.ob, 0, -1)
  for _, e in ipairs(b.e) do
    local id = e[1]
    for _, k in ipairs(boards) do redis.call('ZREM', k, id) end
    for _, k in ipairs(e[5]) do redis.call('ZREM', k, id) end
    for _, k in ipairs(e[6]) do redis.call('DEL', k) end
    redis.call('DEL', e[2], e[3], e[4])
    -- Badges of theirs not published yet are not published any more.
    for _, item in ipairs(queued) do
      local ok, ev = pcall(cjson.decode, item)
      if ok and ev.ambassador_id == id then redis.call('LREM', b.ob, 1, item) end
    end
  end
end
return {1, {}}
"""
APPLY_LUA = (
    """
if ARGV[1] ~= '' then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('EXISTS', KEYS[2]) == 1 then
    return {-2, {}}
  end
end
local CH = 500
local b = cmsgpack.unpack(ARGV[3])
local M, GK, GV = b.m, b.gk, b.gv
local found = 0
for i = 1, #M, CH do
  found = found + redis.call('EXISTS', unpack(M, i, math.min(i + CH - 1, #M)))
end
if found > 0 then
  local hit = {}
  for i, k in ipairs(M) do
    if redis.call('EXISTS', k) == 1 then hit[#hit + 1] = i end
  end
  return {0, hit}
end
local hit = {}
for i = 1, #GK, CH do
  local last = math.min(i + CH - 1, #GK)
  local vals = redis.call('MGET', unpack(GK, i, last))
  for j = i, last do
    local s = vals[j - i + 1]
    local v = ''
    if s then v = string.sub(s, 1, string.find(s, '\\n', 1, true) - 1) end
    if v ~= GV[j] then hit[#hit + 1] = j end
  end
end
if #hit > 0 then return {-1, hit} end
"""
    + _WRITE_PART
)

# A rebuild's bulk writes into a generation nobody else writes yet: no generation, marker or
# version check; bounded chunks (the caller splits a flush) so the server never stalls long.
WRITE_LUA = (
    """
local CH = 500
local b = cmsgpack.unpack(ARGV[3])
local M, GK = b.m, b.gk
"""
    + _WRITE_PART
)

# Team members from ambassador states ("version\njson"): ARGV members prefix, (key, id)*.
MEMBERS_LUA = """
for i = 2, #ARGV, 2 do
  local s = redis.call('GET', ARGV[i])
  if s then
    local ok, st = pcall(cjson.decode, string.sub(s, string.find(s, '\\n', 1, true) + 1))
    if ok and type(st.team) == 'string' and st.team ~= '' and not st.erased then
      redis.call('SADD', ARGV[1] .. st.team, ARGV[i + 1])
    end
  end
end
return 1
"""

# Swap generations only if the expected one is still live (two rebuilds cannot both win).
SWAP_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
return 1
"""


@dataclass
class Versioned:
    """A state as loaded: its version (the token of its last write; "" = absent) and value."""

    version: str
    raw: bytes | None

    def __init__(self, version: str, raw: bytes | None) -> None:
        # Written out: compiled, a dataclass's generated __init__ stays interpreted (scorer.py).
        self.version, self.raw = version, raw


@dataclass
class Guard:
    """A state key an event read: the version it must still have, and its new value (None: the
    event only read it). The value is serialised when the batch is sent: its final state."""

    key: str
    version: str
    value: bytes | Serialisable | None

    def __init__(self, key: str, version: str, value: bytes | Serialisable | None) -> None:
        self.key, self.version, self.value = key, version, value


class Serialisable(Protocol):
    def dumps(self) -> bytes: ...


@mypyc_attr(allow_interpreted_subclasses=True)  # tests wrap `send` to watch the scripts
class ScoreStore:
    def __init__(self, redis: Redis, generation: str = "1", *, live: bool = True) -> None:
        self._r = redis
        self.gen = generation
        self.live = live  # live writers check the generation; a rebuild fills a future one
        self._prefixes()
        self._apply = redis.register_script(APPLY_LUA)
        self._swap = redis.register_script(SWAP_LUA)
        self._write = redis.register_script(WRITE_LUA)
        self._members_from_states = redis.register_script(MEMBERS_LUA)
        self.write_sha = self._write.sha

    @classmethod
    async def open(cls, redis: Redis, table: PointsTable) -> tuple[ScoreStore, PointsTable]:
        """The live generation and its points table (recorded with the generation, so every
        instance and a rebuild agree on the rules; the configured table seeds generation 1)."""
        await redis.set(SCORING_GENERATION, "1", nx=True)
        gen = text(await redis.get(SCORING_GENERATION) or b"1")
        await redis.set(gen_table_key(gen), table.dumps(), nx=True)
        await redis.hsetnx(SCORING_TABLES, table.version, table.dumps())
        raw = await redis.get(gen_table_key(gen))
        store = cls(redis, gen)
        await store.index_boards()  # a generation written before boards were indexed
        await store.index_members()  # a generation written before teams had members sets
        return store, load_table(text(raw)) if raw else table

    @property
    def redis(self) -> Redis:
        return self._r

    async def live_generation(self) -> str:
        return text(await self._r.get(SCORING_GENERATION) or b"1")

    async def index_boards(self, batch: int = 1000) -> int:
        """Index the per-person boards written before the index existed (once per generation;
        boards written since index themselves). Returns how many were found."""
        done = BOARD_INDEX_DONE.format(gen=self.gen)
        if await self._r.exists(done):
            return 0
        n = await self._each_chunk(self.board_prefix + "*", batch, self._index_boards)
        await self._r.set(done, "1")
        return n

    async def _index_boards(self, keys: list[bytes]) -> int:
        await self._r.sadd(self.board_index, *keys)
        return len(keys)

    async def index_members(self, batch: int = 500) -> int:
        """Fill the team members sets from the ambassador states of a generation written
        before they existed, and drop the team member boards it kept then (a team's board is
        now read from the organisation's board and its members). Once per generation; each
        chunk of states is read and indexed in one script, so a registration applied meanwhile
        by a live writer is never undone. Returns how many states were read."""
        done = TEAM_MEMBERS_DONE.format(gen=self.gen)
        if await self._r.exists(done):
            return 0
        n = await self._each_chunk(self._amb_prefix + "*", batch, self._index_members)
        await self._each_chunk(self.board_prefix + "*:team:*", batch, self._drop_boards)
        await self._r.set(done, "1")
        return n

    async def _index_members(self, keys: list[bytes]) -> int:
        cut = len(self._amb_prefix)
        await self._members_from_states(
            keys=[SCORING_GENERATION],
            args=[self.members_prefix, *(x for k in keys for x in (k, text(k)[cut:]))],
        )
        return len(keys)

    async def _drop_boards(self, keys: list[bytes]) -> int:
        await self._r.unlink(*keys)
        await self._r.srem(self.board_index, *keys)
        return len(keys)

    async def _each_chunk(
        self, match: str, batch: int, apply: Callable[[list[bytes]], Awaitable[int]]
    ) -> int:
        """`apply` to the keys matching `match`, `batch` at a time, as SCAN finds them (it
        visits every node of a cluster); the sum of what it returns."""
        n = 0
        keys: list[bytes] = []
        async for key in self._r.scan_iter(match=match, count=batch):
            keys.append(key)
            if len(keys) >= batch:
                n += await apply(keys)
                keys = []
        if keys:
            n += await apply(keys)
        return n

    async def erasure_targets(
        self, ambassadors: Iterable[str], batch: int = 1000
    ) -> tuple[list[str], dict[str, list[str]]]:
        """What an erasure must find by name: the API's rolling-window caches (unions of day
        boards, 5 s TTL) and team views (a team's board as last read, TTL), and the erased
        people's reaction markers (`react:<post>:<kind>:<id>`, one like/share per actor per
        post). One SCAN (`rolling:`, `rview:` and `react:` share their first letter): it
        visits the whole keyspace, in small non-blocking steps; erasures
        are rare, the hot path keeps no index for these. Left behind, at worst: a cache built
        between this SCAN and the step (it expires in 5 s) and a like of theirs applied in
        that window by another instance (ingest stops their activity at the erasure)."""
        gen_prefix = self.board_prefix.removesuffix("board:")
        caches = (gen_prefix + "rolling:", gen_prefix + "rview:")
        found: dict[str, list[str]] = {a: [] for a in ambassadors}
        rolling: list[str] = []
        async for raw in self._r.scan_iter(match=gen_prefix + "r*", count=batch):
            key = text(raw)
            if key.startswith(caches):
                rolling.append(key)
            elif key.startswith(self._react_prefix):
                mine = found.get(key.rpartition(":")[2])
                if mine is not None:
                    mine.append(key)
        return rolling, found

    # -- keys (templates end with their variable part: prefixes are computed once) ----------
    def _prefixes(self) -> None:
        gen = self.gen
        self._post_prefix = POST_STATE.format(gen=gen, post_key="")
        self._amb_prefix = AMBASSADOR_STATE.format(gen=gen, ambassador_id="")
        self._pairs_prefix = COLLEAGUE_PAIRS.format(gen=gen, ambassador_id="")
        self._seen_prefix = SEEN.format(gen=gen, event_id="")
        self._react_prefix = REACTION.format(gen=gen, post_key="", kind="", actor="")[:-2]
        self.reaction_prefix = self._react_prefix
        self.board_prefix = board_key(gen, "")  # every per-person board starts with it
        self.ledger_prefix = ledger_key(gen, "")
        self.stats_prefix = stats_key(gen, "")
        self.board_index = BOARD_INDEX.format(gen=gen)
        self.members_prefix = team_members_key(gen, "")
        self._held_prefix = POST_ITEMS.format(gen=gen, which="held", post_key="")
        self._voided_prefix = POST_ITEMS.format(gen=gen, which="voided", post_key="")

    def post_key(self, post_key: str) -> str:
        return self._post_prefix + post_key

    def ambassador_key(self, ambassador_id: str) -> str:
        return self._amb_prefix + ambassador_id

    def pairs_key(self, ambassador_id: str) -> str:
        return self._pairs_prefix + ambassador_id

    def items_keys(self, post_key: str) -> tuple[str, str]:
        """The lists of a post's held and voided items."""
        return self._held_prefix + post_key, self._voided_prefix + post_key

    def reaction_key(self, post_key: str, kind: str, actor: str) -> str:
        return f"{self._react_prefix}{post_key}:{kind}:{actor}"

    def seen_key(self, event_id: str) -> str:
        return self._seen_prefix + event_id

    # -- read phase ------------------------------------------------------------------------
    async def load(
        self, state_keys: Iterable[str], event_ids: Iterable[str]
    ) -> tuple[dict[str, Versioned], set[str]]:
        """Versioned states and the events already applied, in one MGET."""
        keys = list(dict.fromkeys(state_keys))
        events = list(dict.fromkeys(event_ids))
        if not keys and not events:
            return {}, set()
        res: list[Any] = await self._r.mget([*keys, *(self.seen_key(e) for e in events)])
        states: dict[str, Versioned] = {}
        for k, raw in zip(keys, res[: len(keys)], strict=True):
            if raw:
                version, _, value = raw.partition(b"\n")
                states[k] = Versioned(version.decode(), value)
            else:
                states[k] = Versioned("", None)
        seen = {eid for eid, hit in zip(events, res[len(keys) :], strict=True) if hit}
        return states, seen

    async def load_items(self, posts: Iterable[PostState]) -> None:
        """The held and voided items of post states just read (`PostState.unread`), in one
        round trip. A state's version covers its items: they are only written with it."""
        wanted = [p for p in posts if p.unread != (0, 0)]
        if not wanted:
            return
        pipe = self._r.pipeline(transaction=False)
        for p in wanted:
            for key in self.items_keys(p.post_key):
                pipe.lrange(key, 0, -1)
        res: list[list[bytes]] = await pipe.execute()
        for i, p in enumerate(wanted):
            p.attach([item_of(r) for r in res[2 * i]], [item_of(r) for r in res[2 * i + 1]])

    # -- write phase -----------------------------------------------------------------------
    def batch(self, *, publish_badges: bool = True) -> BatchWrite:
        return BatchWrite(self, publish_badges=publish_badges)

    async def commit(self, batch: BatchWrite, token: str) -> tuple[int, list[int]]:
        """Apply a batch atomically: (APPLIED, []), or (DUPLICATE | CONFLICT, indexes of the
        steps whose marker was set / whose states changed), or (STALE, [])."""
        if not batch.steps:
            return APPLIED, []
        if batch.erasures:
            batch.targets = await self.erasure_targets(batch.erasures)
        return await self.send(batch, batch.payload(token))

    async def send(self, batch: BatchWrite, payload: tuple[bytes, bytes]) -> tuple[int, list[int]]:
        """`commit` with the payload built beforehand (`batch.payload`, erasure targets found):
        the pipeline serialises a batch before computing the next one on its states."""
        res = await self._apply(
            keys=[SCORING_GENERATION, SCORING_PAUSE],
            args=[self.gen if self.live else "", "", *payload],
        )
        status, where = int(res[0]), [int(i) - 1 for i in res[1]]
        if status == DUPLICATE:
            where = sorted({batch.steps[i] for i in where})
        elif status == CONFLICT:
            keys = list(batch.guard_steps)
            where = sorted({batch.steps[s] for i in where for s in batch.guard_steps[keys[i]]})
        return status, where

    # -- outbox (events to publish once their effects are durable) -------------------------
    async def outbox(self, limit: int = 1000) -> list[bytes]:
        items = await self._r.lrange(SCORING_OUTBOX, 0, limit - 1)
        return [i if isinstance(i, bytes) else i.encode() for i in items]

    async def outbox_done(self, items: Iterable[bytes]) -> None:
        pipe = self._r.pipeline(transaction=False)
        for item in items:
            pipe.lrem(SCORING_OUTBOX, 1, item)  # type: ignore[arg-type]
        await pipe.execute()

    # -- generations -----------------------------------------------------------------------
    async def swap(self, old: str, new: str) -> bool:
        """Make `new` the live generation if `old` still is, and lift the swap pause."""
        return bool(await self._swap(keys=[SCORING_GENERATION, SCORING_PAUSE], args=[old, new]))

    async def drop_generation(self, gen: str, batch: int = 2000) -> int:
        """Delete every key of a generation that is not live any more (UNLINK, in batches)."""
        return await self._each_chunk(f"pv:{{sc}}:{gen}:*", batch, self._unlink)

    async def _unlink(self, keys: list[bytes]) -> int:
        return int(await self._r.unlink(*keys))


@lru_cache(maxsize=8192)
def board_targets(
    gen: str, day: str, team: str | None, campaigns: tuple[str, ...]
) -> tuple[tuple[str, bool], ...]:
    """Every board a credit of `day` moves: (key, whether the member is the team)."""
    out: list[tuple[str, bool]] = []
    for period in periods_of(day):
        out.append((board_key(gen, period), False))
        if team:
            out.append((teams_board_key(gen, period), True))
        for campaign in campaigns:
            out.append((campaign_board_key(gen, period, campaign), False))
    return tuple(out)


@lru_cache(maxsize=8192)
def credit_targets(
    gen: str, day: str, team: str | None, campaigns: tuple[str, ...], personal: bool
) -> list[Any]:
    """A credit's target set as the script takes it: [per-person boards, teams boards, team]."""
    mine: list[str] = []
    teams: list[str] = []
    for key, is_team in board_targets(gen, day, team, campaigns):
        if is_team:
            teams.append(key)
        elif personal:
            mine.append(key)
    return [mine, teams, team or ""]


class BatchWrite:
    """The changes of a batch of steps, aggregated per key."""

    def __init__(self, store: ScoreStore, *, publish_badges: bool) -> None:
        self._store = store
        self._publish = publish_badges
        self.steps: list[int] = []  # caller's index of each step
        self.markers: list[str] = []  # marker key of each step, in step order
        self._guards: dict[str, list[Any]] = {}  # key -> [expected version, value]
        self.guard_steps: dict[str, list[int]] = {}  # key -> step positions reading it
        self._l: dict[str, list[bytes]] = {}
        self._x: list[tuple[str, str, bytes]] = []
        self._credits: dict[tuple[str | None, str, str | None, tuple[str, ...]], int] = {}
        self._reach: dict[str | None, dict[str, int]] = {}
        self.erasures: list[str] = []  # ambassadors erased by the batch's last step
        self._members: list[Any] = []  # (1 add | 0 remove, members key, ambassador)*
        # Found by name before sending: rolling caches and team views, reaction markers per
        # erased person.
        self.targets: tuple[list[str], dict[str, list[str]]] = ([], {})

    def add(self, step: int, event_id: str, guards: Iterable[Guard], effects: Effects) -> None:
        pos = self.step(step, event_id)
        self.put_states(guards, pos)
        self.record(effects)

    def step(self, step: int, event_id: str) -> int:
        """Start the step of the caller's event `step` (its dedupe marker); its position, for
        `guard`. Then `guard` each state it read or wrote, and `record` its effects."""
        pos = len(self.steps)
        self.steps.append(step)
        self.markers.append(self._store.seen_key(event_id))
        return pos

    def guard(self, key: str, version: str, value: bytes | Serialisable | None, pos: int) -> None:
        """A state the step at `pos` read (version to check) and wrote (`value`; None: read
        only); `pos` -1: no step, the unchecked writes of a rebuild."""
        slot = self._guards.get(key)
        if slot is None:
            self._guards[key] = [version, value]
            self.guard_steps[key] = [pos] if pos >= 0 else []
        else:
            if pos >= 0:
                self.guard_steps[key].append(pos)
            if value is not None:
                slot[1] = value

    def put_states(self, guards: Iterable[Guard], pos: int = -1) -> None:
        """`guard` each of `guards` for the step at `pos`."""
        for g in guards:
            self.guard(g.key, g.version, g.value, pos)

    def record(self, effects: Effects) -> None:
        """A step's effects: credits and reach summed, ledger lines and badges queued."""
        gen = self._store.gen
        # Credits and reach are summed per ambassador/day first and fanned out to every board
        # and counter once per batch (`_expand`): far fewer dictionary operations per event.
        credits = self._credits
        for c in effects.credits:
            ck = (c.ambassador_id, c.day, c.team, c.campaigns)
            credits[ck] = credits.get(ck, 0) + c.points
        reach = self._reach
        for r in effects.reach:
            mine = reach.get(r.ambassador_id)
            if mine is None:
                mine = reach[r.ambassador_id] = {}
            for fld, v in r.values.items():
                mine[fld] = mine.get(fld, 0) + v
        lists = self._l
        ledger_prefix = self._store.ledger_prefix
        for e in effects.ledger:
            key = ledger_prefix + e.ambassador_id
            line = e.to_json()
            lines = lists.get(key)
            if lines is None:
                lists[key] = [line]
            else:
                lines.append(line)
        self.erasures += effects.erased
        if effects.moved is not None:
            aid, left, joined = effects.moved
            prefix = self._store.members_prefix
            if left and left != joined:
                self._members += (0, prefix + left, aid)
            if joined:
                self._members += (1, prefix + joined, aid)
        for b in effects.badges:
            grant = {"badge": b.badge, "title": b.title, "at": b.at, "level": b.level,
                     "reason_event_id": b.reason_event_id}  # fmt: skip
            self._x.append((badges_key(gen, b.ambassador_id), b.badge, orjson.dumps(grant)))
            if self._publish:
                event = BadgeAwarded(
                    event_id=b.event_id, occurred_at=b.at, producer=PRODUCER,
                    ambassador_id=b.ambassador_id, badge=b.badge, title=b.title,
                    reason_event_id=b.reason_event_id,
                )  # fmt: skip
                lists.setdefault(SCORING_OUTBOX, []).append(
                    orjson.dumps(event.model_dump(mode="json"))
                )

    def _expand(self) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
        """Fan summed credits out to every board (key -> member -> delta), summed reach to the
        ambassador's and the organisation's counters (key -> field -> delta)."""
        z = self._expand_credits()
        return z, self._expand_reach()

    def _credit_sets(self) -> tuple[list[list[Any]], list[Any]]:
        """Summed credits for the script to fan out: (target sets, (set, member, delta)*)."""
        gen = self._store.gen
        index: dict[tuple[str, str | None, tuple[str, ...], bool], int] = {}
        sets: list[list[Any]] = []
        flat: list[Any] = []
        for (aid, day, team, campaigns), cp in self._credits.items():
            if not cp:
                continue
            k = (day, team, campaigns, aid is not None)
            i = index.get(k)
            if i is None:
                sets.append(credit_targets(gen, day, team, campaigns, aid is not None))
                i = index[k] = len(sets)  # Lua tables are 1-based
            flat += (i, aid or "", str(cp))
        self._credits = {}
        return sets, flat

    def _expand_credits(self) -> dict[str, dict[str, int]]:
        gen = self._store.gen
        z: dict[str, dict[str, int]] = {}
        for (aid, day, team, campaigns), cp in self._credits.items():
            if not cp:
                continue
            for key, is_team in board_targets(gen, day, team, campaigns):
                if aid is None and not is_team:
                    continue  # an erased author's points: team boards only
                member = team if is_team and team else aid
                assert member is not None
                board = z.get(key)
                if board is None:
                    z[key] = {member: cp}
                else:
                    board[member] = board.get(member, 0) + cp
        self._credits = {}
        return z

    def _expand_reach(self) -> dict[str, dict[str, int]]:
        store = self._store
        h: dict[str, dict[str, int]] = {}
        if self._reach:
            total: dict[str, int] = {}
            for aid, values in self._reach.items():
                # None: an erased author's, organisation totals only. EMV by network is read
                # for the organisation only (dashboards): not kept per person (one HINCRBY less
                # per event in the script).
                personal: dict[str, int] | None = {} if aid is not None else None
                for f, v in values.items():
                    if v:
                        total[f] = total.get(f, 0) + v
                        if personal is not None and not f.startswith(ORG_ONLY):
                            personal[f] = v
                if personal and aid is not None:
                    h[store.stats_prefix + aid] = personal
            if total:
                h[stats_total_key(store.gen)] = total
        self._reach = {}
        return h

    def version_of(self, key: str, token: str) -> str:
        """The version a guarded key has once the batch is applied."""
        version, value = self._guards[key]
        return token if value is not None else str(version)

    async def write_unchecked(self, redis: Redis, token: str, ops_per_call: int = 4000) -> None:
        """Write the batch without markers or version checks, in bounded script calls (a few
        thousand commands each, pipelined): only for a generation nobody else writes (the bulk
        of a rebuild, before its swap)."""
        if self.erasures:
            self.targets = await self._store.erasure_targets(self.erasures)
        calls = self._pack(token, ops_per_call)
        await redis.script_load(WRITE_LUA)
        args = (self._store.write_sha, 2, SCORING_GENERATION, SCORING_PAUSE, "", token)
        if isinstance(redis, RedisCluster):
            # A cluster pipeline refuses scripts: one call at a time, in order (each is a few
            # thousand commands: the round trip is small beside it).
            for batch, values in calls:
                await redis.evalsha(*args, batch, values)
            return
        pipe = redis.pipeline(transaction=False)
        for i, (batch, values) in enumerate(calls, 1):
            pipe.evalsha(*args, batch, values)
            if i % 8 == 0 or i == len(calls):
                await pipe.execute()
                pipe = redis.pipeline(transaction=False)

    def _stored_form(self, value: bytes | Serialisable, dels: list[str]) -> bytes:
        """A state as stored. A post state's held and voided items go to their own lists: only
        what is new is appended (`dels`: lists to start over first), so a post gathering
        items costs the same per event however many it has."""
        if isinstance(value, bytes):
            return value
        if not isinstance(value, PostState):
            return value.dumps()
        post = value
        assert post.unread == (0, 0), "a post state's items must be read before it is written"
        held, n_held, voided, n_voided = post.stored
        if post.held or post.voided or n_held or n_voided:
            keys = self._store.items_keys(post.post_key)
            for key, current, stored, n in ((keys[0], post.held, held, n_held),
                                            (keys[1], post.voided, voided, n_voided)):  # fmt: skip
                again, new = changed_items(current, stored, n)
                if again:
                    dels.append(key)
                if new:
                    lines = self._l.get(key)
                    if lines is None:
                        lines = self._l[key] = []
                    lines += (item_line(i) for i in new)
            post.stored = (post.held, len(post.held), post.voided, len(post.voided))
        return post.blob()

    def _erasure_entries(self) -> list[list[Any]]:
        store = self._store
        gen = store.gen
        rolling, reactions = self.targets
        out: list[list[Any]] = []
        for aid in self.erasures:
            # Reaction markers of theirs: those in Redis, and those this batch writes.
            mine = {*reactions.get(aid, ()),
                    *(k for k in self._guards
                      if k.startswith(store.reaction_prefix) and k.endswith(":" + aid))}  # fmt: skip
            out.append([aid, ledger_key(gen, aid), badges_key(gen, aid), stats_key(gen, aid),
                        rolling, sorted(mine)])  # fmt: skip
        return out

    def _common(self) -> dict[str, Any]:
        store = self._store
        return {"bp": store.board_prefix, "bi": store.board_index, "ob": SCORING_OUTBOX}

    def payload(self, token: str) -> tuple[bytes, bytes]:
        """The script's batch (MessagePack) and its values blob, all in one (checked steps).
        Values are referred to by (offset, length) into the blob."""
        target_sets, credits = self._credit_sets()
        h = self._expand_reach()
        prefix = token.encode() + b"\n"
        chunks: list[bytes] = []
        offset = 1  # Lua strings are 1-based
        gw: list[int] = []
        dels: list[str] = []
        for i, (_, value) in enumerate(self._guards.values(), 1):
            if value is not None:
                raw = self._stored_form(value, dels)
                chunks += (prefix, raw)  # "<version>\n<state>", joined once with the rest
                size = len(prefix) + len(raw)
                gw += (i, offset, size)
                offset += size
        lists: list[list[Any]] = []
        for key, lines in self._l.items():
            entry: list[Any] = [key]
            for line in lines:
                chunks.append(line)
                entry += (offset, len(line))
                offset += len(line)
            lists.append(entry)
        sets: list[list[Any]] = []
        for key, fld, value in self._x:
            chunks.append(value)
            sets.append([key, fld, offset, len(value)])
            offset += len(value)
        # Deltas as text: Lua numbers would print large integers in exponent notation.
        hs: list[list[str]] = []
        for key, deltas in h.items():
            entry = [key]
            for f, d in deltas.items():
                if d:
                    entry += (f, str(d))
            hs.append(entry)
        gv = [g[0] for g in self._guards.values()]
        batch = {"m": self.markers, "gk": list(self._guards), "gv": gv, "gw": gw, "z": []}
        batch |= {"t": target_sets, "c": credits}
        batch |= {"d": dels, "h": hs, "l": lists, "x": sets, "s": self._members}
        batch["e"] = self._erasure_entries()
        batch |= self._common()
        return _PACK(batch), b"".join(chunks)

    def _pack(self, token: str, ops_per_call: int) -> list[tuple[bytes, bytes]]:
        """The batch as script payloads like `payload`'s, as many as it takes to keep each
        within about `ops_per_call` commands."""
        z, h = self._expand()
        out: list[tuple[bytes, bytes]] = []
        prefix = token.encode() + b"\n"
        limit = ops_per_call
        part: dict[str, list[Any]] = {}
        chunks: list[bytes] = []
        offset = ops = 0

        def fresh() -> None:
            nonlocal part, chunks, offset, ops
            part = {"m": [], "gk": [], "gv": [], "gw": [], "z": [], "d": [], "h": [], "l": [],
                    "x": [], "s": [], "e": [], **self._common()}  # fmt: skip
            chunks, offset, ops = [], 1, 0  # Lua strings are 1-based

        def put(value: bytes) -> int:
            nonlocal offset
            at = offset
            chunks.append(value)
            offset += len(value)
            return at

        def full(more: int = 1) -> None:
            nonlocal ops
            ops += more
            if ops >= limit:
                out.append((_PACK(part), b"".join(chunks)))
                fresh()

        fresh()
        for key, (version, value) in self._guards.items():
            part["gk"].append(key)
            part["gv"].append(version)
            if value is not None:
                raw = prefix + self._stored_form(value, part["d"])
                part["gw"] += (len(part["gk"]), put(raw), len(raw))
            full()
        for marker in self.markers:
            part["m"].append(marker)
            full()
        # Deltas as text: Lua numbers would print large integers in exponent notation.
        step = min(limit, 1000)
        for kind, groups in (("z", z), ("h", h)):
            for key, deltas in groups.items():
                # A board member whose changes cancel out is kept at 0, as in live writes.
                kept = deltas.items() if kind == "z" else (md for md in deltas.items() if md[1])
                flat = [x for md in kept for x in (md[0], str(md[1]))]
                for i in range(0, len(flat), 2 * step):
                    part[kind].append([key, *flat[i : i + 2 * step]])
                    full(len(flat[i : i + 2 * step]) // 2)
        for key, lines in self._l.items():
            for i in range(0, len(lines), step):
                entry: list[Any] = [key]
                for line in lines[i : i + step]:
                    entry += (put(line), len(line))
                part["l"].append(entry)
                full(1 + len(entry) // 8)
        for key, fld, value in self._x:
            part["x"].append([key, fld, put(value), len(value)])
            full()
        for i in range(0, len(self._members), 3):
            part["s"] += self._members[i : i + 3]
            full()
        # Erasures last: the calls run in order, after every write of the batch.
        part["e"] = self._erasure_entries()
        if ops or part["e"]:
            out.append((_PACK(part), b"".join(chunks)))
        return out


__all__ = [
    "APPLIED",
    "CONFLICT",
    "DUPLICATE",
    "STALE",
    "AmbassadorState",
    "BatchWrite",
    "Guard",
    "PostState",
    "ScoreStore",
    "Versioned",
]
