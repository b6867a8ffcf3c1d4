"""What every bus-driven service shares: broker, streams, publisher, Redis, metrics, lag polling.

A service builds a `BusWorker`, registers its consumers with `consume(...)`, its documented
publications with `document_publisher(...)`, and its start-up with `on_ready(...)`; `app` is the
FastStream application (lifecycle, signals, connection, Prometheus middleware, and what
`faststream docs gen` reads for the AsyncAPI document).

The pull loop itself runs on the nats-py connection: FastStream 0.7's batch loop keeps fetching
until a batch is full or its timeout expires, which adds that timeout to every hop at low rates
and capped throughput near 10k msg/s here. Ours (`PullBatches`) takes whatever a pull returns at
once and long-polls only when idle; it speaks the pull protocol itself because nats-py's `fetch`
spends a task and a timer per message. The subscribers are still declared to FastStream — on a
documentation broker, by the same `consume()` call, with the same subjects, stream and durable —
so the AsyncAPI document describes exactly what runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
import uvloop
from faststream import AckPolicy, Context, FastStream
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsBatchMessage
from faststream.specification import AsyncAPI
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError
from pydantic import BaseModel
from redis.asyncio import Redis

from portevoix import __version__
from portevoix.runtime.compat import patch_faststream_pull_timeout
from portevoix.runtime.delivery import BatchProcessor, Handler, Ticket
from portevoix.runtime.gc_tuning import YOUNG_THRESHOLD, settle_gc
from portevoix.runtime.logs import configure_logging
from portevoix.runtime.metrics import (
    CONSUMER_ACK_PENDING,
    CONSUMER_PENDING,
    CONSUMER_REDELIVERED,
    SERVICE_UP,
    start_metrics_server,
)
from portevoix.runtime.publisher import EventPublisher, read_headers, route_fast, unroute_fast
from portevoix.runtime.redis import connect_redis
from portevoix.runtime.settings import CommonSettings
from portevoix.runtime.streams import StreamSpec, ensure_streams_patiently

BatchMessage = Annotated[NatsBatchMessage, Context("message")]
patch_faststream_pull_timeout()


class PullError(RuntimeError):
    """The server refused a pull request (consumer gone, too many waiting pulls, no JetStream)."""


class PullBatches:
    """Batches of a durable pull consumer, over one inbox subscription of the connection.

    One pull request is in flight at a time; its reply subject names it, so the status that ends
    it (404 nothing there, 408 expired or partly served) is told apart from a late one. Messages
    are buffered as they arrive, whichever request brought them, and handed out up to `size` per
    `fetch`: a message delivered after a fetch gave up is served by the next one, never dropped.
    - Messages waiting: a no-wait request for what is missing returns a full or partial batch at
      once.
    - Idle: a long poll (`expires` = `wait`) returns as soon as something arrives; what the open
      request delivers later goes to the next fetch.
    - Backlogged (a full batch was taken): a no-wait request for the next batch goes out at once,
      so the server delivers it while the caller handles this one.
    """

    # A request whose ending status got lost (a reconnect) is given up after this long.
    SETTLE_S = 5.0

    def __init__(self, nc: NatsClient, stream: str, durable: str) -> None:
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = ""
        self._sub: Subscription | None = None
        self._buffer: list[Msg] = []
        self._open: str | None = None  # reply subject of the request in flight
        self._owed = 0  # messages it may still bring
        self._open_no_wait = False
        self._refused: str | None = None
        self._ids = itertools.count(1)
        self._wake = asyncio.Event()

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_msg)
        route_fast(self._nc, self._sub._id, self._on_msg_fast)

    async def stop(self) -> None:
        """Unsubscribe; buffered messages are nak'ed so another instance gets them now rather
        than after the ack wait."""
        if self._open is not None and self._open_no_wait:
            with contextlib.suppress(PullError):  # let a prefetch land, to nak it below
                await self._wait(1.0, until_settled=True)
        if self._sub is not None:
            unroute_fast(self._nc, self._sub._id)
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        buffered, self._buffer = self._buffer, []
        for m in buffered:
            with contextlib.suppress(Exception):
                await m.nak()

    async def _on_msg(self, msg: Msg) -> None:
        if msg.reply:  # a delivery ($JS.ACK... reply); statuses have none
            self._delivered(msg)
        else:
            self._status(msg.subject, msg.headers)

    async def _on_msg_fast(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, raw_headers: bytes | None
    ) -> None:
        headers = await read_headers(self._nc, raw_headers)
        if reply:
            msg = self._nc.msg_class(
                subject=subject.decode(),
                reply=reply.decode(),
                data=data,
                headers=headers,
                _client=self._nc,
                _sid=sid,
            )
            self._delivered(msg)
        else:
            self._status(subject.decode(), headers)

    def _delivered(self, msg: Msg) -> None:
        self._buffer.append(msg)
        self._owed -= 1
        if self._owed <= 0:
            self._open = None
        self._wake.set()

    def _status(self, subject: str, headers: dict[str, str] | None) -> None:
        headers = headers or {}
        status = headers.get("Status", "")
        if status == "100" or subject != self._open:
            return  # a heartbeat, or the end of a request we gave up on
        if status not in ("404", "408"):
            self._refused = f"{status} {headers.get('Description', '')}".strip()
        self._open = None
        self._wake.set()

    async def _request(self, batch: int, *, expires_s: float | None) -> None:
        reply = f"{self._inbox}.{next(self._ids)}"
        req: dict[str, Any] = {"batch": batch}
        if expires_s is None:
            req["no_wait"] = True
        else:
            req["expires"] = int(expires_s * 1e9)
        self._open, self._owed, self._refused = reply, batch, None
        self._open_no_wait = expires_s is None
        self._wake.clear()
        await self._nc.publish(self._next, orjson.dumps(req), reply=reply)

    async def _wait(self, within_s: float, *, until_settled: bool) -> None:
        """Until the open request ends (or, with until_settled=False, brings something)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while self._open is not None and (until_settled or not self._buffer):
            self._wake.clear()
            left = deadline - loop.time()
            if left <= 0:
                self._open = None  # its status got lost; a late one is ignored
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)
        if self._refused is not None:
            refused, self._refused = self._refused, None
            raise PullError(f"pull refused: {refused}")

    async def ready(self) -> bool:
        """Is a batch waiting (once a prefetch in flight has landed)?"""
        if self._open is not None and self._open_no_wait:
            await self._wait(self.SETTLE_S, until_settled=True)
        return bool(self._buffer)

    def _take(self, size: int) -> list[Msg]:
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    async def fetch(self, size: int, wait: float) -> list[Msg]:
        """Up to `size` messages; TimeoutError when none arrived within `wait` seconds."""
        if self._sub is None:
            raise PullError("not started")
        if self._open is not None and self._open_no_wait:
            await self._wait(self.SETTLE_S, until_settled=True)  # a prefetch: about done
        if len(self._buffer) < size and self._open is None:
            await self._request(size - len(self._buffer), expires_s=None)
            await self._wait(self.SETTLE_S, until_settled=True)
        if self._buffer:
            batch = self._take(size)
            if len(batch) == size and self._open is None and len(self._buffer) < size:
                # Backlogged: the server delivers the next batch while this one is handled.
                await self._request(size - len(self._buffer), expires_s=None)
            return batch
        if self._open is None:
            await self._request(size, expires_s=wait)
        await self._wait(wait + 1.0, until_settled=False)
        if self._buffer:
            return self._take(size)
        raise TimeoutError


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create the durable consumer, or bring an existing one to this release's subjects and
    delivery settings (a new version may subscribe to a new event type: without the update its
    old durable would never deliver it). Position and pending acks are kept."""
    durable = config.durable_name
    assert durable
    config.name = durable
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        await js.add_consumer(stream, config=config)
        return
    have = info.config
    wanted = sorted(config.filter_subjects or [config.filter_subject or ""])
    current = sorted(have.filter_subjects or [have.filter_subject or ""])
    if wanted != current or (have.max_deliver, have.ack_wait) != (
        config.max_deliver,
        config.ack_wait,
    ):
        # CONSUMER.CREATE on an existing durable updates its editable fields (nats-server 2.10+).
        await js.add_consumer(stream, config=config)


async def pull_loop(
    pulls: PullBatches,
    processor: BatchProcessor,
    *,
    batch_size: int,
    backlog_batch_size: int,
    idle_wait_s: float,
    stopping: Callable[[], bool],
    log: logging.Logger,
    consumer: str,
) -> None:
    """Fetch → process → settle, until `stopping()`; a batch in hand is always settled.

    Each full batch doubles the next pull up to `backlog_batch_size`; a partial one brings it
    back to `batch_size`. While the stream is backlogged, a batch whose handler left effects
    pending (`publish_later` PubAcks, a `confirm_later` script) is settled after the next batch
    was handled: they complete meanwhile instead of stalling the loop. Its input is still acked
    only once they are in, and before waiting for new messages the loop settles what it holds.
    """
    most = max(batch_size, backlog_batch_size)
    size = batch_size
    held: Ticket | None = None
    while not stopping():
        try:
            if held is not None and not await pulls.ready():
                settling, held = held, None
                await processor.finish(settling)
            msgs = await pulls.fetch(size, idle_wait_s)
            size = min(most, size * 2) if len(msgs) >= size else batch_size
        except TimeoutError:
            continue  # idle: nothing arrived during the long poll
        except Exception as exc:
            log.warning(
                "pull failed", extra={"pv": {"consumer": consumer, "error": repr(exc)[:200]}}
            )
            await asyncio.sleep(0.5)
            continue
        try:
            ticket = await processor.begin(msgs)
            if held is not None:
                settling, held = held, None
                await processor.finish(settling)
            if ticket.unconfirmed and await pulls.ready():
                held = ticket
            else:
                await processor.finish(ticket)
        except Exception as exc:
            log.error(
                "batch not settled", extra={"pv": {"consumer": consumer, "error": repr(exc)[:300]}}
            )
            await asyncio.sleep(0.5)
    if held is not None:
        with contextlib.suppress(Exception):
            await processor.finish(held)


@dataclass(frozen=True)
class Consumer:
    stream: StreamSpec
    durable: str
    subjects: list[str]
    config: ConsumerConfig
    handler: Handler
    backlog_batch_size: int = 0  # 0: always `batch_size`


class BusWorker:
    def __init__(
        self,
        service: str,
        settings: CommonSettings,
        *,
        description: str,
        young_gc: int = YOUNG_THRESHOLD,
    ) -> None:
        self.service = service
        self.settings = settings
        self._young_gc = young_gc  # the collector's young threshold once ready (gc_tuning)
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
        backlog_batch_size: int = 0,
    ) -> None:
        """A durable pull consumer, batch-fetching, explicit ack, bounded redelivery.

        `backlog_batch_size` (> batch_size) lets a handler whose cost is mostly per batch take
        bigger batches while the stream is backlogged: each full batch doubles the next pull up
        to that size; a partial one brings it back to `batch_size`.
        """
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
        self._consumers.append(
            Consumer(stream, durable, subjects, config, handler, backlog_batch_size)
        )

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
        await ensure_streams_patiently(js, self.settings.stream_replicas, log=self.log)
        self.publisher = EventPublisher(
            js, timeout_s=self.settings.publish_timeout_s, service=self.service
        )
        self.redis = connect_redis(
            self.settings.redis_url, self.settings.redis_cluster, self.settings.redis_timeout_s
        )
        for hook in self._ready_hooks:
            await hook()
        self.log.info(
            "service starting",
            extra={"pv": {"metrics_port": self.metrics_port, "version": __version__}},
        )

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
            await ensure_consumer(self.js, c.stream.name, c.config)
            pulls = PullBatches(self.broker.connection, c.stream.name, c.durable)
            await pulls.start()
            self._loops.append(asyncio.create_task(self._pull_loop(c, pulls, processor)))
        self._tasks.append(asyncio.create_task(self._poll_consumers()))
        settle_gc(self._young_gc)  # see gc_tuning: fewer, cheaper collections from now on
        self.log.info("service ready", extra={"pv": {"metrics_port": self.metrics_port}})

    async def _pull_loop(self, c: Consumer, pulls: PullBatches, processor: BatchProcessor) -> None:
        await pull_loop(
            pulls,
            processor,
            batch_size=self.settings.batch_size,
            backlog_batch_size=c.backlog_batch_size,
            idle_wait_s=self.settings.idle_poll_s,
            stopping=self._stopping.is_set,
            log=self.log,
            consumer=c.durable,
        )
        await pulls.stop()

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
        # uvloop: the same asyncio API with a cheaper loop and transports (measured end to
        # end: scoring and ingest spend 4-8 % less CPU per event).
        uvloop.run(self.app.run())


def require(value: Any, what: str) -> Any:
    if value is None:
        raise RuntimeError(f"{what} used before start-up")
    return value
