"""Moderation's Redis repository: decisions, post records, the review queue, the audit trail,
per-rule counters and charter versions (key layout in `portevoix.contracts.readmodels`).

A change is applied by one Lua script guarded by a dedupe marker on the consumed event id, so a
redelivered event changes nothing twice (counters and append-only trails included).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from portevoix.contracts.events import PostModerated
from portevoix.contracts.readmodels import (
    MOD_AUDIT_ALL,
    MOD_CHARTER_ACTIVE,
    MOD_CHARTER_META,
    MOD_CHARTERS,
    MOD_QUEUE,
    MOD_RULE_STATS,
    ambassador_key,
    decision_key,
    mod_audit_key,
    mod_decisions_key,
    mod_post_key,
    mod_queue_by_key,
    mod_seen_key,
)
from portevoix.runtime.redis import text
from portevoix_moderation.domain.lifecycle import Effects, PostRecord

SEEN_TTL_S = 30 * 24 * 3600  # far beyond any redelivery

# KEYS[1] is the dedupe marker; ARGV[1] its TTL, ARGV[2] a JSON list of [command, key index,
# args...]. Applied only if the marker was absent: all or nothing, once.
_APPLY_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
for _, op in ipairs(cjson.decode(ARGV[2])) do
  redis.call(op[1], KEYS[op[2]], unpack(op, 3))
end
return 1
"""


@dataclass
class Change:
    """One consumed event's effect on one post."""

    seen_id: str  # the consumed event's id
    post_key: str
    record: PostRecord | None
    effects: Effects
    decision: PostModerated | None = None


class _Ops:
    def __init__(self, seen: str) -> None:
        self.keys: list[str] = [seen]
        self.ops: list[list[Any]] = []

    def add(self, command: str, key: str, *args: Any) -> None:
        if key not in self.keys:
            self.keys.append(key)
        self.ops.append([command, self.keys.index(key) + 1, *(str(a) for a in args)])


def _audit_json(entry: dict[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in entry.items() if v is not None})


def plan(change: Change) -> _Ops:
    """The Redis commands of one change (pure: unit-tested without Redis)."""
    fx, pk = change.effects, change.post_key
    ops = _Ops(mod_seen_key(change.seen_id))
    if change.record is not None:
        ops.add("HSET", mod_post_key(pk), "s", change.record.dumps().decode())
    if change.decision is not None:
        ops.add(
            "RPUSH",
            mod_decisions_key(pk),
            orjson.dumps(change.decision.model_dump(mode="json")).decode(),
        )
    if fx.dequeue is not None:
        ops.add("ZREM", MOD_QUEUE, pk)
        for facet, value in fx.dequeue:
            ops.add("ZREM", mod_queue_by_key(facet, value), pk)
    if fx.enqueue and change.record is not None:
        score = change.record.arrived_ms
        ops.add("ZADD", MOD_QUEUE, score, pk)
        for facet, value in change.record.facets():
            ops.add("ZADD", mod_queue_by_key(facet, value), score, pk)
    for field, n in sorted(fx.counters.items()):
        ops.add("HINCRBY", MOD_RULE_STATS, field, n)
    for entry in fx.audit:
        body = _audit_json(entry).decode()
        ops.add("RPUSH", mod_audit_key(pk), body)
        if fx.audit_global:
            ops.add("XADD", MOD_AUDIT_ALL, "*", "e", body)
    return ops


class ModerationStore:
    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._apply = redis.register_script(_APPLY_ONCE)

    async def load(
        self, post_keys: Iterable[str], ambassador_ids: Iterable[str] = ()
    ) -> tuple[dict[str, PostRecord | None], dict[str, str | None]]:
        """The current records of these posts, and the teams of these ambassadors."""
        keys, ambs = sorted(set(post_keys)), sorted(set(ambassador_ids))
        if not keys and not ambs:
            return {}, {}
        pipe = self._r.pipeline(transaction=False)
        for k in keys:
            pipe.hget(mod_post_key(k), "s")
        for a in ambs:
            pipe.hget(ambassador_key(a), "team")
        replies: list[Any] = await pipe.execute()
        records = {k: PostRecord.loads(v) for k, v in zip(keys, replies[: len(keys)], strict=True)}
        teams = {
            a: (text(v) if v is not None else None)
            for a, v in zip(ambs, replies[len(keys) :], strict=True)
        }
        return records, teams

    async def apply(self, changes: Sequence[Change]) -> list[bool]:
        """Apply every change once; True for those applied now (False: seen before)."""
        if not changes:
            return []
        pipe = self._r.pipeline(transaction=False)
        latest = {
            decision_key(c.decision.post_key): orjson.dumps(c.decision.model_dump(mode="json"))
            for c in changes
            if c.decision is not None
        }
        for c in changes:
            ops = plan(c)
            await self._apply(
                keys=ops.keys, args=[SEEN_TTL_S, orjson.dumps(ops.ops).decode()], client=pipe
            )
        if latest:
            pipe.mset(latest)
        replies: list[Any] = await pipe.execute()
        return [bool(int(r)) for r in replies[: len(changes)]]

    # -- gauges --------------------------------------------------------------------------------
    async def queue_state(self) -> tuple[int, float | None]:
        """(depth, arrival of the oldest waiting post in unix seconds)."""
        pipe = self._r.pipeline(transaction=False)
        pipe.zcard(MOD_QUEUE)
        pipe.zrange(MOD_QUEUE, 0, 0, withscores=True)
        depth, oldest = await pipe.execute()
        return int(depth), (float(oldest[0][1]) / 1000 if oldest else None)

    # -- charters ------------------------------------------------------------------------------
    async def active_charter(self) -> tuple[str, str] | None:
        version = await self._r.get(MOD_CHARTER_ACTIVE)
        if version is None:
            return None
        yaml = await self._r.hget(MOD_CHARTERS, version)
        return (text(version), text(yaml)) if yaml is not None else None

    async def save_charter(
        self, version: str, yaml: str, meta: dict[str, Any], *, activate: bool
    ) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(MOD_CHARTERS, version, yaml)
        pipe.hset(MOD_CHARTER_META, version, orjson.dumps(meta))
        if activate:
            pipe.set(MOD_CHARTER_ACTIVE, version)
        await pipe.execute()

    async def first_to_handle(self, event_id: str) -> bool:
        """True once per event id across every instance (charter events reach them all)."""
        return bool(await self._r.set(mod_seen_key(event_id), b"1", nx=True, ex=SEEN_TTL_S))

    async def audit(self, entry: dict[str, Any]) -> None:
        await self._r.xadd(MOD_AUDIT_ALL, {"e": _audit_json(entry)})


def now_ms() -> int:
    return int(time.time() * 1000)
