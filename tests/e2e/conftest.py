from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portevoix.runtime.platform import Platform
from tests.infra import start_nats, start_redis


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The four services as real processes over a real NATS (JetStream) and a real Valkey."""
    root: Path = tmp_path_factory.mktemp("platform")
    nats = start_nats(root / "nats")
    redis = start_redis(root / "valkey")
    p = Platform(
        run_dir=root, nats_url=nats.url, redis_url=redis.url, log_dir=root / "logs",
        admin_token="test-admin-token",
        # Fast redelivery so crash tests converge quickly.
        extra_env={"PORTEVOIX_ACK_WAIT_S": "2", "PORTEVOIX_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    p.nats_server = nats  # type: ignore[attr-defined]
    try:
        p.start(wait_ready_s=90)
    except Exception:
        _dump_logs(root / "logs")
        p.stop()
        nats.stop()
        redis.stop()
        raise
    yield p
    p.stop()
    nats.stop()
    redis.stop()
    _dump_logs(root / "logs", only_errors=True)


def _dump_logs(log_dir: Path, only_errors: bool = False) -> None:
    for f in sorted(log_dir.glob("*.log")):
        text = f.read_text(errors="replace")
        if only_errors and "Traceback" not in text:
            continue
        print(f"===== {f.name}\n{text[-4000:]}")


@pytest.fixture
def api(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=platform.api_url,
        headers={"Authorization": f"Bearer {platform.admin_token}"},
        timeout=30,
    ) as client:
        yield client
