"""End-to-end sustained throughput: raw events → ingest → moderation → scoring (all services,
NATS and Valkey on this machine), beside a raw nats-py JetStream single hop in the same run."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nats
import orjson
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from portevoix.runtime.embedded import EmbeddedNats, EmbeddedValkey
from portevoix.runtime.platform import Platform

N_EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
N_AMBASSADORS = 200


async def raw_single_hop(nats_url: str, n: int) -> float:
    """Publish n messages with publish_async and consume them with a batched pull + ack."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name="BENCH", subjects=["bench.>"], storage=StorageType.FILE)
    )
    payload = orjson.dumps({"type": "like", "event_id": "x" * 24, "text": "y" * 120})
    started = time.perf_counter()

    async def produce() -> None:
        futs = []
        for i in range(n):
            futs.append(
                await js.publish_async("bench.x", payload, headers={"Nats-Msg-Id": f"m{i}"})
            )
            if len(futs) >= 2000:
                await asyncio.gather(*futs)
                futs = []
        await asyncio.gather(*futs)

    async def consume() -> None:
        sub = await js.pull_subscribe(
            "bench.x", durable="bench", config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
        )
        got = 0
        while got < n:
            try:
                msgs = await sub.fetch(500, timeout=1)
            except TimeoutError:
                continue
            for m in msgs:
                await m.ack()
            got += len(msgs)

    await asyncio.gather(produce(), consume())
    took = time.perf_counter() - started
    await nc.close()
    return n / took


async def drive(platform: Platform, n: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {platform.admin_token}"}
    async with httpx.AsyncClient(base_url=platform.api_url, headers=headers, timeout=60) as api:
        ambassadors = [
            {"type": "ambassador", "ambassador_id": f"a{i}", "display_name": f"Amb {i}",
             "team": f"t{i % 10}", "handles": {"linkedin": f"h{i}"}, "consent": True}
            for i in range(N_AMBASSADORS)
        ]  # fmt: skip
        await api.post("/v1/events", json=ambassadors)
        posts = [
            {"type": "post", "event_id": f"p{i}", "network": "linkedin", "post_id": f"p{i}",
             "author": f"h{i}", "kind": "original", "occurred_at": "2026-11-20T09:00:00Z",
             "text": f"Retour numéro {i} sur notre salon à Lyon, merci à tous ! #collaborateur"}
            for i in range(N_AMBASSADORS)
        ]  # fmt: skip
        await api.post("/v1/events", json=posts)
    nc = await nats.connect(str(platform.nats_url))
    js = nc.jetstream()
    started = time.perf_counter()
    futs = []
    for i in range(n):
        e = {"type": "like", "event_id": f"l{i}", "network": "linkedin",
             "post_id": f"p{i % N_AMBASSADORS}", "actor": f"fan{i}",
             "occurred_at": "2026-11-20T10:00:00Z"}  # fmt: skip
        futs.append(
            await js.publish_async("pv.raw.v1", orjson.dumps(e), headers={"Nats-Msg-Id": e["event_id"]})
        )
        if len(futs) >= 2000:
            await asyncio.gather(*futs)
            futs = []
    await asyncio.gather(*futs)
    published = time.perf_counter() - started
    # Done when the scoring consumer has nothing pending or unacked for the engagement.
    ingest_done = None
    while True:
        info = await js.consumer_info("PV_EVENTS", "scoring")
        ing = await js.consumer_info("PV_RAW", "ingest")
        if ingest_done is None and ing.num_pending == 0 and ing.num_ack_pending == 0:
            ingest_done = time.perf_counter() - started
        if (
            info.num_pending == 0
            and info.num_ack_pending == 0
            and ing.num_pending == 0
            and ing.num_ack_pending == 0
            and info.delivered.stream_seq >= n
        ):
            break
        await asyncio.sleep(0.05)
    took = time.perf_counter() - started
    await nc.close()
    return {"publish_s": published, "total_s": took, "events_per_s": n / took,
            "ingest_drained_s": ingest_done or took}  # fmt: skip


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="pv-bench-"))
    nats_srv = EmbeddedNats(root / "nats").start()
    valkey = EmbeddedValkey(root / "valkey").start()
    try:
        raw = asyncio.run(raw_single_hop(nats_srv.url, N_EVENTS))
        platform = Platform(
            run_dir=root, nats_url=nats_srv.url, redis_url=valkey.url, log_dir=root / "logs",
            extra_env={"PORTEVOIX_LOG_LEVEL": "WARNING"},
        )  # fmt: skip
        platform.start()
        try:
            e2e = asyncio.run(drive(platform, N_EVENTS))
        finally:
            platform.stop()
    finally:
        nats_srv.stop()
        valkey.stop()
    out = {
        "pipeline": {
            "results": {
                "e2e_events_per_s": round(e2e["events_per_s"]),
                "raw_jetstream_hop_per_s": round(raw),
                "ratio_to_raw_hop": round(e2e["events_per_s"] / raw, 3),
                "events": N_EVENTS,
                "publish_s": round(e2e["publish_s"], 2),
                "ingest_drained_s": round(e2e["ingest_drained_s"], 2),
                "total_s": round(e2e["total_s"], 2),
            },
            "targets": {"e2e_events_per_s": [">=", 8000], "ratio_to_raw_hop": [">=", 0.30]},
        }
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
