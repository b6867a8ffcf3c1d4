"""The analytics projector: a durable JetStream pull consumer (`api-analytics` on `PV_EVENTS`) run
as a task of the API process (started and stopped by the lifespan).

Why here rather than a `BusWorker`: the projection is small, read only by this API, and a
BusWorker is a whole FastStream application (its own broker connection, metrics server and
lifecycle) that would have to be nested inside FastAPI's. One loop over the API's own NATS
connection is simpler and keeps "deploy the API" = "deploy its read models". It still pulls with
the bus runtime's `PullBatches` (partial batches at once, prefetch while backlogged; nats-py's
`fetch` spends a task and a timer per message) and acks a batch in one write (`ack_all`).
Several API replicas share the durable consumer (JetStream spreads the batches); each step is
idempotent per event id, so redeliveries and replicas never double count.

A batch is applied in stream order in one Redis script call, then acked; if Redis fails, the
batch is nak'ed with a growing delay (bounded by `max_deliver`). An event the projection cannot
use is terminated (counted, logged by stream sequence), never retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from zoneinfo import ZoneInfo

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from portevoix.runtime.delivery import ack_all, ack_fields
from portevoix.runtime.streams import EVENTS, durable_consumer
from portevoix.runtime.worker import PullBatches
from portevoix_api.background import stop_task
from portevoix_api.projections.analytics import SUBJECTS, AnalyticsPlanner, InvalidEvent, Step
from portevoix_api.projections.store import AnalyticsStore
from portevoix_api.settings import ApiSettings

DURABLE = "api-analytics"
CATCH_UP_BATCH = 200
CATCH_UP_REST_MAX_S = 0.05
log = logging.getLogger("portevoix.api.projection")
PROJECTED = Counter(
    "pv_api_projection_events_total",
    "Domain events seen by the API's analytics projection, by outcome.",
    ["outcome"],  # applied | duplicate | ignored | invalid | retried
)


class AnalyticsProjector:
    def __init__(self, nc: NatsClient, redis: Redis, settings: ApiSettings) -> None:
        self.nc = nc
        self.settings = settings
        self.store = AnalyticsStore(redis)
        self.planner = AnalyticsPlanner(
            ZoneInfo(settings.timezone), settings.idea_hashtags, settings.analytics_retention_days
        )
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._pulls: PullBatches | None = None
        self.last_stream_seq = 0

    async def start(self) -> None:
        """Start consuming in the background: the API serves even if the consumer cannot be
        created yet (it retries), so a projection problem never stops the gateway."""
        self._task = asyncio.create_task(self._start_and_run(), name="analytics-projector")

    async def _start_and_run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                await self._bind()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("projection consumer not ready", extra={"pv": {"error": repr(exc)}})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        if self._pulls is not None:
            await self._run(self._pulls)

    async def _bind(self) -> None:
        js = self.nc.jetstream()
        config = durable_consumer(
            DURABLE,
            filter_subjects=SUBJECTS,
            max_deliver=self.settings.max_deliver,
            ack_wait_s=self.settings.ack_wait_s,
        )
        try:
            info = await js.consumer_info(EVENTS.name, DURABLE)
            if sorted(info.config.filter_subjects or []) != sorted(SUBJECTS):
                await js.add_consumer(EVENTS.name, config)  # same name: an update
        except NotFoundError:
            await js.add_consumer(EVENTS.name, config)
        pulls = PullBatches(self.nc, EVENTS.name, DURABLE)
        await pulls.start()
        self._pulls = pulls

    async def stop(self) -> None:
        await stop_task(self._task, self._stopping, grace_s=3.0)
        if self._pulls is not None:
            # Unsubscribes (a late pull reply does not hold the connection's drain) and naks
            # what was prefetched, so another replica gets it now rather than after ack_wait.
            with contextlib.suppress(Exception):
                await self._pulls.stop()

    async def _run(self, pulls: PullBatches) -> None:
        # Smaller batches than the workers': the projection shares its event loop with the
        # API's requests, and a batch is one slice of loop time.
        batch, idle_s = min(self.settings.batch_size, CATCH_UP_BATCH), self.settings.idle_poll_s
        while not self._stopping.is_set():
            try:
                msgs = await pulls.fetch(batch, idle_s)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection trouble: the client reconnects; try again
                log.warning("fetch failed", extra={"pv": {"error": type(exc).__name__}})
                await asyncio.sleep(1.0)
                continue
            started = time.perf_counter()
            try:
                await self.handle(msgs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. acks while NATS reconnects: redelivered later
                log.warning("batch failed", extra={"pv": {"error": type(exc).__name__}})
                await asyncio.sleep(1.0)
                continue
            if len(msgs) >= batch:
                # Catching up on a backlog: rest as long as the batch took, so requests get at
                # least half of the loop (measured: score p99 215 ms while catching up at full
                # speed, against a few ms idle); the projection still runs at ~15k events/s.
                await asyncio.sleep(min(CATCH_UP_REST_MAX_S, time.perf_counter() - started))

    async def handle(self, msgs: list[Msg]) -> None:
        plan = self.planner.plan
        steps: list[Step] = []
        carriers: list[Msg] = []
        ignored: list[Msg] = []
        invalid = 0
        for msg in msgs:
            try:
                step = plan(orjson.loads(msg.data))
            except (orjson.JSONDecodeError, InvalidEvent, AttributeError) as exc:
                invalid += 1
                log.warning(
                    "event not projectable",
                    extra={"pv": {"seq": ack_fields(msg)[0], "error": str(exc)[:200]}},
                )
                await msg.term()
                continue
            if step is None:
                ignored.append(msg)
            else:
                steps.append(step)
                carriers.append(msg)
        _count("invalid", invalid)
        _count("ignored", len(ignored))
        await ack_all(ignored)
        try:
            outcomes = await self.store.apply(steps)
        except RedisError as exc:
            _count("retried", len(carriers))
            log.warning("projection write failed", extra={"pv": {"error": type(exc).__name__}})
            base = self.settings.retry_base_delay_s
            for msg in carriers:
                attempt = ack_fields(msg)[1]
                await msg.nak(delay=min(30.0, base * 2 ** (attempt - 1)))
            return
        await ack_all(carriers)
        applied = outcomes.count(1)
        _count("applied", applied)
        _count("duplicate", len(outcomes) - applied)
        if carriers:  # redeliveries come back among later messages: the highest, not the last
            self.last_stream_seq = max(self.last_stream_seq, *(ack_fields(m)[0] for m in carriers))


def _count(outcome: str, n: int) -> None:
    """Per batch: one increment by n, not n increments (a series appears once it counts)."""
    if n:
        PROJECTED.labels(outcome).inc(n)
