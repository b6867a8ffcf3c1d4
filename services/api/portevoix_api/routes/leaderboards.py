"""Leaderboards: ambassadors (or teams) ranked by points, per period, team or campaign.

Read-only over scoring's read models (Redis, `{sc}` generation keys). Boards hold centipoints;
points are returned as numbers (10, 10.5). Rolling windows (`rolling-30`) are the union of the
day boards of the window, cached a few seconds. A team's board is the organisation's board
restricted to the team's current members, built when read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from redis.asyncio import Redis

from portevoix.contracts.periods import PERIOD_NAMES, period_of
from portevoix.contracts.readmodels import (
    ROLLING_BOARD,
    SCORING_GENERATION,
    ambassador_key,
    board_key,
    campaign_board_key,
    team_members_key,
    team_view_key,
    teams_board_key,
)
from portevoix.runtime.redis import text
from portevoix_api.auth import Authenticated
from portevoix_api.pagination import decode_offset, offset_cursor
from portevoix_api.problems import Problem

router = APIRouter(prefix="/v1/leaderboards", tags=["leaderboards"])

CP = 100
ROLLING = re.compile(r"^rolling-(\d{1,2})$")
MAX_ROLLING_DAYS = 90
ROLLING_CACHE_MS = 5000
ROLLING_LUA = """
redis.call('ZUNIONSTORE', KEYS[1], #KEYS - 1, unpack(KEYS, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
"""
# A team's board: the organisation's board restricted to the team's members (scoring keeps no
# board per team), rebuilt by every read, so it is as live as the board it comes from. The TTL
# only clears views nobody reads any more.
TEAM_VIEW_MS = 5000
TEAM_VIEW_LUA = """
for i = 1, #KEYS, 3 do
  redis.call('ZINTERSTORE', KEYS[i], 2, KEYS[i + 1], KEYS[i + 2], 'WEIGHTS', 1, 0)
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
"""
PERIODS_DOC = "all-time | day | week | month | quarter | rolling-30 (rolling-N, N ≤ 90)"


def points(cp: float) -> int | float:
    """Centipoints as points: 1050 → 10.5, 1000 → 10."""
    n = round(cp)
    return n // CP if n % CP == 0 else n / CP


@dataclass(frozen=True)
class Period:
    name: str  # as in the URL
    kind: str  # all | day | week | month | quarter | rolling
    days: int = 0  # rolling window length


def parse_period(period: Annotated[str, Path(description=PERIODS_DOC)]) -> Period:
    kind = PERIOD_NAMES.get(period)
    if kind is not None:
        return Period(period, kind)
    m = ROLLING.match(period)
    if m and 1 <= int(m.group(1)) <= MAX_ROLLING_DAYS:
        return Period(period, "rolling", int(m.group(1)))
    known = ", ".join([*PERIOD_NAMES, "rolling-30"])
    raise Problem(404, "Not found", f"unknown period {period!r}; known: {known}")


ValidPeriod = Annotated[Period, Depends(parse_period)]


async def generation(redis: Redis) -> str:
    return text(await redis.get(SCORING_GENERATION) or b"1")


def today(request: Request) -> date:
    return datetime.now(ZoneInfo(request.app.state.settings.timezone)).date()


async def board_for(
    redis: Redis,
    gen: str,
    period: Period,
    day: date,
    *,
    team: str | None = None,
    campaign: str | None = None,
    teams: bool = False,
) -> tuple[str, str]:
    """(Redis key, board id) of a period's board in a scope; builds rolling unions and team
    views on demand."""
    if team is not None:
        whole, board = await board_for(redis, gen, period, day)
        return (await team_views(redis, gen, [(whole, board, team)]))[0], board

    def key_of(board: str) -> str:
        if teams:
            return teams_board_key(gen, board)
        if campaign is not None:
            return campaign_board_key(gen, board, campaign)
        return board_key(gen, board)

    if period.kind != "rolling":
        board = period_of(period.kind, day)
        return key_of(board), board
    start = day - timedelta(days=period.days - 1)
    board = f"rolling-{period.days}:{start.isoformat()}..{day.isoformat()}"
    scope = ":teams" if teams else f":campaign:{campaign}" if campaign else ""
    key = ROLLING_BOARD.format(gen=gen, days=period.days, end=day.isoformat(), scope=scope)
    if not await redis.exists(key):
        days = [
            key_of(f"day:{(start + timedelta(days=i)).isoformat()}") for i in range(period.days)
        ]
        # One script: the cache never exists without its expiry (same slot: Redis Cluster too).
        await redis.eval(ROLLING_LUA, len(days) + 1, key, *days, ROLLING_CACHE_MS)
    return key, board


async def team_views(redis: Redis, gen: str, wanted: list[tuple[str, str, str]]) -> list[str]:
    """Each (board key, board id, team) as the team's view: the board restricted to the team's
    members, built now, all in one script (a view never exists without its expiry; every key
    is in the `{sc}` slot: Redis Cluster too)."""
    views = [team_view_key(gen, board, team) for _, board, team in wanted]
    keys = [k for view, (whole, _, team) in zip(views, wanted, strict=True)
            for k in (view, whole, team_members_key(gen, team))]  # fmt: skip
    await redis.eval(TEAM_VIEW_LUA, len(keys), *keys, TEAM_VIEW_MS)
    return views


class Standing(BaseModel):
    rank: int
    ambassador_id: str
    display_name: str | None
    team: str | None
    points: int | float


class Leaderboard(BaseModel):
    period: str
    board: str
    team: str | None = None
    campaign: str | None = None
    items: list[Standing]
    next_cursor: str | None = None


class TeamStanding(BaseModel):
    rank: int
    team: str
    points: int | float
    active_ambassadors: int
    average: int | float  # points per active ambassador (who earned points in the period)


class TeamLeaderboard(BaseModel):
    period: str
    board: str
    items: list[TeamStanding]
    next_cursor: str | None = None


async def _page(
    redis: Redis, key: str, cursor: str | None, limit: int
) -> tuple[list[tuple[str, float, int]], str | None]:
    """A page of a board: (member, score, competition rank), and the next cursor."""
    offset = decode_offset(cursor)
    reply: list[Any] = await redis.zrevrange(key, offset, offset + limit, withscores=True)
    rows = [(text(m), float(sc)) for m, sc in reply]
    more = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        return [], None
    # Competition rank of the first row: 1 + members with strictly more points.
    above = int(await redis.zcount(key, f"({rows[0][1]}", "+inf"))
    out: list[tuple[str, float, int]] = []
    rank, prev = above + 1, rows[0][1]
    for pos, (member, score) in enumerate(rows):
        if score != prev:
            rank, prev = above + 1 + pos, score
        out.append((member, score, rank))
    return out, offset_cursor(offset + limit) if more else None


Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Day = Annotated[date | None, Query(alias="date", description="a day in the period (default today)")]


@router.get(
    "/{period}",
    response_model=Leaderboard,
    summary="Leaderboard of a period",
    description="`period` is one of all-time, day, week (ISO), month, quarter, rolling-30, in "
    "the organisation's time zone; `date` picks the period containing (or, for rolling windows, "
    "ending on) that day (default today). `team` ranks one team's ambassadors; `campaign` ranks "
    "the points earned on a campaign's posts. Ties share a rank (competition ranking).",
)
async def leaderboard(
    request: Request,
    period: ValidPeriod,
    _who: Authenticated,
    limit: Limit = 50,
    cursor: Cursor = None,
    day: Day = None,
    team: Annotated[str | None, Query(max_length=100, description="a team's board")] = None,
    campaign: Annotated[str | None, Query(max_length=200, description="a campaign's board")] = None,
) -> Any:
    if team is not None and campaign is not None:
        raise Problem(422, "Invalid request", "choose team or campaign, not both")
    redis: Redis = request.app.state.redis
    gen = await generation(redis)
    key, board = await board_for(
        redis, gen, period, day or today(request), team=team, campaign=campaign
    )
    rows, next_cursor = await _page(redis, key, cursor, limit)
    items: list[Standing] = []
    if rows:
        pipe = redis.pipeline(transaction=False)
        for member, _, _ in rows:
            pipe.hmget(ambassador_key(member), "display_name", "team")
        profiles: list[list[bytes | None]] = await pipe.execute()
        for (member, score, rank), (name, their_team) in zip(rows, profiles, strict=True):
            items.append(
                Standing(
                    rank=rank,
                    ambassador_id=member,
                    display_name=text(name) if name else None,
                    team=text(their_team) if their_team else None,
                    points=points(score),
                )
            )
    return Leaderboard(
        period=period.name, board=board, team=team, campaign=campaign, items=items,
        next_cursor=next_cursor,
    )  # fmt: skip


@router.get(
    "/{period}/teams",
    response_model=TeamLeaderboard,
    summary="Team leaderboard of a period",
    description="Teams ranked by total points in the period, with the number of active "
    "ambassadors (who earned points in the period) and the average per active ambassador.",
)
async def team_leaderboard(
    request: Request,
    period: ValidPeriod,
    _who: Authenticated,
    limit: Limit = 50,
    cursor: Cursor = None,
    day: Day = None,
) -> Any:
    redis: Redis = request.app.state.redis
    gen = await generation(redis)
    the_day = day or today(request)
    key, board = await board_for(redis, gen, period, the_day, teams=True)
    rows, next_cursor = await _page(redis, key, cursor, limit)
    # Each team's view of the organisation's board (its active members), in one script.
    whole, _ = await board_for(redis, gen, period, the_day)
    members = await team_views(redis, gen, [(whole, board, t) for t, _, _ in rows]) if rows else []
    pipe = redis.pipeline(transaction=False)
    for m in members:
        pipe.zcount(m, "(0", "+inf")
    active: list[int] = [int(x) for x in await pipe.execute()] if members else []
    items = [
        TeamStanding(
            rank=rank,
            team=t,
            points=points(score),
            active_ambassadors=n,
            average=points(score / n) if n else 0,
        )
        for (t, score, rank), n in zip(rows, active, strict=True)
    ]
    return TeamLeaderboard(period=period.name, board=board, items=items, next_cursor=next_cursor)
