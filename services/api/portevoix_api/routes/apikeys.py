"""API keys: create (the token is shown once), list (no secrets), read, revoke. Admins only.

A key is stored as the SHA-256 of its token (`pv:apikey:<digest>` → role, subject, ambassador_id)
plus a metadata entry in `pv:apikeys` (id → role, ambassador_id, label, created_at, created_by);
the token itself is never stored nor logged. Service principals cannot manage keys: a leaked
service key must not be able to mint admin keys.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from redis.asyncio import Redis

from portevoix.contracts.readmodels import API_KEYS
from portevoix_api.auth import APIKEY, Principal, Role, require, token_digest
from portevoix_api.pagination import Cursor, Limit, decode_offset, offset_cursor
from portevoix_api.problems import Problem, error_responses
from portevoix_api.rate_limit import apikey_rate_key

router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])
KeyAdmin = Annotated[Principal, Depends(require("admin"))]
KeyId = Annotated[str, Path(pattern=r"^k_[0-9a-f]{16}$", description="the key's id, `k_…`")]


class NewApiKey(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"role": "ambassador", "ambassador_id": "a-1", "label": "Alice's portal"},
                {"role": "service", "label": "HR sync"},
            ]
        }
    )

    role: Role
    ambassador_id: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[^\s/]+$",
        description="required for role ambassador (whose data the key may reach), else absent",
    )  # fmt: skip
    label: str = Field(default="", max_length=200, description="what the key is for")

    @model_validator(mode="after")
    def _ambassador_keys_name_their_ambassador(self) -> NewApiKey:
        if (self.role == "ambassador") != (self.ambassador_id is not None):
            raise ValueError("ambassador_id is required for role ambassador, and only for it")
        return self


class ApiKey(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": "k_4f1c2a9b0d3e5f67", "role": "ambassador", "ambassador_id": "a-1",
                 "label": "Alice's portal", "created_at": "2026-11-21T09:30:00Z",
                 "created_by": "admin"}
            ]
        }
    )  # fmt: skip

    id: str
    role: Role
    ambassador_id: str | None = None
    label: str = ""
    created_at: str
    created_by: str


class CreatedApiKey(ApiKey):
    token: str = Field(description="the bearer token; shown once, never again")


class ApiKeyPage(BaseModel):
    items: list[ApiKey]
    next_cursor: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@router.post(
    "",
    status_code=201,
    response_model=CreatedApiKey,
    summary="Create an API key",
    description="Returns the bearer token once: store it, it cannot be shown again (only its "
    "SHA-256 is kept). An ambassador key reaches that ambassador's own data only.",
    responses=error_responses(422),
)
async def create_api_key(request: Request, body: NewApiKey, who: KeyAdmin) -> Response:
    redis: Redis = request.app.state.redis
    key_id = f"k_{secrets.token_hex(8)}"
    token = f"pvk_{secrets.token_urlsafe(32)}"
    digest = token_digest(token)
    meta = ApiKey(
        id=key_id,
        role=body.role,
        ambassador_id=body.ambassador_id,
        label=body.label,
        created_at=_now(),
        created_by=who.subject,
    )
    record: dict[Any, str] = {
        "role": body.role,
        "subject": key_id,
        "key_id": key_id,
    }
    if body.ambassador_id:
        record["ambassador_id"] = body.ambassador_id
    # Two slots on a Redis Cluster, so no MULTI: the listing first, so a crash in between
    # leaves a listed (revocable) key with no effect, never a working key nobody can see.
    await redis.hset(API_KEYS, key_id, orjson.dumps({**meta.model_dump(), "digest": digest}))
    await redis.hset(APIKEY.format(digest=digest), mapping=record)
    created = CreatedApiKey(**meta.model_dump(), token=token)
    return JSONResponse(
        created.model_dump(), status_code=201, headers={"Location": f"/v1/api-keys/{key_id}"}
    )


def _meta(raw: bytes | str) -> tuple[ApiKey, str]:
    data: dict[str, Any] = orjson.loads(raw)
    digest = str(data.pop("digest", ""))
    return ApiKey.model_validate(data), digest


@router.get(
    "",
    response_model=ApiKeyPage,
    summary="List API keys (no secrets)",
    description="Oldest first; `role` filters.",
    responses=error_responses(422),
)
async def list_api_keys(
    request: Request,
    _who: KeyAdmin,
    role: Annotated[Role | None, Query(description="only keys of this role")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> ApiKeyPage:
    redis: Redis = request.app.state.redis
    entries = [_meta(v)[0] for v in (await redis.hgetall(API_KEYS)).values()]
    if role is not None:
        entries = [e for e in entries if e.role == role]
    entries.sort(key=lambda e: (e.created_at, e.id))
    offset = decode_offset(cursor)
    page = entries[offset : offset + limit]
    more = offset + limit < len(entries)
    return ApiKeyPage(items=page, next_cursor=offset_cursor(offset + limit) if more else None)


async def _load(redis: Redis, key_id: str) -> tuple[ApiKey, str]:
    raw = await redis.hget(API_KEYS, key_id)
    if raw is None:
        raise Problem(404, "Not found", f"no API key {key_id!r}")
    return _meta(raw)


@router.get(
    "/{key_id}",
    response_model=ApiKey,
    summary="An API key's metadata",
    responses=error_responses(404),
)
async def get_api_key(request: Request, key_id: KeyId, _who: KeyAdmin) -> ApiKey:
    return (await _load(request.app.state.redis, key_id))[0]


@router.delete(
    "/{key_id}",
    status_code=204,
    summary="Revoke an API key",
    description="Effective at once: the next request with its token is a 401.",
    responses=error_responses(404),
)
async def revoke_api_key(request: Request, key_id: KeyId, _who: KeyAdmin) -> Response:
    redis: Redis = request.app.state.redis
    _, digest = await _load(redis, key_id)
    key = APIKEY.format(digest=digest)
    # The token stops working first (same slot: one call), then the listing goes.
    await redis.delete(key, apikey_rate_key(key))
    await redis.hdel(API_KEYS, key_id)
    return Response(status_code=204)
