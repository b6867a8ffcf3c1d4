"""End-to-end pipeline benchmark: all four services, NATS and Valkey on this machine.

1. `raw_jetstream_hop_per_s`: a raw nats-py JetStream single hop (publish_async + batched pull
   + ack), measured in the same run on the same server: the yardstick.
2. `e2e_events_per_s`: sustained events/s of a realistic simulated stream (`portevoix simulate`:
   posts, relays, likes, comments, shares, clicks, charter problems) through
   ingest → moderation → scoring: from the first publish until every consumer is drained.
3. `latency_p50_ms` / `latency_p99_ms`: likes published at 1,000 events/s, each timed from its
   publish to the moment its ledger line (written in the same atomic step as the leaderboard
   increment) is readable in Valkey (polled every millisecond or so).
4. `rss_max_mb_<service>`: VmRSS of each service process, sampled under load (peak).

Usage: python bench/pipeline_bench.py [EVENTS] [--profile DIR]   (default 30,000 events)
`--profile DIR` records each service with py-spy during the throughput phase (flame graphs and
the top functions per service in DIR).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import orjson
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig
from redis import Redis

from portevoix import native
from portevoix.contracts.readmodels import SCORING_GENERATION, ledger_key
from portevoix.runtime.embedded import EmbeddedNats, EmbeddedValkey
from portevoix.runtime.platform import SERVICES, Platform
from portevoix.runtime.publisher import EventPublisher, Outgoing
from portevoix.runtime.redis import text
from portevoix.simulation import Simulation, SimulationConfig
from portevoix.simulation.cli import default_start
from portevoix.simulation.drivers import msg_id

ARGS = [
    a for i, a in enumerate(sys.argv[1:]) if not a.startswith("--") and sys.argv[i] != "--profile"
]
N_EVENTS = int(ARGS[0]) if ARGS else 30_000
PROFILE_DIR = Path(sys.argv[sys.argv.index("--profile") + 1]) if "--profile" in sys.argv else None
LATENCY_RATE = 1000
LATENCY_SECONDS = 10
LOW_RATE = 100
LATENCY_AUTHORS = 8
PUBLISH_WINDOW = 2000  # messages per publish (one buffer), their PubAcks awaited together


async def raw_single_hop(nats_url: str, n: int) -> float:
    """Publish n messages with publish_async and consume them with a batched pull + ack."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="BENCH", subjects=["bench.>"], storage=StorageType.FILE))
    payload = orjson.dumps({"type": "like", "event_id": "x" * 24, "text": "y" * 120})
    started = time.perf_counter()

    async def produce() -> None:
        futs = []
        for i in range(n):
            futs.append(
                await js.publish_async("bench.x", payload, headers={"Nats-Msg-Id": f"m{i}"})
            )
            if len(futs) >= PUBLISH_WINDOW:
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
    await js.delete_stream("BENCH")
    await nc.close()
    return n / took


async def publish_all(js: Any, events: list[dict[str, Any]]) -> None:
    """The load generator: the platform's own batched publisher (one buffer per window, PubAcks
    read off one inbox), a few windows in flight. Its CPU is the machine's too, so it is kept
    small (nats-py's publish_async costs several times as much per message) and reported."""
    publisher = EventPublisher(js, timeout_s=30.0, service="bench")
    windows = [
        [Outgoing("pv.raw.v1", msg_id(e), orjson.dumps(e)) for e in events[i : i + PUBLISH_WINDOW]]
        for i in range(0, len(events), PUBLISH_WINDOW)
    ]
    in_flight = asyncio.Semaphore(3)

    async def send(window: list[Outgoing]) -> None:
        async with in_flight:
            await publisher.publish_many(window)

    await asyncio.gather(*(send(w) for w in windows))


CONSUMERS = (("PV_RAW", "ingest"), ("PV_EVENTS", "moderation"), ("PV_EVENTS", "scoring"))


async def drained(js: Any) -> bool:
    for stream, durable in CONSUMERS:
        try:
            info = await js.consumer_info(stream, durable)
        except nats.js.errors.NotFoundError:
            return False  # the service has not declared its consumer yet (still starting)
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def wait_drained(js: Any, timeout_s: float = 600) -> None:
    # Twice in a row: moderation's decisions land on PV_EVENTS after it looked drained.
    deadline = time.monotonic() + timeout_s
    streak = 0
    while streak < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("pipeline not drained")
        streak = streak + 1 if await drained(js) else 0
        await asyncio.sleep(0.02)


class RssSampler(threading.Thread):
    """Peak VmRSS (MB) of every service process, sampled every 200 ms while running."""

    def __init__(self, platform: Platform) -> None:
        super().__init__(daemon=True)
        self.platform = platform
        self.peak: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            for name, child in self.platform.children.items():
                if child.proc is None:
                    continue
                try:
                    status = Path(f"/proc/{child.proc.pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmRSS:"):
                        mb = int(line.split()[1]) / 1024
                        self.peak[name] = max(self.peak.get(name, 0.0), mb)


def cpu_seconds(platform: Platform, servers: dict[str, Any]) -> dict[str, float]:
    """CPU time (user + system) each service and server process has used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    procs = {name: child.proc for name, child in platform.children.items()}
    procs.update({name: server.proc for name, server in servers.items()})
    out = {}
    for name, proc in procs.items():
        if proc is None:
            continue
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[name] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out


def start_profilers(platform: Platform, out: Path, seconds: int) -> list[subprocess.Popen[bytes]]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    for name in ("ingest", "moderation", "scoring"):
        pid = platform.children[name].proc.pid  # type: ignore[union-attr]
        for fmt, ext in (("raw", "txt"),):
            procs.append(
                subprocess.Popen(
                    [py_spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "50",
                     "-f", fmt, "-o", str(out / f"{name}.{ext}"), "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
    return procs


def top_functions(collapsed: Path, n: int = 12) -> list[tuple[str, float]]:
    """Self time per function from py-spy's collapsed stacks (share of samples)."""
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        leaf = stack.split(";")[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
        total += int(count)
    return [(f, c / total) for f, c in sorted(own.items(), key=lambda kv: -kv[1])[:n]]


async def throughput(platform: Platform, n: int) -> dict[str, float]:
    config = SimulationConfig(
        seed=7, events=n, ambassadors=300, start=default_start(7), days=7, prefix="bench"
    )
    events = [e.payload for e in Simulation(config).events()]
    registrations = [e for e in events if e["type"] == "ambassador"]
    activity = [e for e in events if e["type"] != "ambassador"]
    nc = await nats.connect(str(platform.nats_url))
    js = nc.jetstream()
    await publish_all(js, registrations)
    await wait_drained(js)
    started, cpu0 = time.perf_counter(), time.process_time()
    await publish_all(js, activity)
    published = time.perf_counter() - started
    generator_cpu = time.process_time() - cpu0
    await wait_drained(js)
    took = time.perf_counter() - started
    # The API's analytics projection is not part of the timed path (it rests while it has a
    # backlog, to keep requests fast): how far behind it was when the pipeline drained.
    try:
        lagging = (await js.consumer_info("PV_EVENTS", "api-analytics")).num_pending or 0
    except nats.js.errors.NotFoundError:
        lagging = -1
    await nc.close()
    return {
        "events": len(activity),
        "posts": sum(e["type"] == "post" for e in activity),
        "publish_s": published,
        "generator_cpu_s": generator_cpu,
        "total_s": took,
        "events_per_s": len(activity) / took,
        "api_projection_pending": lagging,
    }


async def likes_only(platform: Platform, n: int) -> float:
    """The earlier yardstick: likes only (no moderation work), on 200 moderated posts."""
    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))
    setup: list[dict[str, Any]] = []
    for i in range(200):
        setup.append(
            {
                "type": "ambassador",
                "ambassador_id": f"lk-{i}",
                "display_name": f"K {i}",
                "team": f"t{i % 10}",
                "handles": {"linkedin": f"lk-{i}"},
                "consent": True,
            }
        )
        setup.append({"type": "post", "event_id": f"lk-post-{i}", "network": "linkedin",
                      "post_id": f"lk-p{i}", "author": f"lk-{i}", "kind": "original",
                      "occurred_at": recent,
                      "text": f"Retour numéro {i} sur notre salon à Lyon, merci ! #collaborateur"})  # fmt: skip
    likes = [
        {"type": "like", "event_id": f"lk-like-{i}", "network": "linkedin",
         "post_id": f"lk-p{i % 200}", "actor": f"lk-fan-{i}", "occurred_at": recent}
        for i in range(n)
    ]  # fmt: skip
    nc = await nats.connect(str(platform.nats_url))
    js = nc.jetstream()
    await publish_all(js, setup)
    await wait_drained(js)
    started = time.perf_counter()
    await publish_all(js, likes)
    await wait_drained(js)
    took = time.perf_counter() - started
    await nc.close()
    return n / took


async def latency(
    platform: Platform, redis_url: str, rate: int, seconds: float, tag: str
) -> dict[str, float]:
    """Likes at `rate`/s; time from publish to the ledger line being readable."""
    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    nc = await nats.connect(str(platform.nats_url))
    js = nc.jetstream()
    setup: list[dict[str, Any]] = []
    for i in range(LATENCY_AUTHORS):
        setup.append(
            {
                "type": "ambassador",
                "ambassador_id": f"lat-{i}",
                "display_name": f"L {i}",
                "team": "Bench",
                "handles": {"linkedin": f"lat-{i}"},
                "consent": True,
            }
        )
        setup.append({"type": "post", "event_id": f"lat-post-{i}", "network": "linkedin",
                      "post_id": f"lat-p{i}", "author": f"lat-{i}", "kind": "original",
                      "occurred_at": recent,
                      "text": f"Merci à l'équipe de Lyon pour ce salon numéro {i} ! #collaborateur"})  # fmt: skip
    await publish_all(js, setup)
    await wait_drained(js)  # posts moderated: likes are paid at once

    redis = Redis.from_url(redis_url)
    gen = text(redis.get(SCORING_GENERATION) or b"1")
    keys = [ledger_key(gen, f"lat-{i}") for i in range(LATENCY_AUTHORS)]
    offsets = {k: redis.llen(k) for k in keys}
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    total = int(rate * seconds)
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() or len(seen) < len(sent):
            pipe = redis.pipeline(transaction=False)
            for k in keys:
                pipe.lrange(k, offsets[k], -1)
            now = time.perf_counter()
            for k, rows in zip(keys, pipe.execute(), strict=True):
                offsets[k] += len(rows)
                for row in rows:
                    seen[orjson.loads(row)["event_id"]] = now
            if done.is_set() and time.perf_counter() - finished[0] > 30:
                return
            time.sleep(0.0005)

    finished = [float("inf")]
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    futs = []
    for i in range(total):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        e = {"type": "like", "event_id": f"lat-{tag}-{i}", "network": "linkedin",
             "post_id": f"lat-p{i % LATENCY_AUTHORS}", "actor": f"lat-{tag}-fan-{i}",
             "occurred_at": recent}  # fmt: skip
        sent[e["event_id"]] = time.perf_counter()
        futs.append(await js.publish_async("pv.raw.v1", orjson.dumps(e),
                                           headers={"Nats-Msg-Id": e["event_id"]}))  # fmt: skip
        if len(futs) >= 100:
            await asyncio.gather(*futs)
            futs = []
    await asyncio.gather(*futs)
    finished[0] = time.perf_counter()
    done.set()
    await asyncio.to_thread(watcher.join, 40)
    await nc.close()
    redis.close()
    lat = sorted((seen[k] - t) * 1000 for k, t in sent.items() if k in seen)
    q = statistics.quantiles(lat, n=100) if len(lat) >= 100 else [float("nan")] * 99
    return {
        "p50_ms": q[49],
        "p99_ms": q[98],
        "max_ms": lat[-1] if lat else float("nan"),
        "measured": len(lat),
        "lost": total - len(lat),
        "achieved_rate": total / (finished[0] - started),
    }


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="pv-bench-"))
    nats_srv = EmbeddedNats(root / "nats").start()
    valkey = EmbeddedValkey(root / "valkey")
    valkey.start()
    malloc = valkey.malloc_in_use()
    load_before = os.getloadavg()
    try:
        raw = asyncio.run(raw_single_hop(nats_srv.url, N_EVENTS))
        platform = Platform(
            run_dir=root, nats_url=nats_srv.url, redis_url=valkey.url, log_dir=root / "logs",
            extra_env={"PORTEVOIX_LOG_LEVEL": "WARNING"},
        )  # fmt: skip
        platform.start(wait_ready_s=120)
        rss = RssSampler(platform)
        rss.start()
        profilers: list[subprocess.Popen[bytes]] = []
        try:
            if PROFILE_DIR is not None:
                profilers = start_profilers(platform, PROFILE_DIR, seconds=20)
            servers = {"nats": nats_srv, "valkey": valkey}
            cpu_before = cpu_seconds(platform, servers)
            e2e = asyncio.run(throughput(platform, N_EVENTS))
            cpu_after = cpu_seconds(platform, servers)
            for p in profilers:
                p.wait(60)
            likes_rate = asyncio.run(likes_only(platform, N_EVENTS // 2))
            lat = asyncio.run(
                latency(platform, valkey.url, LATENCY_RATE, LATENCY_SECONDS, "target")
            )
            # The same at a rate this shared machine sustains with room to spare: the
            # pipeline's own latency, without queueing behind a backlog.
            low = asyncio.run(latency(platform, valkey.url, LOW_RATE, 5, "low"))
        finally:
            rss.stopped.set()
            platform.stop()
    finally:
        nats_srv.stop()
        valkey.stop()
    results: dict[str, float] = {
        "e2e_events_per_s": round(e2e["events_per_s"]),
        "raw_jetstream_hop_per_s": round(raw),
        "ratio_to_raw_hop": round(e2e["events_per_s"] / raw, 3),
        "events": int(e2e["events"]),
        "e2e_likes_only_events_per_s": round(likes_rate),
        "posts_moderated": int(e2e["posts"]),
        "publish_s": round(e2e["publish_s"], 2),
        "total_s": round(e2e["total_s"], 2),
        "api_projection_pending_at_drain": int(e2e["api_projection_pending"]),
        # The bench's own publishing (the load generator), on the same two cores.
        "cpu_ms_per_1k_events_load_generator": round(
            1000 * e2e["generator_cpu_s"] / e2e["events"] * 1000, 1
        ),
        "latency_p50_ms": round(lat["p50_ms"], 1),
        "latency_p99_ms": round(lat["p99_ms"], 1),
        "latency_max_ms": round(lat["max_ms"], 1),
        "latency_rate_per_s": round(lat["achieved_rate"]),
        "latency_lost": int(lat["lost"]),
        f"latency_p50_ms_at_{LOW_RATE}": round(low["p50_ms"], 1),
        f"latency_p99_ms_at_{LOW_RATE}": round(low["p99_ms"], 1),
    }
    for name in SERVICES:
        results[f"rss_max_mb_{name}"] = round(rss.peak.get(name, 0.0), 1)
    for name in ("ingest", "moderation", "scoring", "api", "nats", "valkey"):
        # CPU cost per 1,000 events: what a service needs, whatever else runs on the machine.
        used = cpu_after.get(name, 0.0) - cpu_before.get(name, 0.0)
        results[f"cpu_ms_per_1k_events_{name}"] = round(1000 * used / e2e["events"] * 1000, 1)
    targets: dict[str, list[Any]] = {
        "e2e_events_per_s": [">=", 8000],
        "ratio_to_raw_hop": [">=", 0.30],
        "latency_p99_ms": ["<=", 50],
        "latency_lost": ["<=", 0],
    }
    for name in SERVICES:
        targets[f"rss_max_mb_{name}"] = ["<=", 150]
    notes = (
        f"{os.cpu_count()} CPUs shared with other work (Valkey's allocator: {malloc}; "
        f"scoring's hot modules: {native.status('scoring')}); "
        "load average before "
        f"{load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}. Throughput: a simulated stream "
        f"(seed 7, {int(e2e['posts'])} posts through moderation) published with the platform's batched "
        "publisher (its CPU: cpu_ms_per_1k_events_load_generator), timed until the ingest, "
        "moderation and scoring consumers are drained (the API's analytics projection runs "
        "alongside: cpu_ms_per_1k_events_api). Latency: likes "
        f"at {LATENCY_RATE}/s (and {LOW_RATE}/s) on {LATENCY_AUTHORS} moderated posts, publish "
        "→ ledger line readable in Valkey (same atomic step as the board increment), polled "
        "~every 1 ms; when the pipeline cannot sustain the rate, latency is queueing time."
    )
    if PROFILE_DIR is not None:
        tops = {}
        for name in ("ingest", "moderation", "scoring"):
            f = PROFILE_DIR / f"{name}.txt"
            if f.exists():
                tops[name] = [[fn, round(share, 3)] for fn, share in top_functions(f)]
        (PROFILE_DIR / "top.json").write_text(json.dumps(tops, indent=1))
    print(json.dumps({"pipeline": {"results": results, "targets": targets, "notes": notes}}))


if __name__ == "__main__":
    main()
