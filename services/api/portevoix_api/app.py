"""API gateway: the REST surface (FastAPI) over the bus (publish) and the read models (Redis)."""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import orjson
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from portevoix import __version__
from portevoix.runtime.logs import configure_logging
from portevoix.runtime.metrics import SERVICE_UP
from portevoix.runtime.publisher import EventPublisher
from portevoix.runtime.redis import connect_redis
from portevoix.runtime.streams import ensure_streams
from portevoix_api.metrics import RedMiddleware
from portevoix_api.problems import install_problem_handlers
from portevoix_api.routes import discover_routers
from portevoix_api.settings import ApiSettings

ASYNCAPI_DIR = Path(__file__).resolve().parents[3] / "docs" / "asyncapi"

TAGS = [
    {"name": "events", "description": "Ingest contract v1: ambassadors, posts, engagement."},
    {"name": "leaderboards", "description": "Ambassadors ranked by points, per period."},
    {"name": "health", "description": "Liveness and readiness."},
    {"name": "docs", "description": "Event (AsyncAPI) documentation."},
]


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    log = configure_logging("api", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await nats.connect(
            servers=[s.strip() for s in settings.nats_url.split(",")],
            name="porte-voix-api",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
        )
        js = nc.jetstream()
        await ensure_streams(js, replicas=settings.stream_replicas)
        app.state.nc = nc
        app.state.publisher = EventPublisher(js, timeout_s=settings.publish_timeout_s)
        app.state.redis = connect_redis(settings.redis_url)
        SERVICE_UP.labels("api").set(1)
        log.info("api ready", extra={"pv": {"port": settings.port, "version": __version__}})
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await nc.drain()

    app = FastAPI(
        title="Porte-Voix API",
        version=__version__,
        description="REST API of Porte-Voix, the open employee-advocacy platform. Errors are "
        "RFC 9457 problem+json. Authenticate with `Authorization: Bearer <token>`.",
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    token = settings.admin_token
    if not token:
        token = secrets.token_urlsafe(24)
        print(f"PORTEVOIX_ADMIN_TOKEN not set; generated: {token}", file=sys.stderr)
    app.state.admin_token = token
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(RedMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match"],
        )
    for router in discover_routers():
        app.include_router(router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        # A route rather than a mount: a mount answers /metrics with a 307 to /metrics/.
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi/{service}.json", tags=["docs"], summary="AsyncAPI of a service's events")
    async def asyncapi(service: str) -> JSONResponse:
        path = ASYNCAPI_DIR / f"{service}.json"
        if service not in ("ingest", "moderation", "scoring") or not path.exists():
            return JSONResponse(
                {"type": "about:blank", "title": "Not found", "status": 404,
                 "detail": f"no AsyncAPI document for {service!r}"},
                status_code=404, media_type="application/problem+json",
            )  # fmt: skip
        return JSONResponse(content=orjson.loads(path.read_bytes()))

    return app
