"""What every bus-driven service shares: broker, streams, publisher, Redis, metrics, lag polling.

A service builds a `BusWorker`, registers its consumers with `consume(...)`, its documented
publications with `document_publisher(...)`, and its start-up with `on_ready(...)`; `app` is the
FastStream application (lifecycle, signals, connection, Prometheus middleware, and what
`faststream docs gen` reads for the AsyncAPI document).

The pull loop itself runs on nats-py: FastStream 0.7's batch loop keeps fetching until a batch
is full or its timeout expires, which adds that timeout to every hop at low rates and capped
throughput near 10k msg/s here. Ours takes whatever a pull returns at once (nats-py returns a
partial batch as soon as messages are there) and long-polls only when idle. The subscribers are
still declared to FastStream — on a documentation broker, by the same `consume()` call, with the
same subjects, stream and durable — so the AsyncAPI document describes exactly what runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from faststream import AckPolicy, Context, FastStream
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsBatchMessage
from faststream.specification import AsyncAPI
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig
from pydantic import BaseModel
from redis.asyncio import Redis

from portevoix import __version__
from portevoix.runtime.compat import patch_faststream_pull_timeout
from portevoix.runtime.delivery import BatchProcessor, Handler
from portevoix.runtime.logs import configure_logging
from portevoix.runtime.metrics import (
    CONSUMER_ACK_PENDING,
    CONSUMER_PENDING,
    CONSUMER_REDELIVERED,
    SERVICE_UP,
    start_metrics_server,
)
from portevoix.runtime.publisher import EventPublisher
from portevoix.runtime.redis import connect_redis
from portevoix.runtime.settings import CommonSettings
from portevoix.runtime.streams import StreamSpec, ensure_streams

BatchMessage = Annotated[NatsBatchMessage, Context("message")]
patch_faststream_pull_timeout()


@dataclass(frozen=True)
class Consumer:
    stream: StreamSpec
    durable: str
    subjects: list[str]
    config: ConsumerConfig
    handler: Handler


class BusWorker:
    def __init__(self, service: str, settings: CommonSettings, *, description: str) -> None:
        self.service = service
        self.settings = settings
        self.log = configure_logging(service, settings.log_level)
        self.broker = NatsBroker(
            servers=[s.strip() for s in settings.nats_url.split(",")],
            name=f"porte-voix-{service}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            logger=logging.getLogger(f"faststream.{service}"),
        )
        # Never connected: it only carries declarations for the AsyncAPI document.
        self.spec_broker = NatsBroker(servers=[s.strip() for s in settings.nats_url.split(",")])
        self.app = FastStream(
            self.broker,
            specification=AsyncAPI(
                self.spec_broker,
                title=f"Porte-Voix {service}",
                version=__version__,
                description=description,
            ),
            on_startup=[self._startup],
            after_startup=[self._after_startup],
            on_shutdown=[self._shutdown],
        )
        self._consumers: list[Consumer] = []
        self._stopping = asyncio.Event()
        self._ready_hooks: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loops: list[asyncio.Task[None]] = []
        self.js: JetStreamContext | None = None
        self.publisher: EventPublisher | None = None
        self.redis: Redis | None = None
        self.metrics_port: int | None = None

    # -- wiring ----------------------------------------------------------------------------
    def consume(
        self,
        *,
        stream: StreamSpec,
        durable: str,
        subjects: list[str],
        handler: Handler,
        description: str,
    ) -> None:
        """A durable pull consumer, batch-fetching, explicit ack, bounded redelivery."""
        s = self.settings
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=JsAckPolicy.EXPLICIT,
            ack_wait=s.ack_wait_s,
            max_deliver=s.max_deliver,
            max_ack_pending=max(20_000, s.batch_size * 4),
            filter_subject=subjects[0] if len(subjects) == 1 else None,
            filter_subjects=subjects if len(subjects) > 1 else None,
        )
        self._consumers.append(Consumer(stream, durable, subjects, config, handler))

        async def documented(msg: BatchMessage) -> None:  # pragma: no cover - never started
            raise RuntimeError("documentation broker")

        self.spec_broker.subscriber(
            subjects[0] if len(subjects) == 1 else "",
            stream=JStream(stream.name, declare=False),
            durable=durable,
            config=ConsumerConfig(filter_subjects=subjects if len(subjects) > 1 else []),
            pull_sub=PullSub(batch_size=s.batch_size, timeout=s.idle_poll_s, batch=True),
            ack_policy=AckPolicy.MANUAL,
            title=f"{self.service}:{durable}",
            description=description,
        )(documented)

    def document_publisher(self, subject: str, model: type[BaseModel], description: str) -> None:
        """Declare a publication for the AsyncAPI document (publishing itself is batched)."""
        self.spec_broker.publisher(
            subject,
            stream=JStream("PV_EVENTS", declare=False),
            schema=model,
            title=f"{subject}:publish",
            description=description,
        )

    def on_ready(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run after connections exist and before consumption starts."""
        self._ready_hooks.append(hook)

    # -- lifecycle -------------------------------------------------------------------------
    async def _startup(self) -> None:
        self.metrics_port = start_metrics_server(
            self.settings.metrics_host, self.settings.metrics_port
        )
        SERVICE_UP.labels(self.service).set(1)
        await self.broker.connect()
        js = self.broker.config.connection_state.stream
        assert js is not None
        self.js = js
        await self._ensure_streams(js)
        self.publisher = EventPublisher(
            js, timeout_s=self.settings.publish_timeout_s, service=self.service
        )
        self.redis = connect_redis(self.settings.redis_url, self.settings.redis_cluster)
        for hook in self._ready_hooks:
            await hook()
        self.log.info(
            "service starting",
            extra={"pv": {"metrics_port": self.metrics_port, "version": __version__}},
        )

    async def _ensure_streams(self, js: JetStreamContext, attempts: int = 30) -> None:
        """Retry with back-off: a cluster that lost a node (or is electing a leader) answers
        slowly for a while; exiting would only make the supervisor restart us into the same."""
        for attempt in range(1, attempts + 1):
            try:
                await ensure_streams(js, replicas=self.settings.stream_replicas)
                return
            except Exception as exc:
                if attempt == attempts:
                    raise
                self.log.warning(
                    "streams not ready, retrying",
                    extra={"pv": {"attempt": attempt, "error": repr(exc)[:200]}},
                )
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))

    async def _after_startup(self) -> None:
        assert self.js is not None and self.publisher is not None
        for c in self._consumers:
            processor = BatchProcessor(
                service=self.service,
                consumer=c.durable,
                handler=c.handler,
                publisher=self.publisher,
                max_deliver=self.settings.max_deliver,
                retry_base_delay_s=self.settings.retry_base_delay_s,
            )
            sub = await self.js.pull_subscribe(
                c.subjects[0] if len(c.subjects) == 1 else "",
                durable=c.durable,
                stream=c.stream.name,
                config=c.config,
            )
            self._loops.append(asyncio.create_task(self._pull_loop(c, sub, processor)))
        self._tasks.append(asyncio.create_task(self._poll_consumers()))
        self.log.info("service ready", extra={"pv": {"metrics_port": self.metrics_port}})

    async def _pull_loop(self, c: Consumer, sub: Any, processor: BatchProcessor) -> None:
        """Fetch → process → settle, until asked to stop; a batch in hand is always settled."""
        size, idle_wait = self.settings.batch_size, self.settings.idle_poll_s
        while not self._stopping.is_set():
            try:
                msgs = await sub.fetch(size, timeout=idle_wait)
            except TimeoutError:
                continue  # idle: nothing arrived during the long poll
            except Exception as exc:
                self.log.warning(
                    "pull failed", extra={"pv": {"consumer": c.durable, "error": repr(exc)[:200]}}
                )
                await asyncio.sleep(0.5)
                continue
            try:
                await processor(msgs)
            except Exception as exc:
                self.log.error(
                    "batch not settled",
                    extra={"pv": {"consumer": c.durable, "error": repr(exc)[:300]}},
                )
                await asyncio.sleep(0.5)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()

    async def _shutdown(self) -> None:
        # Stop pulling, let the batch in hand settle (acks), then close.
        self._stopping.set()
        if self._loops:
            await asyncio.wait(self._loops, timeout=self.settings.ack_wait_s)
        for t in self._tasks:
            t.cancel()
        if self.redis is not None:
            await self.redis.aclose()

    async def _poll_consumers(self, every_s: float = 5.0) -> None:
        while True:
            assert self.js is not None
            for c in self._consumers:
                stream, durable = c.stream, c.durable
                with contextlib.suppress(Exception):
                    info = await self.js.consumer_info(stream.name, durable)
                    CONSUMER_PENDING.labels(stream.name, durable).set(info.num_pending or 0)
                    CONSUMER_ACK_PENDING.labels(stream.name, durable).set(info.num_ack_pending or 0)
                    CONSUMER_REDELIVERED.labels(stream.name, durable).set(info.num_redelivered or 0)
            await asyncio.sleep(every_s)

    def run(self) -> None:
        asyncio.run(self.app.run())


def require(value: Any, what: str) -> Any:
    if value is None:
        raise RuntimeError(f"{what} used before start-up")
    return value
