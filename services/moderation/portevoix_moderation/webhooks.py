"""Outgoing signed webhooks to moderators' tools, off the consumer's path.

`offer()` never waits: it puts the delivery on a bounded queue (full → dropped and counted);
a few background workers POST with httpx and retry with exponential back-off. Delivery is
at-least-once (`X-PV-Delivery` lets a receiver drop repeats).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx
from pydantic import BaseModel, Field

from portevoix_moderation.domain.notification import EVENTS, signed_request
from portevoix_moderation.metrics import WEBHOOK_ATTEMPT_FAILURES, WEBHOOKS

log = logging.getLogger("portevoix.moderation.webhooks")


class Subscriber(BaseModel):
    url: str
    secret: str = Field(min_length=8)
    events: list[str] = Field(default_factory=lambda: ["post.held"])

    def wants(self, event: str) -> bool:
        return event in self.events or "*" in self.events


class WebhookNotifier:
    def __init__(
        self,
        subscribers: list[Subscriber],
        *,
        queue_size: int = 1000,
        attempts: int = 5,
        base_delay_s: float = 0.5,
        timeout_s: float = 5.0,
        workers: int = 4,
    ) -> None:
        unknown = {e for s in subscribers for e in s.events} - {*EVENTS, "*"}
        if unknown:
            raise ValueError(f"unknown webhook event(s) {sorted(unknown)}; known: {EVENTS}")
        self.subscribers = subscribers
        self._queue: asyncio.Queue[tuple[Subscriber, dict[str, Any]]] = asyncio.Queue(queue_size)
        self._attempts = attempts
        self._base = base_delay_s
        self._timeout = timeout_s
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    def offer(self, event: str, payload: dict[str, Any]) -> None:
        for sub in self.subscribers:
            if not sub.wants(event):
                continue
            try:
                self._queue.put_nowait((sub, payload))
            except asyncio.QueueFull:
                WEBHOOKS.labels("dropped").inc()

    def start(self) -> None:
        if self._tasks or not self.subscribers:
            return
        self._client = httpx.AsyncClient(timeout=self._timeout)
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued delivery is done (tests, graceful shutdown)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_s)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _work(self) -> None:
        while True:
            sub, payload = await self._queue.get()
            try:
                await self._deliver(sub, payload)
            finally:
                self._queue.task_done()

    async def _deliver(self, sub: Subscriber, payload: dict[str, Any]) -> None:
        assert self._client is not None
        reason = ""
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(self._base * 2 ** (attempt - 1))
            # Signed at each attempt: the timestamp stays fresh for the receiver's window.
            body, headers = signed_request(sub.secret, payload, int(time.time()))
            try:
                r = await self._client.post(sub.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            else:
                if r.status_code < 300:
                    WEBHOOKS.labels("delivered").inc()
                    return
                reason = f"http_{r.status_code}"
                if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                    break  # the receiver refuses this call: retrying will not help
            WEBHOOK_ATTEMPT_FAILURES.labels(reason).inc()
        WEBHOOKS.labels("failed").inc()
        log.warning(
            "webhook delivery failed",
            extra={"pv": {"url": sub.url, "reason": reason, "event": payload.get("event")}},
        )
