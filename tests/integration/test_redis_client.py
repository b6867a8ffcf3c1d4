"""The services' Redis client (`connect_redis`): a command is written in its caller's own step,
and a server that stops answering still times out, on the write and on the reply."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError
from redis.exceptions import TimeoutError as RedisTimeoutError

from portevoix.runtime.embedded import EmbeddedValkey
from portevoix.runtime.redis import connect_redis
from tests.infra import seen_while_the_loop_is_blocked


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    # Its own process, since the timeout tests pause it (SIGSTOP).
    server = EmbeddedValkey(tmp_path / "valkey")
    server.start()
    yield server
    if server.proc is not None:
        os.kill(server.proc.pid, signal.SIGCONT)
    server.stop()


def _pause(server: EmbeddedValkey, sig: signal.Signals) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, sig)


async def test_a_command_is_written_in_its_own_step(valkey: EmbeddedValkey) -> None:
    client = connect_redis(valkey.url)
    await client.ping()  # connected
    task = asyncio.create_task(client.set("pv:test:direct", "1"))
    await asyncio.sleep(0)  # the task's first step, and nothing after it
    # Only that first step can have written the command: redis-py's `wait_for` would have left
    # the write to a task of its own, at a later turn (never, while the loop is blocked).
    assert seen_while_the_loop_is_blocked(valkey.url, lambda r: r.get("pv:test:direct") == b"1")
    assert await task is True
    await client.aclose()


async def test_a_write_to_a_server_that_stopped_reading_times_out(valkey: EmbeddedValkey) -> None:
    client = connect_redis(valkey.url, socket_timeout=0.5)
    await client.ping()
    _pause(valkey, signal.SIGSTOP)
    started = time.monotonic()
    # Far more than the socket buffers hold: the write itself blocks.
    with pytest.raises(RedisTimeoutError, match="writing"):
        await asyncio.wait_for(client.set("pv:test:big", b"x" * (96 << 20)), 30)
    assert time.monotonic() - started < 10  # bounded by the socket timeout, not the 30 s guard
    _pause(valkey, signal.SIGCONT)
    # The half-written connection was dropped: the next command gets a fresh one.
    assert await client.set("pv:test:after", "1") is True
    assert await client.get("pv:test:big") is None
    await client.aclose()


async def test_a_reply_that_never_comes_times_out(valkey: EmbeddedValkey) -> None:
    client = connect_redis(valkey.url, socket_timeout=0.5)
    await client.ping()
    _pause(valkey, signal.SIGSTOP)
    with pytest.raises(RedisTimeoutError):
        await asyncio.wait_for(client.get("pv:test:any"), 30)
    _pause(valkey, signal.SIGCONT)
    assert await client.get("pv:test:any") is None
    await client.aclose()


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:1/0", Connection),
        ("rediss://127.0.0.1:1/0", SSLConnection),
        ("unix:///tmp/pv-none.sock", UnixDomainSocketConnection),
    ],
)
def test_the_url_scheme_still_picks_the_transport(url: str, kind: type) -> None:
    client = connect_redis(url, socket_timeout=1.5)
    cls = client.connection_pool.connection_class
    assert issubclass(cls, kind) and cls.__name__ == f"Direct{kind.__name__}"
    assert client.connection_pool.connection_kwargs["socket_timeout"] == 1.5


@pytest.mark.parametrize(
    "args",
    [
        ("MGET", *(f"pv:{{sc}}:1:react:linkedin:p{i}:like:fan{i}" for i in range(300))),
        ("SET", "clé-é", "valeur ✓"),  # text as UTF-8
        ("HINCRBY", b"k", "f", -17),
        ("ZADD", "z", 1.5, "m", 0.1, "n", 10**15, "o"),  # numbers as redis-py writes them
        ("EVALSHA", "ab" * 20, 2, "g", "p", b"\x00\xff" * 40_000, b""),  # big binary values
        ("CONFIG GET", "maxmemory"),  # a two-word command name
        ("SET", "k", memoryview(b"mv")),
    ],
)
def test_commands_are_packed_as_redis_py_packs_them(args: tuple[object, ...]) -> None:
    client = connect_redis("redis://127.0.0.1:1")  # no connection is made to pack
    conn = client.connection_pool.make_connection()
    reference = Connection()  # redis-py's own (Python) packing
    assert b"".join(conn.pack_command(*args)) == b"".join(reference.pack_command(*args))


@pytest.mark.parametrize("bad", [True, None, object()])
def test_an_argument_redis_cannot_take_is_still_a_data_error(bad: object) -> None:
    conn = connect_redis("redis://127.0.0.1:1").connection_pool.make_connection()
    with pytest.raises(DataError):
        conn.pack_command("SET", "k", bad)


async def test_values_round_trip_through_the_server(valkey: EmbeddedValkey) -> None:
    client = connect_redis(valkey.url)
    blob = bytes(range(256)) * 1000
    await client.set("pv:test:blob", blob)
    await client.mset({f"pv:test:k{i}": f"v{i} é" for i in range(500)})
    assert await client.get("pv:test:blob") == blob
    got = await client.mget([f"pv:test:k{i}" for i in range(500)])
    assert got == [f"v{i} é".encode() for i in range(500)]
    assert await client.config_get("maxmemory") == {"maxmemory": "0"}  # a two-word command
    await client.aclose()
