from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest
import yaml

from portevoix.runtime.embedded import EmbeddedValkey
from portevoix.runtime.platform import SERVICES, Platform
from portevoix.runtime.streams import RAW_SUBJECT
from tests.e2e.helpers import act, amb, eventually, post
from tests.ops.observability import (
    PROMETHEUS_CONFIG,
    RULES_DIR,
    MonitoredNats,
    Process,
    Prometheus,
    ensure_debian_tools,
    redis_exporter,
    scrape_config_for,
)

SERVICE_JOBS = SERVICES  # every service the platform runs is a scrape job


@dataclass
class OpsStack:
    platform: Platform
    nats: MonitoredNats
    prometheus: Prometheus
    redis_exporter: Process
    dropped_jobs: list[str]


@pytest.fixture(scope="module")
def ops_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsStack]:
    """The platform (four processes, embedded NATS with monitoring, Valkey), Debian's redis
    exporter, and a real Prometheus running the deployment's scrape config and alert rules."""
    ensure_debian_tools()
    root: Path = tmp_path_factory.mktemp("ops")
    nats_srv = MonitoredNats(root / "nats").start()
    assert isinstance(nats_srv, MonitoredNats)
    valkey = EmbeddedValkey(root / "valkey").start()
    platform = Platform(
        run_dir=root, nats_url=nats_srv.url, redis_url=valkey.url, log_dir=root / "logs",
        admin_token="ops-admin-token",
        # Programme figures read every second, as Prometheus scrapes here (15 s in production).
        extra_env={"PORTEVOIX_LOG_LEVEL": "WARNING", "PORTEVOIX_METRICS_HOST": "127.0.0.1",
                   "PORTEVOIX_PROGRAMME_METRICS_INTERVAL_S": "1"},
    )  # fmt: skip
    exporter = redis_exporter(valkey.url, root)
    prom: Prometheus | None = None
    try:
        platform.start(wait_ready_s=90)
        exporter.start()
        targets = {name: f"127.0.0.1:{platform.metrics_ports[name]}" for name in SERVICE_JOBS} | {
            "redis": f"127.0.0.1:{exporter.port}"
        }
        prom_dir = root / "prometheus"
        deploy_cfg = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
        prom = Prometheus({}, prom_dir)
        targets["prometheus"] = f"127.0.0.1:{prom.port}"
        cfg, dropped = scrape_config_for(
            deploy_cfg, targets=targets, rule_files=[str(RULES_DIR / "*.rules.yml")]
        )
        prom.config = cfg
        prom.start()
        drive_traffic(platform)
        yield OpsStack(platform, nats_srv, prom, exporter, dropped)
    finally:
        if prom is not None:
            prom.stop()
        exporter.stop()
        platform.stop()
        valkey.stop()
        nats_srv.stop()


def drive_traffic(platform: Platform) -> None:
    """Ambassadors, posts (clean, held, blocked), engagement, reads, auth failures, and one
    malformed message straight onto the raw subject (the API refuses it; the bus dead-letters)."""
    run = uuid.uuid4().hex[:8]
    with httpx.Client(
        base_url=platform.api_url,
        headers={"Authorization": f"Bearer {platform.admin_token}"},
        timeout=30,
    ) as api:
        r = api.post(
            "/v1/events",
            json=[
                amb("ops-alice", "Alice Ops", "Ventes", {"linkedin": "ops-alice", "x": "ops_alice"}),
                amb("ops-bob", "Bob Ops", "Tech", {"linkedin": "ops-bob"}),
                amb("ops-dave", "Dave Ops", "RH", {"linkedin": "ops-dave"}, consent=False),
            ],
        )  # fmt: skip
        assert r.status_code == 202, r.text
        events = [
            post(f"{run}-p1", f"{run}-p1", "ops-alice",
                 "Fière de présenter notre nouvelle usine de Lyon ! Venez découvrir nos métiers. #collaboratrice"),
            post(f"{run}-p2", f"{run}-p2", "ops-bob",
                 "Our engineering team just shipped the new mobile app. Proud of this launch! #employee"),
            post(f"{run}-p3", f"{run}-p3", "ops-bob",
                 "Ce client est un vrai connard, je ne le supporte plus."),
            post(f"{run}-p4", f"{run}-p4", "ops-alice",
                 "Document confidentiel, ne pas diffuser : nos résultats du troisième trimestre."),
            post(f"{run}-p5", f"{run}-p5", "ops_alice", "Great launch today with the team #employee",
                 network="x"),
            post(f"{run}-p6", f"{run}-p6", "ops-dave", "Belle journée portes ouvertes à Nantes"),
            post(f"{run}-p7", f"{run}-p7", "ops-nobody", "Unknown author: parked until registered"),
            act("like", f"{run}-e1", f"{run}-p1", "ext-1"),
            act("comment", f"{run}-e2", f"{run}-p1", "ext-2", text="Bravo !"),
            act("share", f"{run}-e3", f"{run}-p1", "ops-bob"),
            act("click", f"{run}-e4", f"{run}-p2", "ext-3"),
            act("like", f"{run}-e5", f"{run}-p5", "ext-4", network="x"),
            # Invalid item in a valid batch: refused by the API with a per-item error.
            {"type": "like", "event_id": f"{run}-bad", "network": "linkedin"},
        ]  # fmt: skip
        r = api.post("/v1/events", json=events)
        assert r.status_code == 202, r.text
        assert r.json()["rejected"] == 1, r.text
        for path in ("/v1/leaderboards/all-time", "/v1/health", "/v1/ready"):
            assert api.get(path).status_code == 200, path
        # A moderator approves the held confidential post: an overturn of the rule that held it.
        held = f"linkedin:{run}-p4"
        eventually(lambda: api.get(f"/v1/posts/{held}").json().get("in_review_queue"))
        r = api.post(f"/v1/moderation/posts/{held}/review",
                     json={"outcome": "approved", "note": "figures are public"})  # fmt: skip
        assert r.status_code == 202, r.text
        # Ingest needs the admin role: an anonymous client gets a 4xx for the error panels.
        assert httpx.post(f"{platform.api_url}/v1/events", json=[]).status_code == 401
    _publish_raw(platform, run)


def _publish_raw(platform: Platform, run: str) -> None:
    async def go() -> None:
        nc = await nats.connect(str(platform.nats_url))
        js = nc.jetstream()
        await js.publish(RAW_SUBJECT, b"{not json", headers={"Nats-Msg-Id": f"{run}-broken"})
        # Valid JSON, not a valid ingest event: refused by ingest with the rule that failed.
        await js.publish(
            RAW_SUBJECT,
            b'{"type": "post", "event_id": "' + run.encode() + b'-schema", "network": "myspace"}',
            headers={"Nats-Msg-Id": f"{run}-schema"},
        )
        await nc.drain()

    asyncio.run(go())
    time.sleep(0.1)
