"""Batch consumption with explicit acks, delayed redelivery and a dead-letter stream.

A service handler receives the decoded deliveries of one pull and may mark any of them:
- `reject(reason)`: permanently bad (schema, unknown reference that will never resolve...) →
  dead-letter now, with the reason and the original payload, then ack;
- `retry(reason)`: transient (a dependency is down) → `nak(delay)` with exponential backoff; once
  `max_deliver` is reached the message is dead-lettered instead of looping forever.
Unmarked deliveries are acked. If the handler raises, every unmarked delivery is retried; the
same if a handler's effects left pending (`publish_later` PubAcks, a `confirm_later` script in
flight) fail: they are awaited before any ack.
Acks happen only after the handler's effects (Redis writes, publishes) are durable; handlers are
idempotent, so a crash between the two yields a harmless redelivery, never a loss.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from nats.aio.msg import Msg

from portevoix.contracts.deadletter import DeadLetter
from portevoix.runtime.metrics import BUS_BATCH_SECONDS, BUS_BATCH_SIZE, BUS_MESSAGES, DEAD_LETTERS
from portevoix.runtime.publisher import (
    UNCONFIRMED,
    EventPublisher,
    Outgoing,
    Pending,
    can_write_directly,
    flush_soon,
    write_commands,
)
from portevoix.runtime.streams import dlq_subject

log = logging.getLogger("portevoix.delivery")

Outcome = Literal["ok", "reject", "retry"]


@dataclass
class Delivery:
    """One message of a pulled batch, decoded once."""

    raw: Msg
    subject: str
    data: bytes
    stream_seq: int
    attempt: int
    msg_id: str | None
    published_at: float = 0.0  # when JetStream stored it (epoch seconds): for lag metrics
    body: Any = None
    outcome: Outcome = "ok"
    reason: str = ""
    reason_code: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def reject(self, code: str, reason: str, **detail: Any) -> None:
        self.outcome, self.reason_code, self.reason, self.detail = "reject", code, reason, detail

    def retry(self, reason: str) -> None:
        self.outcome, self.reason_code, self.reason = "retry", "transient", reason


Handler = Callable[[Sequence[Delivery]], Awaitable[None]]


@dataclass
class Ticket:
    """A batch between `BatchProcessor.begin` and `finish`."""

    deliveries: list[Delivery]
    started: float
    todo: list[Delivery] = field(default_factory=list)
    later: list[Pending] = field(default_factory=list)
    failed: bool = False

    @property
    def unconfirmed(self) -> bool:
        """Pending effects (`publish_later` PubAcks, `confirm_later`) not yet awaited."""
        return bool(self.later) and not self.failed


def reply_fields(reply: str | None) -> tuple[int, int, float] | None:
    """(stream sequence, delivery count, stored-at epoch seconds) from a JetStream reply
    subject, or None if it is not one.

    `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>`, or the form with
    domain and account hash after ACK: three int() calls instead of nats-py's `metadata`
    (a dataclass tree and a datetime per message).
    """
    t = reply.split(".") if reply else []
    if len(t) >= 9 and t[0] == "$JS" and t[1] == "ACK":
        o = 0 if len(t) == 9 else 2
        if len(t) == 9 or len(t) >= 11:
            return int(t[5 + o]), int(t[4 + o]), int(t[7 + o]) / 1e9
    return None


def ack_fields(raw: Msg) -> tuple[int, int, float]:
    """`reply_fields` of a delivery; nats-py's own reading for anything unusual."""
    fields = reply_fields(raw.reply)
    if fields is not None:
        return fields
    md = raw.metadata  # not a JetStream delivery: raises NotJSMessageError, as it always did
    ts = md.timestamp.timestamp() if md.timestamp else 0.0
    return md.sequence.stream, md.num_delivered, ts


def decode(raw: Msg) -> Delivery:
    """A JetStream message as BatchProcessor hands it to a handler (body parsed, or rejected)."""
    stream_seq, attempt, published_at = ack_fields(raw)
    headers = raw.headers
    d = Delivery(
        raw=raw,
        subject=raw.subject,
        data=raw.data,
        stream_seq=stream_seq,
        attempt=attempt,
        msg_id=headers.get("Nats-Msg-Id") if headers else None,
        published_at=published_at,
    )
    try:
        d.body = orjson.loads(raw.data)
    except orjson.JSONDecodeError as exc:
        d.reject("invalid_json", f"payload is not valid JSON: {exc}")
    return d


_ACK = b"PUB %b 4\r\n+ACK\r\n"


async def ack_all(raws: Sequence[Msg]) -> None:
    """Ack every message: one write of `+ACK` publishes for the batch instead of a `Msg.ack()`
    (validation, command build and flusher kick) per message. Same wire effect."""
    if not raws:
        return
    nc = raws[0]._client
    if can_write_directly(nc) and all(r.reply and not r._ackd and r._client is nc for r in raws):
        write_commands(nc, [_ACK % r.reply.encode() for r in raws])
        for r in raws:
            r._ackd = True
        await flush_soon(nc)
        return
    for r in raws:  # reconnecting, or something unusual: nats-py checks and raises as before
        await r.ack()


async def handle_collecting(
    handler: Handler, deliveries: Sequence[Delivery], later: list[Pending]
) -> None:
    """Run a handler as BatchProcessor does: the effects it leaves pending (`publish_later`,
    `confirm_later`) are appended to `later`, to be awaited before its deliveries are acked."""
    token = UNCONFIRMED.set(later)
    try:
        await handler(deliveries)
    finally:
        UNCONFIRMED.reset(token)


class BatchProcessor:
    """Turns a handler over decoded deliveries into correct acks, naks and dead letters."""

    def __init__(
        self,
        *,
        service: str,
        consumer: str,
        handler: Handler,
        publisher: EventPublisher,
        max_deliver: int,
        retry_base_delay_s: float = 0.5,
        retry_max_delay_s: float = 30.0,
    ) -> None:
        self.service = service
        self.consumer = consumer
        self._handler = handler
        self._publisher = publisher
        self._max_deliver = max_deliver
        self._base = retry_base_delay_s
        self._max = retry_max_delay_s

    def _failed(self, todo: list[Delivery], exc: BaseException) -> None:
        log.warning(
            "handler failed, will retry",
            extra={"pv": {"consumer": self.consumer, "size": len(todo), "error": repr(exc)[:300]}},
        )
        for d in todo:
            if d.outcome == "ok":
                d.retry(f"{type(exc).__name__}: {exc}")

    async def _run(self, todo: list[Delivery], later: list[Pending]) -> bool:
        try:
            await handle_collecting(self._handler, todo, later)
            return True
        except Exception as exc:
            for c in later:
                c.forget()
            later.clear()
            self._failed(todo, exc)
            return False

    async def _confirm(self, todo: list[Delivery], later: list[Pending]) -> bool:
        """The handler's pending effects: a failure fails the batch like an exception."""
        try:
            for c in later:
                await c.result()
            return True
        except Exception as exc:
            for c in later:
                c.forget()
            self._failed(todo, exc)
            return False
        finally:
            later.clear()

    def retry_delay(self, attempt: int) -> float:
        return float(min(self._max, self._base * (2 ** max(0, attempt - 1))))

    async def __call__(self, raws: Sequence[Msg]) -> None:
        await self.finish(await self.begin(raws))

    async def begin(self, raws: Sequence[Msg]) -> Ticket:
        """Decode and handle a batch; `finish` confirms and settles it. Between the two the
        batch's pending effects may still be on their way (`Ticket.unconfirmed`)."""
        ticket = Ticket([decode(r) for r in raws], time.perf_counter())
        ticket.todo = [d for d in ticket.deliveries if d.outcome == "ok"]
        if ticket.todo:
            ticket.failed = not await self._run(ticket.todo, ticket.later)
        return ticket

    async def finish(self, ticket: Ticket) -> None:
        todo = ticket.todo
        if todo and not ticket.failed and ticket.later:
            ticket.failed = not await self._confirm(todo, ticket.later)
        if ticket.failed and len(todo) > 1:
            # One bad message must not hold back its batch: isolate it by handling one by one
            # (handlers are idempotent, so whatever the failed batch half-did is harmless).
            for d in todo:
                d.outcome, d.reason = "ok", ""
                later: list[Pending] = []
                if await self._run([d], later):
                    await self._confirm([d], later)
        await self._settle(ticket.deliveries)
        labels = (self.service, self.consumer)
        BUS_BATCH_SECONDS.labels(*labels).observe(time.perf_counter() - ticket.started)
        BUS_BATCH_SIZE.labels(*labels).observe(len(ticket.deliveries))

    async def _settle(self, deliveries: list[Delivery]) -> None:
        dead = [
            d
            for d in deliveries
            if d.outcome == "reject" or (d.outcome == "retry" and d.attempt >= self._max_deliver)
        ]
        if dead:
            try:
                await self._publisher.publish_many([self._dead_letter(d) for d in dead])
            except Exception as exc:
                log.error("dead-letter publish failed", extra={"pv": {"error": repr(exc)[:300]}})
                for d in dead:
                    d.outcome, d.reason = "retry", d.reason or repr(exc)
                dead = []
        dead_ids = {id(d) for d in dead}
        counts = {"ok": 0, "dead_lettered": 0, "retried": 0}
        acks: list[Msg] = []
        for d in deliveries:
            if id(d) in dead_ids:
                acks.append(d.raw)
                counts["dead_lettered"] += 1
                DEAD_LETTERS.labels(self.service, d.reason_code or "exhausted").inc()
            elif d.outcome == "retry":
                await d.raw.nak(delay=self.retry_delay(d.attempt))
                counts["retried"] += 1
            else:
                acks.append(d.raw)
                counts["ok"] += 1
        await ack_all(acks)
        for outcome, n in counts.items():
            if n:
                BUS_MESSAGES.labels(self.service, self.consumer, outcome).inc(n)

    def _dead_letter(self, d: Delivery) -> Outgoing:
        try:
            payload_text: str | None = d.data.decode("utf-8")
            payload_b64 = None
        except UnicodeDecodeError:
            payload_text, payload_b64 = None, base64.b64encode(d.data).decode()
        exhausted = d.outcome == "retry"
        letter = DeadLetter(
            event_id=f"dlq:{self.consumer}:{d.stream_seq}",
            service=self.service,
            consumer=self.consumer,
            reason_code="max_deliver_exceeded" if exhausted else d.reason_code,
            reason=d.reason,
            detail=d.detail,
            original_subject=d.subject,
            original_msg_id=d.msg_id,
            original_stream_seq=d.stream_seq,
            attempts=d.attempt,
            failed_at=datetime.now(UTC),
            payload=payload_text,
            payload_base64=payload_b64,
        )
        # Msg id from the stream sequence: re-dead-lettering after a crash is deduplicated.
        return Outgoing(
            subject=dlq_subject(self.service),
            msg_id=letter.event_id,
            payload=orjson.dumps(letter.model_dump(mode="json")),
            headers={"Pv-Event-Type": "dead_letter", "Pv-Reason": letter.reason_code},
        )
