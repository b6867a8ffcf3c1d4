from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portevoix.runtime.platform import Platform
from tests.infra import running_platform, start_nats, start_redis


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
    with running_platform(p, nats, redis):
        yield p


@pytest.fixture
def api(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=platform.api_url,
        headers={"Authorization": f"Bearer {platform.admin_token}"},
        timeout=30,
    ) as client:
        yield client
