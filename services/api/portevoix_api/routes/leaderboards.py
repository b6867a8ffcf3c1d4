"""Leaderboards: ambassadors ranked by points, per period."""

from __future__ import annotations

import base64
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from redis.asyncio import Redis

from portevoix.contracts.periods import PERIOD_NAMES, period_of
from portevoix.contracts.readmodels import SCORING_GENERATION, ambassador_key, board_key
from portevoix.runtime.redis import text
from portevoix_api.problems import Problem

router = APIRouter(prefix="/v1/leaderboards", tags=["leaderboards"])


class Standing(BaseModel):
    rank: int
    ambassador_id: str
    display_name: str | None
    team: str | None
    points: int


class Leaderboard(BaseModel):
    period: str
    board: str
    items: list[Standing]
    next_cursor: str | None = None


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, value = raw.split(":", 1)
        if kind != "o" or int(value) < 0:
            raise ValueError(raw)
        return int(value)
    except ValueError as exc:
        raise Problem(
            422, "Invalid request", "cursor is not one this API returned", kind="invalid-cursor"
        ) from exc


@router.get(
    "/{period}",
    response_model=Leaderboard,
    summary="Leaderboard of a period",
    description="`period` is one of all-time, day, week (ISO), month, quarter, in the "
    "organisation's time zone; `date` picks the period containing that day (default today). "
    "Ties share a rank (competition ranking).",
)
async def leaderboard(
    request: Request,
    period: Annotated[str, Path(description="all-time | day | week | month | quarter")],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    day: Annotated[date | None, Query(alias="date", description="a day in the period")] = None,
) -> Any:
    kind = PERIOD_NAMES.get(period)
    if kind is None:
        raise Problem(
            404, "Not found", f"unknown period {period!r}; known: {', '.join(PERIOD_NAMES)}"
        )
    tz = ZoneInfo(request.app.state.settings.timezone)
    board = period_of(kind, day or datetime.now(tz).date())
    redis: Redis = request.app.state.redis
    gen = text(await redis.get(SCORING_GENERATION) or b"1")
    key = board_key(gen, board)
    offset = _offset(cursor)
    reply: list[Any] = await redis.zrevrange(key, offset, offset + limit, withscores=True)
    rows: list[tuple[bytes, float]] = [(m, float(sc)) for m, sc in reply]
    more = len(rows) > limit
    rows = rows[:limit]
    items: list[Standing] = []
    if rows:
        pipe = redis.pipeline(transaction=False)
        for member, _ in rows:
            pipe.hmget(ambassador_key(text(member)), "display_name", "team")
        # Competition rank of the first row: 1 + members with strictly more points.
        pipe.zcount(key, f"({rows[0][1]}", "+inf")
        replies: list[Any] = await pipe.execute()
        profiles: list[list[bytes | None]] = replies[:-1]
        above = int(replies[-1])
        rank, prev = above + 1, rows[0][1]
        for pos, ((member, score), (name, team)) in enumerate(zip(rows, profiles, strict=True)):
            if score != prev:
                rank, prev = above + 1 + pos, score
            items.append(
                Standing(
                    rank=rank,
                    ambassador_id=text(member),
                    display_name=text(name) if name else None,
                    team=text(team) if team else None,
                    points=int(score),
                )
            )
    return Leaderboard(
        period=period,
        board=board,
        items=items,
        next_cursor=_cursor(offset + limit) if more else None,
    )
