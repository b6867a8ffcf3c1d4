"""The Redis (or Valkey) client every service uses: asyncio, hiredis parser, bytes in/out."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster


def connect_redis(url: str, cluster: bool = False) -> Redis:
    """A single node, or a Redis Cluster (`PORTEVOIX_REDIS_CLUSTER=true`): every Lua call keeps
    its keys in one slot (hash tags), so both behave the same for the services."""
    if cluster:
        # RedisCluster offers the commands the services use; typed as Redis for them.
        return RedisCluster.from_url(url, decode_responses=False)  # type: ignore[return-value]
    return Redis.from_url(url, decode_responses=False, health_check_interval=30)


def text(value: object) -> str:
    """A Redis reply as text (the client returns bytes; the stubs allow str too)."""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
