"""One ambassador's score: points and rank per period, reach and EMV, ledger, badges.

Read-only over scoring's read models. An `ambassador` principal sees only its own data (403
otherwise); moderators, admins and services see everyone's.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

import orjson
import yaml
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from redis.asyncio import Redis

from portevoix.contracts.periods import PERIOD_NAMES
from portevoix.contracts.readmodels import (
    ambassador_key,
    badges_key,
    gen_table_key,
    ledger_key,
    stats_key,
)
from portevoix.runtime.redis import text
from portevoix_api.auth import Authenticated, Principal
from portevoix_api.problems import Problem
from portevoix_api.routes.leaderboards import (
    Period,
    board_for,
    generation,
    points,
    team_views,
    today,
)

router = APIRouter(prefix="/v1/ambassadors", tags=["scores"])
EMV_UNIT = 10_000  # scoring accumulates EMV in 1/10,000 of a currency unit
SCORE_PERIODS = [*PERIOD_NAMES, "rolling-30"]
AmbassadorId = Annotated[str, Path(min_length=1, max_length=200)]


def _allowed(who: Principal, ambassador_id: str) -> None:
    if who.role == "ambassador" and who.ambassador_id != ambassador_id:
        raise Problem(403, "Forbidden", "an ambassador may only read their own score")


async def _known(redis: Redis, gen: str, ambassador_id: str) -> None:
    pipe = redis.pipeline(transaction=False)
    pipe.exists(ambassador_key(ambassador_id))
    pipe.exists(ledger_key(gen, ambassador_id))
    if not any(await pipe.execute()):
        raise Problem(404, "Not found", f"no ambassador {ambassador_id!r}")


_TABLES: dict[bytes | str, dict[str, Any]] = {}  # parsed points tables by their text (few versions)


async def _table(redis: Redis, gen: str) -> dict[str, Any]:
    raw = await redis.get(gen_table_key(gen))
    if not raw:
        return {}
    table = _TABLES.get(raw)
    if table is None:
        data = yaml.safe_load(text(raw))
        table = _TABLES[raw] = data if isinstance(data, dict) else {}
    return table


class PeriodScore(BaseModel):
    board: str
    points: int | float
    rank: int | None  # None: no points in this period


class Level(BaseModel):
    id: str
    title: dict[str, str]


class Score(BaseModel):
    ambassador_id: str
    display_name: str | None
    team: str | None
    periods: dict[str, PeriodScore]
    team_rank: dict[str, PeriodScore]  # rank within the ambassador's team
    level: Level | None
    reach: dict[str, int]  # posts, impressions (estimated), reactions, clicks
    emv: dict[str, float]  # per currency
    table_version: str | None
    generation: str


@router.get(
    "/{ambassador_id}/score",
    response_model=Score,
    summary="An ambassador's points and rank per period, reach and EMV",
    description="Points and competition rank in every period (all-time, day, week, month, "
    "quarter, rolling-30) of the organisation's time zone, overall and within the team; level; "
    "estimated impressions and earned media value (Firstup's formula) per currency.",
)
async def score(request: Request, ambassador_id: AmbassadorId, who: Authenticated) -> Any:
    _allowed(who, ambassador_id)
    redis: Redis = request.app.state.redis
    gen = await generation(redis)
    await _known(redis, gen, ambassador_id)
    name, team = await redis.hmget(ambassador_key(ambassador_id), "display_name", "team")
    team_name = text(team) if team else None
    day = today(request)
    periods: dict[str, PeriodScore] = {}
    team_rank: dict[str, PeriodScore] = {}
    # Keys first (rolling windows are built on demand), then two pipelined round trips: every
    # ZSCORE, then every ZCOUNT above it (competition rank, O(log n) each).
    wanted: list[tuple[dict[str, PeriodScore], str, str, str]] = []
    for name_ in SCORE_PERIODS:
        kind = PERIOD_NAMES.get(name_, "rolling")
        period = Period(name_, kind, 30 if kind == "rolling" else 0)
        key, board = await board_for(redis, gen, period, day)
        wanted.append((periods, name_, key, board))
    if team_name:  # the team's views of the same boards, in one script
        views = await team_views(redis, gen, [(k, b, team_name) for _, _, k, b in wanted])
        wanted += [(team_rank, n, v, b) for (_, n, _, b), v in zip(wanted, views, strict=True)]
    pipe = redis.pipeline(transaction=False)
    for _, _, key, _ in wanted:
        pipe.zscore(key, ambassador_id)
    scores: list[float | None] = await pipe.execute()
    pipe = redis.pipeline(transaction=False)
    for (_, _, key, _), sc in zip(wanted, scores, strict=True):
        pipe.zcount(key, f"({sc}" if sc is not None else "+inf", "+inf")
    above: list[int] = await pipe.execute()
    for (target, name_, _, board), sc, n in zip(wanted, scores, above, strict=True):
        rank = int(n) + 1 if sc is not None else None
        target[name_] = PeriodScore(board=board, points=points(sc or 0.0), rank=rank)
    stats = {
        text(k): int(v) for k, v in (await redis.hgetall(stats_key(gen, ambassador_id))).items()
    }
    table = await _table(redis, gen)
    levels = [b for b in table.get("badges", []) if isinstance(b, dict) and b.get("level")]
    earned = {text(k) for k in await redis.hkeys(badges_key(gen, ambassador_id))}
    reached = [b for b in levels if b.get("id") in earned]
    level = None
    if reached:
        top = max(reached, key=lambda b: int(b.get("threshold", 0)))
        level = Level(id=str(top["id"]), title=dict(top.get("title") or {}))
    return Score(
        ambassador_id=ambassador_id,
        display_name=text(name) if name else None,
        team=team_name,
        periods=periods,
        team_rank=team_rank,
        level=level,
        reach={k: stats.get(k, 0) for k in ("posts", "impressions", "reactions", "clicks")},
        emv={k[4:]: round(v / EMV_UNIT, 2) for k, v in stats.items() if k.startswith("emv:")},
        table_version=str(table["version"]) if "version" in table else None,
        generation=gen,
    )


class LedgerLine(BaseModel):
    op: str  # award | hold | release | void | reverse
    points: int | float
    rule: str  # table action, with the fair-play rule applied (":colleague", ":cap"…)
    event_id: str
    post_key: str
    at: str  # when the action happened (a reversal: the local day it is taken from)
    cause: str | None = None  # the verdict or review that released, voided or reversed it


class Ledger(BaseModel):
    ambassador_id: str
    items: list[LedgerLine]  # newest first
    total: int
    next_cursor: str | None = None


def _ledger_cursor(gen: str, index: int) -> str:
    return base64.urlsafe_b64encode(f"l:{gen}:{index}".encode()).decode().rstrip("=")


def _ledger_index(cursor: str, gen: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, cgen, value = raw.split(":", 2)
        if kind != "l" or int(value) < 0:
            raise ValueError(raw)
    except ValueError as exc:
        raise Problem(
            422, "Invalid request", "cursor is not one this API returned", kind="invalid-cursor"
        ) from exc
    if cgen != gen:
        raise Problem(
            409, "Conflict", "scores were rebuilt since this cursor was issued; start again",
            kind="stale-cursor",
        )  # fmt: skip
    return int(value)


@router.get(
    "/{ambassador_id}/ledger",
    response_model=Ledger,
    summary="An ambassador's points ledger",
    description="Every point traceable: event → rule → points, with holds, releases, voids "
    "and reversals; newest first, cursor-paginated (stable while new lines are appended).",
)
async def ledger(
    request: Request,
    ambassador_id: AmbassadorId,
    who: Authenticated,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Any:
    _allowed(who, ambassador_id)
    redis: Redis = request.app.state.redis
    gen = await generation(redis)
    await _known(redis, gen, ambassador_id)
    key = ledger_key(gen, ambassador_id)
    total = int(await redis.llen(key))
    end = total if cursor is None else min(total, _ledger_index(cursor, gen))
    start = max(0, end - limit)
    raw: list[Any] = await redis.lrange(key, start, end - 1) if end > 0 else []
    items = [LedgerLine.model_validate(orjson.loads(x)) for x in reversed(raw)]
    return Ledger(
        ambassador_id=ambassador_id, items=items, total=total,
        next_cursor=_ledger_cursor(gen, start) if start > 0 else None,
    )  # fmt: skip


class BadgeOut(BaseModel):
    badge: str
    title: dict[str, str]
    at: str
    level: bool = False
    reason_event_id: str | None = None


class Badges(BaseModel):
    ambassador_id: str
    items: list[BadgeOut]


@router.get(
    "/{ambassador_id}/badges",
    response_model=Badges,
    summary="An ambassador's badges and levels",
    description="Each badge is awarded once (also published as `BadgeAwarded` on "
    "`pv.evt.badge.awarded`); oldest first.",
)
async def badges(request: Request, ambassador_id: AmbassadorId, who: Authenticated) -> Any:
    _allowed(who, ambassador_id)
    redis: Redis = request.app.state.redis
    gen = await generation(redis)
    await _known(redis, gen, ambassador_id)
    raw = await redis.hgetall(badges_key(gen, ambassador_id))
    items = sorted(
        (BadgeOut.model_validate(orjson.loads(v)) for v in raw.values()),
        key=lambda b: (b.at, b.badge),
    )
    return Badges(ambassador_id=ambassador_id, items=items)
