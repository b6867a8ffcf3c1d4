"""A 3-node NATS cluster with JetStream on free loopback ports, for chaos tests and benchmarks.

Each node is an `EmbeddedNats` with a server name, a cluster listener and routes to the others;
a node can be stopped (or killed) and started again on the same ports and data, so R3 streams
lose one replica and catch up. Never binds the well-known ports (see `embedded.free_port`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from portevoix.runtime.embedded import EmbeddedNats, free_port

CLUSTER_NAME = "porte-voix-chaos"


class ClusterNode(EmbeddedNats):
    def __init__(
        self, data_dir: Path, index: int, cluster_port: int, routes: list[int], port: int
    ) -> None:
        super().__init__(data_dir, port=port)
        self.index = index
        self.cluster_port = cluster_port
        self.routes = routes
        self.name = f"nats-{index}"
        self.log_path = self.data_dir / f"{self.name}.log"

    def command(self) -> list[str]:
        routes = ",".join(f"nats://{self.host}:{p}" for p in self.routes)
        return [
            *super().command()[:-2],  # the parent's `-n` (server name) is replaced below
            "-n", f"pv-node-{self.index}",
            "--cluster_name", CLUSTER_NAME,
            "--cluster", f"nats://{self.host}:{self.cluster_port}",
            "--routes", routes,
        ]  # fmt: skip


class NatsCluster:
    """Three JetStream nodes; `url` lists every node, comma-separated (what NATS_URL takes)."""

    def __init__(self, data_dir: Path, size: int = 3) -> None:
        self.data_dir = Path(data_dir).resolve()
        client_ports = [free_port() for _ in range(size)]
        cluster_ports = [free_port() for _ in range(size)]
        self.nodes = [
            ClusterNode(
                self.data_dir / f"node-{i}",
                i,
                cluster_ports[i],
                [p for j, p in enumerate(cluster_ports) if j != i],
                client_ports[i],
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def start(self, timeout_s: float = 60.0) -> NatsCluster:
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            for node in self.nodes:
                node.start(timeout_s)
            self.wait_jetstream(timeout_s)
        except Exception:
            self.stop()
            raise
        return self

    def wait_jetstream(self, timeout_s: float = 60.0) -> None:
        """Until the JetStream meta group has a leader (streams can be created)."""
        asyncio.run(self._wait_jetstream(timeout_s))

    async def _wait_jetstream(self, timeout_s: float) -> None:
        import nats

        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                nc = await nats.connect(servers=self.url.split(","), connect_timeout=2)
                try:
                    await nc.jetstream(timeout=2).account_info()
                    return
                finally:
                    await nc.close()
            except Exception as exc:  # no meta leader yet
                last = exc
                await asyncio.sleep(0.25)
        raise TimeoutError(f"JetStream cluster not ready after {timeout_s}s: {last!r}")

    def stop_node(self, index: int) -> None:
        self.nodes[index].stop()

    def kill_node(self, index: int) -> None:
        self.nodes[index].kill()

    def start_node(self, index: int, timeout_s: float = 30.0) -> None:
        self.nodes[index].start(timeout_s)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
