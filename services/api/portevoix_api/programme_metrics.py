"""Programme metrics for Prometheus, from the read models: consenting registered ambassadors,
those active in the last 30 days, all-time points per team, earned media value per network.

These are facts of the whole programme, the same for every API replica, and they live in Redis.
A background task reads them every `programme_metrics_interval_s` (two pipelined round trips, no
scan, no union) and a custom collector exports the last snapshot, so a scrape never touches Redis.
A failed read counts `pv_programme_metrics_errors_total` and keeps the last snapshot until it is
`programme_metrics_max_age_s` old; then the figures disappear (no data beats stale figures that
look live). Every replica reports the same figures: dashboards aggregate them with `max`.

Sources: the API's analytics projection (registered set, last-active index: same definition of
"active" as `GET /v1/analytics`: posted, relayed or engaged as an ambassador) and scoring's live
generation (`SCORING_GENERATION`): the all-time teams board and the organisation's stats hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from portevoix.contracts.readmodels import (
    ANALYTICS_REGISTERED,
    SCORING_GENERATION,
    stats_total_key,
    teams_board_key,
)
from portevoix.runtime.redis import text
from portevoix_api.background import stop_task
from portevoix_api.projections.analytics import LAST_ACTIVE
from portevoix_api.projections.store import AnalyticsStore

log = logging.getLogger("portevoix.api.programme")

ACTIVE_WINDOW_DAYS = 30
MAX_TEAMS = 500  # label cardinality bound: the top teams of the all-time board
CP = 100  # boards hold centipoints
EMV_UNIT = 10_000  # scoring accumulates EMV in 1/10,000 of a currency unit
# Organisation EMV per network, a field of the stats hash beside `emv:<CUR>` (`emvnet:EUR:linkedin`)
# once scoring writes it; EMV not (yet) attributed to a network is reported as this network.
EMV_NETWORK_PREFIX = "emvnet:"
UNATTRIBUTED = "unattributed"

REFRESH_ERRORS = Counter(
    "pv_programme_metrics_errors",
    "Failed reads of the programme metrics from Redis (the last figures are kept a while).",
)


@dataclass(frozen=True)
class ProgrammeFigures:
    registered: int
    active: int
    team_points: dict[str, float] = field(default_factory=dict)
    emv: dict[tuple[str, str], float] = field(default_factory=dict)  # (network, currency)


def day_number(day: date) -> int:
    """The last-active index's score of a local day: 2026-11-21 → 20261121."""
    return day.year * 10_000 + day.month * 100 + day.day


def emv_by_network(stats: dict[str, int]) -> dict[tuple[str, str], float]:
    """Currency units per (network, currency). The per-network fields are a breakdown of
    `emv:<CUR>`; what they do not cover (EMV scored before scoring wrote them) is `unattributed`,
    so the networks of a currency always add up to its total."""
    out: dict[tuple[str, str], float] = {}
    attributed: dict[str, int] = {}
    for k, v in stats.items():
        if k.startswith(EMV_NETWORK_PREFIX):
            currency, _, network = k.removeprefix(EMV_NETWORK_PREFIX).partition(":")
            if currency and network:
                out[(network, currency)] = v / EMV_UNIT
                attributed[currency] = attributed.get(currency, 0) + v
    for k, v in stats.items():
        if k.startswith("emv:"):
            currency = k.removeprefix("emv:")
            rest = v - attributed.get(currency, 0)
            if rest or currency not in attributed:
                out[(UNATTRIBUTED, currency)] = rest / EMV_UNIT
    return out


async def read_figures(redis: Redis, today: date) -> ProgrammeFigures:
    """The figures of `today` (local day), in two pipelined round trips."""
    since = day_number(today - timedelta(days=ACTIVE_WINDOW_DAYS - 1))
    pipe = redis.pipeline(transaction=False)
    pipe.get(SCORING_GENERATION)
    pipe.scard(ANALYTICS_REGISTERED)
    pipe.zcount(LAST_ACTIVE, since, "+inf")
    raw_gen, registered, active = await pipe.execute()
    for _ in range(2):  # a rebuild swapping generations in between: read the new one
        gen = text(raw_gen or b"1")
        pipe = redis.pipeline(transaction=False)
        pipe.zrevrange(teams_board_key(gen, "all"), 0, MAX_TEAMS - 1, withscores=True)
        pipe.hgetall(stats_total_key(gen))
        pipe.get(SCORING_GENERATION)
        teams, stats, now_gen = await pipe.execute()
        if now_gen == raw_gen:
            break
        raw_gen = now_gen
    return ProgrammeFigures(
        registered=int(registered),
        active=int(active),
        team_points={text(t): float(s) / CP for t, s in teams},
        emv=emv_by_network({text(k): int(v) for k, v in stats.items()}),
    )


class ProgrammeCollector(Collector):
    """Exports the last snapshot while it is younger than its maximum age; nothing otherwise."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._snapshot: tuple[float, float, ProgrammeFigures] | None = None  # at, max age, data

    def publish(self, figures: ProgrammeFigures, max_age_s: float) -> None:
        self._snapshot = (self._clock(), max_age_s, figures)

    def clear(self) -> None:
        self._snapshot = None

    def current(self) -> ProgrammeFigures | None:
        snap = self._snapshot
        if snap is None or self._clock() - snap[0] > snap[1]:
            return None
        return snap[2]

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        figures = self.current()
        if figures is None:
            return
        registered, active, teams, emv = self._families()
        registered.add_metric([], figures.registered)
        active.add_metric([], figures.active)
        for team, pts in figures.team_points.items():
            teams.add_metric([team], pts)
        for (network, currency), value in sorted(figures.emv.items()):
            emv.add_metric([network, currency], value)
        yield from (registered, active, teams, emv)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("pv_ambassadors_registered", "Consenting registered ambassadors."),
            GaugeMetricFamily(
                "pv_ambassadors_active",
                f"Consenting registered ambassadors who posted, relayed or engaged as an "
                f"ambassador in the last {ACTIVE_WINDOW_DAYS} local days.",
            ),
            GaugeMetricFamily(
                "pv_team_points",
                f"All-time points per team (live scoring generation; top {MAX_TEAMS} teams).",
                labels=["team"],
            ),
            GaugeMetricFamily(
                "pv_emv",
                "Earned media value, all time, in currency units (live scoring generation; "
                "falls on takedowns and rebuilds, hence a gauge).",
                labels=["network", "currency"],
            ),
        )


COLLECTOR = ProgrammeCollector()
REGISTRY.register(COLLECTOR)


class ProgrammeRefresher:
    """The background task feeding the collector."""

    def __init__(
        self,
        redis: Redis,
        zone: ZoneInfo,
        interval_s: float,
        max_age_s: float,
        collector: ProgrammeCollector = COLLECTOR,
    ) -> None:
        self.redis = redis
        self.zone = zone
        self.interval_s = interval_s
        self.max_age_s = max_age_s
        self.collector = collector
        self._store = AnalyticsStore(redis)
        self._backfilled = False
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def today(self) -> date:
        return datetime.now(self.zone).date()

    async def refresh(self) -> bool:
        """One read, bounded in time; True when the collector got fresh figures."""
        try:
            async with asyncio.timeout(max(1.0, min(self.interval_s, 5.0))):
                today = self.today()
                if not self._backfilled:
                    days = [
                        (today - timedelta(days=i)).isoformat() for i in range(ACTIVE_WINDOW_DAYS)
                    ]
                    filled = await self._store.backfill_last_active(days)
                    if filled is not None:
                        log.info("last-active index backfilled", extra={"pv": {"entries": filled}})
                    self._backfilled = True
                figures = await read_figures(self.redis, today)
        except Exception as exc:  # Redis down, timeout, a malformed value: never fatal here
            if self._stopping.is_set():
                return False
            REFRESH_ERRORS.inc()
            if not self._failing:
                log.warning("programme metrics unavailable", extra={"pv": {"error": repr(exc)}})
            self._failing = True
            return False
        if self._failing:
            log.info("programme metrics available again")
        self._failing = False
        self.collector.publish(figures, self.max_age_s)
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="programme-metrics")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)

    async def stop(self) -> None:
        await stop_task(self._task, self._stopping, grace_s=2.0)
        self._task = None
        self.collector.clear()
