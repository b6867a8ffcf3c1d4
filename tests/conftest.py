from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis

from portevoix.runtime.redis import connect_redis
from portevoix.runtime.streams import STREAMS
from tests.infra import Server, start_nats, start_redis, start_redis_cluster


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[Server]:
    server = start_nats(tmp_path / "nats")
    yield server
    server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Server]:
    server = start_redis(tmp_path / "valkey")
    yield server
    server.stop()


@pytest.fixture
async def nc(nats_server: Server) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_server.url)
    if nats_server.kind == "external":  # disposable external server: start from nothing
        js = client.jetstream()
        for spec in STREAMS:
            with contextlib.suppress(Exception):  # absent is fine
                await js.delete_stream(spec.name)
    yield client
    await client.drain()


@pytest.fixture
async def redis(redis_server: Server) -> AsyncIterator[Redis]:
    client = connect_redis(redis_server.url)
    if redis_server.kind == "external":
        await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def redis_cluster_server(tmp_path: Path) -> Iterator[Server]:
    server = start_redis_cluster(tmp_path / "cluster")
    yield server
    server.stop()


@pytest.fixture
async def redis_on_cluster(redis_cluster_server: Server) -> AsyncIterator[Redis]:
    """A client of a real 3-primary Redis Cluster, as the services make it with
    `PORTEVOIX_REDIS_CLUSTER=true`."""
    client = connect_redis(redis_cluster_server.url, cluster=True)
    yield client
    await client.aclose()
