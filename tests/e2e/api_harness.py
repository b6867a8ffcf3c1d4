"""The API in-process (ASGI) or on a loopback port (uvicorn in this event loop), over real NATS
and Valkey, for the API gateway's tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from portevoix.runtime.embedded import free_port
from portevoix_api.app import create_app
from portevoix_api.settings import ApiSettings

ADMIN = "test-admin-token-0123456789"


def api_settings(nats_url: str, redis_url: str, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "NATS_URL": nats_url,
        "REDIS_URL": redis_url,
        "admin_token": ADMIN,
        "log_level": "WARNING",
        **overrides,
    }
    return ApiSettings(**values)


@dataclass
class RunningApi:
    app: FastAPI
    client: httpx.AsyncClient  # no Authorization header by default
    base_url: str

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def new_key(self, role: str, ambassador_id: str | None = None) -> str:
        body: dict[str, Any] = {"role": role, "label": f"test {role}"}
        if ambassador_id:
            body["ambassador_id"] = ambassador_id
        r = await self.client.post("/v1/api-keys", json=body, headers=self.auth(ADMIN))
        assert r.status_code == 201, r.text
        return str(r.json()["token"])


@contextlib.asynccontextmanager
async def in_process(settings: ApiSettings) -> AsyncIterator[RunningApi]:
    """ASGI in this process: fast, but answers are buffered (no SSE)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield RunningApi(app, client, "http://api")


@contextlib.asynccontextmanager
async def on_loopback(settings: ApiSettings) -> AsyncIterator[RunningApi]:
    """uvicorn on a free loopback port, in this event loop: real HTTP, streamed answers."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield RunningApi(app, client, base)
    finally:
        server.should_exit = True
        await task
