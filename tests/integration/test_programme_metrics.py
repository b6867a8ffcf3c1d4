"""Programme metrics of the API (/metrics): read from real read models in Valkey, written the way
the projection (registered set, last-active index) and scoring (live generation's teams board and
stats hash) write them; a Redis outage keeps the last figures, then omits them."""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from portevoix.contracts.readmodels import (
    ANALYTICS_ACTIVE,
    ANALYTICS_REGISTERED,
    SCORING_GENERATION,
    stats_total_key,
    teams_board_key,
)
from portevoix.runtime.embedded import free_port
from portevoix.runtime.redis import connect_redis
from portevoix_api.programme_metrics import (
    REFRESH_ERRORS,
    ProgrammeCollector,
    ProgrammeRefresher,
    read_figures,
)
from portevoix_api.projections.analytics import LAST_ACTIVE, AnalyticsPlanner, person
from portevoix_api.projections.store import AnalyticsStore

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")
TODAY = date(2026, 11, 21)
PLANNER = AnalyticsPlanner(PARIS, ["idee"], retention_days=400)


def at(day: date) -> str:
    return datetime(day.year, day.month, day.day, 12, tzinfo=PARIS).isoformat()


def registered(aid: str, consent: bool = True, n: int = 0) -> dict[str, Any]:
    return {"type": "ambassador.registered", "event_id": f"r-{aid}-{n}", "ambassador_id": aid,
            "team": "Ventes", "consent": consent, "occurred_at": at(TODAY)}  # fmt: skip


def posted(aid: str, day: date, n: int) -> dict[str, Any]:
    return {"type": "post.received", "event_id": f"p{n}", "post_key": f"linkedin:{n}",
            "ambassador_id": aid, "network": "linkedin", "occurred_at": at(day)}  # fmt: skip


def engaged(actor: str, day: date, n: int) -> dict[str, Any]:
    return {"type": "engagement.received", "event_id": f"e{n}", "post_key": "linkedin:1",
            "engagement": "like", "network": "linkedin", "actor_ambassador_id": actor,
            "occurred_at": at(day)}  # fmt: skip


async def project(redis: Redis, *events: dict[str, Any]) -> None:
    steps = [s for s in (PLANNER.plan(e) for e in events) if s is not None]
    await AnalyticsStore(redis).apply(steps)


def scrape(collector: ProgrammeCollector) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    registry = CollectorRegistry()
    registry.register(collector)
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


async def test_registered_and_active_follow_consent_window_and_erasure(redis: Redis) -> None:
    old = TODAY - timedelta(days=30)  # one day before the 30-day window
    await project(
        redis,
        registered("alice"), registered("bob"), registered("dave", consent=False),
        posted("alice", TODAY - timedelta(days=29), 1),  # first day of the window
        engaged("bob", old, 2),  # a relay/like as an ambassador, too old
        posted("dave", TODAY, 3),  # not consenting: not counted
    )  # fmt: skip
    figures = await read_figures(redis, TODAY)
    assert (figures.registered, figures.active) == (2, 1)
    await project(redis, engaged("bob", TODAY, 4), posted("alice", old, 5))
    figures = await read_figures(redis, TODAY)
    assert (figures.registered, figures.active) == (2, 2)  # an older post never moves alice back
    assert await redis.zscore(LAST_ACTIVE, person("alice")) == 20261023
    # Consent withdrawn, then an erasure: out of both figures.
    await project(redis, registered("alice", consent=False, n=1))
    figures = await read_figures(redis, TODAY)
    assert (figures.registered, figures.active) == (1, 1)
    erased = {"type": "ambassador.erased", "event_id": "x-bob", "ambassador_id": "bob",
              "occurred_at": at(TODAY)}  # fmt: skip
    await project(redis, erased)
    figures = await read_figures(redis, TODAY)
    assert (figures.registered, figures.active) == (0, 0)


async def test_team_points_and_emv_come_from_the_live_generation(redis: Redis) -> None:
    # Generation 1 was swapped out by a rebuild; generation 2 is live.
    await redis.zadd(teams_board_key("1", "all"), {"Ventes": 99_900})
    await redis.hset(stats_total_key("1"), mapping={"emv:EUR": 10_000_000})
    await redis.set(SCORING_GENERATION, "2")
    await redis.zadd(teams_board_key("2", "all"), {"Ventes": 1_050, "Tech": 2_000})
    await redis.zadd(teams_board_key("2", "week:2026-W47"), {"RH": 500})  # not all-time
    await redis.hset(
        stats_total_key("2"),
        mapping={"impressions": 900, "posts": 3, "emv:EUR": 123_450, "emv:USD": 20_000,
                 "emvnet:EUR:linkedin": 100_000, "emvnet:EUR:x": 3_450},
    )  # fmt: skip
    figures = await read_figures(redis, TODAY)
    assert figures.team_points == {"Tech": 20.0, "Ventes": 10.5}
    assert figures.emv == {
        ("linkedin", "EUR"): 10.0,
        ("x", "EUR"): 0.345,
        ("unattributed", "EUR"): 2.0,  # scored before scoring wrote the network breakdown
        ("unattributed", "USD"): 2.0,
    }
    collector = ProgrammeCollector()
    collector.publish(figures, max_age_s=60)
    metrics = scrape(collector)
    assert metrics["pv_team_points"] == {(("team", "Tech"),): 20.0, (("team", "Ventes"),): 10.5}
    emv = metrics["pv_emv"]
    assert emv[(("currency", "EUR"), ("network", "linkedin"))] == 10.0
    assert sum(v for k, v in emv.items() if ("currency", "EUR") in k) == pytest.approx(12.345)


async def test_an_empty_platform_reports_zeros(redis: Redis) -> None:
    figures = await read_figures(redis, TODAY)
    assert (figures.registered, figures.active, figures.team_points, figures.emv) == (0, 0, {}, {})


async def test_refresher_backfills_last_active_once_from_the_day_sets(redis: Redis) -> None:
    """A deployment older than the last-active index: the day sets say who was active."""
    today = datetime.now(PARIS).date()
    await redis.sadd(ANALYTICS_REGISTERED, "p-a", "p-b", "p-c")
    await redis.sadd(ANALYTICS_ACTIVE.format(day=today.isoformat()), "p-a", "p-gone")
    await redis.sadd(ANALYTICS_ACTIVE.format(day=(today - timedelta(days=3)).isoformat()), "p-b")
    await redis.sadd(ANALYTICS_ACTIVE.format(day=(today - timedelta(days=40)).isoformat()), "p-c")
    collector = ProgrammeCollector()
    refresher = ProgrammeRefresher(redis, PARIS, 1.0, 60.0, collector)
    assert await refresher.refresh()
    figures = collector.current()
    assert figures is not None and (figures.registered, figures.active) == (3, 2)
    assert await redis.zscore(LAST_ACTIVE, "p-gone") is None  # never registered
    # Once per deployment: a later refresh does not scan the day sets again.
    await redis.zadd(LAST_ACTIVE, {"p-a": 1})  # would be moved forward by a second backfill
    assert await AnalyticsStore(redis).backfill_last_active([today.isoformat()]) is None
    assert await redis.zscore(LAST_ACTIVE, "p-a") == 1


async def test_an_outage_keeps_the_last_figures_then_omits_them(redis: Redis) -> None:
    await redis.sadd(ANALYTICS_REGISTERED, "p-a")
    now = [1000.0]
    collector = ProgrammeCollector(clock=lambda: now[0])
    refresher = ProgrammeRefresher(redis, PARIS, 1.0, 30.0, collector)
    assert await refresher.refresh()
    assert scrape(collector)["pv_ambassadors_registered"] == {(): 1.0}
    # Redis unreachable: connection refused on a port nothing listens on.
    dead = connect_redis(f"redis://127.0.0.1:{free_port()}/0")
    refresher.redis = dead
    errors = REFRESH_ERRORS._value.get()
    try:
        started = time.perf_counter()
        assert not await refresher.refresh()
        assert time.perf_counter() - started < 5
    finally:
        await dead.aclose()
    assert REFRESH_ERRORS._value.get() == errors + 1
    now[0] += 29
    assert scrape(collector)["pv_ambassadors_registered"] == {(): 1.0}  # the last figures
    now[0] += 2
    assert scrape(collector) == {}  # too old: omitted rather than shown as live
    # Redis back: fresh figures again.
    refresher.redis = redis
    assert await refresher.refresh()
    assert scrape(collector)["pv_ambassadors_active"] == {(): 0.0}


async def test_a_scrape_costs_no_redis_call_and_microseconds(redis: Redis) -> None:
    await redis.sadd(ANALYTICS_REGISTERED, *(f"p{i}" for i in range(1000)))
    await redis.zadd(teams_board_key("1", "all"), {f"team-{i}": i * 100 for i in range(200)})
    collector = ProgrammeCollector()
    refresher = ProgrammeRefresher(redis, PARIS, 1.0, 60.0, collector)
    assert await refresher.refresh()
    await redis.flushdb()  # the scrape reads the snapshot, not Redis
    registry = CollectorRegistry()
    registry.register(collector)
    started = time.process_time()
    for _ in range(100):
        body = generate_latest(registry)
    per_scrape = (time.process_time() - started) / 100
    assert b"pv_ambassadors_registered 1000.0" in body
    assert body.count(b"pv_team_points{") == 200
    assert per_scrape < 0.005, per_scrape


async def test_the_background_task_refreshes_and_stops_promptly(redis: Redis) -> None:
    collector = ProgrammeCollector()
    refresher = ProgrammeRefresher(redis, PARIS, 0.05, 60.0, collector)
    refresher.start()
    await redis.sadd(ANALYTICS_REGISTERED, "p-a", "p-b")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        figures = collector.current()
        if figures is not None and figures.registered == 2:
            break
        await asyncio.sleep(0.02)
    assert figures is not None and figures.registered == 2  # picked up by a later refresh
    started = time.monotonic()
    await refresher.stop()
    assert time.monotonic() - started < 1
    assert collector.current() is None
