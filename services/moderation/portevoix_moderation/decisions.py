"""Moderation's Redis repository: the latest decision of each post, for the API."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from redis.asyncio import Redis

from portevoix.contracts.events import PostModerated
from portevoix.contracts.readmodels import decision_key


class DecisionStore:
    def __init__(self, redis: Redis) -> None:
        self._r = redis

    async def save_many(self, decisions: Sequence[PostModerated]) -> None:
        if not decisions:
            return
        await self._r.mset(
            {decision_key(d.post_key): orjson.dumps(d.model_dump(mode="json")) for d in decisions}
        )
