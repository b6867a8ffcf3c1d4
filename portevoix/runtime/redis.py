"""The Redis (or Valkey) client every service uses: asyncio, hiredis parser, bytes in/out."""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import TimeoutError as RedisTimeoutError

SOCKET_TIMEOUT_S = 5.0  # a command's write, and the wait for its reply


class _DirectWrites:
    """Writes a command in the caller's own step, under the same socket timeout.

    With a socket timeout, redis-py sends each command through `asyncio.wait_for`, which on
    Python 3.11 runs the write in a new task: the command leaves only at the event loop's next
    turn, after whatever CPU-bound work its caller does next (scoring computing its next batch
    while a script is left in flight), and costs a task per command. Here the write runs under
    `asyncio.timeout` instead: no task, the same bound (connecting, a health-check PING and the
    write itself, all inside it)."""

    socket_timeout: float | None

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        timeout = self.socket_timeout
        if not timeout:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        self.socket_timeout = None  # the parent then writes directly, without `wait_for`
        try:
            async with asyncio.timeout(timeout):
                await super().send_packed_command(command, check_health)  # type: ignore[misc]
        except TimeoutError:
            # The parent dropped the connection on the cancellation (a half-written command).
            raise RedisTimeoutError("Timeout writing to socket") from None
        finally:
            self.socket_timeout = timeout

    def pack_command(self, *args: Any) -> list[bytes]:
        """The command in RESP, packed by hiredis (C): redis-py's asyncio connection packs in
        Python, one join per argument (an MGET of 250 keys: 838 µs there, 176 here, byte for
        byte the same). A command name with a space ("CONFIG GET") is split as redis-py does;
        an argument hiredis does not pack (a memoryview, a bool) goes through redis-py's own
        packing, and its errors."""
        head = args[0]
        if isinstance(head, str) and " " in head:
            args = (*head.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            return super().pack_command(*args)  # type: ignore[misc,no-any-return]


_DIRECT: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _direct(base: type[AbstractConnection]) -> type[AbstractConnection]:
    if base not in _DIRECT:
        _DIRECT[base] = type(f"Direct{base.__name__}", (_DirectWrites, base), {})
    return _DIRECT[base]


def connect_redis(
    url: str, cluster: bool = False, socket_timeout: float = SOCKET_TIMEOUT_S
) -> Redis:
    """A single node, or a Redis Cluster (`PORTEVOIX_REDIS_CLUSTER=true`): every Lua call keeps
    its keys in one slot (hash tags), so both behave the same for the services."""
    if cluster:
        # RedisCluster offers the commands the services use; typed as Redis for them.
        return RedisCluster.from_url(  # type: ignore[return-value]
            url, decode_responses=False, socket_timeout=socket_timeout
        )
    client = Redis.from_url(
        url, decode_responses=False, health_check_interval=30, socket_timeout=socket_timeout
    )
    # The URL's scheme picked the connection class (TCP, TLS, Unix socket): kept, writing
    # directly. No connection exists yet: every one the pool makes is of this class.
    pool = client.connection_pool
    pool.connection_class = _direct(pool.connection_class)
    return client


def text(value: object) -> str:
    """A Redis reply as text (the client returns bytes; the stubs allow str too)."""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
