"""HTTP RED metrics and the access log, labelled by route template (never by raw path nor query:
no ids, no personal data). Pure ASGI, so streamed answers (SSE) pass through untouched.

Also the last line of defence: an exception nobody handled becomes a 500 problem+json here, and
is logged by type only (messages and tracebacks can carry request data)."""

from __future__ import annotations

import logging
import time

import orjson
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portevoix_api.problems import PROBLEM, problem_body

HTTP_REQUESTS = Counter(
    "pv_http_requests_total", "HTTP requests, by route, method and status.",
    ["route", "method", "status"],
)  # fmt: skip
HTTP_SECONDS = Histogram(
    "pv_http_request_seconds", "HTTP request duration, by route and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)  # fmt: skip

access_log = logging.getLogger("portevoix.api.access")


class RedMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            status = 500
            route = getattr(scope.get("route"), "path", "unmatched")
            access_log.error(
                "unhandled error", extra={"pv": {"route": route, "error": type(exc).__name__}}
            )
            if response_started:
                raise
            body = orjson.dumps(
                problem_body(
                    500, "Internal error", "an unexpected error occurred", "internal-error",
                    scope.get("path", ""),
                )
            )  # fmt: skip
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", PROBLEM.encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope.get("method", "?")
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_SECONDS.labels(route, method).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                who = scope.get("state", {}).get("principal")  # set by auth: (role, digest)
                access_log.info(
                    "request",
                    extra={
                        "pv": {
                            "method": method,
                            "route": route,
                            "status": status,
                            "ms": round(elapsed * 1000, 2),
                            "role": who[0] if who else None,
                            "subject": who[1] if who else None,
                        }
                    },
                )
