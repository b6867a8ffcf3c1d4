"""The Redis (or Valkey) client every service uses: asyncio, hiredis parser, bytes in/out."""

from __future__ import annotations

from redis.asyncio import Redis


def connect_redis(url: str) -> Redis:
    return Redis.from_url(url, decode_responses=False, health_check_interval=30)


def text(value: object) -> str:
    """A Redis reply as text (the client returns bytes; the stubs allow str too)."""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
