"""`GET /v1/analytics`: programme statistics over a period of local days.

From the API's own projection of the domain events (see `projections/`): participation rate,
posts and engagement by network, team, type and day, top hashtags, moderation verdicts overall
and per charter principle. EMV and reach come from scoring's organisation totals (all-time only:
scoring keeps no per-period EMV).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from portevoix.contracts.readmodels import SCORING_GENERATION, stats_total_key
from portevoix.runtime.redis import text
from portevoix_api.auth import Staff
from portevoix_api.problems import Problem, error_responses
from portevoix_api.projections.store import AnalyticsStore, PeriodFigures

router = APIRouter(prefix="/v1", tags=["analytics"])
MAX_DAYS = 366
DEFAULT_DAYS = 30
EMV_UNIT = 10_000  # scoring accumulates EMV in 1/10,000 of a currency unit


class Participation(BaseModel):
    registered: int = Field(description="consenting registered ambassadors now")
    active: int = Field(description="of those, how many posted or engaged in the period")
    rate: float = Field(description="active / registered (0 when nobody is registered)")


class Breakdown(BaseModel):
    total: int
    by_network: dict[str, int]
    by_team: dict[str, int]
    by_kind: dict[str, int] = Field(
        default_factory=dict, description="posts: original/relay; engagement: like/share/…"
    )


class DayFigures(BaseModel):
    date: str
    posts: int
    engagement: int


class Hashtag(BaseModel):
    hashtag: str = Field(description="without '#', lower case, accents folded")
    posts: int


class Verdicts(BaseModel):
    decisions: int
    by_verdict: dict[str, int]
    by_principle: dict[str, dict[str, int]] = Field(
        description="per charter principle, decisions whose worst finding of that principle had "
        "this verdict"
    )
    reviews: dict[str, int] = Field(description="moderators' outcomes: approved, rejected, …")


class Emv(BaseModel):
    scope: str = Field(description="`all-time`: scoring keeps organisation totals only")
    by_currency: dict[str, float]
    reach: dict[str, int]


class Analytics(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "2026-11-01", "to": "2026-11-21", "time_zone": "Europe/Paris",
                    "participation": {"registered": 40, "active": 12, "rate": 0.3},
                    "posts": {"total": 31, "by_network": {"linkedin": 25, "x": 6},
                              "by_team": {"Ventes": 20, "Tech": 11},
                              "by_kind": {"original": 22, "relay": 9}},
                    "engagement": {"total": 412, "by_network": {"linkedin": 380, "x": 32},
                                   "by_team": {"Ventes": 300, "Tech": 112},
                                   "by_kind": {"like": 350, "comment": 40, "share": 22}},
                    "days": [{"date": "2026-11-20", "posts": 3, "engagement": 41}],
                    "top_hashtags": [{"hashtag": "collaborateur", "posts": 14}],
                    "verdicts": {"decisions": 31, "by_verdict": {"allow": 27, "review": 3,
                                                                  "block": 1},
                                 "by_principle": {"responsabilite": {"block": 1}},
                                 "reviews": {"approved": 2}},
                    "emv": {"scope": "all-time", "by_currency": {"EUR": 1234.5},
                            "reach": {"impressions": 50000, "reactions": 900, "clicks": 120,
                                      "posts": 31}},
                }
            ]
        }
    )  # fmt: skip

    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    time_zone: str
    participation: Participation
    posts: Breakdown
    engagement: Breakdown
    days: list[DayFigures]
    top_hashtags: list[Hashtag]
    verdicts: Verdicts
    emv: Emv | None = Field(description="null until scoring has written its totals")


def _prefixed(counters: dict[str, int], prefix: str) -> dict[str, int]:
    return {k[len(prefix) :]: v for k, v in sorted(counters.items()) if k.startswith(prefix)}


def summarise(figures: PeriodFigures) -> dict[str, Any]:
    """Sum the day counters of a period into the response's sections."""
    total: dict[str, int] = {}
    days = []
    for day, counters in sorted(figures.days.items()):
        for k, v in counters.items():
            total[k] = total.get(k, 0) + v
        days.append({"date": day, "posts": counters.get("posts", 0),
                     "engagement": counters.get("eng", 0)})  # fmt: skip
    by_principle: dict[str, dict[str, int]] = {}
    for key, n in _prefixed(total, "principle:").items():
        principle, _, verdict = key.rpartition(":")
        by_principle.setdefault(principle, {})[verdict] = n
    by_verdict = _prefixed(total, "verdict:")
    rate = figures.active / figures.registered if figures.registered else 0.0
    return {
        "participation": {"registered": figures.registered, "active": figures.active,
                          "rate": round(rate, 4)},
        "posts": {"total": total.get("posts", 0), "by_network": _prefixed(total, "posts:net:"),
                  "by_team": _prefixed(total, "posts:team:"),
                  "by_kind": _prefixed(total, "posts:kind:")},
        "engagement": {"total": total.get("eng", 0), "by_network": _prefixed(total, "eng:net:"),
                       "by_team": _prefixed(total, "eng:team:"),
                       "by_kind": _prefixed(total, "eng:type:")},
        "days": days,
        "top_hashtags": [{"hashtag": t, "posts": n} for t, n in figures.hashtags],
        "verdicts": {"decisions": sum(by_verdict.values()), "by_verdict": by_verdict,
                     "by_principle": by_principle, "reviews": _prefixed(total, "review:")},
    }  # fmt: skip


async def scoring_totals(redis: Redis) -> dict[str, Any] | None:
    gen = text(await redis.get(SCORING_GENERATION) or b"1")
    raw = await redis.hgetall(stats_total_key(gen))
    if not raw:
        return None
    stats = {text(k): int(v) for k, v in raw.items()}
    return {
        "scope": "all-time",
        "by_currency": {
            k[4:]: round(v / EMV_UNIT, 2) for k, v in sorted(stats.items()) if k.startswith("emv:")
        },
        "reach": {k: stats.get(k, 0) for k in ("posts", "impressions", "reactions", "clicks")},
    }


def period_days(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


@router.get(
    "/analytics",
    response_model=Analytics,
    response_model_by_alias=True,
    summary="Programme analytics over a period",
    description="Local days of the organisation's time zone, `from` to `to` inclusive (default: "
    "the last 30 days up to today; at most 366 days). Participation = consenting registered "
    "ambassadors who posted or engaged in the period, over all of them. Moderators, admins, "
    "services.",
    responses=error_responses(422),
)
async def analytics(
    request: Request,
    _who: Staff,
    from_: Annotated[date | None, Query(alias="from", description="first day (YYYY-MM-DD)")] = None,
    to: Annotated[date | None, Query(description="last day, inclusive (YYYY-MM-DD)")] = None,
    top: Annotated[int, Query(ge=1, le=100, description="how many hashtags")] = 10,
) -> Any:
    zone = request.app.state.settings.timezone
    end = to or datetime.now(ZoneInfo(zone)).date()
    start = from_ or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise Problem(422, "Invalid request", "`from` is after `to`", kind="invalid-period")
    if (end - start).days + 1 > MAX_DAYS:
        raise Problem(
            422, "Invalid request", f"at most {MAX_DAYS} days per request", kind="invalid-period"
        )
    redis: Redis = request.app.state.redis
    store: AnalyticsStore = request.app.state.analytics_store
    figures = await store.period(period_days(start, end), top)
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "time_zone": zone,
        **summarise(figures),
        "emv": await scoring_totals(redis),
    }
