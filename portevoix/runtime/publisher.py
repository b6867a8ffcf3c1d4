"""Publishing to JetStream: always with a PubAck, always with `Nats-Msg-Id` = event id.

Batches go through `publish_async` and are awaited together: one round trip per batch instead of
one per message, which is what makes the services fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from nats.js import JetStreamContext
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
        data = event.model_dump(mode="json")
        return cls(
            subject=subject,
            msg_id=str(data["event_id"]),
            payload=orjson.dumps(data),
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


class EventPublisher:
    def __init__(self, js: JetStreamContext, timeout_s: float = 5.0, service: str = "") -> None:
        self._js = js
        self._timeout = timeout_s
        self._service = service or "unknown"

    async def publish_many(self, messages: Sequence[Outgoing]) -> PublishResult:
        """Publish all, wait for every PubAck; raise PublishError if any failed."""
        result = PublishResult()
        if not messages:
            return result
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
        counted: dict[str, int] = {}
        for message, ack in zip(messages, acks, strict=True):
            dup = bool(getattr(ack, "duplicate", False))
            result.duplicate_flags.append(dup)
            if dup:
                result.duplicates += 1
            else:
                result.published += 1
                counted[message.subject] = counted.get(message.subject, 0) + 1
        for subject, n in counted.items():
            EVENTS_PUBLISHED.labels(self._service, subject).inc(n)
        return result

    async def publish(self, message: Outgoing) -> PublishResult:
        return await self.publish_many([message])
