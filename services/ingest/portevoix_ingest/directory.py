"""Redis repository of the ambassador directory: handles → ambassador, consent, parked activity."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from portevoix.contracts.ingest import AmbassadorIn
from portevoix.contracts.readmodels import (
    AMBASSADOR_INDEX,
    ambassador_key,
    handle_key,
    parked_key,
)
from portevoix.runtime.redis import text


@dataclass(frozen=True)
class Resolved:
    ambassador_id: str
    consent: bool


class AmbassadorDirectory:
    def __init__(self, redis: Redis) -> None:
        self._r = redis

    async def register(self, a: AmbassadorIn) -> list[tuple[str, str, bytes]]:
        """Create or update an ambassador; returns the activity parked under its handles."""
        key = ambassador_key(a.ambassador_id)
        old_raw = await self._r.hget(key, "handles")
        old: dict[str, str] = orjson.loads(old_raw) if old_raw else {}
        new: dict[str, str] = {str(k): v for k, v in a.handles.items()}
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(
            key,
            mapping={
                "ambassador_id": a.ambassador_id,
                "display_name": a.display_name,
                "team": a.team,
                "consent": "1" if a.consent else "0",
                "handles": orjson.dumps(a.handles),
            },
        )
        pipe.sadd(AMBASSADOR_INDEX, a.ambassador_id)
        for network, handle in old.items():
            if new.get(network) != handle:
                pipe.delete(handle_key(network, handle))
        for network, handle in new.items():
            pipe.set(handle_key(network, handle), a.ambassador_id)
        await pipe.execute()
        parked: list[tuple[str, str, bytes]] = []
        for network, handle in new.items():
            for _event_id, raw in (await self._r.hgetall(parked_key(network, handle))).items():
                parked.append((network, handle, raw if isinstance(raw, bytes) else raw.encode()))
        return parked

    async def resolve_many(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Resolved]:
        wanted = list(dict.fromkeys(pairs))
        if not wanted:
            return {}
        ids = await self._r.mget([handle_key(n, h) for n, h in wanted])
        found = [(pair, text(i)) for pair, i in zip(wanted, ids, strict=True) if i]
        if not found:
            return {}
        pipe = self._r.pipeline(transaction=False)
        for _pair, amb in found:
            pipe.hget(ambassador_key(amb), "consent")
        consents = await pipe.execute()
        return {
            pair: Resolved(amb, c == b"1") for (pair, amb), c in zip(found, consents, strict=True)
        }

    async def park(self, items: Iterable[tuple[str, str, str, bytes]]) -> int:
        """Keep activity of an unknown handle until that handle is registered."""
        pipe = self._r.pipeline(transaction=False)
        n = 0
        for network, handle, event_id, raw in items:
            pipe.hset(parked_key(network, handle), event_id, raw)
            n += 1
        if n:
            await pipe.execute()
        return n

    async def unpark(self, items: Iterable[tuple[str, str, str]]) -> None:
        pipe = self._r.pipeline(transaction=False)
        for network, handle, event_id in items:
            pipe.hdel(parked_key(network, handle), event_id)
        await pipe.execute()
