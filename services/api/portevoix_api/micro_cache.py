"""A micro-cache for GET routes whose answer is the same for every authenticated caller
(leaderboards): the response of a URL is kept `PORTEVOIX_RESPONSE_CACHE_MS` (250 ms) in this
process, so a board polled by hundreds of dashboards costs one Redis read per period instead of
one per request. Each hit still authenticates the caller and counts against their rate limit
(the same code as the routes' `Authenticated` dependency: 401/429 unchanged); only the read of
the board is shared. Opt-in by path prefix (`PORTEVOIX_RESPONSE_CACHE_PREFIXES`); a route whose
answer depends on who asks must not be listed. Only 200 answers are kept, at most
`MAX_ENTRIES` URLs, bodies of at most `MAX_BODY_BYTES`. Misses are coalesced: while one
request reads a URL's board, the others asking for it wait for that answer instead of all
reading it at once when an entry expires (no stampede on Redis every 250 ms).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portevoix_api.auth import authenticate_request
from portevoix_api.problems import Problem, problem_response

MAX_ENTRIES = 2000
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Entry:
    expires: float
    headers: list[tuple[bytes, bytes]]
    body: bytes


class MicroCacheMiddleware:
    def __init__(self, app: ASGIApp, prefixes: Sequence[str], ttl_ms: int) -> None:
        self.app = app
        self.prefixes = tuple(prefixes)
        self.ttl_s = ttl_ms / 1000
        self.entries: dict[tuple[str, bytes], Entry] = {}
        self.inflight: dict[tuple[str, bytes], asyncio.Future[Entry | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or self.ttl_s <= 0
            or not scope["path"].startswith(self.prefixes)
        ):
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope.get("query_string", b""))
        entry = self.entries.get(key)
        pending = self.inflight.get(key)
        if entry is not None and entry.expires <= time.monotonic():
            entry = None
        if entry is not None or pending is not None:
            request = Request(scope, receive)
            try:
                await authenticate_request(request)
            except Problem as exc:
                response = problem_response(
                    request, exc.status, exc.title, exc.detail, exc.kind, exc.headers, **exc.extra
                )
                await response(scope, receive, send)
                return
            if entry is None and pending is not None:
                entry = await asyncio.shield(pending)
            if entry is not None:
                await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
                await send({"type": "http.response.body", "body": entry.body})
                return
            # The shared read failed or was not cacheable: read it ourselves (auth runs again in
            # the route, and counts again: a rare path, only when the board read fails).
        future: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        stored: Entry | None = None
        try:
            stored = await self._fill(key, scope, receive, send)
        finally:
            self.inflight.pop(key, None)
            future.set_result(stored)

    async def _fill(
        self, key: tuple[str, bytes], scope: Scope, receive: Receive, send: Send
    ) -> Entry | None:
        """Run the route; keep its answer if it is a 200 of reasonable size."""
        started = time.monotonic()
        stored: Entry | None = None
        start: Message | None = None
        chunks: list[bytes] = []
        cacheable = True

        async def capturing_send(message: Message) -> None:
            nonlocal start, cacheable, stored
            if message["type"] == "http.response.start":
                start = message
                cacheable = message["status"] == 200
            elif message["type"] == "http.response.body" and cacheable:
                chunks.append(message.get("body", b""))
                if sum(map(len, chunks)) > MAX_BODY_BYTES:
                    cacheable = False
                elif not message.get("more_body", False) and start is not None:
                    if len(self.entries) >= MAX_ENTRIES:
                        self.entries.clear()  # crude but bounded: URLs are few in practice
                    stored = Entry(started + self.ttl_s, list(start["headers"]), b"".join(chunks))
                    self.entries[key] = stored
            await send(message)

        await self.app(scope, receive, capturing_send)
        return stored
