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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

from portevoix.contracts.events import BadgeAwarded
from portevoix.contracts.periods import periods_of
from portevoix.contracts.readmodels import (
    AMBASSADOR_STATE,
    POST_STATE,
    REACTION,
    SCORING_GENERATION,
    SCORING_OUTBOX,
    SCORING_PAUSE,
    SCORING_TABLES,
    SEEN,
    badges_key,
    board_key,
    campaign_board_key,
    gen_table_key,
    ledger_key,
    stats_key,
    stats_total_key,
    team_board_key,
    teams_board_key,
)
from portevoix.runtime.redis import text
from portevoix_scoring.domain.ambassador_state import AmbassadorState
from portevoix_scoring.domain.post_state import PostState
from portevoix_scoring.domain.scorer import Effects
from portevoix_scoring.domain.table import PointsTable, load_table

APPLIED, DUPLICATE, CONFLICT, STALE = 1, 0, -1, -2
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
# KEYS: gen, pause. ARGV: gen ('' = no check: a rebuild writing a generation not yet live), token,
# the batch as JSON (k: key names; the rest refers to keys by 1-based index into k), and the
# values (states, ledger lines, badges) concatenated, referred to as (offset, length): neither
# escaped into the JSON nor parsed by the script.
#   m: marker keys; g: [key, expected version, value offset, length (0 = read only)];
#   z: [key, member, delta]; h: [key, field, delta]; l: [key, (offset, length)...];
#   x: [key, field, offset, length]
APPLY_LUA = """
if ARGV[1] ~= '' then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('EXISTS', KEYS[2]) == 1 then
    return {-2, {}}
  end
end
local b = cjson.decode(ARGV[3])
local K = b.k
local hit = {}
for i, k in ipairs(b.m) do
  if redis.call('EXISTS', K[k]) == 1 then hit[#hit + 1] = i end
end
if #hit > 0 then return {0, hit} end
for i, g in ipairs(b.g) do
  local s = redis.call('GET', K[g[1]])
  local v = ''
  if s then v = string.sub(s, 1, string.find(s, '\\n', 1, true) - 1) end
  if v ~= g[2] then hit[#hit + 1] = i end
end
if #hit > 0 then return {-1, hit} end
local token, V = ARGV[2], ARGV[4]
for _, g in ipairs(b.g) do
  if g[4] > 0 then
    redis.call('SET', K[g[1]], token .. '\\n' .. string.sub(V, g[3], g[3] + g[4] - 1))
  end
end
for _, k in ipairs(b.m) do redis.call('SET', K[k], '1') end
for _, z in ipairs(b.z) do redis.call('ZINCRBY', K[z[1]], z[3], z[2]) end
for _, h in ipairs(b.h) do redis.call('HINCRBY', K[h[1]], h[2], h[3]) end
for _, l in ipairs(b.l) do
  local vals = {}
  for j = 2, #l, 2 do vals[#vals + 1] = string.sub(V, l[j], l[j] + l[j + 1] - 1) end
  redis.call('RPUSH', K[l[1]], unpack(vals))
end
for _, x in ipairs(b.x) do
  redis.call('HSET', K[x[1]], x[2], string.sub(V, x[3], x[3] + x[4] - 1))
end
return {1, {}}
"""

# Many increments of one key in one call (a rebuild's bulk writes): ARGV: 'z'|'h', (member, delta)*
INCR_MANY_LUA = """
local cmd = ARGV[1] == 'z' and 'ZINCRBY' or 'HINCRBY'
for i = 2, #ARGV, 2 do
  if cmd == 'ZINCRBY' then redis.call(cmd, KEYS[1], ARGV[i + 1], ARGV[i])
  else redis.call(cmd, KEYS[1], ARGV[i], ARGV[i + 1]) end
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


@dataclass
class Guard:
    """A state key an event read: the version it must still have, and its new value (None: the
    event only read it). The value is serialised when the batch is sent: its final state."""

    key: str
    version: str
    value: bytes | Serialisable | None


class Serialisable(Protocol):
    def dumps(self) -> bytes: ...


class ScoreStore:
    def __init__(self, redis: Redis, generation: str = "1", *, live: bool = True) -> None:
        self._r = redis
        self.gen = generation
        self.live = live  # live writers check the generation; a rebuild fills a future one
        self._prefixes()
        self._apply = redis.register_script(APPLY_LUA)
        self._swap = redis.register_script(SWAP_LUA)
        self._incr_many = redis.register_script(INCR_MANY_LUA)
        self.incr_many_sha = self._incr_many.sha

    @classmethod
    async def open(cls, redis: Redis, table: PointsTable) -> tuple[ScoreStore, PointsTable]:
        """The live generation and its points table (recorded with the generation, so every
        instance and a rebuild agree on the rules; the configured table seeds generation 1)."""
        await redis.set(SCORING_GENERATION, "1", nx=True)
        gen = text(await redis.get(SCORING_GENERATION) or b"1")
        await redis.set(gen_table_key(gen), table.dumps(), nx=True)
        await redis.hsetnx(SCORING_TABLES, table.version, table.dumps())
        raw = await redis.get(gen_table_key(gen))
        return cls(redis, gen), load_table(text(raw)) if raw else table

    @property
    def redis(self) -> Redis:
        return self._r

    async def live_generation(self) -> str:
        return text(await self._r.get(SCORING_GENERATION) or b"1")

    # -- keys (templates end with their variable part: prefixes are computed once) ----------
    def _prefixes(self) -> None:
        gen = self.gen
        self._post_prefix = POST_STATE.format(gen=gen, post_key="")
        self._amb_prefix = AMBASSADOR_STATE.format(gen=gen, ambassador_id="")
        self._seen_prefix = SEEN.format(gen=gen, event_id="")
        self._react_prefix = REACTION.format(gen=gen, post_key="", kind="", actor="")[:-2]

    def post_key(self, post_key: str) -> str:
        return self._post_prefix + post_key

    def ambassador_key(self, ambassador_id: str) -> str:
        return self._amb_prefix + ambassador_id

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

    # -- write phase -----------------------------------------------------------------------
    def batch(self, *, publish_badges: bool = True) -> BatchWrite:
        return BatchWrite(self, publish_badges=publish_badges)

    async def commit(self, batch: BatchWrite, token: str) -> tuple[int, list[int]]:
        """Apply a batch atomically: (APPLIED, []), or (DUPLICATE | CONFLICT, indexes of the
        steps whose marker was set / whose states changed), or (STALE, [])."""
        if not batch.steps:
            return APPLIED, []
        res = await self._apply(
            keys=[SCORING_GENERATION, SCORING_PAUSE],
            args=[self.gen if self.live else "", token, *batch.payload()],
        )
        status, where = int(res[0]), [int(i) - 1 for i in res[1]]
        if status == DUPLICATE:
            where = sorted({batch.steps[batch.marker_step[i]] for i in where})
        elif status == CONFLICT:
            where = sorted({batch.steps[s] for i in where for s in batch.guard_steps[i]})
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
        """Delete every key of a generation that is not live any more (UNLINK, in batches;
        `scan_iter` visits every node of a cluster)."""
        n = 0
        keys: list[bytes] = []
        async for key in self._r.scan_iter(match=f"pv:{{sc}}:{gen}:*", count=batch):
            keys.append(key)
            if len(keys) >= batch:
                n += int(await self._r.unlink(*keys))
                keys = []
        if keys:
            n += int(await self._r.unlink(*keys))
        return n


@lru_cache(maxsize=8192)
def board_targets(
    gen: str, day: str, team: str | None, campaigns: tuple[str, ...]
) -> tuple[tuple[str, bool], ...]:
    """Every board a credit of `day` moves: (key, whether the member is the team)."""
    out: list[tuple[str, bool]] = []
    for period in periods_of(day):
        out.append((board_key(gen, period), False))
        if team:
            out.append((team_board_key(gen, period, team), False))
            out.append((teams_board_key(gen, period), True))
        for campaign in campaigns:
            out.append((campaign_board_key(gen, period, campaign), False))
    return tuple(out)


class BatchWrite:
    """The changes of a batch of steps, aggregated, keys as 1-based indexes into `keys`."""

    def __init__(self, store: ScoreStore, *, publish_badges: bool) -> None:
        self._store = store
        self._publish = publish_badges
        self.keys: list[str] = []
        self._index: dict[str, int] = {}
        self.steps: list[int] = []  # caller's index of each step
        self.markers: list[int] = []
        self.marker_step: list[int] = []  # step position of each marker
        self._guards: dict[int, list[Any]] = {}  # key -> [expected version, value]
        self.guard_steps: list[list[int]] = []  # step positions reading each guard
        self._guard_pos: dict[int, int] = {}
        self._z: dict[tuple[int, str], int] = {}
        self._h: dict[tuple[int, str], int] = {}
        self._l: dict[int, list[bytes]] = {}
        self._x: list[tuple[int, str, bytes]] = []
        self._credits: dict[tuple[str, str, str | None, tuple[str, ...]], int] = {}
        self._reach: dict[str, dict[str, int]] = {}

    def _key(self, key: str) -> int:
        i = self._index.get(key)
        if i is None:
            self.keys.append(key)
            i = self._index[key] = len(self.keys)
        return i

    def add(self, step: int, event_id: str, guards: Sequence[Guard], effects: Effects) -> None:
        store, gen = self._store, self._store.gen
        pos = len(self.steps)
        self.steps.append(step)
        self.markers.append(self._key(store.seen_key(event_id)))
        self.marker_step.append(pos)
        for g in guards:
            k = self._key(g.key)
            slot = self._guards.get(k)
            if slot is None:
                slot = self._guards[k] = [g.version, None]
                self._guard_pos[k] = len(self.guard_steps)
                self.guard_steps.append([])
            self.guard_steps[self._guard_pos[k]].append(pos)
            if g.value is not None:
                slot[1] = g.value
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
        for e in effects.ledger:
            self._l.setdefault(self._key(ledger_key(gen, e.ambassador_id)), []).append(
                orjson.dumps(e.as_dict())
            )
        for b in effects.badges:
            grant = {"badge": b.badge, "title": b.title, "at": b.at, "level": b.level,
                     "reason_event_id": b.reason_event_id}  # fmt: skip
            self._x.append(
                (self._key(badges_key(gen, b.ambassador_id)), b.badge, orjson.dumps(grant))
            )
            if self._publish:
                event = BadgeAwarded(
                    event_id=b.event_id, occurred_at=b.at, producer=PRODUCER,
                    ambassador_id=b.ambassador_id, badge=b.badge, title=b.title,
                    reason_event_id=b.reason_event_id,
                )  # fmt: skip
                self._l.setdefault(self._key(SCORING_OUTBOX), []).append(
                    orjson.dumps(event.model_dump(mode="json"))
                )

    def _expand(self) -> None:
        """Fan summed credits out to every board, summed reach to the ambassador's and the
        organisation's counters."""
        gen = self._store.gen
        z, h = self._z, self._h
        for (aid, day, team, campaigns), cp in self._credits.items():
            for key, is_team in board_targets(gen, day, team, campaigns):
                t = (self._key(key), team if is_team and team else aid)
                z[t] = z.get(t, 0) + cp
        total = self._key(stats_total_key(gen)) if self._reach else 0
        for aid, values in self._reach.items():
            mine = self._key(stats_key(gen, aid))
            for fld, v in values.items():
                if v:
                    for k in (mine, total):
                        h[(k, fld)] = h.get((k, fld), 0) + v
        self._credits, self._reach = {}, {}

    async def write_unchecked(self, redis: Redis, token: str, chunk: int = 500) -> None:
        """Write the batch with plain pipelined commands, without markers or version checks:
        only for a generation nobody else writes (the bulk of a rebuild, before its swap)."""
        self._expand()
        keys = self.keys
        await redis.script_load(INCR_MANY_LUA)
        pipe = redis.pipeline(transaction=False)
        queued = 0

        async def queue(name: str, *args: Any) -> None:
            nonlocal pipe, queued
            getattr(pipe, name)(*args)
            queued += 1
            if queued >= chunk:
                await pipe.execute()
                pipe, queued = redis.pipeline(transaction=False), 0

        states = {}
        for k, (_, value) in self._guards.items():
            if value is not None:
                raw = value if isinstance(value, bytes) else value.dumps()
                states[keys[k - 1]] = token.encode() + b"\n" + raw
        items = list(states.items())
        for i in range(0, len(items), 500):
            await queue("mset", dict(items[i : i + 500]))
        for i in range(0, len(self.markers), 1000):
            await queue("mset", {keys[m - 1]: b"1" for m in self.markers[i : i + 1000]})
        # One command per key: a script adds every member's (field's) delta.
        grouped: dict[tuple[str, int], list[Any]] = {}
        for (k, m), d in self._z.items():
            if d:
                grouped.setdefault(("z", k), []).extend((m, d))
        for (k, f), d in self._h.items():
            if d:
                grouped.setdefault(("h", k), []).extend((f, d))
        # Bounded calls: a busy server must not stall one huge write past the socket timeout.
        for (kind, k), args in grouped.items():
            for i in range(0, len(args), 800):
                await queue(
                    "evalsha", self._store.incr_many_sha, 1, keys[k - 1], kind, *args[i : i + 800]
                )
        for k, values in self._l.items():
            for i in range(0, len(values), 500):
                await queue("rpush", keys[k - 1], *values[i : i + 500])
        for k, f, v in self._x:
            await queue("hset", keys[k - 1], f, v)
        if queued:
            await pipe.execute()

    def payload(self) -> tuple[bytes, bytes]:
        """The script's batch JSON and its values blob."""
        self._expand()
        chunks: list[bytes] = []
        offset = 1  # Lua strings are 1-based

        def put(value: bytes) -> tuple[int, int]:
            nonlocal offset
            chunks.append(value)
            at = offset
            offset += len(value)
            return at, len(value)

        guards: list[list[Any]] = []
        for k, (version, value) in self._guards.items():
            if value is None:
                guards.append([k, version, 0, 0])
            else:
                raw = value if isinstance(value, bytes) else value.dumps()
                guards.append([k, version, *put(raw)])
        lists: list[list[Any]] = []
        for k, values in self._l.items():
            entry: list[Any] = [k]
            for v in values:
                entry += put(v)
            lists.append(entry)
        sets = [[k, f, *put(v)] for k, f, v in self._x]
        batch = orjson.dumps(
            {
                "k": self.keys,
                "m": self.markers,
                "g": guards,
                # Deltas as text: Lua numbers would print large integers in exponent notation.
                "z": [[k, m, str(d)] for (k, m), d in self._z.items() if d],
                "h": [[k, f, str(d)] for (k, f), d in self._h.items() if d],
                "l": lists,
                "x": sets,
            }
        )
        return batch, b"".join(chunks)


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
