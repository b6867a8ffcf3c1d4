"""Where simulated events go: a JSONL file, a running stack's HTTP API, or JetStream directly.

The generator is pure; these adapters do the I/O. Live drivers send batches at a target rate
(events/s, 0 = as fast as the stack acknowledges) and report progress after each batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from portevoix.contracts.ingest import AmbassadorIn
from portevoix.runtime.streams import RAW, RAW_SUBJECT

Progress = Callable[[int], None]  # called with the number of events sent so far
Send = Callable[[list[dict[str, Any]]], Awaitable["Sent"]]


@dataclass
class Sent:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


@dataclass
class DriveReport:
    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0
    batches: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def msg_id(payload: dict[str, Any]) -> str:
    """The `Nats-Msg-Id` of an event: its event_id (a registration's content key otherwise)."""
    eid = payload.get("event_id")
    if isinstance(eid, str) and eid:
        return eid
    return AmbassadorIn.model_validate(payload).idempotency_key()


def write_jsonl(events: Iterable[dict[str, Any]], out: IO[bytes], progress: Progress) -> int:
    n = 0
    for n, e in enumerate(events, 1):
        out.write(orjson.dumps(e) + b"\n")
        if n % 1000 == 0:
            progress(n)
    progress(n)
    return n


def batches(events: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for e in events:
        batch.append(e)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def drive(
    events: Iterable[dict[str, Any]],
    send: Send,
    *,
    rate: float,
    batch_size: int,
    progress: Progress,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> DriveReport:
    """Send every event in batches, pacing them so that `n` events leave at `n / rate` s."""
    report = DriveReport()
    if rate > 0:
        # Batches at least ten times a second, so the pace is smooth at low rates too.
        batch_size = max(1, min(batch_size, int(rate / 10)))
    progress(0)
    started = clock()
    for batch in batches(events, batch_size):
        if rate > 0:
            due = started + report.events / rate
            wait = due - clock()
            if wait > 0:
                await sleep(wait)
        sent = await send(batch)
        report.events += len(batch)
        report.accepted += sent.accepted
        report.duplicates += sent.duplicates
        report.rejected += sent.rejected
        report.batches += 1
        progress(report.events)
    report.seconds = clock() - started
    return report


class NatsSender:
    """Straight to `pv.raw.v1`: async batched publishes, `Nats-Msg-Id` = event_id, every PubAck
    awaited before the next batch (a lost ack is retried: the id makes the retry harmless)."""

    def __init__(self, servers: str, timeout_s: float = 10.0, attempts: int = 30) -> None:
        self.servers = [s.strip() for s in servers.split(",") if s.strip()]
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.retries = 0
        self._nc: Any = None
        self._js: Any = None

    async def __aenter__(self) -> NatsSender:
        import nats

        self._nc = await nats.connect(
            servers=self.servers, max_reconnect_attempts=-1, reconnect_time_wait=0.5
        )
        self._js = self._nc.jetstream(timeout=self.timeout_s)
        await self._js.stream_info(RAW.name)  # fails early if the platform has not started
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._nc is not None:
            await self._nc.drain()

    async def __call__(self, batch: list[dict[str, Any]]) -> Sent:
        pending = [(msg_id(e), orjson.dumps(e)) for e in batch]
        sent = Sent()
        for attempt in range(self.attempts):
            futures = []
            try:
                for mid, data in pending:
                    futures.append(
                        await self._js.publish_async(
                            RAW_SUBJECT, data, headers={"Nats-Msg-Id": mid}
                        )
                    )
                acks = await asyncio.wait_for(
                    asyncio.gather(*futures, return_exceptions=True), self.timeout_s
                )
            except Exception:  # a node is down or the connection is re-established: resend
                acks = [None] * len(pending)
                for f in futures:
                    f.cancel()
            failed = []
            for (mid, data), ack in zip(pending, acks, strict=True):
                if ack is None or isinstance(ack, BaseException):
                    failed.append((mid, data))
                elif getattr(ack, "duplicate", False):
                    sent.duplicates += 1
                else:
                    sent.accepted += 1
            if not failed:
                return sent
            pending = failed
            self.retries += 1
            await asyncio.sleep(min(2.0, 0.1 * (attempt + 1)))
        raise RuntimeError(f"{len(pending)} events not acknowledged by JetStream")


class HttpSender:
    """`POST /v1/events` with JSON arrays; 503 and connection errors are retried after
    `Retry-After` (the event ids make the retry harmless)."""

    def __init__(self, api: str, token: str, attempts: int = 30) -> None:
        self.api = api.rstrip("/")
        self.token = token
        self.attempts = attempts
        self.retries = 0
        self._client: Any = None

    async def __aenter__(self) -> HttpSender:
        import httpx

        self._client = httpx.AsyncClient(
            base_url=self.api,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                r = await self._client.get("/v1/ready")
                if r.status_code == 200:
                    return
            except Exception:  # not listening yet
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.api}/v1/ready did not answer 200 in {timeout_s:.0f} s")
            await asyncio.sleep(0.5)

    async def __call__(self, batch: list[dict[str, Any]]) -> Sent:
        import httpx

        body = orjson.dumps(batch)
        for attempt in range(self.attempts):
            try:
                r = await self._client.post(
                    "/v1/events", content=body, headers={"content-type": "application/json"}
                )
            except httpx.TransportError:
                self.retries += 1
                await asyncio.sleep(min(5.0, 0.2 * (attempt + 1)))
                continue
            if r.status_code in (502, 503, 504):
                self.retries += 1
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            if r.status_code in (401, 403):
                raise PermissionError(f"the API refused the token ({r.status_code})")
            if r.status_code == 422:
                return Sent(rejected=len(batch))
            r.raise_for_status()
            data = r.json()
            return Sent(data["accepted"], data["duplicates"], data["rejected"])
        raise RuntimeError(f"{self.api}/v1/events kept failing after {self.attempts} attempts")
