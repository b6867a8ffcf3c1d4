"""The simulated activity of an organisation, as ingest contract v1 events, in time order.

Deterministic: a seed and a configuration give the same events, byte for byte (one
`random.Random`, no set iteration, no clock: the start instant is part of the configuration).
Streaming: posts are generated in time order and their engagement is scheduled in a heap, so
a million events need only the posts still receiving engagement in memory.
"""

from __future__ import annotations

import heapq
import random
import time
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from portevoix.simulation.organisation import Ambassador, Organisation, build_organisation
from portevoix.simulation.texts import (
    CAMPAIGNS,
    PROBLEMS,
    Lang,
    Problem,
    ordinary,
    relay_text,
    with_problem,
)

# How often each problem appears among problem posts (insults and bait are the common ones).
PROBLEM_WEIGHTS: dict[str, float] = {
    "insult": 2,
    "iban": 0.5,
    "card": 0.5,
    "nir": 0.5,
    "confidential": 1,
    "hashtag_stuffing": 1.5,
    "engagement_bait": 2,
    "shouting": 1,
    "missing_disclosure": 1.5,
}
# Engagement mix (LinkedIn-like): likes dominate, comments are rarer and worth more.
ENGAGEMENT_MIX = (("like", 0.6), ("click", 0.2), ("comment", 0.12), ("share", 0.08))
_COMMENTS = {
    "fr": ("Bravo !", "Super initiative", "Merci pour le partage", "Félicitations à l'équipe",
           "Très intéressant", "On en reparle ?", "Top !"),
    "en": ("Congrats!", "Great initiative", "Thanks for sharing", "Well done team",
           "Very interesting", "Let's talk about it", "Awesome!"),
}  # fmt: skip
_INTROS = {
    "fr": ("Fier de relayer :", "À partager sans modération :", "Je relaie avec plaisir :",
           "Belle initiative de mon entreprise :", "Pour celles et ceux que ça intéresse :"),
    "en": ("Happy to share:", "Worth a read:", "Proud of this one:",
           "From my company:", "For those interested:"),
}  # fmt: skip


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_epoch(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass(frozen=True)
class SimulationConfig:
    seed: int = 1
    events: int = 10_000  # total, registrations included
    ambassadors: int = 200
    start: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    days: float = 14.0  # activity spreads over [start, start + days]
    post_share: float = 0.08  # posts among activity events
    relay_share: float = 0.35  # relays among posts
    problem_share: float = 0.12  # posts that break the charter
    colleague_share: float = 0.12  # engagement by fellow ambassadors
    rings: int = 3  # colleague like-rings
    fans: int = 0  # external audience size (0: 60 per ambassador)
    prefix: str = "sim"

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


@dataclass(frozen=True)
class SimEvent:
    """One event of the stream, with the simulator's ground truth beside the payload."""

    payload: dict[str, Any]
    problem: str | None = None
    ring: bool = False


@dataclass
class SimulationStats:
    ambassadors: int = 0
    posts: int = 0
    relays: int = 0
    engagement: int = 0
    colleague_engagement: int = 0
    ring_likes: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    by_type: dict[str, int] = field(default_factory=dict)


@dataclass
class _Post:
    post_id: str
    network: str
    author: Ambassador
    at: float  # epoch seconds
    lang: Lang
    reacted: set[tuple[str, str]] = field(default_factory=set)  # (kind, actor)
    next_engagement: int = 0


class Simulation:
    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.organisation: Organisation = build_organisation(
            self.rng, config.ambassadors, n_rings=config.rings
        )
        self.stats = SimulationStats()
        self._fans = config.fans or max(1000, 60 * config.ambassadors)
        self._weights = [a.activity for a in self.organisation.ambassadors]
        self._ring_of: dict[str, list[Ambassador]] = {}
        for ring in self.organisation.rings:
            for member in ring:
                self._ring_of[member.ambassador_id] = [m for m in ring if m is not member]
        self._problem_names = list(PROBLEMS)
        self._problem_weights = [PROBLEM_WEIGHTS[p] for p in PROBLEMS]
        # Cumulative weights once: `choices` would re-add them on every draw.
        self._author_cum = list(accumulate(self._weights))
        self._kinds = [k for k, _ in ENGAGEMENT_MIX]
        self._kind_cum = list(accumulate(w for _, w in ENGAGEMENT_MIX))
        self._start = config.start.timestamp()
        self._end = config.end.timestamp()

    # -- the stream ------------------------------------------------------------------------
    def events(self) -> Iterator[SimEvent]:
        cfg = self.config
        emitted = 0
        for a in self.organisation.ambassadors:
            if emitted >= cfg.events:
                return
            emitted += 1
            yield self._count(SimEvent(a.registration()))
        activity = cfg.events - emitted
        expected_posts = max(1, round(activity * cfg.post_share))
        mean_gap = cfg.days * 86_400 / expected_posts
        engagement_mean = (1 - cfg.post_share) / cfg.post_share
        heap: list[tuple[float, int, SimEvent]] = []
        seq = 0
        at = self._start
        k = 0
        while emitted < cfg.events:
            at = min(self._end, at + self.rng.expovariate(1 / mean_gap))
            # Engagement due before this post goes first: the stream is in time order.
            while heap and heap[0][0] <= at and emitted < cfg.events:
                emitted += 1
                yield self._count(heapq.heappop(heap)[2])
            if emitted >= cfg.events:
                return
            post, event = self._post(k, at)
            k += 1
            emitted += 1
            yield self._count(event)
            for when, item in self._engagement_of(post, engagement_mean):
                seq += 1
                heapq.heappush(heap, (when, seq, item))
            if at >= self._end and len(heap) >= cfg.events - emitted:
                break  # the window is full: only scheduled engagement remains
        while heap and emitted < cfg.events:
            emitted += 1
            yield self._count(heapq.heappop(heap)[2])

    def _count(self, e: SimEvent) -> SimEvent:
        kind = str(e.payload["type"])
        self.stats.by_type[kind] = self.stats.by_type.get(kind, 0) + 1
        if kind == "ambassador":
            self.stats.ambassadors += 1
        elif kind == "post":
            self.stats.posts += 1
            self.stats.relays += e.payload["kind"] == "relay"
            if e.problem:
                self.stats.problems[e.problem] = self.stats.problems.get(e.problem, 0) + 1
        else:
            self.stats.engagement += 1
            self.stats.ring_likes += e.ring
        return e

    # -- posts -----------------------------------------------------------------------------
    def _author(self) -> Ambassador:
        ambassadors = self.organisation.ambassadors
        return ambassadors[bisect(self._author_cum, self.rng.random() * self._author_cum[-1])]

    def _post(self, k: int, at: float) -> tuple[_Post, SimEvent]:
        cfg, rng = self.config, self.rng
        author = self._author()
        networks = list(author.handles)
        network = "linkedin" if "linkedin" in networks and rng.random() < 0.7 else None
        network = network or rng.choice(networks)
        lang: Lang = author.lang
        problem: Problem | None = None
        if rng.random() < cfg.problem_share:
            problem = rng.choices(self._problem_names, weights=self._problem_weights)[0]  # type: ignore[assignment]
        relay = problem == "missing_disclosure" or (
            problem is None and rng.random() < cfg.relay_share
        )
        campaign: str | None = None
        if relay:
            campaign = rng.choice(list(CAMPAIGNS))
            if campaign == "cmp-vivatech":
                # The charter's template is French; its relays are recognised as campaign
                # content, not as a copy-paste flood.
                lang = "fr"
                text = relay_text(rng, campaign, lang, disclose=problem is None)
            else:
                intro = rng.choice(_INTROS[lang])
                text = f"{intro} {relay_text(rng, campaign, lang, disclose=problem is None)}"
        else:
            text = ordinary(rng, lang)
            if problem is not None:
                text = with_problem(rng, problem, lang, text)
        post_id = f"{cfg.prefix}{cfg.seed}-{k}"
        payload: dict[str, Any] = {
            "type": "post",
            "event_id": f"{post_id}-post",
            "network": network,
            "post_id": post_id,
            "author": author.handles[network],
            "text": text,
            "kind": "relay" if relay else "original",
            "occurred_at": iso_epoch(at),
            "lang": lang,
            "followers": author.followers[network],
        }
        if campaign is not None:
            payload["campaign"] = campaign
        return _Post(post_id, network, author, at, lang), SimEvent(payload, problem)

    # -- engagement ------------------------------------------------------------------------
    def _engagement_of(self, post: _Post, mean: float) -> list[tuple[float, SimEvent]]:
        rng = self.rng
        reach = (post.author.followers[post.network] / 300) ** 0.3
        # Pareto(1.6) has mean 1.6/0.6: scaled so the average post gets `mean` interactions.
        n = int(mean * rng.paretovariate(1.6) * 0.375 * min(5.0, max(0.3, reach)))
        n = min(n, 5000)
        out: list[tuple[float, SimEvent]] = []
        if post.network == "linkedin":
            for mate in self._ring_of.get(post.author.ambassador_id, ()):
                if rng.random() < 0.9:
                    item = self._engage(post, "like", mate.handles["linkedin"], ring=True)
                    if item is not None:
                        out.append((self._when(post), item))
        while len(out) < n:
            kind = self._kinds[bisect(self._kind_cum, rng.random() * self._kind_cum[-1])]
            actor = self._actor(post)
            item = self._engage(post, kind, actor)
            if item is None:
                item = self._engage(post, "click", actor)
            assert item is not None
            out.append((self._when(post), item))
        for when, event in out:
            event.payload["occurred_at"] = iso_epoch(when)
        return out

    def _when(self, post: _Post) -> float:
        # Most engagement comes in the first hours; clamp to the window (never in the future).
        return min(self._end, post.at + self.rng.expovariate(1 / (4 * 3600)))

    def _actor(self, post: _Post) -> str:
        rng = self.rng
        if rng.random() < self.config.colleague_share:
            mate = rng.choice(self.organisation.ambassadors)
            if post.network in mate.handles:
                return mate.handles[post.network]
        return f"fan-{rng.randrange(self._fans)}"

    def _engage(self, post: _Post, kind: str, actor: str, ring: bool = False) -> SimEvent | None:
        # One like and one share per actor and post: a second one is the same fact.
        if kind in ("like", "share"):
            if (kind, actor) in post.reacted:
                return None
            post.reacted.add((kind, actor))
        post.next_engagement += 1
        payload: dict[str, Any] = {
            "type": kind,
            "event_id": f"{post.post_id}-{post.next_engagement}",
            "network": post.network,
            "post_id": post.post_id,
            "actor": actor,
            "occurred_at": "",  # stamped once its time is drawn (`_engagement_of`)
        }
        if kind == "comment":
            payload["text"] = self.rng.choice(_COMMENTS[post.lang])
        if not actor.startswith("fan-"):
            self.stats.colleague_engagement += 1
        return SimEvent(payload, ring=ring)


def simulate(config: SimulationConfig) -> Iterator[dict[str, Any]]:
    """The payloads only (what producers send)."""
    for e in Simulation(config).events():
        yield e.payload
