"""Chaos: while the simulator publishes, every service is killed (SIGKILL) and restarted, Valkey is
restarted (AOF on), and one node of the 3-node NATS cluster (R3 streams) is stopped and started
again. Afterwards every leaderboard and every ledger equals the offline computation over the same
events, and the dead-letter stream holds exactly the poison messages injected on purpose.

CI runs a few thousand events (under 2 minutes). The documented long run:
    PORTEVOIX_CHAOS_EVENTS=100000 .venv/bin/pytest tests/chaos -q
PORTEVOIX_CHAOS_SEED picks another simulation and chaos schedule.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson
import pytest
from redis import Redis

from portevoix.runtime.cluster import NatsCluster
from portevoix.runtime.embedded import EmbeddedValkey
from portevoix.runtime.platform import SERVICES, Platform
from portevoix.runtime.streams import DLQ, RAW_SUBJECT
from portevoix.simulation import Simulation, SimulationConfig
from portevoix.simulation.cli import default_start
from portevoix.simulation.drivers import NatsSender, drive
from tests.chaos.ledger_check import Expected, differences, live_boards, live_ledgers
from tests.infra import running_platform

EVENTS = int(os.environ.get("PORTEVOIX_CHAOS_EVENTS", "2500"))
SEED = int(os.environ.get("PORTEVOIX_CHAOS_SEED", "20261121"))
# CI sends for ~15 s so every fault lands mid-stream; long runs at up to 1,500 events/s.
SEND_SECONDS = max(15.0, EVENTS / 1500)
SETTLE_S = 60 + EVENTS / 500
# The long run outlasts the suite's default 300 s timeout: scale it with the event count.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(int(240 + SEND_SECONDS + SETTLE_S + EVENTS / 200)),
]


@dataclass
class ChaosStack:
    platform: Platform
    cluster: NatsCluster
    valkey: EmbeddedValkey


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    root: Path = tmp_path_factory.mktemp("chaos")
    cluster = NatsCluster(root / "nats").start()
    valkey = EmbeddedValkey(root / "valkey")
    valkey.start()
    platform = Platform(
        run_dir=root, nats_url=cluster.url, redis_url=valkey.url, log_dir=root / "logs",
        admin_token="chaos-admin-token",
        extra_env={
            "PORTEVOIX_STREAM_REPLICAS": "3",
            # A killed worker's unacked batch comes back after this silence.
            "PORTEVOIX_ACK_WAIT_S": "3",
            "PORTEVOIX_LOG_LEVEL": "WARNING",
        },
    )  # fmt: skip
    with running_platform(platform, valkey, cluster, wait_ready_s=120):
        yield ChaosStack(platform, cluster, valkey)


# Poison: what a broken producer sends. Each must end in the dead-letter stream, explained.
POISON: list[tuple[str, bytes]] = [
    ("poison-not-json", b"this is not json {"),
    ("poison-bad-utf8", b'{"type": "like", "actor": "\xff\xfe"}'),
    ("poison-missing-fields", b'{"type": "like", "event_id": "poison-missing-fields"}'),
    ("poison-unknown-type", b'{"type": "retweet", "event_id": "poison-unknown-type"}'),
    (
        "poison-future",
        orjson.dumps(
            {
                "type": "click",
                "event_id": "poison-future",
                "network": "linkedin",
                "post_id": "nowhere",
                "actor": "fan-1",
                "occurred_at": "2099-01-01T00:00:00Z",
            }
        ),
    ),
    ("poison-wrong-types", b'{"type": "post", "event_id": 12, "network": 3, "text": []}'),
]


class Chaos:
    """The faults, at random moments of the sending window (seeded)."""

    def __init__(self, stack: ChaosStack, rng: random.Random, window_s: float) -> None:
        self.stack = stack
        self.rng = rng
        self.window_s = window_s
        self.log: list[str] = []

    def schedule(self) -> list[tuple[float, str]]:
        faults = [f"kill:{name}" for name in SERVICES] + ["valkey", "nats-node", "poison"]
        # Spread over the window, random order and jitter: every fault hits a busy pipeline.
        slots = sorted(self.rng.uniform(0.1, 0.85) * self.window_s for _ in faults)
        self.rng.shuffle(faults)
        return list(zip(slots, faults, strict=True))

    async def run(self, started: float) -> None:
        for at, fault in self.schedule():
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            await self.apply(fault)
            self.log.append(f"{time.monotonic() - started:6.1f}s {fault}")

    async def apply(self, fault: str) -> None:
        # Servers start on this (main) thread: children get PR_SET_PDEATHSIG, which fires when
        # the *thread* that forked them exits, so a worker thread would take them down with it.
        platform, cluster, valkey = self.stack.platform, self.stack.cluster, self.stack.valkey
        if fault.startswith("kill:"):
            name = fault.split(":", 1)[1]
            platform.children[name].kill()  # SIGKILL: no drain, no goodbye
            await asyncio.sleep(self.rng.uniform(0.2, 1.5))
            platform.restart(name)
        elif fault == "valkey":
            valkey.stop()  # SIGTERM: AOF is flushed
            await asyncio.sleep(self.rng.uniform(0.2, 1.0))
            valkey.start()
        elif fault == "nats-node":
            index = self.rng.randrange(len(cluster.nodes))
            cluster.stop_node(index)
            await asyncio.sleep(self.rng.uniform(2.0, 5.0))
            cluster.start_node(index)
        elif fault == "poison":
            nc = await nats.connect(servers=cluster.url.split(","))
            js = nc.jetstream(timeout=10)
            for mid, data in POISON:
                await js.publish(RAW_SUBJECT, data, headers={"Nats-Msg-Id": mid})
            await nc.close()


async def _consumers_idle(servers: str) -> bool:
    nc = await nats.connect(servers=servers.split(","))
    try:
        js = nc.jetstream(timeout=5)
        for stream, durable in (("PV_RAW", "ingest"), ("PV_EVENTS", "moderation"),
                                ("PV_EVENTS", "scoring")):  # fmt: skip
            info = await js.consumer_info(stream, durable)
            if info.num_pending or info.num_ack_pending or info.num_redelivered:
                return False
        return True
    finally:
        await nc.close()


async def _diagnosis(stack: ChaosStack) -> str:
    """What a failed convergence looks like: consumers, their pull requests, the processes."""
    lines = [
        f"{n}: {'alive' if c.alive() else 'dead'}, restarts {c.restarts}"
        for n, c in stack.platform.children.items()
    ]
    nc = await nats.connect(servers=stack.cluster.url.split(","))
    try:
        js = nc.jetstream(timeout=5)
        for stream, durable in (("PV_RAW", "ingest"), ("PV_EVENTS", "moderation"),
                                ("PV_EVENTS", "scoring")):  # fmt: skip
            i = await js.consumer_info(stream, durable)
            lines.append(
                f"{durable}: pending {i.num_pending}, ack pending {i.num_ack_pending}, "
                f"redelivered {i.num_redelivered}, waiting pulls {i.num_waiting}, "
                f"delivered {i.delivered.stream_seq if i.delivered else None}"
            )
    finally:
        await nc.close()
    return "\n".join(lines)


async def _dead_letters(servers: str) -> list[dict[str, Any]]:
    nc = await nats.connect(servers=servers.split(","))
    try:
        js = nc.jetstream(timeout=5)
        n = (await js.stream_info(DLQ.name)).state.messages
        out = []
        for seq in range(1, n + 1):
            msg = await js.get_msg(DLQ.name, seq)
            out.append(orjson.loads(msg.data or b"{}"))
        return out
    finally:
        await nc.close()


def test_converges_exactly_under_chaos(stack: ChaosStack) -> None:
    config = SimulationConfig(
        seed=SEED,
        events=EVENTS,
        ambassadors=max(30, min(300, EVENTS // 40)),
        start=default_start(5),
        days=5,
    )
    events = [e.payload for e in Simulation(config).events()]
    expected = Expected(events)
    assert len(expected.boards["all"]) > 10  # the comparison below is not vacuous

    rng = random.Random(SEED)
    chaos = Chaos(stack, rng, SEND_SECONDS)
    rate = EVENTS / SEND_SECONDS

    platform = stack.platform
    restarted: list[str] = []

    async def supervise(until: asyncio.Event) -> None:
        # What `portevoix up` does: a service that exits (e.g. its start-up met a NATS node
        # that was down) is started again with a back-off.
        while not until.is_set():
            restarted.extend(platform.supervise_once())
            await asyncio.sleep(0.5)

    async def run() -> None:
        started = time.monotonic()
        done = asyncio.Event()
        supervisor = asyncio.create_task(supervise(done))
        async with NatsSender(stack.cluster.url, timeout_s=5, attempts=200) as sender:
            await asyncio.gather(
                drive(events, sender, rate=rate, batch_size=200, progress=lambda n: None),
                chaos.run(started),
            )
        done.set()
        await supervisor

    asyncio.run(run())
    print("\n".join(chaos.log), "\nrestarted by the supervisor:", restarted)

    # Converged = every consumer drained and the all-time board equal for two reads in a row.
    redis = Redis.from_url(stack.valkey.url)
    deadline = time.monotonic() + SETTLE_S
    stable = 0
    while time.monotonic() < deadline:
        restarted.extend(platform.supervise_once())
        idle = asyncio.run(_consumers_idle(stack.cluster.url))
        boards = live_boards(redis, ["all"])
        stable = stable + 1 if idle and boards["all"] == expected.boards["all"] else 0
        if stable >= 2:
            break
        time.sleep(1.0)

    for name in SERVICES:
        assert platform.children[name].alive(), f"{name} did not come back ({restarted})"
    live = live_boards(redis, expected.boards)
    diff = differences(expected.boards, live)
    if diff:
        diff.append(asyncio.run(_diagnosis(stack)) + f"\nrestarted: {restarted}")
    assert not diff, f"leaderboards differ after chaos ({chaos.log}):\n" + "\n".join(diff)
    ledgers = live_ledgers(redis, expected.ledgers)
    diff = differences(expected.ledgers, ledgers, limit=3)
    assert not diff, "ledgers differ after chaos:\n" + "\n".join(diff)

    # The API serves the same board after its own crash.
    r = httpx.get(
        f"{platform.api_url}/v1/leaderboards/all-time",
        params={"limit": 500},
        headers={"Authorization": f"Bearer {platform.admin_token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    totals = expected.report["totals"]
    assert {i["ambassador_id"]: i["points"] for i in r.json()["items"]} == {
        a: p for a, p in totals.items() if p != 0
    }

    dead = asyncio.run(_dead_letters(stack.cluster.url))
    assert sorted(d["original_msg_id"] for d in dead) == sorted(mid for mid, _ in POISON)
    for d in dead:
        assert d["reason_code"] and d["reason"], d
