"""The analytics projector: a durable JetStream pull consumer (`api-analytics` on `PV_EVENTS`) run
as a task of the API process (started and stopped by the lifespan).

Why here and with plain nats-py rather than a `BusWorker`: the projection is small, read only by
this API, and a BusWorker is a whole FastStream application (its own broker connection, metrics
server and lifecycle) that would have to be nested inside FastAPI's. One loop over the API's own
NATS connection is simpler and keeps "deploy the API" = "deploy its read models". Several API
replicas share the durable consumer (JetStream spreads the batches); each step is idempotent per
event id, so redeliveries and replicas never double count.

A batch is applied in stream order in one Redis round trip, then acked; if Redis fails, the batch
is nak'ed with a growing delay (bounded by `max_deliver`). An event the projection cannot use is
terminated (counted, logged by id), never retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from zoneinfo import ZoneInfo

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from portevoix.runtime.streams import EVENTS, durable_consumer
from portevoix_api.background import stop_task
from portevoix_api.projections.analytics import SUBJECTS, AnalyticsPlanner, InvalidEvent, Step
from portevoix_api.projections.store import AnalyticsStore
from portevoix_api.settings import ApiSettings

DURABLE = "api-analytics"
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
        self._sub: JetStreamContext.PullSubscription | None = None
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
        if self._sub is not None:
            await self._run(self._sub)

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
        self._sub = await js.pull_subscribe_bind(DURABLE, stream=EVENTS.name)

    async def stop(self) -> None:
        await stop_task(self._task, self._stopping, grace_s=3.0)
        if self._sub is not None:
            # Gone from the connection, so its drain does not wait on a fetch reply that arrived
            # after the cancel (unread, it would hold the drain until its timeout).
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _run(self, sub: JetStreamContext.PullSubscription) -> None:
        batch = self.settings.batch_size
        while not self._stopping.is_set():
            try:
                msgs: list[Msg] = await sub.fetch(batch, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection trouble: the client reconnects; try again
                log.warning("fetch failed", extra={"pv": {"error": type(exc).__name__}})
                await asyncio.sleep(1.0)
                continue
            try:
                await self.handle(msgs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. acks while NATS reconnects: redelivered later
                log.warning("batch failed", extra={"pv": {"error": type(exc).__name__}})
                await asyncio.sleep(1.0)

    async def handle(self, msgs: list[Msg]) -> None:
        steps: list[Step] = []
        carriers: list[Msg] = []
        for msg in msgs:
            try:
                step = self.planner.plan(orjson.loads(msg.data))
            except (orjson.JSONDecodeError, InvalidEvent, AttributeError) as exc:
                PROJECTED.labels("invalid").inc()
                log.warning(
                    "event not projectable",
                    extra={"pv": {"seq": msg.metadata.sequence.stream, "error": str(exc)[:200]}},
                )
                await msg.term()
                continue
            if step is None:
                PROJECTED.labels("ignored").inc()
                await msg.ack()
                continue
            steps.append(step)
            carriers.append(msg)
        try:
            outcomes = await self.store.apply(steps)
        except RedisError as exc:
            PROJECTED.labels("retried").inc(len(carriers))
            log.warning("projection write failed", extra={"pv": {"error": type(exc).__name__}})
            for msg in carriers:
                attempt = msg.metadata.num_delivered
                await msg.nak(
                    delay=min(30.0, self.settings.retry_base_delay_s * 2 ** (attempt - 1))
                )
            return
        for msg, outcome in zip(carriers, outcomes, strict=True):
            PROJECTED.labels("applied" if outcome == 1 else "duplicate").inc()
            await msg.ack()
            self.last_stream_seq = max(self.last_stream_seq, msg.metadata.sequence.stream)
