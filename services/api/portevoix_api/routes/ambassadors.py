"""The ambassador directory: register/update, list by team, detail, consent, GDPR export (art.
15/20) and erasure (art. 17).

Writes go through the bus like every other input: a registration is a contract-v1 `ambassador`
event on `pv.raw.v1`, an erasure request goes to `pv.raw.erasure.v1`; the ingest service applies
them in stream order (so an erasure queued after a registration always wins) and owns the Redis
keys this module reads. Writes therefore answer 202: the change is visible within moments.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from redis.asyncio import Redis

from portevoix.contracts.ingest import (
    Network,
    describe_validation_error,
    parse_ingest_event,
)
from portevoix.contracts.readmodels import (
    AMBASSADOR_INDEX,
    ambassador_key,
    erasure_key,
    parked_key,
    team_key,
)
from portevoix.runtime.publisher import Outgoing
from portevoix.runtime.redis import text
from portevoix.runtime.streams import ERASURE_SUBJECT, RAW_SUBJECT
from portevoix_api.auth import Admin, Principal, authenticate, require
from portevoix_api.pagination import decode_offset, offset_cursor
from portevoix_api.problems import Problem
from portevoix_api.routes.events import publish_or_503

router = APIRouter(prefix="/v1/ambassadors", tags=["ambassadors"])

# Ingest's erasure input: portevoix.contracts.ingest.ErasureRequested.
AmbassadorId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\s/]+$")]
Staff = Annotated[Principal, Depends(require("moderator", "admin", "service"))]
Anyone = Annotated[Principal, Depends(authenticate)]


class AmbassadorBody(BaseModel):
    display_name: str = Field(min_length=1, max_length=200)
    team: str = Field(min_length=1, max_length=100)
    handles: dict[Network, str] = Field(min_length=1, examples=[{"linkedin": "alice-martin"}])
    consent: bool


class NewAmbassador(AmbassadorBody):
    ambassador_id: str = Field(min_length=1, max_length=200, pattern=r"^[^\s/]+$")


class ConsentBody(BaseModel):
    consent: bool


class Ambassador(BaseModel):
    ambassador_id: str
    display_name: str
    team: str
    handles: dict[str, str]
    consent: bool
    created_at: str | None = None
    updated_at: str | None = None
    consent_changed_at: str | None = None


class AmbassadorPage(BaseModel):
    items: list[Ambassador]
    next_cursor: str | None = None


class Accepted(BaseModel):
    ambassador_id: str
    event_id: str
    status: Literal["accepted", "duplicate"]


class ErasureAccepted(BaseModel):
    ambassador_id: str
    request_id: str
    status: Literal["accepted"] = "accepted"
    status_url: str


def _self_or_staff(principal: Principal, ambassador_id: str, *roles: str) -> None:
    """Ambassadors act on their own entry; `roles` act on anyone's."""
    if principal.role in roles:
        return
    if principal.role == "ambassador" and principal.ambassador_id == ambassador_id:
        return
    raise Problem(403, "Forbidden", "only this ambassador or an administrator may do this")


def _entry(fields: Mapping[Any, Any]) -> Ambassador:
    f = {text(k): text(v) for k, v in fields.items()}
    return Ambassador(
        ambassador_id=f["ambassador_id"],
        display_name=f.get("display_name", ""),
        team=f.get("team", ""),
        handles=orjson.loads(f.get("handles", "{}")),
        consent=f.get("consent") == "1",
        created_at=f.get("created_at"),
        updated_at=f.get("updated_at"),
        consent_changed_at=f.get("consent_changed_at"),
    )


async def _load(redis: Redis, ambassador_id: str) -> Ambassador:
    fields = await redis.hgetall(ambassador_key(ambassador_id))
    if not fields:
        raise Problem(404, "Not found", f"no ambassador {ambassador_id!r} in the directory")
    return _entry(fields)


async def _register(request: Request, ambassador_id: str, body: AmbassadorBody) -> Response:
    raw = {"type": "ambassador", "ambassador_id": ambassador_id, **body.model_dump(mode="json")}
    try:
        event = parse_ingest_event(raw)
    except ValidationError as exc:
        errors = [r.model_dump(mode="json") for r in describe_validation_error(exc)]
        fields = ", ".join(e["field"] for e in errors)
        raise Problem(
            422, "Invalid request", f"invalid field(s): {fields}", kind="invalid-ambassador",
            errors=errors,
        ) from exc  # fmt: skip
    key = event.idempotency_key()
    published = await publish_or_503(
        request, request.app.state.publisher, [Outgoing(RAW_SUBJECT, key, orjson.dumps(raw))]
    )
    status = "duplicate" if published.duplicates else "accepted"
    return JSONResponse(
        Accepted(ambassador_id=ambassador_id, event_id=key, status=status).model_dump(),
        status_code=202,
    )


@router.post(
    "",
    status_code=202,
    response_model=Accepted,
    summary="Register an ambassador",
    description="Published as a contract-v1 `ambassador` event; visible in the directory "
    "moments later. Activity already parked under the handles is replayed. A handle held by "
    "another ambassador is refused (dead-lettered with rule `handle_taken`).",
)
async def register_ambassador(request: Request, body: NewAmbassador, _who: Admin) -> Response:
    return await _register(request, body.ambassador_id, body)


@router.put(
    "/{ambassador_id}",
    status_code=202,
    response_model=Accepted,
    summary="Create or replace an ambassador's entry",
)
async def update_ambassador(
    request: Request, ambassador_id: AmbassadorId, body: AmbassadorBody, _who: Admin
) -> Response:
    return await _register(request, ambassador_id, body)


@router.get(
    "",
    response_model=AmbassadorPage,
    summary="List ambassadors (optionally one team)",
    description="Sorted by ambassador id; `next_cursor` pages on.",
)
async def list_ambassadors(
    request: Request,
    _who: Staff,
    team: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query()] = None,
) -> AmbassadorPage:
    redis: Redis = request.app.state.redis
    members = await redis.smembers(team_key(team) if team else AMBASSADOR_INDEX)
    ids = sorted(text(m) for m in members)
    offset = decode_offset(cursor)
    page = ids[offset : offset + limit]
    pipe = redis.pipeline(transaction=False)
    for aid in page:
        pipe.hgetall(ambassador_key(aid))
    entries = [_entry(f) for f in await pipe.execute() if f] if page else []
    more = offset + limit < len(ids)
    return AmbassadorPage(
        items=entries, next_cursor=offset_cursor(offset + limit) if more else None
    )


@router.get("/{ambassador_id}", response_model=Ambassador, summary="An ambassador's entry")
async def get_ambassador(request: Request, ambassador_id: AmbassadorId, who: Anyone) -> Ambassador:
    _self_or_staff(who, ambassador_id, "moderator", "admin", "service")
    return await _load(request.app.state.redis, ambassador_id)


@router.put(
    "/{ambassador_id}/consent",
    status_code=202,
    response_model=Accepted,
    summary="Give or withdraw consent",
    description="By the ambassador themself (withdrawing must be as easy as giving, GDPR "
    "art. 7(3)) or an administrator. Without consent, the ambassador's activity is neither "
    "stored nor scored from then on.",
)
async def set_consent(
    request: Request, ambassador_id: AmbassadorId, body: ConsentBody, who: Anyone
) -> Response:
    _self_or_staff(who, ambassador_id, "admin", "service")
    current = await _load(request.app.state.redis, ambassador_id)
    update = AmbassadorBody(
        display_name=current.display_name,
        team=current.team,
        handles=current.handles,
        consent=body.consent,
    )
    return await _register(request, ambassador_id, update)


@router.get(
    "/{ambassador_id}/export",
    summary="Everything ingest holds about an ambassador (GDPR art. 15 and 20)",
    description="Machine-readable JSON: the directory entry with its timestamps, the handles, "
    "and any activity parked under those handles.",
)
async def export_ambassador(request: Request, ambassador_id: AmbassadorId, who: Anyone) -> Response:
    _self_or_staff(who, ambassador_id, "admin", "service")
    redis: Redis = request.app.state.redis
    entry = await _load(redis, ambassador_id)
    pipe = redis.pipeline(transaction=False)
    for network, handle in entry.handles.items():
        pipe.hgetall(parked_key(network, handle))
    parked: list[dict[str, Any]] = []
    for (network, handle), items in zip(entry.handles.items(), await pipe.execute(), strict=True):
        for event_id, raw in sorted(items.items()):
            parked.append(
                {"network": network, "handle": handle, "event_id": text(event_id),
                 "event": orjson.loads(raw)}
            )  # fmt: skip
    document = {
        "format": "porte-voix.ambassador-export.v1",
        "exported_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "ambassador": entry.model_dump(),
        "parked_activity": parked,
        "notes": {
            "purpose": "employee advocacy programme: moderation of posts, points and boards",
            "lawful_basis": "consent (GDPR art. 6(1)(a), art. 7); withdraw with PUT "
            "/v1/ambassadors/{id}/consent",
            "not_included": "raw input kept 7 days on the event bus for re-processing; "
            "natural-key dedupe entries are one-way digests that expire; points and "
            "moderation decisions are exported by their own services",
        },
    }
    return Response(
        orjson.dumps(document, option=orjson.OPT_INDENT_2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="ambassador-{ambassador_id}.json"'},
    )


@router.delete(
    "/{ambassador_id}",
    status_code=202,
    response_model=ErasureAccepted,
    summary="Erase an ambassador (GDPR art. 17)",
    description="Queues the erasure after everything already received. Ingest removes the "
    "directory entry, handles and parked activity, then announces `ambassador.erased` so the "
    "other services remove or anonymise what they derived; anonymous aggregates stay. "
    "Follow `status_url` for the receipt.",
)
async def erase_ambassador(request: Request, ambassador_id: AmbassadorId, who: Anyone) -> Response:
    _self_or_staff(who, ambassador_id, "admin", "service")
    request_id = f"erase-{uuid.uuid4().hex}"
    requested_by = "self" if who.role == "ambassador" else who.role
    body = {
        "type": "ambassador.erasure_requested",
        "request_id": request_id,
        "ambassador_id": ambassador_id,
        "requested_by": requested_by,
        "requested_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    await publish_or_503(
        request, request.app.state.publisher,
        [Outgoing(ERASURE_SUBJECT, request_id, orjson.dumps(body))],
    )  # fmt: skip
    accepted = ErasureAccepted(
        ambassador_id=ambassador_id,
        request_id=request_id,
        status_url=f"/v1/ambassadors/erasures/{request_id}",
    )
    return JSONResponse(accepted.model_dump(), status_code=202)


@router.get(
    "/erasures/{request_id}",
    summary="Receipt of an erasure request",
    description="No personal data: whether it is done, when, and what kind of data was removed.",
)
async def erasure_receipt(
    request: Request,
    request_id: Annotated[str, Path(pattern=r"^erase-[0-9a-f]{32}$")],
    _who: Anyone,
) -> dict[str, Any]:
    fields = await request.app.state.redis.hgetall(erasure_key(request_id))
    if not fields:
        return {"request_id": request_id, "status": "pending"}
    f = {text(k): text(v) for k, v in fields.items()}
    return {
        "request_id": request_id,
        "status": f.get("status", "done"),
        "erased_at": f.get("erased_at"),
        "existed": f.get("existed") == "1",
        "networks": [n for n in f.get("networks", "").split(",") if n],
        "parked_removed": int(f.get("parked_removed", "0")),
    }
