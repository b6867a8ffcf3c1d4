"""Ingest speed: raw contract-v1 events → domain events per second on one ingest process, over an
embedded nats-server (JetStream, file storage) and an embedded Valkey.

Measured paths (same event mix, fresh servers each):
- `pipeline_handle_events_per_s`: `IngestPipeline.handle` on pre-decoded batches of 500 (Redis
  round trips + async batched publishes with PubAcks; no consumer);
- `raw_pull_events_per_s`: the full consumer path in this process: the worker's pull loop and
  client (`pull_loop`, `PullBatches`: batches of 500 growing to 1,000 while backlogged, as in
  the service) → `BatchProcessor` (decode, acks, dead letters) → `IngestPipeline`;
  `raw_pull_cpu_us_per_event` is its CPU time per event;
- `service_process_events_per_s`: the real service (`python -m portevoix_ingest`: BusWorker and
  its pull loop, which replaced FastStream's batch subscriber) draining a pre-filled stream;
  `service_cpu_us_per_event` is the service process's CPU time per event over the drain,
  `service_rss_mb` its largest resident memory seen during the drain (VmRSS, polled) and
  `service_peak_rss_mb` its high-water mark since start (VmHWM: loading the language model);
- `http_batch_events_per_s`: `POST /v1/events` (JSON arrays of 1,000) on the real API process,
  4 concurrent clients;
- `import_cli_events_per_s`: `portevoix import` (bulk_import.run_import) of a JSONL file;
- `handle_events_per_cpu_s`: the handle path per CPU-second of the Python process (what one
  quiet core would give), and `jetstream_publish_only_events_per_s`, plain batched publishes
  measured in the same run: the machine's ceiling at that moment (other jobs share its 2 CPUs).
Mix: 10 % posts by registered ambassadors (FR/EN text, language detection), 70 % likes/shares,
15 % comments, 5 % clicks. A cProfile of the handle path lands in `notes`.

Usage: python bench/ingest_bench.py [EVENTS (default 40,000)]
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson

from portevoix.runtime.delivery import BatchProcessor, Delivery, Ticket
from portevoix.runtime.embedded import EmbeddedNats, EmbeddedValkey, free_port
from portevoix.runtime.publisher import EventPublisher, Outgoing
from portevoix.runtime.redis import connect_redis
from portevoix.runtime.streams import EVENTS, RAW, RAW_SUBJECT, durable_consumer, ensure_streams
from portevoix.runtime.vault import vault_from_settings
from portevoix.runtime.worker import PullBatches, ensure_consumer, pull_loop
from portevoix_ingest.bulk_import import run_import
from portevoix_ingest.directory import AmbassadorDirectory
from portevoix_ingest.domain.normalise import detect_language
from portevoix_ingest.pipeline import IngestPipeline
from portevoix_ingest.settings import IngestSettings

N_EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
N_AMBASSADORS = 300
BATCH = 500
TARGET = 15_000
# Events per CPU-second of the ingest process itself: what a quiet core would deliver.
CPU: dict[str, float] = {}
TEXTS = [
    "Fière de présenter notre nouvelle usine de Lyon ! Venez découvrir nos métiers. "
    "#collaboratrice https://example.com/usine",
    "Our engineering team just shipped the new mobile app. Proud of this launch! #employee",
    "Nous recrutons des alternants en logistique à Rennes, parlez-en autour de vous @alice",
    "Great panel today on sustainable packaging with our partners in Lille. #RSE",
]
ROOT = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dataset(n: int, tag: str) -> list[dict[str, Any]]:
    base = datetime.now(UTC) - timedelta(days=2)
    at = base.isoformat().replace("+00:00", "Z")
    out: list[dict[str, Any]] = [
        {"type": "ambassador", "ambassador_id": f"a{a}", "display_name": f"Ambassador {a}",
         "team": f"T{a % 7}", "handles": {"linkedin": f"amb{a}"}, "consent": a % 50 != 0}
        for a in range(N_AMBASSADORS)
    ]  # fmt: skip
    n_posts = n // 10
    for i in range(n_posts):
        out.append({"type": "post", "event_id": f"{tag}p{i}", "network": "linkedin",
                    "post_id": f"{tag}post{i}", "author": f"amb{i % N_AMBASSADORS}",
                    "text": f"{TEXTS[i % len(TEXTS)]} ({i})", "kind": "original",
                    "occurred_at": at})  # fmt: skip
    kinds = ["like"] * 10 + ["share"] * 4 + ["comment"] * 3 + ["click"]
    for j in range(n - n_posts):
        kind = kinds[j % len(kinds)]
        e: dict[str, Any] = {"type": kind, "event_id": f"{tag}e{j}", "network": "linkedin",
                             "post_id": f"{tag}post{j % max(1, n_posts)}",
                             "actor": f"fan{j}" if j % 20 else f"amb{j % N_AMBASSADORS}",
                             "occurred_at": at}  # fmt: skip
        if kind == "comment":
            e["text"] = "Bravo à toute l'équipe !"
        out.append(e)
    return out


class Servers:
    def __init__(self, root: Path) -> None:
        self.nats = EmbeddedNats(root / "nats").start()
        self.valkey = EmbeddedValkey(root / "valkey").start()

    def stop(self) -> None:
        self.nats.stop()
        self.valkey.stop()


async def publish_raw(url: str, events: list[dict[str, Any]]) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js)
    pub = EventPublisher(js, timeout_s=30)
    for i in range(0, len(events), 2000):
        chunk = events[i : i + 2000]
        await pub.publish_many([
            Outgoing(RAW_SUBJECT, str(e.get("event_id") or f"amb-{e['ambassador_id']}"),
                     orjson.dumps(e)) for e in chunk
        ])  # fmt: skip
    await nc.close()


async def wait_published(js: Any, expected: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await js.stream_info(EVENTS.name)).state.messages >= expected:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("domain events not all published")


def make_pipeline(redis: Any, js: Any) -> tuple[IngestPipeline, EventPublisher]:
    """As the service builds it, personal fields sealed with their owner's key included."""
    settings = IngestSettings()
    pub = EventPublisher(js, timeout_s=30)
    directory = AmbassadorDirectory.from_settings(redis, settings)
    return IngestPipeline(directory, pub, settings, vault_from_settings(redis, settings)), pub


async def bench_handle(root: Path, profile: bool) -> tuple[float, str]:
    servers = Servers(root / "handle")
    try:
        nc = await nats.connect(servers.nats.url)
        js = nc.jetstream()
        await ensure_streams(js)
        redis = connect_redis(servers.valkey.url)
        pipeline, _ = make_pipeline(redis, js)
        events = dataset(N_EVENTS, "h")
        regs, activity = events[:N_AMBASSADORS], events[N_AMBASSADORS:]

        def deliveries(items: list[dict[str, Any]]) -> list[Delivery]:
            out = []
            for seq, e in enumerate(items, 1):
                data = orjson.dumps(e)
                out.append(Delivery(raw=None, subject=RAW_SUBJECT, data=data, stream_seq=seq,  # type: ignore[arg-type]
                                    attempt=1, msg_id=e.get("event_id"), body=orjson.loads(data)))  # fmt: skip
            return out

        await pipeline.handle(deliveries(regs))
        detect_language("Warm the language model up before the clock starts.")
        batches = [deliveries(activity[i : i + BATCH]) for i in range(0, len(activity), BATCH)]
        profiler = cProfile.Profile() if profile else None
        cpu = time.process_time()
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        for b in batches:
            await pipeline.handle(b)
        if profiler:
            profiler.disable()
        took = time.perf_counter() - started
        if not profile:
            CPU["handle_cpu_events_per_cpu_s"] = len(activity) / (time.process_time() - cpu)
        top = ""
        if profiler:
            stats = pstats.Stats(profiler)
            if os.environ.get("PV_SORT"):  # the full table on stderr, for a closer look
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats(os.environ["PV_SORT"]).print_stats(30)
                log(out.getvalue())
            rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
            top = ", ".join(
                f"{Path(f).stem}:{name} {row[2]:.2f}s" for (f, _, name), row in rows[:8]
            )
        await redis.aclose()
        await nc.close()
        return len(activity) / took, top
    finally:
        servers.stop()


async def bench_raw_pull(root: Path) -> float:
    servers = Servers(root / "pull")
    try:
        events = dataset(N_EVENTS, "r")
        await publish_raw(servers.nats.url, events)
        nc = await nats.connect(servers.nats.url)
        js = nc.jetstream()
        redis = connect_redis(servers.valkey.url)
        pipeline, pub = make_pipeline(redis, js)
        proc = BatchProcessor(service="ingest", consumer="ingest", handler=pipeline.handle,
                              publisher=pub, max_deliver=5)  # fmt: skip
        await ensure_consumer(
            js, RAW.name,
            durable_consumer("ingest", filter_subjects=["pv.raw.>"], max_deliver=5, ack_wait_s=30),
        )  # fmt: skip
        pulls = PullBatches(nc, RAW.name, "ingest")
        await pulls.start()
        detect_language("Warm the language model up before the clock starts.")
        gc.freeze()  # as the service does once started (here: also the data set, not in it)
        settled = 0
        finish = proc.finish

        async def counted(ticket: Ticket) -> None:
            nonlocal settled
            await finish(ticket)
            settled += len(ticket.deliveries)

        proc.finish = counted  # type: ignore[method-assign]
        cpu = time.process_time()
        started = time.perf_counter()
        # The service's loop (adaptive batches, PubAcks of batch k awaited while k+1 is handled).
        await pull_loop(pulls, proc, batch_size=BATCH, backlog_batch_size=2 * BATCH,
                        idle_wait_s=1.0, stopping=lambda: settled >= len(events),
                        log=logging.getLogger("bench"), consumer="ingest")  # fmt: skip
        took = time.perf_counter() - started
        CPU["raw_pull_cpu_us_per_event"] = (time.process_time() - cpu) / len(events) * 1e6
        gc.unfreeze()
        await nc.flush()
        await redis.aclose()
        await pulls.stop()
        await nc.close()
        return len(events) / took
    finally:
        servers.stop()


async def bench_service(root: Path) -> float:
    servers = Servers(root / "service")
    proc: subprocess.Popen[bytes] | None = None
    try:
        events = dataset(N_EVENTS, "s")
        await publish_raw(servers.nats.url, events)
        env = {**os.environ, "NATS_URL": servers.nats.url, "REDIS_URL": servers.valkey.url,
               "PORTEVOIX_METRICS_PORT": str(free_port()), "PORTEVOIX_LOG_LEVEL": "WARNING",
               "PYTHONPATH": str(ROOT)}  # fmt: skip
        proc = subprocess.Popen(  # noqa: ASYNC220 - a child process for the whole run
            [sys.executable, "-m", "portevoix_ingest"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        nc = await nats.connect(servers.nats.url)
        js = nc.jetstream()
        first: float | None = None
        first_cpu = 0.0
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            try:
                info = await js.consumer_info(RAW.name, "ingest")
            except Exception:
                await asyncio.sleep(0.05)
                continue
            if first is None and (info.delivered.stream_seq or 0) > 0:
                first, first_cpu = time.perf_counter(), cpu_seconds(proc.pid)
            if first is not None:  # resident memory while it works (the drain's maximum)
                CPU["service_rss_mb"] = max(CPU.get("service_rss_mb", 0.0), rss_mb(proc.pid))
            if first is not None and not info.num_pending and not info.num_ack_pending:
                took = time.perf_counter() - first
                used = cpu_seconds(proc.pid) - first_cpu
                CPU["service_cpu_us_per_event"] = used / len(events) * 1e6
                CPU["service_rss_mb"] = max(CPU.get("service_rss_mb", 0.0), rss_mb(proc.pid))
                CPU["service_peak_rss_mb"] = rss_mb(proc.pid, "VmHWM")
                await nc.close()
                return len(events) / took
            await asyncio.sleep(0.02)
        raise TimeoutError("the ingest service did not drain the stream")
    finally:
        if proc is not None:
            stop(proc)
        servers.stop()


async def bench_http(root: Path) -> float:
    servers = Servers(root / "http")
    port = free_port()
    env = {**os.environ, "NATS_URL": servers.nats.url, "REDIS_URL": servers.valkey.url,
           "PORTEVOIX_PORT": str(port), "PORTEVOIX_ADMIN_TOKEN": "bench",
           "PORTEVOIX_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}  # fmt: skip
    api = subprocess.Popen(  # noqa: ASYNC220 - a child process for the whole run
        [sys.executable, "-m", "portevoix_api"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        events = dataset(N_EVENTS, "w")[N_AMBASSADORS:]
        bodies = [orjson.dumps(events[i : i + 1000]) for i in range(0, len(events), 1000)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                     headers={"Authorization": "Bearer bench",
                                              "Content-Type": "application/json"}) as client:  # fmt: skip
            for _ in range(200):
                try:
                    if (await client.get("/v1/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            queue = list(bodies)
            accepted = 0

            async def worker() -> None:
                nonlocal accepted
                while queue:
                    body = queue.pop()
                    r = await client.post("/v1/events", content=body)
                    assert r.status_code == 202, r.text[:300]
                    accepted += r.json()["accepted"]

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(4)))
            took = time.perf_counter() - started
        assert accepted == len(events), accepted
        return len(events) / took
    finally:
        stop(api)
        servers.stop()


async def bench_import(root: Path) -> float:
    servers = Servers(root / "import")
    try:
        src = root / "events.jsonl"
        events = dataset(N_EVENTS, "i")
        src.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
        started = time.perf_counter()
        report = await run_import(src, servers.nats.url, batch_size=2000)
        took = time.perf_counter() - started
        assert report.accepted == len(events), report
        return len(events) / took
    finally:
        servers.stop()


async def bench_publish_only(root: Path) -> float:
    servers = Servers(root / "publish")
    try:
        nc = await nats.connect(servers.nats.url)
        js = nc.jetstream()
        await ensure_streams(js)
        pub = EventPublisher(js, timeout_s=30)
        body = orjson.dumps(dataset(20, "q")[-1])
        msgs = [Outgoing("pv.evt.engagement.received", f"q{i}", body) for i in range(N_EVENTS)]
        started = time.perf_counter()
        for i in range(0, len(msgs), BATCH):
            await pub.publish_many(msgs[i : i + BATCH])
        took = time.perf_counter() - started
        await nc.close()
        return len(msgs) / took
    finally:
        servers.stop()


async def timed(name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
    log(f"ingest bench: {name}…")
    started = time.perf_counter()
    value = await fn()
    log(f"ingest bench: {name}: {value if not isinstance(value, tuple) else value[0]} "
        f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
    return value


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory now (VmRSS) or at its peak so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pv-ingest-bench-") as tmp:
        root = Path(tmp)
        handle, _ = await timed("pipeline.handle", lambda: bench_handle(root, profile=False))
        _, profile = await timed("profile", lambda: bench_handle(root / "p", profile=True))
        pull = await timed("raw pull + BatchProcessor", lambda: bench_raw_pull(root))
        service = await timed("service process", lambda: bench_service(root))
        http = await timed("HTTP POST /v1/events", lambda: bench_http(root))
        imported = await timed("import CLI", lambda: bench_import(root))
        ceiling = await timed("publish only", lambda: bench_publish_only(root))
    results = {
        "pipeline_handle_events_per_s": round(handle),
        "raw_pull_events_per_s": round(pull),
        "service_process_events_per_s": round(service),
        "http_batch_events_per_s": round(http),
        "import_cli_events_per_s": round(imported),
        "handle_events_per_cpu_s": round(CPU["handle_cpu_events_per_cpu_s"]),
        "raw_pull_cpu_us_per_event": round(CPU["raw_pull_cpu_us_per_event"], 1),
        "service_cpu_us_per_event": round(CPU["service_cpu_us_per_event"], 1),
        "service_rss_mb": round(CPU["service_rss_mb"], 1),
        "service_peak_rss_mb": round(CPU["service_peak_rss_mb"], 1),
        "jetstream_publish_only_events_per_s": round(ceiling),
    }
    notes = (
        f"{N_EVENTS:,} events (10% posts w/ language detection, 70% likes/shares, 15% comments, "
        f"5% clicks), load average {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} CPUs shared with the embedded nats-server and Valkey "
        "and other engineers' jobs. cProfile top (own time) of the handle path: " + profile
    )
    print(json.dumps({"ingest": {
        "results": results,
        "targets": {"raw_pull_events_per_s": [">=", TARGET],
                    "pipeline_handle_events_per_s": [">=", TARGET],
                    "service_process_events_per_s": [">=", TARGET]},
        "notes": notes,
    }}))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
