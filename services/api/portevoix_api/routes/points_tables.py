"""Points table versions: list, get, submit. A submitted table is validated by scoring and
published as `points_table.published`; scoring keeps it by version, and
`portevoix scores rebuild --table VERSION` recomputes history with it (points are never
back-dated silently)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any

import yaml as yamllib
from fastapi import APIRouter, Path, Request
from redis.asyncio import Redis

from portevoix.contracts.events import EVENT_SUBJECTS, PointsTablePublished
from portevoix.contracts.readmodels import SCORING_GENERATION, SCORING_TABLES, gen_table_key
from portevoix.runtime.publisher import Outgoing
from portevoix.runtime.redis import text
from portevoix.runtime.streams import POINTS_TABLE_VALIDATE_RPC_SUBJECT
from portevoix_api.auth import Admin, Authenticated
from portevoix_api.problems import Problem
from portevoix_api.routes.charters import MAX_CHARTER_BYTES, YAML_TYPES
from portevoix_api.routes.events import publish_or_503
from portevoix_api.rpc import validate_with

router = APIRouter(prefix="/v1/points-tables", tags=["points-tables"])
Version = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[\w.\-]+$")]


async def _live(redis: Redis) -> tuple[str | None, str | None]:
    """(version, yaml) of the table the live leaderboards were computed with."""
    gen = text(await redis.get(SCORING_GENERATION) or b"1")
    raw = await redis.get(gen_table_key(gen))
    if raw is None:
        return None, None
    body = text(raw)
    data = yamllib.safe_load(body)
    return (str(data.get("version")) if isinstance(data, dict) else None), body


@router.get("", summary="Points table versions (and the live one)")
async def list_tables(request: Request, _who: Authenticated) -> Any:
    redis: Redis = request.app.state.redis
    live, _ = await _live(redis)
    versions = {text(v) for v in await redis.hkeys(SCORING_TABLES)}
    if live is not None:
        versions.add(live)
    return {"live": live, "items": [{"version": v, "live": v == live} for v in sorted(versions)]}


@router.get("/{version}", summary="One points table version (its YAML); `live` for the live one")
async def get_table(request: Request, version: Version, _who: Authenticated) -> Any:
    redis: Redis = request.app.state.redis
    live, live_yaml = await _live(redis)
    if version in ("live", live):
        if live_yaml is None:
            raise Problem(404, "Not found", "no live points table yet")
        return {"version": live, "live": True, "yaml": live_yaml}
    raw = await redis.hget(SCORING_TABLES, version)
    if raw is None:
        raise Problem(404, "Not found", f"no points table version {version!r}")
    return {"version": version, "live": False, "yaml": text(raw)}


@router.post(
    "",
    status_code=202,
    summary="Submit a points table version",
    description="Body: the table YAML (`Content-Type: application/yaml`). Validated by scoring "
    "(422 problem with the precise error), then published as `points_table.published`. It "
    "applies to history through `portevoix scores rebuild --table VERSION`.",
    openapi_extra={"requestBody": {"required": True,
                                   "content": {"application/yaml": {"schema": {"type": "string"}}}}},
)  # fmt: skip
async def submit_table(request: Request, who: Admin) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype not in YAML_TYPES:
        raise Problem(415, "Unsupported media type", "send the table as application/yaml")
    body = await request.body()
    if len(body) > MAX_CHARTER_BYTES:
        raise Problem(413, "Payload too large", f"table over {MAX_CHARTER_BYTES} bytes")
    verdict = await validate_with(request, POINTS_TABLE_VALIDATE_RPC_SUBJECT, body, owner="scoring")
    if not verdict.get("ok"):
        raise Problem(
            422, "Invalid points table", str(verdict.get("error")), kind="invalid-points-table"
        )
    version = str(verdict["version"])
    event = PointsTablePublished(
        event_id=f"points-table:{version}:{hashlib.sha256(body).hexdigest()[:16]}",
        occurred_at=datetime.now(UTC), producer="api", version=version,
        table_yaml=body.decode("utf-8"), activate=False, published_by=who.subject,
    )  # fmt: skip
    result = await publish_or_503(
        request, request.app.state.publisher,
        [Outgoing.of_event(EVENT_SUBJECTS["points_table.published"], event)],
    )  # fmt: skip
    return {"version": version, "event_id": event.event_id,
            "status": "duplicate" if result.duplicates else "accepted"}  # fmt: skip
