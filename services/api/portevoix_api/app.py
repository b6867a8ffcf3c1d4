"""API gateway: the REST surface (FastAPI) over the bus (publish) and the read models (Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

import nats
import nats.errors
import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from portevoix import __version__
from portevoix.runtime.gc_tuning import tune_gc
from portevoix.runtime.logs import configure_logging
from portevoix.runtime.metrics import SERVICE_UP
from portevoix.runtime.publisher import EventPublisher
from portevoix.runtime.redis import connect_redis
from portevoix.runtime.streams import ensure_streams_patiently
from portevoix.runtime.vault import vault_from_settings
from portevoix_api.body_limit import BodyLimitMiddleware
from portevoix_api.etag import ETagMiddleware
from portevoix_api.jwks import JwtVerifier
from portevoix_api.metrics import RedMiddleware
from portevoix_api.micro_cache import MicroCacheMiddleware
from portevoix_api.openapi import complete_openapi
from portevoix_api.problems import error_responses, install_problem_handlers, problem_response
from portevoix_api.programme_metrics import ProgrammeRefresher
from portevoix_api.projections.projector import AnalyticsProjector
from portevoix_api.projections.store import AnalyticsStore
from portevoix_api.rate_limit import RateLimiter
from portevoix_api.routes import discover_routers
from portevoix_api.settings import ApiSettings

ASYNCAPI_DIR = Path(__file__).resolve().parents[3] / "docs" / "asyncapi"

TAGS = [
    {"name": "events", "description": "Ingest contract v1: ambassadors, posts, engagement."},
    {"name": "leaderboards", "description": "Ambassadors ranked by points, per period."},
    {"name": "api-keys", "description": "Bearer tokens: create (shown once), list, revoke."},
    {"name": "analytics", "description": "Participation, posts, engagement, hashtags, verdicts."},
    {"name": "ideas", "description": "The idea box: idea posts ranked by engagement."},
    {"name": "feed", "description": "Live Server-Sent Events feed of domain events."},
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
        await ensure_streams_patiently(js, settings.stream_replicas, log=log)
        app.state.nc = nc
        app.state.publisher = EventPublisher(
            js, timeout_s=settings.publish_timeout_s, service="api"
        )
        redis = connect_redis(settings.redis_url, settings.redis_cluster, settings.redis_timeout_s)
        app.state.redis = redis
        app.state.rate_limiter = RateLimiter(
            redis, settings.rate_limits, settings.rate_limit_period_s
        )
        app.state.analytics_store = AnalyticsStore(redis)
        app.state.vault = vault_from_settings(redis, settings)
        projector = AnalyticsProjector(nc, redis, settings)
        app.state.projector = projector
        if settings.analytics_projection:
            await projector.start()
        programme = None
        if settings.programme_metrics_interval_s > 0:
            programme = ProgrammeRefresher(
                redis,
                ZoneInfo(settings.timezone),
                settings.programme_metrics_interval_s,
                settings.programme_metrics_max_age_s,
            )
            programme.start()
        tune_gc()  # see portevoix.runtime.gc_tuning
        SERVICE_UP.labels("api").set(1)
        log.info("api ready", extra={"pv": {"port": settings.port, "version": __version__}})
        try:
            yield
        finally:
            if programme is not None:
                await programme.stop()
            await projector.stop()
            await redis.aclose()
            try:
                await asyncio.wait_for(nc.drain(), timeout=5.0)
            except Exception:
                with contextlib.suppress(Exception):
                    await nc.close()

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
    app.state.jwt_verifier = JwtVerifier(settings) if settings.jwks_url else None
    app.state.feed_clients = 0
    install_problem_handlers(app)
    # Outermost last: RED (metrics, access log, last-resort 500) > CORS (also on errors) >
    # body limit (413 before reading) > ETag (leaderboards) > micro-cache (leaderboards) > FastAPI.
    if settings.response_cache_ms and settings.response_cache_prefixes:
        app.add_middleware(
            MicroCacheMiddleware,
            prefixes=settings.response_cache_prefixes,
            ttl_ms=settings.response_cache_ms,
        )
    if settings.etag_prefixes:
        app.add_middleware(ETagMiddleware, prefixes=settings.etag_prefixes)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match", "Last-Event-ID"],
            expose_headers=["ETag", "Location", "Retry-After", "WWW-Authenticate"],
            max_age=600,
        )
    app.add_middleware(RedMiddleware)
    for router in discover_routers():
        app.include_router(router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        # A route rather than a mount: a mount answers /metrics with a 307 to /metrics/.
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/asyncapi/{service}.json",
        tags=["docs"],
        summary="AsyncAPI of a service's events",
        responses=error_responses(404),
    )
    async def asyncapi(request: Request, service: str) -> JSONResponse:
        path = ASYNCAPI_DIR / f"{service}.json"
        if service not in ("ingest", "moderation", "scoring") or not path.exists():
            return problem_response(
                request, 404, "Not found", f"no AsyncAPI document for {service!r}", "not-found"
            )
        return JSONResponse(content=orjson.loads(path.read_bytes()))

    complete_openapi(app)
    return app
