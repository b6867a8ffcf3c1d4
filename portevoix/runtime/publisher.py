"""Publishing to JetStream: always with a PubAck, always with `Nats-Msg-Id` = event id.

A batch is written to the connection as one buffer of HPUB commands and its PubAcks are awaited
together: one round trip per batch instead of one per message, which is what makes the services
fast. nats-py's `publish_async` costs a future, a header-dict encoding, a JSON parse and a PubAck
object per message; here the replies of a batch land on one wildcard inbox of the publisher,
each reply subject names its batch and position, and a PubAck is read only for what we need
(error? duplicate?). The static part of the headers is encoded once per header set.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import BadHeaderError, BadSubjectError, MaxPayloadError
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError
from pydantic import BaseModel

from portevoix.runtime.metrics import EVENTS_PUBLISHED


class PublishError(RuntimeError):
    """JetStream did not acknowledge a publish: the caller must not ack its input."""


@dataclass(frozen=True)
class Outgoing:
    subject: str
    msg_id: str
    payload: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_event(cls, subject: str, event: BaseModel) -> Outgoing:
        return cls.of_data(subject, event.model_dump(mode="json"))

    @classmethod
    def of_data(cls, subject: str, data: dict[str, Any]) -> Outgoing:
        """A domain event already as a JSON-ready dict (datetimes allowed: written as UTC `Z`)."""
        return cls(
            subject=subject,
            msg_id=str(data["event_id"]),
            payload=orjson.dumps(data, option=orjson.OPT_UTC_Z),
            headers={
                "Pv-Event-Type": str(data.get("type", "")),
                "Pv-Schema-Version": str(data.get("schema_version", "")),
            },
        )


@dataclass
class PublishResult:
    published: int = 0
    duplicates: int = 0
    duplicate_flags: list[bool] = field(default_factory=list)  # per message, in order


# -- the wire ------------------------------------------------------------------------------------
# Same rules as nats-py's own publish: no whitespace in subjects (it would inject protocol), header
# keys are RFC tokens, header values are trimmed and carry no CR/LF.
_HEADER_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
_BAD_SUBJECT = re.compile(r"[\s]")
_MSG_ID_LINE = b"NATS/1.0\r\nNats-Msg-Id: "


def _subject_bytes(subject: str, known: dict[str, bytes]) -> bytes:
    b = known.get(subject)
    if b is None:
        if not subject or _BAD_SUBJECT.search(subject):
            raise BadSubjectError
        b = subject.encode()
        if len(known) < 4096:  # subjects are few (one per event type or network)
            known[subject] = b
    return b


def _header_tail(headers: dict[str, str]) -> bytes:
    """Every header line after Nats-Msg-Id, and the blank line ending the block."""
    lines = [b""]
    for k, v in {"content-type": "application/json", **headers}.items():
        key = k.strip()
        if not key or key == "Nats-Msg-Id":
            continue
        if not _HEADER_KEY.fullmatch(key):
            raise BadHeaderError(key)
        lines.append(key.encode() + b": " + v.strip().translate(_NEWLINES).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


def write_commands(nc: NatsClient, commands: list[bytes]) -> None:
    """Queue already-encoded protocol commands as one write (nats-py flushes it from its flusher
    task, as it does for `publish`). Callers have checked that the client is connected."""
    data = b"".join(commands)
    nc._pending.append(data)
    nc._pending_data_size += len(data)


async def flush_soon(nc: NatsClient) -> None:
    """Kick nats-py's flusher (what `publish` does after each message; once per batch here)."""
    if nc._flush_queue is not None and nc._flush_queue.empty():
        await nc._flush_pending()


def can_write_directly(nc: Any) -> bool:
    """True when the connection is up and is the nats-py client whose write queue we know;
    otherwise (reconnecting, draining, closed) callers go through nats-py's public API, which
    buffers or raises exactly as it always did."""
    return (
        isinstance(nc, NatsClient)
        and nc.is_connected
        and not nc.is_draining_pubs
        and isinstance(getattr(nc, "_pending", None), list)
        and getattr(nc, "_flush_queue", None) is not None
    )


# Messages of a subscription handled straight from nats-py's protocol parser, by sid: no Msg
# object, queue hop or task switch per message for the two hot inboxes (PubAcks, pulled
# batches). nats-py's `_process_msg` still handles every other subscription, and ours too if
# the client is not the nats-py one we know.
FastRoute = Callable[[int, bytes, bytes, bytes, bytes | None], Awaitable[None]]


def route_fast(nc: Any, sid: int, route: FastRoute) -> bool:
    """Hand subscription `sid`'s messages to `route(sid, subject, reply, data, headers)`;
    False (nothing changed) when the client is not the nats-py client this was written for."""
    routes: dict[int, FastRoute] | None = getattr(nc, "_pv_fast_routes", None)
    if routes is None:
        if not isinstance(nc, NatsClient) or not hasattr(nc, "_process_msg"):
            return False
        original = nc._process_msg
        table: dict[int, FastRoute] = {}

        async def process_msg(
            sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
        ) -> None:
            fast = table.get(sid)
            if fast is None:
                await original(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            else:
                await fast(sid, subject, reply, data, headers)

        nc._process_msg = process_msg  # type: ignore[method-assign]
        nc._pv_fast_routes = table  # type: ignore[attr-defined]
        routes = table
    routes[sid] = route
    return True


def unroute_fast(nc: Any, sid: int) -> None:
    routes: dict[int, FastRoute] | None = getattr(nc, "_pv_fast_routes", None)
    if routes is not None:
        routes.pop(sid, None)


_ID_LINE = b"NATS/1.0\r\nNats-Msg-Id: "
_TAILS_READ: dict[bytes, dict[str, str]] = {}


def _plain_headers(block: bytes) -> dict[str, str] | None:
    """`Key: Value` lines as nats-py reads them; None if anything is unusual."""
    out: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        if not line:
            continue
        key, sep, value = line.partition(b":")
        key = key.strip()
        if not sep or not key.isascii() or b" " in key or b"\t" in key:
            return None
        out[key.decode()] = value.strip().decode("utf-8", "replace")
    return out


async def read_headers(nc: NatsClient, raw: bytes | None) -> dict[str, str] | None:
    """A header block as nats-py reads it, quicker for the plain `Key: Value` lines we write
    (what follows `Nats-Msg-Id` repeats from message to message: it is read once); anything else
    (status lines, odd keys, non-ASCII names) goes to nats-py's own reader."""
    if not raw:
        return None
    end = raw.find(b"\r\n", len(_ID_LINE)) if raw.startswith(_ID_LINE) else -1
    if end > 0:
        msg_id = raw[len(_ID_LINE) : end].strip()
        tail = raw[end:]
        rest = _TAILS_READ.get(tail)
        if rest is None and (rest := _plain_headers(tail)) is not None and len(_TAILS_READ) < 256:
            _TAILS_READ[tail] = rest
        if rest is not None and msg_id.isascii() and "Nats-Msg-Id" not in rest:
            return {"Nats-Msg-Id": msg_id.decode(), **rest}
    elif raw.startswith(b"NATS/1.0\r\n"):
        plain = _plain_headers(raw[10:])
        if plain is not None:
            return plain or None
    return await nc._process_headers(raw)


class _PendingBatch:
    __slots__ = ("done", "duplicate", "errors", "remaining")

    def __init__(self, n: int, done: asyncio.Future[None]) -> None:
        self.remaining = n
        self.duplicate: list[bool | None] = [None] * n
        self.errors: list[BaseException] = []
        self.done = done


class Confirmation:
    """The PubAcks of one written batch: `result()` counts them, or raises PublishError (a
    refusal, or silence past the publisher's timeout counted from the write)."""

    def __init__(
        self,
        pub: EventPublisher,
        batch_id: str,
        pending: _PendingBatch,
        deadline: float,
        messages: Sequence[Outgoing],
    ) -> None:
        self._pub, self._id, self._pending = pub, batch_id, pending
        # Subjects only: the payloads need not outlive the write (a batch may wait here while
        # the next one is handled).
        self._deadline, self._subjects = deadline, [m.subject for m in messages]

    async def flags(self) -> list[bool]:
        """Per message, in order: was it a duplicate?"""
        pending = self._pending
        try:
            left = self._deadline - asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(asyncio.shield(pending.done), timeout=max(left, 0.0))
            except TimeoutError as exc:
                raise PublishError(f"no PubAck within {self._pub._timeout}s for a batch") from exc
        finally:
            self.forget()
        if pending.errors:
            raise PublishError(
                f"{len(pending.errors)} of {len(self._subjects)} publishes failed: "
                f"{pending.errors[0]!r}"
            )
        return [bool(d) for d in pending.duplicate]

    async def result(self) -> PublishResult:
        return self._pub._count_subjects(self._subjects, await self.flags())

    def forget(self) -> None:
        """Stop tracking its PubAcks (its batch is retried anyway)."""
        self._pub._batches.pop(self._id, None)


class Pending(Protocol):
    """Effects of a handled batch still on their way (PubAcks, a Redis script in flight):
    `result()` returns once they are durable, or raises; `forget()` stops tracking them."""

    async def result(self) -> object: ...

    def forget(self) -> None: ...


# Set by BatchProcessor while a handler runs: `publish_later` (or a handler, `confirm_later`)
# leaves its pending effects here, for the processor to await before it acks the batch (in the
# worker's loop, while the next batch is being handled: the round trip no longer stalls the
# process).
UNCONFIRMED: ContextVar[list[Pending] | None] = ContextVar("pv_unconfirmed", default=None)


def confirm_later(pending: Pending) -> bool:
    """Have the BatchProcessor running this handler await `pending` before it acks the batch.
    False outside one (the caller must await its effects itself)."""
    later = UNCONFIRMED.get()
    if later is None:
        return False
    later.append(pending)
    return True


class EventPublisher:
    def __init__(self, js: JetStreamContext, timeout_s: float = 5.0, service: str = "") -> None:
        self._js = js
        self._timeout = timeout_s
        self._service = service or "unknown"
        self._nc: Any = getattr(js, "_nc", None)
        self._inbox = ""
        self._inbox_b = b""
        self._inbox_ready: asyncio.Lock | None = None
        self._batches: dict[str, _PendingBatch] = {}
        self._batch_ids = itertools.count(1)
        self._subjects: dict[str, bytes] = {}
        self._tails: dict[tuple[tuple[str, str], ...], bytes] = {}

    async def publish_many(self, messages: Sequence[Outgoing]) -> PublishResult:
        """Publish all, wait for every PubAck; raise PublishError if any failed."""
        if not messages:
            return PublishResult()
        if can_write_directly(self._nc):
            flags = await self._publish_direct(messages)
        else:
            flags = await self._publish_via_nats_py(messages)
        return self._count(messages, flags)

    async def publish(self, message: Outgoing) -> PublishResult:
        return await self.publish_many([message])

    async def publish_later(self, messages: Sequence[Outgoing]) -> None:
        """Publish all. Inside a BatchProcessor handler the PubAcks are awaited by the processor
        before it acks the batch, instead of here: the input is still never acked before they
        arrive, and a refusal retries the batch like a handler error. Elsewhere, the same as
        publish_many. For handlers with nothing left to do after their publish."""
        later = UNCONFIRMED.get()
        if not messages:
            return
        if later is None or not can_write_directly(self._nc):
            await self.publish_many(messages)
            return
        later.append(await self._send(messages))

    # -- fast path: HPUB commands written as one buffer, PubAcks on our wildcard inbox ---------
    async def _ensure_inbox(self) -> str:
        if self._inbox:
            return self._inbox
        if self._inbox_ready is None:
            self._inbox_ready = asyncio.Lock()
        async with self._inbox_ready:
            if not self._inbox:
                inbox = self._nc.new_inbox()
                sub = await self._nc.subscribe(f"{inbox}.>", cb=self._on_pub_ack)
                self._inbox_b = inbox.encode() + b"."
                route_fast(self._nc, sub._id, self._on_pub_ack_fast)
                self._inbox = inbox
        return self._inbox

    def _tail(self, headers: dict[str, str]) -> bytes:
        key = tuple(headers.items())
        tail = self._tails.get(key)
        if tail is None:
            tail = _header_tail(headers)
            if len(self._tails) < 1024:
                self._tails[key] = tail
        return tail

    async def _publish_direct(self, messages: Sequence[Outgoing]) -> list[bool]:
        return await (await self._send(messages)).flags()

    async def _send(self, messages: Sequence[Outgoing]) -> Confirmation:
        """Write the batch; the returned Confirmation waits for (and reads) its PubAcks."""
        nc = self._nc
        inbox = await self._ensure_inbox()
        max_payload = nc.max_payload
        batch_id = str(next(self._batch_ids))
        reply_prefix = f"{inbox}.{batch_id}.".encode()
        commands: list[bytes] = []
        size = 0
        for i, m in enumerate(messages):
            payload = m.payload
            if len(payload) > max_payload:
                raise MaxPayloadError
            hdr = (
                _MSG_ID_LINE
                + m.msg_id.strip().translate(_NEWLINES).encode()
                + self._tail(m.headers)
            )
            commands.append(
                b"HPUB %b %b%d %d %d\r\n%b%b\r\n"
                % (
                    _subject_bytes(m.subject, self._subjects),
                    reply_prefix,
                    i,
                    len(hdr),
                    len(hdr) + len(payload),
                    hdr,
                    payload,
                )
            )
            size += len(payload)
        loop = asyncio.get_running_loop()
        pending = _PendingBatch(len(messages), loop.create_future())
        self._batches[batch_id] = pending
        write_commands(nc, commands)
        nc.stats["out_msgs"] += len(messages)
        nc.stats["out_bytes"] += size
        await flush_soon(nc)
        return Confirmation(self, batch_id, pending, loop.time() + self._timeout, messages)

    async def _on_pub_ack(self, msg: Msg) -> None:
        self._pub_ack(msg.subject.encode(), msg.data, msg.headers)

    async def _on_pub_ack_fast(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        self._pub_ack(subject, data, await read_headers(self._nc, headers) if headers else None)

    def _pub_ack(self, subject: bytes, data: bytes, headers: dict[str, str] | None) -> None:
        if not subject.startswith(self._inbox_b):
            return
        batch_id, _, index = subject[len(self._inbox_b) :].partition(b".")
        pending = self._batches.get(batch_id.decode())
        if pending is None or not index.isdigit():
            return  # a batch that timed out already
        i = int(index)
        if i >= len(pending.duplicate) or pending.duplicate[i] is not None:
            return
        # A PubAck is {"stream":..,"seq":..[,"duplicate":true]}; only errors and duplicates need
        # a real parse (both are rare).
        if not data:
            status = (headers or {}).get("Status", "")
            pending.errors.append(
                NoStreamResponseError()
                if status == "503"
                else APIError(code=int(status) if status.isdigit() else None)
            )
            pending.duplicate[i] = False
        elif b'"error"' in data:
            try:
                APIError.from_error(orjson.loads(data)["error"])  # raises the matching error
            except Exception as exc:  # an unreadable error is still an error
                pending.errors.append(exc)
            pending.duplicate[i] = False
        else:
            pending.duplicate[i] = b"duplicate" in data and bool(
                orjson.loads(data).get("duplicate")
            )
        pending.remaining -= 1
        if pending.remaining == 0 and not pending.done.done():
            pending.done.set_result(None)

    # -- while reconnecting (or on another client): nats-py's own async publish -----------------
    async def _publish_via_nats_py(self, messages: Sequence[Outgoing]) -> list[bool]:
        futures = []
        for m in messages:
            headers = {"Nats-Msg-Id": m.msg_id, "content-type": "application/json", **m.headers}
            futures.append(await self._js.publish_async(m.subject, m.payload, headers=headers))
        try:
            acks = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), timeout=self._timeout
            )
        except TimeoutError as exc:
            raise PublishError(f"no PubAck within {self._timeout}s for a batch") from exc
        errors = [a for a in acks if isinstance(a, BaseException)]
        if errors:
            raise PublishError(f"{len(errors)} of {len(messages)} publishes failed: {errors[0]!r}")
        return [bool(getattr(ack, "duplicate", False)) for ack in acks]

    def _count(self, messages: Sequence[Outgoing], flags: list[bool]) -> PublishResult:
        return self._count_subjects([m.subject for m in messages], flags)

    def _count_subjects(self, subjects: Sequence[str], flags: list[bool]) -> PublishResult:
        result = PublishResult(duplicate_flags=flags)
        counted: dict[str, int] = {}
        for subject, dup in zip(subjects, flags, strict=True):
            if dup:
                result.duplicates += 1
            else:
                counted[subject] = counted.get(subject, 0) + 1
        result.published = len(subjects) - result.duplicates
        for subject, n in counted.items():
            EVENTS_PUBLISHED.labels(self._service, subject).inc(n)
        return result
