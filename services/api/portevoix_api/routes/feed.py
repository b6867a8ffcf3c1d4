"""`GET /v1/feed`: the live feed of domain events as Server-Sent Events, for dashboards.

Each client gets an ephemeral ordered JetStream consumer on `PV_EVENTS` (flow controlled, memory
only, removed by the server shortly after the client leaves). The SSE `id` of an event is its
stream sequence: a reconnecting `EventSource` sends it back as `Last-Event-ID` and the feed resumes
right after it, so nothing is missed while the events are kept (one year). Bounded: at most
`PORTEVOIX_FEED_MAX_CLIENTS` clients per process (503 beyond), a connection lasts at most
`PORTEVOIX_FEED_MAX_SECONDS` (then the browser reconnects and resumes), a comment line is sent
every `PORTEVOIX_FEED_HEARTBEAT_S` when idle (keeps proxies from closing the connection), and a
slow client is held back by flow control instead of buffering without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import ConsumerConfig, DeliverPolicy

from portevoix.contracts.events import EVENT_SUBJECTS
from portevoix.runtime.streams import EVENTS
from portevoix_api.auth import Moderator
from portevoix_api.problems import Problem, error_responses

router = APIRouter(prefix="/v1", tags=["feed"])

EVENT_PREFIX = "pv.evt."
# Domain events announced by the services; `ambassador.erased` comes from ingest's privacy module.
FEED_TYPES = sorted({*EVENT_SUBJECTS, "ambassador.erased"})
TYPE_PATTERN = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
PENDING_MSGS = 1000
INACTIVE_S = 30.0


def parse_types(types: str | None) -> list[str]:
    if not types:
        return []
    wanted = sorted({t.strip() for t in types.split(",") if t.strip()})
    unknown = [t for t in wanted if t not in FEED_TYPES or not TYPE_PATTERN.match(t)]
    if unknown:
        raise Problem(
            422, "Invalid request", f"unknown event type(s): {', '.join(unknown)}",
            kind="invalid-request", known=FEED_TYPES,
        )  # fmt: skip
    return wanted


def parse_last_id(header: str | None, query: str | None) -> int | None:
    raw = header if header is not None else query
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise Problem(
            422, "Invalid request", "Last-Event-ID must be an id this feed sent (a number)",
            kind="invalid-last-event-id",
        )  # fmt: skip
    return int(raw)


def sse_event(seq: int, event_type: str, data: bytes) -> bytes:
    lines = b"".join(b"data: " + line + b"\n" for line in data.splitlines() or [b""])
    return b"id: %d\nevent: %s\n%s\n" % (seq, event_type.encode(), lines)


@router.get(
    "/feed",
    summary="Live feed of domain events (Server-Sent Events)",
    description="`text/event-stream`; each event has `id` (the JetStream stream sequence), `event` "
    "(its type, e.g. `post.moderated`) and `data` (the domain event JSON). `types` filters "
    "(comma-separated). Without `Last-Event-ID` the feed starts with the next event; with it, "
    "right after that event. Comment lines (`: keepalive`) are heartbeats. Moderators and admins.",
    responses={
        200: {
            "description": "An event stream",
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": 'id: 42\nevent: post.moderated\ndata: {"type":"post.moderated",'
                    '"verdict":"review","post_key":"linkedin:p-1"}\n\n',
                }
            },
        },
        **error_responses(422, 503),
    },
)
async def feed(
    request: Request,
    _who: Moderator,
    types: Annotated[
        str | None,
        Query(max_length=500, description="comma-separated event types, e.g. post.moderated"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(max_length=20, description="same as the `Last-Event-ID` header (for polyfills)"),
    ] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    wanted = parse_types(types)
    after = parse_last_id(last_event_id_header, last_event_id)
    state = request.app.state
    settings = state.settings
    if state.feed_clients >= settings.feed_max_clients:
        raise Problem(
            503, "Service unavailable", "too many live feed clients on this server; retry later",
            kind="feed-full", headers={"Retry-After": "10"},
        )  # fmt: skip
    subjects = [EVENT_PREFIX + t for t in wanted] or [EVENT_PREFIX + ">"]
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.NEW if after is None else DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=None if after is None else after + 1,
        filter_subjects=subjects if len(subjects) > 1 else None,
        inactive_threshold=INACTIVE_S,
    )
    state.feed_clients += 1
    try:
        sub = await state.nc.jetstream().subscribe(
            subjects[0], stream=EVENTS.name, ordered_consumer=True, config=config,
            pending_msgs_limit=PENDING_MSGS,
        )  # fmt: skip
    except (NatsError, TimeoutError, OSError) as exc:
        state.feed_clients -= 1
        raise Problem(
            503, "Service unavailable", f"the event bus is unavailable ({type(exc).__name__})",
            kind="bus-unavailable", headers={"Retry-After": "5"},
        ) from exc  # fmt: skip

    async def stream() -> AsyncGenerator[bytes, None]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.feed_max_seconds
        try:
            yield b"retry: 3000\n: connected\n\n"
            while (left := deadline - loop.time()) > 0:
                try:
                    msg = await sub.next_msg(timeout=min(settings.feed_heartbeat_s, left))
                except (NatsTimeoutError, TimeoutError):
                    yield b": keepalive\n\n"
                    continue
                event_type = msg.subject.removeprefix(EVENT_PREFIX)
                yield sse_event(msg.metadata.sequence.stream, event_type, msg.data)
        finally:
            state.feed_clients -= 1
            # If this fails the server drops the consumer after INACTIVE_S anyway.
            with contextlib.suppress(NatsError, TimeoutError, OSError):
                await sub.unsubscribe()

    # Started here, so its `finally` (count, unsubscribe) runs even if the response is never
    # sent: asyncio closes a started generator when it is collected; an unstarted one, never.
    events = stream()
    first = await anext(events)

    async def body() -> AsyncIterator[bytes]:
        try:
            yield first
            async for chunk in events:
                yield chunk
        finally:
            await events.aclose()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
