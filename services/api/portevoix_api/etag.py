"""Weak ETags and `If-None-Match` → 304 for GET routes opted in by path prefix.

Boards change all the time but are polled more often still: a dashboard that re-polls an unchanged
top-50 gets a bodiless 304. The tag is a digest of the body, so it is "weak" (RFC 9110 §8.8.1:
same representation content, not byte-identical transfer) and needs no cooperation from the
route: `ETagMiddleware(app, prefixes=["/v1/leaderboards"])` (see `PORTEVOIX_ETAG_PREFIXES`).
Only 200 answers of at most `max_bytes` are tagged; others pass through untouched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_TAGGED_BYTES = 4 * 1024 * 1024


def weak_etag(body: bytes) -> str:
    return 'W/"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2): `*`, or any listed tag with the same opaque value."""
    value = if_none_match.strip()
    if value == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in value.split(","))


class ETagMiddleware:
    def __init__(
        self, app: ASGIApp, prefixes: Sequence[str], max_bytes: int = MAX_TAGGED_BYTES
    ) -> None:
        self.app = app
        self.prefixes = tuple(prefixes)
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or not scope["path"].startswith(self.prefixes)
        ):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0
        passthrough = False

        async def buffering_send(message: Message) -> None:
            nonlocal start, size, passthrough
            if passthrough:
                await send(message)
                return
            if message["type"] == "http.response.start":
                if message["status"] != 200:
                    passthrough = True
                    await send(message)
                    return
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if more and size <= self.max_bytes:
                return
            assert start is not None
            if more:  # too big to tag: send what we hold and stream the rest
                passthrough = True
                await send(start)
                await send(
                    {"type": "http.response.body", "body": b"".join(chunks), "more_body": True}
                )
                return
            await self._finish(scope, send, start, b"".join(chunks))

        await self.app(scope, receive, buffering_send)

    async def _finish(self, scope: Scope, send: Send, start: Message, body: bytes) -> None:
        etag = weak_etag(body)
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"etag"]
        headers.append((b"etag", etag.encode()))
        if not any(k.lower() == b"cache-control" for k, _ in headers):
            headers.append((b"cache-control", b"no-cache"))  # revalidate each time: cheap 304s
        headers.append((b"vary", b"Authorization"))
        if_none_match = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"if-none-match"), None
        )
        if if_none_match is not None and matches(if_none_match, etag):
            kept = [
                (k, v) for k, v in headers
                if k.lower() not in (b"content-length", b"content-type")
            ]  # fmt: skip
            await send({"type": "http.response.start", "status": 304, "headers": kept})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
