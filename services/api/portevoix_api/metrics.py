"""HTTP RED metrics, labelled by route template (never by raw path: no ids, no personal data)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

HTTP_REQUESTS = Counter(
    "pv_http_requests_total", "HTTP requests, by route, method and status.",
    ["route", "method", "status"],
)  # fmt: skip
HTTP_SECONDS = Histogram(
    "pv_http_request_seconds", "HTTP request duration, by route and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)  # fmt: skip


class RedMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            name = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(name, request.method, str(status)).inc()
            HTTP_SECONDS.labels(name, request.method).observe(time.perf_counter() - started)
