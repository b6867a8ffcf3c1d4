"""Charter versions: list, read, submit (validated first), activate.

A submitted charter is validated with the charter engine's own loader (the same code every
moderation instance runs): a broken one is a 422 problem naming the rule and field at fault and
never reaches the bus. A valid one is published as `CharterPublished`; every moderation
instance stores and, if `activate`, hot-reloads it within moments (202). Versions are immutable:
re-submitting a version with other content is a 409.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from redis.asyncio import Redis

from portevoix.contracts.events import EVENT_SUBJECTS, CharterPublished
from portevoix.contracts.readmodels import MOD_CHARTER_ACTIVE, MOD_CHARTER_META, MOD_CHARTERS
from portevoix.runtime.publisher import Outgoing
from portevoix.runtime.redis import text
from portevoix.runtime.streams import CHARTER_VALIDATE_RPC_SUBJECT
from portevoix_api.auth import Admin, Authenticated
from portevoix_api.problems import Problem
from portevoix_api.routes.events import publish_or_503
from portevoix_api.rpc import validate_with

router = APIRouter(prefix="/v1/charters", tags=["charters"])

Version = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[^\s/]+$")]
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
MAX_CHARTER_BYTES = 512 * 1024


class CharterAccepted(BaseModel):
    version: str
    event_id: str
    activate: bool
    status: str


async def _active(redis: Redis) -> str | None:
    v = await redis.get(MOD_CHARTER_ACTIVE)
    return text(v) if v is not None else None


@router.get("", summary="Charter versions", description="Newest first; `active` marks the one "
            "the moderation service applies.")  # fmt: skip
async def list_charters(request: Request, _who: Authenticated) -> Any:
    redis: Redis = request.app.state.redis
    metas: dict[Any, Any] = await redis.hgetall(MOD_CHARTER_META)
    active = await _active(redis)
    items = [{**orjson.loads(m), "active": text(v) == active} for v, m in metas.items()]
    items.sort(key=lambda m: str(m.get("published_at", "")), reverse=True)
    return {"active": active, "items": items}


@router.get("/{version}", summary="One charter version (its YAML)")
async def get_charter(request: Request, version: Version, _who: Authenticated) -> Any:
    redis: Redis = request.app.state.redis
    if version == "active":
        found = await _active(redis)
        if found is None:
            raise Problem(404, "Not found", "no charter was activated; the shipped one applies")
        version = found
    pipe = redis.pipeline(transaction=False)
    pipe.hget(MOD_CHARTERS, version)
    pipe.hget(MOD_CHARTER_META, version)
    yaml, meta = await pipe.execute()
    if yaml is None:
        raise Problem(404, "Not found", f"no charter version {version!r}")
    return {
        **(orjson.loads(meta) if meta else {"version": version}),
        "active": version == await _active(redis),
        "yaml": text(yaml),
    }


async def _validate(request: Request, yaml: str) -> str:
    """Moderation owns the charter engine: ask it (request/reply) rather than import it."""
    verdict = await validate_with(
        request, CHARTER_VALIDATE_RPC_SUBJECT, yaml.encode(), owner="moderation"
    )
    if not verdict.get("ok"):
        raise Problem(
            422, "Invalid charter", str(verdict.get("error")), kind="invalid-charter",
            rule=verdict.get("rule"),
        )  # fmt: skip
    return str(verdict["version"])


@router.post(
    "",
    status_code=202,
    response_model=CharterAccepted,
    summary="Submit a charter version",
    description="Body: the charter YAML (`Content-Type: application/yaml`). `activate=false` "
    "stores it without applying it. 422 problem with the precise error if it is broken; 409 if "
    "the version exists with other content.",
    openapi_extra={"requestBody": {"required": True,
                                   "content": {"application/yaml": {"schema": {"type": "string"}}}}},
)  # fmt: skip
async def submit_charter(
    request: Request, who: Admin, activate: Annotated[bool, Query()] = True
) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype not in YAML_TYPES:
        raise Problem(415, "Unsupported media type", "send the charter as application/yaml")
    body = await request.body()
    if len(body) > MAX_CHARTER_BYTES:
        raise Problem(413, "Payload too large", f"charter over {MAX_CHARTER_BYTES} bytes")
    try:
        yaml = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(422, "Invalid charter", "the charter is not UTF-8",
                      kind="invalid-charter") from exc  # fmt: skip
    version = await _validate(request, yaml)
    existing = await request.app.state.redis.hget(MOD_CHARTERS, version)
    if existing is not None and text(existing) != yaml:
        raise Problem(
            409, "Conflict", f"charter version {version!r} exists with other content; "
            "bump `version`", kind="charter-version-exists",
        )  # fmt: skip
    digest = hashlib.sha256(body).hexdigest()[:16]
    event = CharterPublished(
        event_id=f"charter:{version}:{digest}:{'activate' if activate else 'store'}",
        occurred_at=datetime.now(UTC), producer="api", version=version, charter_yaml=yaml,
        activate=activate, published_by=who.subject,
    )  # fmt: skip
    return await _publish(request, event)


@router.post(
    "/{version}/activate",
    status_code=202,
    response_model=CharterAccepted,
    summary="Activate a stored charter version",
    description="Every moderation instance switches to it within moments (no restart).",
)
async def activate_charter(request: Request, version: Version, who: Admin) -> Any:
    redis: Redis = request.app.state.redis
    yaml = await redis.hget(MOD_CHARTERS, version)
    if yaml is None:
        raise Problem(404, "Not found", f"no charter version {version!r}")
    current = await _active(redis)
    event = CharterPublished(
        # Activating X while Y is active is one fact: a retry is recognised as a duplicate.
        event_id=f"charter-activate:{version}:from:{current}",
        occurred_at=datetime.now(UTC), producer="api", version=version,
        charter_yaml=text(yaml), activate=True, published_by=who.subject,
    )  # fmt: skip
    return await _publish(request, event)


async def _publish(request: Request, event: CharterPublished) -> dict[str, Any]:
    result = await publish_or_503(
        request, request.app.state.publisher,
        [Outgoing.of_event(EVENT_SUBJECTS["charter.published"], event)],
    )  # fmt: skip
    return {"version": event.version, "event_id": event.event_id, "activate": event.activate,
            "status": "duplicate" if result.duplicates else "accepted"}  # fmt: skip
